package logging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// entry is one journal entry as a receiver parsed it.
type entry map[string][]string

func (e entry) get(k string) string {
	if len(e[k]) == 0 {
		return ""
	}
	return e[k][0]
}

// parseNative parses one datagram of the journal native protocol, as
// journald does: "KEY=value\n", or "KEY\n" + 64-bit little-endian length +
// value + "\n".
func parseNative(data []byte) (entry, error) {
	e := entry{}
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("field without a newline: %q", data)
		}
		line := data[:nl]
		data = data[nl+1:]
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			e[string(k)] = append(e[string(k)], string(v))
			continue
		}
		if len(data) < 8 {
			return nil, fmt.Errorf("binary field %q without its length", line)
		}
		n := binary.LittleEndian.Uint64(data[:8])
		data = data[8:]
		if uint64(len(data)) < n+1 || data[n] != '\n' {
			return nil, fmt.Errorf("binary field %q: bad length %d", line, n)
		}
		e[string(line)] = append(e[string(line)], string(data[:n]))
		data = data[n+1:]
	}
	return e, nil
}

// receiver is a unixgram socket in a temp dir standing in for journald's
// native socket.
type receiver struct {
	t    *testing.T
	path string
	conn *net.UnixConn
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &receiver{t: t, path: path, conn: conn}
}

// next returns the next datagram's payload, read from the memfd when the
// sender passed one, and whether it came as a descriptor.
func (r *receiver) next() (payload []byte, viaFd bool) {
	r.t.Helper()
	buf := make([]byte, 1<<20)
	oob := make([]byte, syscall.CmsgSpace(4))
	_ = r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := r.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		r.t.Fatalf("receive: %v", err)
	}
	if oobn == 0 {
		return buf[:n], false
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		r.t.Fatalf("parse control message: %v (%d messages)", err, len(msgs))
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		r.t.Fatalf("parse rights: %v (%d fds)", err, len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "memfd")
	defer f.Close()
	var out bytes.Buffer
	if _, err := f.Seek(0, 0); err != nil {
		r.t.Fatalf("seek memfd: %v", err)
	}
	if _, err := out.ReadFrom(f); err != nil {
		r.t.Fatalf("read memfd: %v", err)
	}
	return out.Bytes(), true
}

func (r *receiver) entry() entry {
	r.t.Helper()
	data, _ := r.next()
	e, err := parseNative(data)
	if err != nil {
		r.t.Fatalf("parse datagram: %v", err)
	}
	return e
}

// nothing fails the test if a datagram arrives within d.
func (r *receiver) nothing(d time.Duration) {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1<<16)
	if n, err := r.conn.Read(buf); err == nil {
		r.t.Fatalf("unexpected datagram: %q", buf[:n])
	}
}

// outcome is a nested object, as zap.Object logs it.
type outcome struct {
	JobResult string
	Attempts  int
}

func (o outcome) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("job_result", o.JobResult)
	enc.AddInt("attempts", o.Attempts)
	return nil
}
