package logging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap/zapcore"
)

// DefaultJournalSocket is where systemd-journald receives the native
// protocol.
const DefaultJournalSocket = "/run/systemd/journal/socket"

// journalSender sends entries to journald over its native protocol
// (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): one datagram per entry on
// the unixgram socket at addr, each field as "KEY=value\n", or, when the
// value holds a newline, as "KEY\n", its length as a 64-bit little-endian
// integer, the value and "\n". An entry too big for a datagram is written
// to a sealed memfd whose descriptor is sent instead.
//
// go-systemd's journal package speaks the same protocol, but only to the
// fixed /run/systemd/journal/socket; this one takes the path, so tests can
// give it a socket of their own.
type journalSender struct {
	addr *net.UnixAddr
	conn *net.UnixConn // unconnected: each send goes to addr by name, so a restarted journald is found again
}

func newJournalSender(path string) (*journalSender, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("open journal client socket: %w", err)
	}
	return &journalSender{addr: &net.UnixAddr{Name: path, Net: "unixgram"}, conn: conn}, nil
}

// journalAvailable reports whether something receives datagrams at path,
// as go-systemd's journal.Enabled does for the default path.
func journalAvailable(path string) bool {
	conn, err := net.Dial("unixgram", path)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// send sends one entry made of fields, in order. Field names must already
// be valid journal field names.
func (s *journalSender) send(fields []kv) error {
	var data bytes.Buffer
	for _, f := range fields {
		appendJournalField(&data, f.key, f.value)
	}
	_, _, err := s.conn.WriteMsgUnix(data.Bytes(), nil, s.addr)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EMSGSIZE) && !errors.Is(err, syscall.ENOBUFS) {
		return fmt.Errorf("send to journal: %w", err)
	}
	f, err := sealedMemfd(data.Bytes())
	if err != nil {
		return fmt.Errorf("send large entry to journal: %w", err)
	}
	defer f.Close()
	if _, _, err := s.conn.WriteMsgUnix(nil, syscall.UnixRights(int(f.Fd())), s.addr); err != nil {
		return fmt.Errorf("send large entry to journal: %w", err)
	}
	return nil
}

func appendJournalField(b *bytes.Buffer, name, value string) {
	if !strings.ContainsRune(value, '\n') {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(value)
		b.WriteByte('\n')
		return
	}
	b.WriteString(name)
	b.WriteByte('\n')
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(value)))
	b.Write(n[:])
	b.WriteString(value)
	b.WriteByte('\n')
}

// reservedJournalFields are the fields journalWriter sets itself; a zap
// field that maps to one of them is written as FIELD_<name> instead.
var reservedJournalFields = map[string]bool{
	"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true, "LOGGER": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true, "STACKTRACE": true,
}

// journalWriter writes each entry to the journal with the native protocol:
// MESSAGE, PRIORITY (see priority), SYSLOG_IDENTIFIER, LOGGER (the zap
// logger's name, when it has one), CODE_FILE/CODE_LINE/CODE_FUNC when the
// logger adds the caller, STACKTRACE when the entry has one, then every zap
// field under its JournalFieldName. A field that maps to MESSAGE_ID is
// written as MESSAGE_ID only when its value is one of medic's catalog IDs
// (IsCatalogID) and no earlier field of the entry was; otherwise it is
// written as FIELD_MESSAGE_ID, so `journalctl MESSAGE_ID=` only ever finds
// the kinds of event medic.catalog explains. When the journal cannot be reached it
// writes the entry to fallback instead (a prefixWriter on stderr), so a
// journald restart loses no line.
type journalWriter struct {
	sender     *journalSender
	identifier string
	fallback   entryWriter
}

func (j *journalWriter) writeEntry(ent zapcore.Entry, fields []kv) error {
	err := j.sender.send(j.journalFields(ent, fields))
	if err == nil {
		return nil
	}
	if ferr := j.fallback.writeEntry(ent, fields); ferr != nil {
		return errors.Join(err, ferr)
	}
	return nil
}

func (j *journalWriter) journalFields(ent zapcore.Entry, fields []kv) []kv {
	out := make([]kv, 0, len(fields)+8)
	out = append(out,
		kv{"MESSAGE", ent.Message},
		kv{"PRIORITY", strconv.Itoa(priority(ent.Level))},
		kv{"SYSLOG_IDENTIFIER", j.identifier},
	)
	if ent.LoggerName != "" {
		out = append(out, kv{"LOGGER", ent.LoggerName})
	}
	if ent.Caller.Defined {
		out = append(out,
			kv{"CODE_FILE", ent.Caller.File},
			kv{"CODE_LINE", strconv.Itoa(ent.Caller.Line)},
			kv{"CODE_FUNC", ent.Caller.Function},
		)
	}
	if ent.Stack != "" {
		out = append(out, kv{"STACKTRACE", ent.Stack})
	}
	messageID := false
	for _, f := range fields {
		name := JournalFieldName(f.key)
		switch {
		case reservedJournalFields[name]:
			name = JournalFieldName("FIELD_" + name)
		case name == messageIDField:
			// Only one of medic's catalog IDs may be the entry's
			// MESSAGE_ID, and only once; any other value (a per-event ID
			// logged under Field by mistake) keeps its text under a
			// name of its own.
			if messageID || !IsCatalogID(f.value) {
				name = JournalFieldName("FIELD_" + name)
			}
			messageID = true
		}
		out = append(out, kv{name, f.value})
	}
	return out
}

// messageIDField is the journal field that names the kind of event; see
// Field and IsCatalogID.
const messageIDField = "MESSAGE_ID"

// stderrFd returns the file descriptor behind w, if it has one.
func stderrFd(w any) (int, bool) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	if file, isFile := w.(*os.File); isFile && file == nil {
		return 0, false
	}
	return int(f.Fd()), true
}

// isJournalStream reports whether w is connected to journald's stream
// transport: the JOURNAL_STREAM environment variable, which systemd sets to
// "DEV:INODE" of the stream it connects stdout/stderr to (systemd.exec(5)),
// matches w's fstat st_dev:st_ino. It is false when the variable is unset or
// malformed, or w has no file descriptor.
func isJournalStream(w any) bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	devStr, inoStr, ok := strings.Cut(v, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devStr, 10, 64)
	ino, err2 := strconv.ParseUint(inoStr, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fd, ok := stderrFd(w)
	if !ok {
		return false
	}
	gotDev, gotIno, err := fdDevIno(fd)
	return err == nil && gotDev == dev && gotIno == ino
}
