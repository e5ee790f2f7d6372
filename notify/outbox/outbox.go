// Package outbox makes the delivery of notify.Messages durable: a message is
// written to disk before it is sent, and removed only after the notifier
// accepted it.
//
// # Guarantee: at least once, deduplicable
//
// Enqueue returns only after the message is on disk (temporary file, fsync,
// rename, fsync of the directory), so a message Enqueue accepted survives a
// crash, a SIGKILL or a power loss. The message's file is removed only after
// the notifier's Notify returned nil. If medic dies between the receiver's
// acceptance and the removal of the file, the message is sent again after the
// restart, with the SAME notify.Message.ID, from which notifiers derive the
// email Message-ID and the webhook-id: the receiver sees a duplicate it can
// drop. Delivery is therefore at least once, and every duplicate carries the
// same ID. Messages a notifier rejected for good (retry=false) are not
// delivered; they are kept in the notifier's failed/ directory.
//
// # Order and retries
//
// Each notifier has its own queue, delivered strictly in order: only the
// oldest pending message (the head), or a digest starting with it (see
// Digests), is attempted, and later messages never overtake it. A retryable failure makes the head wait an exponential backoff
// with jitter (Options.Backoff doubling up to Options.BackoffMax, and at least
// the delay a notify.RetryAfterError asks for) before it is tried again. A
// non-retryable failure moves the head to failed/ and the next message goes.
// A notifier that is down for an hour therefore gets every message once it is
// back, in order.
//
// # On disk
//
//	<Dir>/                               mode 0700
//	<Dir>/<notifier>/                    one per configured notifier
//	<Dir>/<notifier>/00000000000000000042.json   a pending message: its
//	                                     sequence number (20 digits) and a
//	                                     JSON record {enqueued_at, attempts,
//	                                     last_error, message}
//	<Dir>/<notifier>/.tmp-*              an Enqueue that did not finish;
//	                                     removed by Open
//	<Dir>/<notifier>/failed/<seq>.json   messages the notifier rejected
//	                                     (retry=false), with last_error
//	<Dir>/corrupt/<notifier>-<file>      files Open could not read or parse
//
// Files in failed/ and corrupt/ are kept for the operator; the outbox never
// deletes or resends them. The directory of a notifier that is no longer
// configured is left alone (Open logs a warning when it holds messages).
// Message files are read only when they are regular files (no symbolic
// link, FIFO, device or directory is followed or read: see package
// safefile); anything else in their place is moved to corrupt/ and logged.
//
// # Changing the notifiers
//
// Prepare and Apply change the set of notifiers of an open outbox, e.g. on
// a configuration reload: a notifier added gets a queue (with the messages
// its directory already holds, from an earlier run or an earlier name), a
// notifier changed keeps its queue and its pending messages, which go out
// through the new notifier, and a notifier removed keeps its messages: they
// stay on disk and in Stats (Unconfigured), are not delivered, and go out
// when a notifier of that name is configured again. No message is dropped
// because its notifier left the configuration; Enqueue for a notifier that
// is not configured stores the message the same way, with a warning.
//
// # Digests
//
// A notifier that implements notify.Digester with a window > 0 (see
// notify.WithDigest) gets digests: when its oldest pending message (the
// head) has waited the window since it was enqueued, or MaxDigest messages
// are pending, the pending messages, at most MaxDigest of them oldest
// first, are delivered in ONE Notify call as a message of kind
// notify.Digest (notify.NewDigest). Messages are still stored one file each
// (durability, dedup by ID and the bound are unchanged); only delivery
// groups them. The members of a digest are fixed at its first attempt: a
// retry sends the same members, so the same digest ID, and messages
// enqueued meanwhile wait for the next digest. Success removes every
// member's file; a retryable failure counts an attempt in every member's
// file and backs off by the member with the most attempts; a non-retryable
// one moves every member to failed/. A digest of one message is sent as
// that message itself. After a crash, the members are still on disk, and
// since their window has passed, the next run delivers them at once, as a
// digest again (with the same ID if no message was added). Flush does not
// wait for the window: what is pending goes out at once.
//
// # Bound
//
// A notifier's queue holds at most Options.MaxPending messages. To make room,
// Enqueue drops the oldest Reminder, then the oldest Recovered, then the
// oldest Test message; each drop is logged. A new message of a droppable
// kind counts as the youngest of its kind, so it is itself dropped when no
// older message may go. Firing and Resolved messages are never dropped: when
// only those remain, the queue grows over the bound and a warning is logged.
// The message being attempted, and every member of a digest from its first
// attempt until it is delivered or failed, are never dropped either.
//
// # Dedup
//
// Enqueuing a message whose ID is already pending for the same notifier
// does nothing, also across restarts.
// Stats reports the size of every queue and how many messages were dropped.
//
// # Run and Flush
//
// Run delivers continuously until its context ends; Flush delivers what is
// pending and returns once every queue is empty or its context ends. They
// are exclusive: Flush is meant to be called at shutdown, after Run
// returned, with a context bounded by the time left before systemd's
// TimeoutStopSec. Calling one while the other runs returns ErrBusy.
package outbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/internal/fsname"
	"github.com/medic-watchdog/medic/internal/safefile"
	"github.com/medic-watchdog/medic/notify"
)

// Defaults for the zero fields of Options.
const (
	DefaultMaxPending     = 1000
	DefaultBackoff        = time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultAttemptTimeout = time.Minute
)

// MaxDigest is the most messages one digest holds. A queue with this many
// pending messages delivers them without waiting for the digest window.
const MaxDigest = 100

// Directory names inside Options.Dir and inside a notifier's directory.
const (
	// CorruptDir, under Options.Dir, receives the files Open could not
	// parse. No notifier may have this name.
	CorruptDir = fsname.OutboxCorrupt
	// FailedDir, under a notifier's directory, receives the messages the
	// notifier rejected with retry=false.
	FailedDir = "failed"
)

const (
	fileSuffix = ".json"
	tmpPrefix  = safefile.TempPrefix
	seqDigits  = 20
	// maxRecord bounds what is read of one message file; a larger file
	// is moved to corrupt/.
	maxRecord = 64 << 20
)

// ErrBusy is returned by Run and Flush when Run or Flush is already running
// on the same Outbox.
var ErrBusy = errors.New("outbox: Run or Flush already running")

// Options configure an Outbox. Zero durations and counts take the Default*
// values.
type Options struct {
	// Dir holds the outbox, e.g. <state_dir>/outbox. Required; created
	// with mode 0700.
	Dir string
	// MaxPending bounds each notifier's queue (default 1000); see the
	// package documentation for what is dropped.
	MaxPending int
	// Backoff is the delay before the first retry of a message (default
	// 1s); it doubles with each further failure up to BackoffMax (default
	// 5m). Jitter takes each delay to a random value in [d/2, d].
	Backoff    time.Duration
	BackoffMax time.Duration
	// AttemptTimeout bounds one Notify call (default 1m).
	AttemptTimeout time.Duration
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
	// Log receives the outbox's logs; nil means no logs.
	Log *zap.Logger
}

// Stat describes one notifier's queue.
type Stat struct {
	// Notifier is the notifier's name.
	Notifier string
	// Pending is the number of messages waiting for delivery, including
	// one being attempted.
	Pending int
	// Failed is the number of messages in the notifier's failed/
	// directory: rejected with retry=false, kept on disk.
	Failed int
	// Rejected counts the messages the notifier rejected for good
	// (retry=false) since Open: unlike Failed, it never decreases, so it
	// can be exposed as a counter.
	Rejected uint64
	// Dropped counts the messages dropped by the bound since Open.
	Dropped uint64
	// Delivered counts the messages the notifier accepted since Open.
	Delivered uint64
	// LastError is the error of the last failed attempt since Open, and
	// LastErrorAt its time; they are kept after later successes. Empty and
	// zero when no attempt failed.
	LastError   string
	LastErrorAt time.Time
	// OldestPending is when the oldest pending message was enqueued; zero
	// when none is pending.
	OldestPending time.Time
	// Unconfigured is set for a queue whose notifier is not (or no longer)
	// configured: its messages stay pending on disk and are not delivered
	// until a notifier of this name is configured again.
	Unconfigured bool
}

// UndeliveredError is returned by Flush when messages remain pending.
type UndeliveredError struct {
	// Pending maps each notifier with undelivered messages to their number.
	Pending map[string]int
	// Err is why Flush stopped: the cause of its context's end.
	Err error
}

func (e *UndeliveredError) Error() string {
	names := make([]string, 0, len(e.Pending))
	total := 0
	for name, n := range e.Pending {
		names = append(names, name)
		total += n
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %d", name, e.Pending[name])
	}
	s := fmt.Sprintf("flush outbox: %d message%s undelivered (%s)", total, plural(total), strings.Join(parts, ", "))
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *UndeliveredError) Unwrap() error { return e.Err }

// record is the JSON content of a message file.
type record struct {
	EnqueuedAt time.Time       `json:"enqueued_at"`
	Attempts   int             `json:"attempts"`
	LastError  string          `json:"last_error,omitempty"`
	Message    *notify.Message `json:"message"`
}

// item is a pending message in memory.
type item struct {
	seq uint64
	rec record
}

func (it *item) file() string { return seqName(it.seq) }

// queue is one notifier's pending messages.
type queue struct {
	name string
	dir  string

	// deliverMu is held by the delivery loop of q for its whole run, so
	// that a loop started again (after the notifier was removed and added
	// back) never runs beside the one still ending.
	deliverMu sync.Mutex

	// wake (capacity 1) tells an idle delivery goroutine that a message
	// was enqueued.
	wake chan struct{}

	// enqMu serializes Enqueue on this queue, across its file I/O.
	enqMu   sync.Mutex
	nextSeq uint64 // guarded by enqMu

	mu sync.Mutex
	// n is the notifier; after a change of the notifiers, the new one
	// (the last one when it was removed).
	n notify.Notifier
	// window is the notifier's digest window; 0 for no digests.
	window time.Duration
	// configured is false while q's notifier is not in the configuration:
	// q keeps its messages and is not delivered.
	configured bool
	items      []*item // ordered by seq
	ids        map[string]*item
	// inflight holds the items being attempted, and the members of a
	// digest until it is delivered or failed; they are never dropped.
	inflight map[*item]bool
	// digest holds the members of the digest being delivered, fixed at its
	// first attempt, so that retries send the same members; nil when no
	// digest is under way.
	digest      []*item
	failed      int
	rejected    uint64
	dropped     uint64
	delivered   uint64
	lastError   string
	lastErrorAt time.Time
}

// Outbox is a durable, bounded, ordered queue of messages per notifier. Its
// methods are safe for concurrent use.
type Outbox struct {
	opts Options
	log  *zap.Logger

	// mu guards queues and order; a queue's own fields are under its mu.
	mu     sync.Mutex
	queues map[string]*queue
	// order holds the configured queues in the order of the notifiers
	// given to Open or Prepare, then the unconfigured ones that hold
	// messages, by name.
	order []*queue
	// changed (capacity 1) tells Run that the configured queues changed.
	changed chan struct{}

	busy atomic.Bool
	rand func(n int64) int64
}

// Open opens the outbox in opts.Dir for the given notifiers: it creates
// opts.Dir (mode 0700, tightened to 0700 if it exists with group or other
// access) and a directory per notifier, and loads the messages
// an earlier run left pending, ordered by sequence number. Leftover
// temporary files of an unfinished Enqueue are removed. A file that cannot
// be read or parsed is moved to <Dir>/corrupt/ and logged; it never makes
// Open fail. Messages of notifiers that are no longer configured stay on
// disk, with a warning. The number of messages loaded per notifier is logged
// and visible in Stats.
//
// Open fails when opts.Dir is empty, when a notifier is nil, has an empty or
// duplicate name, a name that is not a plain file name (or is "corrupt"), or
// when a directory cannot be created or read.
func Open(opts Options, notifiers []notify.Notifier) (*Outbox, error) {
	if opts.Dir == "" {
		return nil, errors.New("open outbox: no directory")
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	opts.BackoffMax = max(opts.BackoffMax, opts.Backoff)
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	o := &Outbox{
		opts:    opts,
		log:     opts.Log,
		queues:  make(map[string]*queue, len(notifiers)),
		changed: make(chan struct{}, 1),
		rand:    rand.Int64N,
	}
	if err := validate(notifiers); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	// Messages carry journal lines and host details: keep them private
	// even in a directory made by someone else.
	if info, err := os.Stat(opts.Dir); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	} else if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("open outbox: %w", err)
		}
		o.log.Info("outbox directory made private", zap.String("dir", opts.Dir),
			zap.Stringer("was", info.Mode().Perm()))
	}
	c, err := o.prepare(notifiers)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	c.Apply()
	o.warnOrphans()
	return o, nil
}

// validate checks a set of notifiers for an outbox: none nil, every name
// valid (checkName) and unique.
func validate(notifiers []notify.Notifier) error {
	seen := make(map[string]bool, len(notifiers))
	for _, n := range notifiers {
		if n == nil {
			return errors.New("nil notifier")
		}
		name := n.Name()
		if err := checkName(name); err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("duplicate notifier %q", name)
		}
		seen[name] = true
	}
	return nil
}

// newQueue makes the queue of the named notifier and loads what its
// directory holds; it is not in o yet.
func (o *Outbox) newQueue(name string) (*queue, error) {
	q := &queue{
		name:     name,
		dir:      filepath.Join(o.opts.Dir, name),
		wake:     make(chan struct{}, 1),
		ids:      make(map[string]*item),
		inflight: make(map[*item]bool),
	}
	if err := o.load(q); err != nil {
		return nil, err
	}
	return q, nil
}

// Change is a set of notifiers made ready by Prepare, put in force by
// Apply.
type Change struct {
	o         *Outbox
	notifiers []notify.Notifier
	// fresh holds the queues made for notifiers the outbox had none for.
	fresh map[string]*queue
}

// Prepare makes ready a change of the notifiers to exactly the given
// ones, without changing anything in force: it checks them as Open does
// and creates and loads the queue of every notifier the outbox has none
// for (its directory may hold messages from an earlier run or from before
// the notifier was removed). Apply puts the change in force; a Change that
// is not applied changes nothing. See the package documentation for what
// happens to the queues of notifiers changed and removed.
//
// Prepare fails, with nothing changed, when a notifier is nil, has an
// empty, invalid or duplicate name, or when a directory cannot be created
// or read.
func (o *Outbox) Prepare(notifiers []notify.Notifier) (*Change, error) {
	if err := validate(notifiers); err != nil {
		return nil, fmt.Errorf("change outbox notifiers: %w", err)
	}
	c, err := o.prepare(notifiers)
	if err != nil {
		return nil, fmt.Errorf("change outbox notifiers: %w", err)
	}
	return c, nil
}

// prepare is Prepare after validate.
func (o *Outbox) prepare(notifiers []notify.Notifier) (*Change, error) {
	c := &Change{o: o, notifiers: slices.Clone(notifiers), fresh: map[string]*queue{}}
	for _, n := range notifiers {
		name := n.Name()
		o.mu.Lock()
		_, have := o.queues[name]
		o.mu.Unlock()
		if have {
			continue
		}
		q, err := o.newQueue(name)
		if err != nil {
			return nil, err
		}
		c.fresh[name] = q
	}
	return c, nil
}

// Apply puts c in force: from its return, Enqueue and Run use exactly the
// notifiers given to Prepare. Messages pending for a notifier that stays
// go out through its new version; those of a notifier removed stay, not
// delivered (Stat.Unconfigured), until it is configured again. Apply
// cannot fail; call it once.
func (c *Change) Apply() {
	o := c.o
	o.mu.Lock()
	in := make(map[*queue]bool, len(c.notifiers))
	order := make([]*queue, 0, len(c.notifiers))
	var added []string
	for _, n := range c.notifiers {
		name := n.Name()
		q, ok := o.queues[name]
		if !ok {
			q = c.fresh[name]
			o.queues[name] = q
		}
		q.mu.Lock()
		if !q.configured && q.n != nil {
			added = append(added, name)
		}
		q.n, q.window, q.configured = n, notify.DigestWindow(n), true
		q.mu.Unlock()
		in[q] = true
		order = append(order, q)
		select { // the digest window may have changed
		case q.wake <- struct{}{}:
		default:
		}
	}
	var removed []*queue
	names := make([]string, 0, len(o.queues))
	for name := range o.queues {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		q := o.queues[name]
		if in[q] {
			continue
		}
		q.mu.Lock()
		wasConfigured := q.configured
		q.configured = false
		pending := len(q.items)
		q.mu.Unlock()
		if pending == 0 {
			delete(o.queues, name) // its directory stays; it is loaded again if needed
			continue
		}
		order = append(order, q)
		if wasConfigured {
			removed = append(removed, q)
		}
	}
	o.order = order
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	for _, name := range added {
		o.log.Info("notifier configured again: its pending messages are delivered", zap.String("notifier", name))
	}
	for _, q := range removed {
		q.mu.Lock()
		pending := len(q.items)
		q.mu.Unlock()
		o.log.Warn("notifier removed from the configuration: its pending messages stay in the outbox, undelivered, until a notifier of this name is configured again",
			zap.String("notifier", q.name), zap.Int("pending", pending), zap.String("dir", q.dir))
	}
}

// checkName rejects notifier names that cannot be a directory of the
// outbox: the rule of package fsname, which the configuration's validation
// applies too.
func checkName(name string) error {
	if err := fsname.Check(name); err != nil {
		return fmt.Errorf("notifier %w", err)
	}
	return nil
}

// load creates q's directories and reads its pending messages.
func (o *Outbox) load(q *queue) error {
	if err := os.MkdirAll(filepath.Join(q.dir, FailedDir), 0o700); err != nil {
		return err
	}
	var maxSeq uint64
	failed, err := os.ReadDir(filepath.Join(q.dir, FailedDir))
	if err != nil {
		return err
	}
	for _, e := range failed {
		if seq, ok := parseSeqName(e.Name()); ok && e.Type().IsRegular() {
			q.failed++
			maxSeq = max(maxSeq, seq)
		}
	}
	entries, err := os.ReadDir(q.dir) // sorted by name, so by seq
	if err != nil {
		return err
	}
	changed := false
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(q.dir, name)
		if strings.HasPrefix(name, tmpPrefix) {
			// An Enqueue that never returned: the caller was not told
			// the message was stored.
			if err := os.Remove(path); err != nil {
				o.log.Warn("remove unfinished outbox file", zap.String("path", path), zap.Error(err))
			}
			changed = true
			continue
		}
		if e.IsDir() && name == FailedDir {
			continue
		}
		seq, ok := parseSeqName(name)
		if !ok {
			o.log.Warn("unknown file in outbox, left alone", zap.String("path", path))
			continue
		}
		maxSeq = max(maxSeq, seq)
		rec, err := readRecord(path)
		if err != nil {
			o.quarantine(q.name, path, err)
			changed = true
			continue
		}
		it := &item{seq: seq, rec: *rec}
		q.items = append(q.items, it)
		if _, dup := q.ids[rec.Message.ID]; !dup {
			q.ids[rec.Message.ID] = it
		}
	}
	slices.SortFunc(q.items, func(a, b *item) int { return cmp.Compare(a.seq, b.seq) })
	q.nextSeq = maxSeq + 1
	if changed {
		if err := syncDir(q.dir); err != nil {
			o.log.Warn("sync outbox directory", zap.String("dir", q.dir), zap.Error(err))
		}
	}
	o.log.Info("outbox loaded", zap.String("notifier", q.name),
		zap.Int("pending", len(q.items)), zap.Int("failed", q.failed))
	return nil
}

// readRecord reads and checks one message file.
func readRecord(path string) (*record, error) {
	data, err := safefile.ReadFile(path, maxRecord)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("parse message file: %w", err)
	}
	if rec.Message == nil || rec.Message.ID == "" {
		return nil, errors.New("parse message file: no message or no message id")
	}
	return &rec, nil
}

// quarantine moves a file Open could not use to <Dir>/corrupt/, never
// overwriting an earlier one.
func (o *Outbox) quarantine(notifier, path string, why error) {
	dir := filepath.Join(o.opts.Dir, CorruptDir)
	log := o.log.With(zap.String("notifier", notifier), zap.String("path", path), zap.NamedError("reason", why))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Error("corrupt outbox file, cannot quarantine it", zap.Error(err))
		return
	}
	base := notifier + "-" + filepath.Base(path)
	dst := filepath.Join(dir, base)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = filepath.Join(dir, base+"."+strconv.Itoa(i))
	}
	if err := os.Rename(path, dst); err != nil {
		log.Error("corrupt outbox file, cannot quarantine it", zap.Error(err))
		return
	}
	if err := syncDir(dir); err != nil {
		log.Warn("sync outbox directory", zap.String("dir", dir), zap.Error(err))
	}
	log.Error("corrupt outbox file quarantined", zap.String("moved_to", dst))
}

// warnOrphans logs the directories of notifiers no longer configured that
// still hold messages. They are never deleted.
func (o *Outbox) warnOrphans() {
	entries, err := os.ReadDir(o.opts.Dir)
	if err != nil {
		o.log.Warn("read outbox directory", zap.Error(err))
		return
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == CorruptDir {
			continue
		}
		o.mu.Lock()
		_, ok := o.queues[e.Name()]
		o.mu.Unlock()
		if ok {
			continue
		}
		dir := filepath.Join(o.opts.Dir, e.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			o.log.Warn("read outbox directory", zap.String("dir", dir), zap.Error(err))
			continue
		}
		n := 0
		for _, f := range files {
			if _, ok := parseSeqName(f.Name()); ok {
				n++
			}
		}
		if n > 0 {
			o.log.Warn("outbox holds messages for a notifier that is no longer configured; they stay on disk",
				zap.String("notifier", e.Name()), zap.Int("pending", n), zap.String("dir", dir))
		}
	}
}

// Enqueue stores m durably for the named notifier and returns; delivery
// happens in Run or Flush, which it wakes. When Enqueue returns nil, m is on
// disk (written to a temporary file, synced, renamed, directory synced).
// Enqueue never waits for a delivery.
//
// Outcomes:
//   - nil: m is stored; or a message with m.ID is already pending for this
//     notifier (nothing is written); or the queue is full and m, being the
//     one to drop under the bound's rules, was dropped (logged, counted in
//     Stat.Dropped). A message for a notifier that is not configured is
//     stored in that notifier's directory, with a warning, and delivered
//     once a notifier of this name is configured (see Prepare).
//   - an error: the notifier's name cannot be a directory of the outbox,
//     m has no ID, or m could not be written (nothing is stored).
//
// Firing and Resolved messages are stored even over MaxPending.
func (o *Outbox) Enqueue(notifier string, m *notify.Message) error {
	if m == nil || m.ID == "" {
		return fmt.Errorf("enqueue message for %s: message without id", notifier)
	}
	q, err := o.queueFor(notifier)
	if err != nil {
		return fmt.Errorf("enqueue message %s: %w", m.ID, err)
	}
	log := o.log.With(zap.String("notifier", notifier), zap.String("id", m.ID), zap.String("kind", string(m.Kind)))
	q.mu.Lock()
	configured := q.configured
	q.mu.Unlock()
	if !configured {
		log.Warn("message for a notifier that is not configured: kept in the outbox, delivered when a notifier of this name is configured")
	}

	q.enqMu.Lock()
	defer q.enqMu.Unlock()

	q.mu.Lock()
	if _, dup := q.ids[m.ID]; dup {
		q.mu.Unlock()
		log.Debug("message already pending, not enqueued again")
		return nil
	}
	if _, dropNew, _ := q.pickVictims(m.Kind, o.opts.MaxPending); dropNew {
		q.dropped++
		pending := len(q.items)
		q.mu.Unlock()
		log.Warn("outbox full, message dropped", zap.Int("pending", pending), zap.Int("max_pending", o.opts.MaxPending))
		return nil
	}
	q.mu.Unlock()

	// Store a copy decoded from the bytes on disk, so that what is
	// delivered is exactly what survives a restart, and the caller may
	// reuse m.
	rec := record{EnqueuedAt: o.opts.Now(), Message: m}
	data, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("enqueue message %s for %s: %w", m.ID, notifier, err)
	}
	var stored record
	if err := json.Unmarshal(data, &stored); err != nil {
		return fmt.Errorf("enqueue message %s for %s: %w", m.ID, notifier, err)
	}
	it := &item{seq: q.nextSeq, rec: stored}
	if err := writeFileSync(q.dir, it.file(), data); err != nil {
		return fmt.Errorf("enqueue message %s for %s: %w", m.ID, notifier, err)
	}
	q.nextSeq++

	q.mu.Lock()
	// Victims are chosen again and removed only now that m is stored, so a
	// failed write drops nothing. Meanwhile Enqueue was excluded (enqMu):
	// the queue can only have shrunk and its head changed, so this choice
	// drops no more than the first one, and never the head in flight.
	victims, _, over := q.pickVictims(m.Kind, o.opts.MaxPending)
	for _, v := range victims {
		q.remove(v)
		q.dropped++
	}
	q.items = append(q.items, it)
	q.ids[m.ID] = it
	pending := len(q.items)
	q.mu.Unlock()

	for _, v := range victims {
		path := filepath.Join(q.dir, v.file())
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error("remove dropped message file", zap.String("path", path), zap.Error(err))
		}
		log.Warn("outbox full, message dropped", zap.String("dropped_id", v.rec.Message.ID),
			zap.String("dropped_kind", string(v.rec.Message.Kind)), zap.Int("max_pending", o.opts.MaxPending))
	}
	if len(victims) > 0 {
		if err := syncDir(q.dir); err != nil {
			log.Warn("sync outbox directory", zap.String("dir", q.dir), zap.Error(err))
		}
	}
	if over {
		log.Warn("outbox over its bound: only firing and resolved messages (or the one in flight) remain, none is dropped",
			zap.Int("pending", pending), zap.Int("max_pending", o.opts.MaxPending))
	}
	log.Debug("message enqueued", zap.Uint64("seq", it.seq), zap.Int("pending", pending))

	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// queueFor returns the queue of the named notifier; for a notifier that
// is not configured and has no queue, a new unconfigured one, loaded from
// its directory. It fails for a name that cannot be a directory of the
// outbox, or a directory that cannot be created or read.
func (o *Outbox) queueFor(notifier string) (*queue, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if q, ok := o.queues[notifier]; ok {
		return q, nil
	}
	if err := checkName(notifier); err != nil {
		return nil, err
	}
	q, err := o.newQueue(notifier)
	if err != nil {
		return nil, fmt.Errorf("unconfigured notifier %q: %w", notifier, err)
	}
	o.queues[notifier] = q
	o.order = append(o.order, q)
	return q, nil
}

// dropOrder lists the kinds the bound may drop, first dropped first.
var dropOrder = []notify.Kind{notify.Reminder, notify.Recovered, notify.Test}

// pickVictims chooses the messages to drop so that a new message of kind
// fits within limit: the oldest Reminders, then Recovered, then Test
// messages, never the one in flight; the new message counts as the youngest
// of its kind. dropNew reports that the new message itself is to be dropped
// (then victims is empty: nothing else goes); over that the queue will be
// over the limit because only Firing and Resolved messages (and the one in
// flight) remain. q.mu is held.
func (q *queue) pickVictims(kind notify.Kind, limit int) (victims []*item, dropNew, over bool) {
	need := len(q.items) + 1 - limit
	if need <= 0 {
		return nil, false, false
	}
	for _, k := range dropOrder {
		for _, it := range q.items {
			if need == 0 {
				return victims, false, false
			}
			if !q.inflight[it] && it.rec.Message.Kind == k {
				victims = append(victims, it)
				need--
			}
		}
		if need > 0 && kind == k {
			// The new message is the next to go: storing it would
			// only make another drop necessary.
			return nil, true, false
		}
	}
	return victims, false, need > 0
}

// remove takes it out of q; false if it was not there. q.mu is held.
func (q *queue) remove(it *item) bool {
	i := slices.Index(q.items, it)
	if i < 0 {
		return false
	}
	q.items = slices.Delete(q.items, i, i+1)
	if q.ids[it.rec.Message.ID] == it {
		delete(q.ids, it.rec.Message.ID)
	}
	return true
}

// Run delivers the messages of every notifier, one goroutine per notifier,
// until ctx ends. Each queue is delivered in order; see the package
// documentation for retries. Run returns after ctx ended and every in-flight
// attempt returned (attempts get a context derived from ctx, so a notifier
// that honours its context returns promptly); it leaves no goroutine behind.
// An attempt cut short by the end of ctx is not counted as a failure: the
// message stays pending as it was.
//
// Run returns ErrBusy at once if Run or Flush is already running, and nil
// otherwise.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.busy.CompareAndSwap(false, true) {
		return ErrBusy
	}
	defer o.busy.Store(false)
	o.deliverAll(ctx, false)
	return nil
}

// Flush delivers what is pending, like Run, and returns when every queue is
// empty or ctx ends, whichever comes first. Messages enqueued during Flush
// are delivered too. Flush is meant for shutdown: call it after Run returned,
// with a context bounded by the time left before TimeoutStopSec. Retries
// wait their backoff as in Run, so a notifier that keeps failing holds Flush
// until ctx ends.
//
// Flush returns nil when nothing is pending; *UndeliveredError naming how
// many messages remain per notifier (they stay on disk for the next start)
// and why Flush stopped; or ErrBusy at once if Run or Flush is already
// running. Messages moved to failed/ are not counted as remaining.
func (o *Outbox) Flush(ctx context.Context) error {
	if !o.busy.CompareAndSwap(false, true) {
		return ErrBusy
	}
	defer o.busy.Store(false)
	o.deliverAll(ctx, true)
	left := make(map[string]int)
	for _, q := range o.configured() {
		q.mu.Lock()
		if n := len(q.items); n > 0 {
			left[q.name] = n
		}
		q.mu.Unlock()
	}
	if len(left) == 0 {
		return nil
	}
	return &UndeliveredError{Pending: left, Err: context.Cause(ctx)}
}

// deliverAll runs one delivery loop per configured queue and waits for
// them all. Without drain, it follows changes of the notifiers (Apply):
// the loop of a queue whose notifier was removed is stopped (its attempt
// in flight is cut short and not counted), and a loop starts for each
// queue added.
func (o *Outbox) deliverAll(ctx context.Context, drain bool) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if drain {
		for _, q := range o.configured() {
			wg.Go(func() { o.deliver(ctx, q, drain) })
		}
		return
	}
	running := map[*queue]context.CancelFunc{}
	for {
		want := o.configured()
		for q, cancel := range running {
			if !slices.Contains(want, q) {
				cancel()
				delete(running, q)
			}
		}
		for _, q := range want {
			if _, ok := running[q]; ok {
				continue
			}
			qctx, cancel := context.WithCancel(ctx)
			running[q] = cancel
			wg.Go(func() { o.deliver(qctx, q, false) })
		}
		select {
		case <-ctx.Done():
			for _, cancel := range running {
				cancel()
			}
			return
		case <-o.changed:
		}
	}
}

// configured returns the queues of the configured notifiers, in order.
func (o *Outbox) configured() []*queue {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*queue, 0, len(o.order))
	for _, q := range o.order {
		q.mu.Lock()
		if q.configured {
			out = append(out, q)
		}
		q.mu.Unlock()
	}
	return out
}

// deliver is the delivery loop of q: it attempts the head (or a digest)
// until it is delivered or failed, waiting between retries and for the
// digest window, and sleeps on q.wake while q is empty. With drain, it
// returns as soon as q is empty, and does not wait for the digest window.
func (o *Outbox) deliver(ctx context.Context, q *queue, drain bool) {
	q.deliverMu.Lock()
	defer q.deliverMu.Unlock()
	for {
		if ctx.Err() != nil {
			return
		}
		batch, wait := o.next(q, drain)
		if batch == nil {
			if wait <= 0 && drain {
				return
			}
			// Wait for an Enqueue, or for the head's digest window to
			// pass (an Enqueue may fill the digest before).
			var (
				t       *time.Timer
				timeout <-chan time.Time
			)
			if wait > 0 {
				t = time.NewTimer(wait)
				timeout = t.C
			}
			select {
			case <-ctx.Done():
			case <-q.wake:
			case <-timeout:
			}
			if t != nil {
				t.Stop()
			}
			continue
		}
		delay := o.attempt(ctx, q, batch)
		if delay <= 0 {
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// next returns what q attempts next and marks it in flight: the digest
// under way, or the head alone when q has no digest window, or the pending
// messages (at most MaxDigest) as a new digest once the head waited the
// window (at once with drain, or when MaxDigest are pending). It returns
// nil when there is nothing to attempt yet, with how long to wait for the
// window (0: wait for an Enqueue).
func (o *Outbox) next(q *queue, drain bool) (batch []*item, wait time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.digest != nil {
		return q.digest, 0
	}
	if len(q.items) == 0 {
		return nil, 0
	}
	head := q.items[0]
	if q.window <= 0 {
		q.inflight[head] = true
		return []*item{head}, 0
	}
	if !drain && len(q.items) < MaxDigest {
		if wait := head.rec.EnqueuedAt.Add(q.window).Sub(o.opts.Now()); wait > 0 {
			return nil, wait
		}
	}
	q.digest = slices.Clone(q.items[:min(len(q.items), MaxDigest)])
	for _, it := range q.digest {
		q.inflight[it] = true
	}
	return q.digest, 0
}

// attempt tries to deliver batch, the head of q or a digest of its oldest
// messages, once, and acts on the outcome: delivered messages are removed,
// rejected ones moved to failed/. It returns how long to wait before the
// next attempt (0: go on at once).
func (o *Outbox) attempt(ctx context.Context, q *queue, batch []*item) time.Duration {
	q.mu.Lock()
	isDigest := q.digest != nil
	n := q.n
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		if !isDigest || q.digest == nil {
			// A single message, or a digest done with: a digest
			// under way stays in flight between its attempts.
			for _, it := range batch {
				delete(q.inflight, it)
			}
		}
		q.mu.Unlock()
	}()
	m := batch[0].rec.Message
	if len(batch) > 1 {
		members := make([]*notify.Message, len(batch))
		for i, it := range batch {
			members[i] = it.rec.Message
		}
		m = notify.NewDigest(members)
	}
	log := o.log.With(zap.String("notifier", q.name), zap.String("id", m.ID), zap.String("kind", string(m.Kind)))
	if len(batch) > 1 {
		log = log.With(zap.Int("members", len(batch)))
	}

	actx, cancel := context.WithTimeoutCause(ctx, o.opts.AttemptTimeout,
		fmt.Errorf("notify %s: attempt timed out after %s", q.name, o.opts.AttemptTimeout))
	retry, err := safeNotify(actx, n, m, log)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		if cause := context.Cause(actx); !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", err, cause)
		}
	}
	cancel()

	attempts := 0
	for _, it := range batch {
		attempts = max(attempts, it.rec.Attempts)
	}
	if err == nil {
		removed := 0
		for _, it := range batch {
			path := filepath.Join(q.dir, it.file())
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				// It will be sent again after a restart, with the same ID.
				log.Error("remove delivered message file", zap.String("path", path), zap.Error(rerr))
			} else {
				removed++
			}
		}
		if removed > 0 {
			if serr := syncDir(q.dir); serr != nil {
				log.Warn("sync outbox directory", zap.String("dir", q.dir), zap.Error(serr))
			}
		}
		q.mu.Lock()
		for _, it := range batch {
			q.remove(it)
		}
		q.delivered += uint64(len(batch))
		q.digest = nil
		pending := len(q.items)
		q.mu.Unlock()
		log.Info("message delivered", zap.Int("attempts", attempts+1), zap.Int("pending", pending))
		return 0
	}
	if ctx.Err() != nil {
		// Shutdown cut the attempt short: not the notifier's failure.
		log.Debug("attempt interrupted by shutdown", zap.Error(err))
		return 0
	}

	now := o.opts.Now()
	for _, it := range batch {
		it.rec.Attempts++
		it.rec.LastError = err.Error()
	}
	attempts++
	q.mu.Lock()
	q.lastError = err.Error()
	q.lastErrorAt = now
	q.mu.Unlock()

	if !retry {
		for _, it := range batch {
			flog := log
			if len(batch) > 1 {
				flog = log.With(zap.String("member", it.rec.Message.ID))
			}
			o.fail(q, it, err, flog)
		}
		q.mu.Lock()
		q.digest = nil
		q.mu.Unlock()
		return 0
	}
	for _, it := range batch {
		path := filepath.Join(q.dir, it.file())
		data, merr := json.Marshal(&it.rec)
		if merr == nil {
			merr = writeFileSync(q.dir, it.file(), data)
		}
		if merr != nil {
			log.Warn("record attempt count", zap.String("path", path), zap.Error(merr))
		}
	}
	delay := retryDelay(attempts, o.opts.Backoff, o.opts.BackoffMax, notify.RetryAfter(err), o.rand)
	log.Warn("notify failed, will retry", zap.Error(err), zap.Int("attempts", attempts), zap.Duration("retry_in", delay))
	return delay
}

// fail moves it, rejected for good, to q's failed/ directory.
func (o *Outbox) fail(q *queue, it *item, err error, log *zap.Logger) {
	path := filepath.Join(q.dir, it.file())
	failedDir := filepath.Join(q.dir, FailedDir)
	data, merr := json.Marshal(&it.rec)
	if merr == nil {
		merr = writeFileSync(failedDir, it.file(), data)
	}
	if merr != nil {
		// Keep the record as it is, at least.
		log.Error("write failed message, moving it as is", zap.Error(merr))
		merr = os.Rename(path, filepath.Join(failedDir, it.file()))
		if merr == nil {
			merr = syncDir(failedDir)
		}
	} else {
		merr = os.Remove(path)
	}
	if merr == nil {
		merr = syncDir(q.dir)
	}
	if merr != nil {
		log.Error("move message to failed", zap.String("path", path), zap.Error(merr))
	}
	q.mu.Lock()
	q.remove(it)
	q.failed++
	q.rejected++
	q.mu.Unlock()
	log.Error("notify failed, not retryable: message moved to failed",
		zap.Error(err), zap.Int("attempts", it.rec.Attempts), zap.String("path", filepath.Join(failedDir, it.file())))
}

// safeNotify calls n.Notify, turning a panic into a non-retryable error
// (a bug in the notifier, which a retry would only repeat).
func safeNotify(ctx context.Context, n notify.Notifier, m *notify.Message, log *zap.Logger) (retry bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("notifier panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			retry, err = false, fmt.Errorf("notifier %s panicked: %v", n.Name(), r)
		}
	}()
	return n.Notify(ctx, m)
}

// retryDelay is the wait before the next attempt of a message that failed
// attempts times (attempts >= 1): base doubled attempts-1 times, capped at
// maxDelay, then with equal jitter, a random value in [d/2, d], and at
// least retryAfter. rnd(n) returns a value in [0, n), like rand.Int64N.
func retryDelay(attempts int, base, maxDelay, retryAfter time.Duration, rnd func(n int64) int64) time.Duration {
	d := base
	for i := 1; i < attempts && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	half := d / 2
	d = half + time.Duration(rnd(int64(d-half)+1))
	return max(d, retryAfter)
}

// Stats describes every notifier's queue, in the order of the notifiers
// given to Open (or the last Prepare), then the queues of notifiers not
// configured that hold messages (Unconfigured), by name.
func (o *Outbox) Stats() []Stat {
	o.mu.Lock()
	order := slices.Clone(o.order)
	o.mu.Unlock()
	stats := make([]Stat, 0, len(order))
	for _, q := range order {
		q.mu.Lock()
		s := Stat{
			Notifier:     q.name,
			Pending:      len(q.items),
			Failed:       q.failed,
			Rejected:     q.rejected,
			Dropped:      q.dropped,
			Delivered:    q.delivered,
			LastError:    q.lastError,
			LastErrorAt:  q.lastErrorAt,
			Unconfigured: !q.configured,
		}
		if len(q.items) > 0 {
			s.OldestPending = q.items[0].rec.EnqueuedAt
		}
		q.mu.Unlock()
		stats = append(stats, s)
	}
	return stats
}

// seqName is the file name of sequence number seq.
func seqName(seq uint64) string {
	return fmt.Sprintf("%0*d%s", seqDigits, seq, fileSuffix)
}

// parseSeqName returns the sequence number in a message file name.
func parseSeqName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, fileSuffix)
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// writeFileSync writes data to dir/name atomically and durably
// (safefile.WriteFile: a temporary file in dir, written and synced,
// renamed to name, and dir synced).
func writeFileSync(dir, name string, data []byte) error {
	return safefile.WriteFile(filepath.Join(dir, name), data, 0o600)
}

// syncDir fsyncs a directory, making renames and removals in it durable.
func syncDir(dir string) error { return safefile.SyncDir(dir) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
