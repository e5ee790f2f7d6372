package logging

// Field is the zap field name that carries an event's journal MESSAGE_ID:
//
//	log.Warn("gave up", zap.String(logging.Field, logging.GaveUp))
//
// The journal core writes it as the MESSAGE_ID= field, so
// `journalctl MESSAGE_ID=<id>` finds every such event and `journalctl -x`
// shows the entry of medic.catalog for it. Use it only with the IDs below:
// journald expects a MESSAGE_ID to be a 128-bit ID naming a kind of event,
// never a per-event identifier. The journal core enforces this: it writes a
// MESSAGE_ID that is not one of them as FIELD_MESSAGE_ID (see
// IsCatalogID). Per-event identifiers have fields of their own, such as
// "incident" and "notification_id".
const Field = "message_id"

// MESSAGE_ID values, one per kind of event, 128-bit IDs as 32 lowercase hex
// digits (made once with `systemd-id128 new`; they never change). Each has an
// entry in medic.catalog.
const (
	// RestartPerformed: medic restarted (or started) a check's unit and
	// the restart job finished.
	RestartPerformed = "39b3add416814a5b822356c9c6e0758c"
	// RestartFailed: the restart job failed or timed out, or the probes did
	// not pass within the verify timeout after it.
	RestartFailed = "6f8dd891b5724a059e535a61760f321f"
	// GaveUp: the check spent its restart budget; medic keeps probing and
	// escalates, but no longer acts on the unit.
	GaveUp = "4011d6b62a44488cbef0dcddc43925a0"
	// ConfigReloaded: a new configuration was loaded, validated and put
	// into effect.
	ConfigReloaded = "0da260e18db241258695929b0ecd89b5"
	// ConfigReloadFailed: a changed configuration was rejected; medic keeps
	// running on the previous one.
	ConfigReloadFailed = "7f72ade267c344b0a15e589406841716"
	// IncidentFiring: an incident opened (or a reminder for an open one
	// was sent) and is handed to the check's notifiers.
	IncidentFiring = "083d5d7d43d54600a58296e084ad4d46"
	// IncidentResolved: the check's probes pass again and its incident is
	// resolved.
	IncidentResolved = "5e174cf683764f43aa55a19c7b89c7b1"
)

// catalogIDs holds every MESSAGE_ID above; medic.catalog has an entry for
// each (a test compares the two).
var catalogIDs = map[string]bool{
	RestartPerformed:   true,
	RestartFailed:      true,
	GaveUp:             true,
	ConfigReloaded:     true,
	ConfigReloadFailed: true,
	IncidentFiring:     true,
	IncidentResolved:   true,
}

// IsCatalogID reports whether id is one of medic's MESSAGE_IDs, the
// constants above with an entry in medic.catalog.
func IsCatalogID(id string) bool { return catalogIDs[id] }
