package logging

// EventField is the zap field name that says which kind of line this is,
// in a few stable words ("state change", "probe failed", "remedy
// finished", "diagnosis", "incident firing", ...), while the message itself
// is a sentence for people that names the check, the unit and the facts:
//
//	log.Info("app: healthy → failing: 3 consecutive failed probes: ...",
//		zap.String(logging.EventField, "state change"), ...)
//
// In the journal it is the EVENT= field: `journalctl -u medic EVENT="state
// change"` lists every transition. Unlike MESSAGE_ID (Field), it is not
// limited to the catalog's IDs.
const EventField = "event"
