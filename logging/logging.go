// Package logging builds medic's process logger: zap, never sampled, in the
// format that suits where stderr goes.
//
// Under systemd, stderr is journald's stream. Then medic logs with the
// journal's native protocol, so every zap field becomes a journal field of
// its own, upper-cased (check → CHECK, unit → UNIT, message_id →
// MESSAGE_ID), and
//
//	journalctl -u medic CHECK=my-app
//	journalctl MESSAGE_ID=4011d6b62a44488cbef0dcddc43925a0   # logging.GaveUp
//
// find the lines of one check or one kind of event. The MESSAGE_IDs are the
// constants in catalog.go; medic.catalog holds their journal catalog
// entries, and no other value is ever written as MESSAGE_ID (see
// IsCatalogID). Outside systemd medic logs JSON (for log shippers) or, on a
// terminal, a console format for people.
package logging

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The values of Options.Format.
const (
	// FormatAuto picks the format from where stderr goes; see New.
	FormatAuto = "auto"
	// FormatJournal logs to the journal with the native protocol, or, when
	// its socket cannot be reached, as priority-prefixed lines on stderr.
	FormatJournal = "journal"
	// FormatConsole logs human-readable lines: time, level, logger name,
	// message and the fields as JSON.
	FormatConsole = "console"
	// FormatJSON logs one JSON object per line with an RFC 3339 time (ts),
	// level, logger, msg and the fields, for shipping off the box.
	FormatJSON = "json"
)

// Options configure New. The zero value logs at info level in the "auto"
// format to os.Stderr as "medic".
type Options struct {
	// Format is "auto" (the default when empty), "journal", "console" or
	// "json".
	Format string
	// Level is the lowest level logged; the zero value is info.
	Level zapcore.Level
	// Stderr is where lines go; nil means os.Stderr. JOURNAL_STREAM
	// detection and terminal detection look at its file descriptor, so a
	// writer without an Fd method is neither the journal nor a terminal.
	Stderr io.Writer
	// Identifier is the SYSLOG_IDENTIFIER sent with the native protocol;
	// empty means "medic". (On the stream transport journald takes it from
	// the unit's SyslogIdentifier= instead.)
	Identifier string
	// JournalSocket is journald's native socket; empty means
	// DefaultJournalSocket. Tests point it at a socket of their own.
	JournalSocket string
}

// mode is what a format resolves to.
type mode int

const (
	modeNative  mode = iota // native protocol to JournalSocket
	modePrefix              // "<N>message key=value" lines on stderr
	modeConsole             // zap's console encoder on stderr
	modeJSON                // zap's JSON encoder on stderr
)

func (m mode) String() string {
	return [...]string{"journal (native protocol)", "journal (priority-prefixed stderr)", "console", "json"}[m]
}

// resolve decides how opts.Format logs.
func resolve(opts Options, stderr io.Writer) (mode, error) {
	socket := opts.JournalSocket
	if socket == "" {
		socket = DefaultJournalSocket
	}
	switch opts.Format {
	case "", FormatAuto:
		if isJournalStream(stderr) {
			if journalAvailable(socket) {
				return modeNative, nil
			}
			return modePrefix, nil
		}
		if fd, ok := stderrFd(stderr); ok && isTerminal(fd) {
			return modeConsole, nil
		}
		return modeJSON, nil
	case FormatJournal:
		if journalAvailable(socket) {
			return modeNative, nil
		}
		return modePrefix, nil
	case FormatConsole:
		return modeConsole, nil
	case FormatJSON:
		return modeJSON, nil
	default:
		return 0, fmt.Errorf("parse log format %q: want auto, journal, console or json", opts.Format)
	}
}

// New returns the process logger described by opts. Sampling is always off
// (a watchdog must never drop a line), the caller is never added, and stack
// traces are added only from dpanic up.
//
// Format "auto" decides by where Stderr goes:
//   - Stderr is journald's stream (JOURNAL_STREAM="DEV:INODE" equals
//     Stderr's st_dev:st_ino, see systemd.exec(5)) and the native socket
//     answers: the native protocol, each zap field its own journal field
//     (see JournalFieldName), PRIORITY from the level, SYSLOG_IDENTIFIER
//     from Identifier, LOGGER from the logger's name.
//   - Stderr is journald's stream but the socket does not answer:
//     sd-daemon(3) priority prefixes on stderr, one line per entry:
//     "<6>restart performed check=my-app unit=my-app.service". No time:
//     journald stamps the lines.
//   - Stderr is a terminal: the console format.
//   - Anything else (a file, a pipe to a shipper, JOURNAL_STREAM inherited
//     but stderr redirected elsewhere): JSON.
//
// Format "journal" is the first two cases whatever JOURNAL_STREAM says.
// New fails only on an unknown format or when it cannot open a socket to
// send to the journal.
func New(opts Options) (*zap.Logger, error) {
	stderr := opts.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	m, err := resolve(opts, stderr)
	if err != nil {
		return nil, err
	}
	ws := zapcore.Lock(zapcore.AddSync(stderr))
	core, err := newCore(m, opts, stderr, ws)
	if err != nil {
		return nil, err
	}
	return zap.New(core, zap.ErrorOutput(ws), zap.AddStacktrace(zapcore.DPanicLevel)), nil
}

func newCore(m mode, opts Options, stderr io.Writer, ws zapcore.WriteSyncer) (zapcore.Core, error) {
	level := zap.NewAtomicLevelAt(opts.Level)
	prefix := &prefixWriter{w: ws}
	switch m {
	case modeNative:
		socket := opts.JournalSocket
		if socket == "" {
			socket = DefaultJournalSocket
		}
		s, err := newJournalSender(socket)
		if err != nil {
			return nil, err
		}
		id := opts.Identifier
		if id == "" {
			id = "medic"
		}
		return &flatCore{LevelEnabler: level, sep: "_", out: &journalWriter{sender: s, identifier: id, fallback: prefix}}, nil
	case modePrefix:
		return &flatCore{LevelEnabler: level, sep: ".", out: prefix}, nil
	case modeConsole:
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("2006-01-02T15:04:05.000Z07:00")
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		if fd, ok := stderrFd(stderr); ok && isTerminal(fd) {
			ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		ec.EncodeDuration = zapcore.StringDurationEncoder
		ec.CallerKey = zapcore.OmitKey
		return zapcore.NewCore(zapcore.NewConsoleEncoder(ec), ws, level), nil
	default:
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		ec.CallerKey = zapcore.OmitKey
		return zapcore.NewCore(zapcore.NewJSONEncoder(ec), ws, level), nil
	}
}
