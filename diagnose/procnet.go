package diagnose

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tcpListen is the state the kernel gives a listening TCP socket
// (TCP_LISTEN in include/net/tcp_states.h): "0A" in /proc/net/tcp.
const tcpListen = 0x0A

// soAcceptCon is __SO_ACCEPTCON (include/linux/net.h): a unix socket with
// this flag in /proc/net/unix is listening.
const soAcceptCon = 0x00010000

// sockStream is SOCK_STREAM as /proc/net/unix prints it in the Type column.
const sockStream = 0x0001

// ParseProcNetTCP parses the text of /proc/net/tcp (v6 false) or
// /proc/net/tcp6 (v6 true) and returns the listening sockets (st 0A), each
// with Proto "tcp" or "tcp6", the local address, the UID that owns the
// socket and its inode. See proc(5), /proc/net/tcp.
//
// The kernel prints an address as the hex of each 32-bit word of the
// network-order address, read as a host-order integer: on little-endian
// machines IPv4 "0100007F:1F90" is 127.0.0.1:8080, and an IPv6 address is
// four such words. The port is plain hex. A v4-mapped IPv6 address
// (::ffff:127.0.0.1, an IPv4 client of a dual-stack socket) is returned
// unmapped as 127.0.0.1; the IPv6 wildcard stays [::].
//
// Lines that do not parse are skipped. The error is non-nil only when the
// input does not start with the header line of /proc/net/tcp ("sl
// local_address ...") or reading fails.
func ParseProcNetTCP(r io.Reader, v6 bool) ([]Socket, error) {
	proto := "tcp"
	if v6 {
		proto = "tcp6"
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read /proc/net/%s: %w", proto, err)
		}
		return nil, fmt.Errorf("parse /proc/net/%s: empty, want a header line", proto)
	}
	if h := strings.Fields(sc.Text()); len(h) < 4 || h[0] != "sl" || h[1] != "local_address" {
		return nil, fmt.Errorf("parse /proc/net/%s: header %q does not start with \"sl local_address\"", proto, shortForError(sc.Text(), 60))
	}
	var out []Socket
	for sc.Scan() {
		s, ok := parseTCPLine(sc.Text(), v6)
		if ok {
			s.Proto = proto
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read /proc/net/%s: %w", proto, err)
	}
	return out, nil
}

// parseTCPLine parses one socket line of /proc/net/tcp{,6}:
//
//	sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
//
// and reports ok only for a well-formed listening socket.
func parseTCPLine(line string, v6 bool) (s Socket, ok bool) {
	f := strings.Fields(line)
	if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
		return s, false
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil || st != tcpListen {
		return s, false
	}
	addr, err := parseProcAddrPort(f[1], v6)
	if err != nil {
		return s, false
	}
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return s, false
	}
	ino, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return s, false
	}
	return Socket{Addr: addr, UID: uint32(uid), Inode: ino}, true
}

// parseProcAddrPort parses "0100007F:1F90" (v6 false) or
// "00000000000000000000000001000000:0BB8" (v6 true).
func parseProcAddrPort(s string, v6 bool) (netip.AddrPort, error) {
	hexAddr, hexPort, found := strings.Cut(s, ":")
	if !found {
		return netip.AddrPort{}, fmt.Errorf("parse address %q: no port", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil || len(hexPort) != 4 {
		return netip.AddrPort{}, fmt.Errorf("parse port %q: want 4 hex digits", hexPort)
	}
	words := 1
	if v6 {
		words = 4
	}
	if len(hexAddr) != 8*words {
		return netip.AddrPort{}, fmt.Errorf("parse address %q: want %d hex digits", hexAddr, 8*words)
	}
	var b [16]byte
	for i := range words {
		w, err := strconv.ParseUint(hexAddr[8*i:8*i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("parse address %q: %w", hexAddr, err)
		}
		// The word is the network-order bytes read as a host integer.
		binary.NativeEndian.PutUint32(b[4*i:], uint32(w))
	}
	var a netip.Addr
	if v6 {
		a = netip.AddrFrom16(b).Unmap()
	} else {
		a = netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// ParseProcNetUnix parses the text of /proc/net/unix and returns the
// listening stream sockets: Type 0001 (SOCK_STREAM) with the
// __SO_ACCEPTCON flag (00010000) set, each with Proto "unix", its Path and
// inode. See proc(5), /proc/net/unix. The path is everything after the
// inode column, so it may contain spaces; an abstract socket's name starts
// with "@". A listener without a name (never bound) is skipped, as are
// lines that do not parse.
//
// The error is non-nil only when the input does not start with the header
// line ("Num RefCount Protocol Flags Type St Inode Path") or reading
// fails.
func ParseProcNetUnix(r io.Reader) ([]Socket, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read /proc/net/unix: %w", err)
		}
		return nil, errors.New("parse /proc/net/unix: empty, want a header line")
	}
	if h := strings.Fields(sc.Text()); len(h) < 7 || h[0] != "Num" || h[3] != "Flags" || h[6] != "Inode" {
		return nil, fmt.Errorf("parse /proc/net/unix: header %q does not start with \"Num RefCount Protocol Flags Type St Inode\"", shortForError(sc.Text(), 60))
	}
	var out []Socket
	for sc.Scan() {
		if s, ok := parseUnixLine(sc.Text()); ok {
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read /proc/net/unix: %w", err)
	}
	return out, nil
}

// parseUnixLine parses one line of /proc/net/unix:
//
//	Num RefCount Protocol Flags Type St Inode[ Path]
//
// and reports ok only for a well-formed, named, listening stream socket.
func parseUnixLine(line string) (s Socket, ok bool) {
	rest := line
	var f [7]string
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		f[i], rest = rest[:end], rest[end:]
	}
	if !strings.HasSuffix(f[0], ":") {
		return s, false
	}
	flags, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil || flags&soAcceptCon == 0 {
		return s, false
	}
	typ, err := strconv.ParseUint(f[4], 16, 16)
	if err != nil || typ != sockStream {
		return s, false
	}
	if _, err := strconv.ParseUint(f[5], 16, 8); err != nil {
		return s, false
	}
	ino, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return s, false
	}
	// One space separates the inode from the path, which may hold spaces
	// of its own.
	path, found := strings.CutPrefix(rest, " ")
	if !found || path == "" {
		return s, false
	}
	return Socket{Proto: "unix", Path: path, Inode: ino}, true
}

// ProcListeners reads the listening sockets of this process's network
// namespace from <procRoot>/net/tcp, tcp6 and unix (procRoot "" means
// "/proc"), in that order. A missing tcp6 (IPv6 disabled) is not an error.
// The sockets from the files that could be read are returned with an error
// that joins the failures of the others.
//
// /proc/net gives no cgroup; CgroupID is 0 in the result.
func ProcListeners(procRoot string) ([]Socket, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	var (
		out  []Socket
		errs []error
	)
	for _, name := range []string{"tcp", "tcp6", "unix"} {
		path := filepath.Join(procRoot, "net", name)
		f, err := os.Open(path)
		if err != nil {
			if name == "tcp6" && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			errs = append(errs, fmt.Errorf("read listeners: %w", err))
			continue
		}
		var ss []Socket
		if name == "unix" {
			ss, err = ParseProcNetUnix(f)
		} else {
			ss, err = ParseProcNetTCP(f, name == "tcp6")
		}
		_ = f.Close()
		out = append(out, ss...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// shortForError shortens s to at most n bytes for an error message.
func shortForError(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
