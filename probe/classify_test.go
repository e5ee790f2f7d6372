package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestClassify covers the mapping for errors shaped as the net package
// returns them, including classes loopback cannot produce (unreachable).
func TestClassify(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassNone},
		{"refused", dial(syscall.ECONNREFUSED), ClassRefused},
		{"refused in url.Error", &url.Error{Op: "Get", URL: "http://x/", Err: dial(syscall.ECONNREFUSED)}, ClassRefused},
		{"no such file", dial(syscall.ENOENT), ClassRefused},
		{"host unreachable", dial(syscall.EHOSTUNREACH), ClassUnreachable},
		{"network unreachable", dial(syscall.ENETUNREACH), ClassUnreachable},
		{"access", dial(syscall.EACCES), ClassPermission},
		{"perm", dial(syscall.EPERM), ClassPermission},
		{"accept queue full", dial(syscall.EAGAIN), ClassTimeout},
		{"deadline", context.DeadlineExceeded, ClassTimeout},
		{"os deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ClassTimeout},
		{"probe timeout", &TimeoutError{After: time.Second}, ClassTimeout},
		{"probe timeout wrapped", fmt.Errorf("%w: x", &TimeoutError{After: time.Second}), ClassTimeout},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "x.example", IsTimeout: true}, ClassTimeout},
		{"dns not found", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, ClassDNS},
		{"dns server refused", &net.DNSError{Err: "read udp: connection refused", Name: "x", UnwrapErr: os.NewSyscallError("read", syscall.ECONNREFUSED)}, ClassDNS},
		{"dns canceled", &net.DNSError{Err: "operation was canceled", Name: "x", UnwrapErr: context.Canceled}, ClassOther},
		{"dns deadline", &net.DNSError{Err: "i/o timeout", Name: "x", UnwrapErr: context.DeadlineExceeded}, ClassTimeout},
		{"dns in dial", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "x"}}, ClassDNS},
		{"unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, ClassTLS},
		{"bare unknown authority", x509.UnknownAuthorityError{}, ClassTLS},
		{"hostname", x509.HostnameError{Host: "x"}, ClassTLS},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, ClassTLS},
		{"record header", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ClassTLS},
		{"alert", fmt.Errorf("remote error: %w", tls.AlertError(40)), ClassTLS},
		{"canceled", context.Canceled, ClassOther},
		{"canceled dial", &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}}, ClassOther},
		{"eof", io.EOF, ClassOther},
		{"reset", dial(syscall.ECONNRESET), ClassOther},
		{"plain", errors.New("boom"), ClassOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestTimeoutError(t *testing.T) {
	err := error(&TimeoutError{After: 1500 * time.Millisecond})
	if got, want := err.Error(), "probe timed out after 1.5s"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is(TimeoutError, context.DeadlineExceeded) = false, want true")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Error("TimeoutError is not a net.Error with Timeout() true")
	}
}
