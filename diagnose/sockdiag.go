package diagnose

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Wire layout of the sock_diag requests and replies (sock_diag(7),
// include/uapi/linux/inet_diag.h and unix_diag.h). golang.org/x/sys/unix
// has the netlink basics but not these structures.
const (
	// sizeof(struct inet_diag_sockid): sport, dport (big-endian u16),
	// src[4], dst[4] (network-order u32), if, cookie[2].
	inetDiagSockIDLen = 48
	// sizeof(struct inet_diag_req_v2): family, protocol, ext, pad (u8),
	// states (u32), id.
	inetDiagReqV2Len = 8 + inetDiagSockIDLen
	// sizeof(struct inet_diag_msg): family, state, timer, retrans (u8),
	// id, expires, rqueue, wqueue, uid, inode (u32).
	inetDiagMsgLen = 4 + inetDiagSockIDLen + 5*4
	// INET_DIAG_CGROUP_ID: a u64 attribute with the cgroup v2 id of the
	// socket (Linux 5.9+, sent without being asked for).
	inetDiagCgroupID = 21

	// sizeof(struct unix_diag_req): family, protocol (u8), pad (u16),
	// states, ino, show, cookie[2] (u32).
	unixDiagReqLen = 24
	// sizeof(struct unix_diag_msg): family, type, state, pad (u8), ino,
	// cookie[2] (u32).
	unixDiagMsgLen = 16
	// udiag_show flags and the attributes they add.
	udiagShowName = 0x01 // UNIX_DIAG_NAME: the sun_path bytes
	udiagShowVFS  = 0x02 // UNIX_DIAG_VFS: struct unix_diag_vfs {ino, dev}
	udiagShowUID  = 0x40 // UNIX_DIAG_UID: u32 (Linux 5.3+)
	unixDiagName  = 0
	unixDiagVFS   = 1
	unixDiagUID   = 7

	// nlaTypeMask strips NLA_F_NESTED and NLA_F_NET_BYTEORDER.
	nlaTypeMask = 0x3fff
)

// sockDiagSeq numbers the requests of this process.
var sockDiagSeq atomic.Uint32

// SockDiagListeners asks the kernel over NETLINK_SOCK_DIAG
// (SOCK_DIAG_BY_FAMILY with struct inet_diag_req_v2, sock_diag(7)) for the
// listening TCP sockets (states 1<<TCP_LISTEN) of AF_INET and AF_INET6 in
// this process's network namespace. Each Socket has Proto "tcp" or "tcp6"
// (by the socket's family, as in /proc/net), the local address
// (v4-mapped addresses unmapped), UID, Inode and, on kernels that send
// INET_DIAG_CGROUP_ID (5.9+, built with CONFIG_SOCK_CGROUP_DATA), the
// cgroup v2 id of the process that created the socket; CgroupID is 0
// otherwise.
//
// It needs no privilege. On success the slice is non-nil, even when empty.
// An error names the failed step: "sock_diag: dial netlink: ...", "sock_diag:
// dump AF_INET6: ..." (for example EPROTONOSUPPORT when the kernel lacks
// inet_diag).
func SockDiagListeners() ([]Socket, error) {
	fd, err := dialSockDiag()
	if err != nil {
		return nil, err
	}
	defer func() { _ = unix.Close(fd) }()

	out := []Socket{}
	for _, fam := range []struct {
		family uint8
		name   string
	}{{unix.AF_INET, "AF_INET"}, {unix.AF_INET6, "AF_INET6"}} {
		req := make([]byte, inetDiagReqV2Len)
		req[0] = fam.family
		req[1] = unix.IPPROTO_TCP
		req[2] = 0 // idiag_ext: no extensions; the cgroup id comes unasked.
		binary.NativeEndian.PutUint32(req[4:], 1<<tcpListen)
		err := sockDiagDump(fd, req, func(b []byte) error {
			s, err := parseInetDiagMsg(b)
			if err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sock_diag: dump %s: %w", fam.name, err)
		}
	}
	return out, nil
}

// SockDiagUnix asks the kernel over NETLINK_SOCK_DIAG (struct
// unix_diag_req with UDIAG_SHOW_NAME, UDIAG_SHOW_VFS and UDIAG_SHOW_UID,
// sock_diag(7)) for the listening unix stream sockets that have a name.
// Each Socket has Proto "unix", Path ("@name" for an abstract socket),
// Inode, FileInode (the inode of the socket's file; 0 for an abstract one)
// and, on Linux 5.3+, UID (the socket's owner; 0 on older kernels, where it
// is unknown). CgroupID is always 0: unix_diag does not report cgroups.
//
// It needs no privilege. On success the slice is non-nil, even when empty.
// An error names the failed step, as SockDiagListeners' do.
func SockDiagUnix() ([]Socket, error) {
	fd, err := dialSockDiag()
	if err != nil {
		return nil, err
	}
	defer func() { _ = unix.Close(fd) }()

	req := make([]byte, unixDiagReqLen)
	req[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(req[4:], 1<<tcpListen)
	binary.NativeEndian.PutUint32(req[12:], udiagShowName|udiagShowVFS|udiagShowUID)
	out := []Socket{}
	err = sockDiagDump(fd, req, func(b []byte) error {
		s, ok, err := parseUnixDiagMsg(b)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sock_diag: dump AF_UNIX: %w", err)
	}
	return out, nil
}

// dialSockDiag opens and binds a NETLINK_SOCK_DIAG socket.
func dialSockDiag() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("sock_diag: dial netlink: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("sock_diag: bind netlink: %w", err)
	}
	return fd, nil
}

// sockDiagDump sends one SOCK_DIAG_BY_FAMILY dump request with payload req
// and calls fn with the payload of each reply message until NLMSG_DONE. An
// NLMSG_ERROR reply becomes its errno.
func sockDiagDump(fd int, req []byte, fn func([]byte) error) error {
	seq := sockDiagSeq.Add(1)
	msg := make([]byte, unix.NLMSG_HDRLEN+len(req))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	copy(msg[unix.NLMSG_HDRLEN:], req)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send request: %w", err)
	}

	// A dump message is at most 32 KiB (NLMSG_GOODSIZE grows up to the
	// reader's buffer); 64 KiB never truncates.
	buf := make([]byte, 64<<10)
	for {
		n, _, flags, _, err := unix.Recvmsg(fd, buf, nil, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("receive reply: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return errors.New("receive reply: message truncated")
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parse reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // a late reply to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				// A dump that failed midway ends with a negative errno.
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e < 0 {
						return fmt.Errorf("dump ended: %w", syscall.Errno(-e))
					}
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("parse reply: short NLMSG_ERROR")
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return syscall.Errno(-e)
				}
				return nil // an acknowledgement
			case unix.SOCK_DIAG_BY_FAMILY:
				if err := fn(m.Data); err != nil {
					return fmt.Errorf("parse reply: %w", err)
				}
			}
		}
	}
}

// parseInetDiagMsg decodes a struct inet_diag_msg and the attributes that
// follow it.
func parseInetDiagMsg(b []byte) (Socket, error) {
	if len(b) < inetDiagMsgLen {
		return Socket{}, fmt.Errorf("inet_diag_msg of %d bytes, want %d", len(b), inetDiagMsgLen)
	}
	var s Socket
	id := b[4 : 4+inetDiagSockIDLen]
	port := binary.BigEndian.Uint16(id[0:2])
	var a netip.Addr
	switch b[0] {
	case unix.AF_INET:
		s.Proto = "tcp"
		a = netip.AddrFrom4([4]byte(id[4:8]))
	case unix.AF_INET6:
		s.Proto = "tcp6"
		a = netip.AddrFrom16([16]byte(id[4:20])).Unmap()
	default:
		return Socket{}, fmt.Errorf("inet_diag_msg of family %d", b[0])
	}
	s.Addr = netip.AddrPortFrom(a, port)
	tail := b[4+inetDiagSockIDLen:]
	s.UID = binary.NativeEndian.Uint32(tail[12:16])
	s.Inode = uint64(binary.NativeEndian.Uint32(tail[16:20]))
	for typ, val := range rtattrs(b[nlmsgAlign(inetDiagMsgLen):]) {
		if typ == inetDiagCgroupID && len(val) >= 8 {
			s.CgroupID = binary.NativeEndian.Uint64(val)
		}
	}
	return s, nil
}

// parseUnixDiagMsg decodes a struct unix_diag_msg and its attributes; ok is
// false for a socket that is not a named stream listener.
func parseUnixDiagMsg(b []byte) (s Socket, ok bool, err error) {
	if len(b) < unixDiagMsgLen {
		return Socket{}, false, fmt.Errorf("unix_diag_msg of %d bytes, want %d", len(b), unixDiagMsgLen)
	}
	if b[0] != unix.AF_UNIX {
		return Socket{}, false, fmt.Errorf("unix_diag_msg of family %d", b[0])
	}
	if b[1] != unix.SOCK_STREAM || b[2] != tcpListen {
		return Socket{}, false, nil
	}
	s = Socket{Proto: "unix", Inode: uint64(binary.NativeEndian.Uint32(b[4:8]))}
	for typ, val := range rtattrs(b[unixDiagMsgLen:]) {
		switch typ {
		case unixDiagName:
			s.Path = unixName(val)
		case unixDiagUID:
			if len(val) >= 4 {
				s.UID = binary.NativeEndian.Uint32(val)
			}
		case unixDiagVFS:
			// struct unix_diag_vfs {u32 udiag_vfs_ino, udiag_vfs_dev}.
			if len(val) >= 8 {
				s.FileInode = uint64(binary.NativeEndian.Uint32(val))
			}
		}
	}
	return s, s.Path != "", nil
}

// unixName renders a sun_path as /proc/net/unix does: an abstract name
// (leading NUL) starts with "@", and so does every other NUL in it.
func unixName(b []byte) string {
	if len(b) > 0 && b[0] != 0 {
		// A filesystem path; the kernel may include the terminating NUL.
		for i, c := range b {
			if c == 0 {
				return string(b[:i])
			}
		}
		return string(b)
	}
	r := make([]byte, len(b))
	for i, c := range b {
		if c == 0 {
			c = '@'
		}
		r[i] = c
	}
	return string(r)
}

// rtattrs yields the type (flags masked off) and value of each netlink
// attribute in b, stopping at the first malformed one.
func rtattrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= unix.SizeofRtAttr {
			l := int(binary.NativeEndian.Uint16(b[0:2]))
			typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
			if l < unix.SizeofRtAttr || l > len(b) {
				return
			}
			if !yield(typ, b[unix.SizeofRtAttr:l]) {
				return
			}
			l = nlmsgAlign(l)
			if l > len(b) {
				return
			}
			b = b[l:]
		}
	}
}

// nlmsgAlign rounds n up to the netlink alignment of 4 bytes.
func nlmsgAlign(n int) int { return (n + 3) &^ 3 }
