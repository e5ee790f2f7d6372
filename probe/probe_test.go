package probe

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// checkResult asserts the parts every Result must have: the target, a
// positive duration, OK and Class as wanted, and for a failure an Err whose
// text contains each of errHas.
func checkResult(t *testing.T, r Result, wantTarget string, wantOK bool, wantClass Class, errHas ...string) {
	t.Helper()
	if r.OK != wantOK || r.Class != wantClass {
		t.Fatalf("Result OK=%t Class=%q Err=%v, want OK=%t Class=%q", r.OK, r.Class, r.Err, wantOK, wantClass)
	}
	if r.Target != wantTarget {
		t.Errorf("Target = %q, want %q", r.Target, wantTarget)
	}
	if r.Duration <= 0 {
		t.Errorf("Duration = %v, want > 0", r.Duration)
	}
	if wantOK {
		if r.Err != nil {
			t.Errorf("Err = %v, want nil on a passing probe", r.Err)
		}
		return
	}
	if r.Err == nil {
		t.Fatalf("Err = nil on a failed probe")
	}
	for _, s := range errHas {
		if !strings.Contains(r.Err.Error(), s) {
			t.Errorf("Err = %q, want it to contain %q", r.Err, s)
		}
	}
}

// skipOrFail skips the test, or fails it when MEDIC_REQUIRE_SYSTEMD=1 says
// that every test must run (as in .ci/run).
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
		t.Fatalf("MEDIC_REQUIRE_SYSTEMD=1 and cannot run: "+format, args...)
	}
	t.Skipf(format, args...)
}

// closedTCPAddr returns a loopback address nothing listens on: a port that
// was just listened on and closed.
func closedTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// acceptingListener listens on loopback and accepts every connection but
// never reads or writes: a TCP probe passes, an HTTP probe hangs.
func acceptingListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln
}

func TestParseStatusRange(t *testing.T) {
	tests := []struct {
		in      string
		want    StatusRange
		wantErr string
	}{
		{in: "200", want: StatusRange{200, 200}},
		{in: " 301 ", want: StatusRange{301, 301}},
		{in: "200-299", want: StatusRange{200, 299}},
		{in: "200 - 204", want: StatusRange{200, 204}},
		{in: "2xx", want: StatusRange{200, 299}},
		{in: "5XX", want: StatusRange{500, 599}},
		{in: "1xx", want: StatusRange{100, 199}},
		{in: "", wantErr: `parse status range "": want CODE, CODE-CODE or Nxx`},
		{in: "ok", wantErr: `parse status range "ok": want CODE, CODE-CODE or Nxx`},
		{in: "200-", wantErr: `parse status range "200-": want CODE, CODE-CODE or Nxx`},
		{in: "6xx", wantErr: `parse status range "6xx": want CODE, CODE-CODE or Nxx`},
		{in: "99", wantErr: `parse status range "99": codes must lie in 100-599, low to high`},
		{in: "600", wantErr: `parse status range "600": codes must lie in 100-599, low to high`},
		{in: "299-200", wantErr: `parse status range "299-200": codes must lie in 100-599, low to high`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStatusRange(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseStatusRange(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStatusRange(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseStatusRange(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestStatusRangeString(t *testing.T) {
	if got := (StatusRange{200, 200}).String(); got != "200" {
		t.Errorf("String() = %q, want 200", got)
	}
	if got := (StatusRange{200, 299}).String(); got != "200-299" {
		t.Errorf("String() = %q, want 200-299", got)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		spec     Spec
		wantType string
		wantErr  string
	}{
		{name: "tcp", spec: Spec{Type: "tcp", Address: "127.0.0.1:8080"}, wantType: "*probe.TCP"},
		{name: "tcp name", spec: Spec{Type: "tcp", Address: "backend.example:8080"}, wantType: "*probe.TCP"},
		{name: "tcp ipv6", spec: Spec{Type: "tcp", Address: "[::1]:8080"}, wantType: "*probe.TCP"},
		{name: "tcp no port", spec: Spec{Type: "tcp", Address: "127.0.0.1"}, wantErr: `new tcp probe: address "127.0.0.1": address 127.0.0.1: missing port in address`},
		{name: "tcp empty port", spec: Spec{Type: "tcp", Address: "127.0.0.1:"}, wantErr: `new tcp probe: address "127.0.0.1:": want host:port with both parts`},
		{name: "tcp empty host", spec: Spec{Type: "tcp", Address: ":8080"}, wantErr: `new tcp probe: address ":8080": want host:port with both parts`},
		{name: "unix", spec: Spec{Type: "unix", Path: "/run/app.sock"}, wantType: "*probe.Unix"},
		{name: "unix empty", spec: Spec{Type: "unix"}, wantErr: "new unix probe: path is empty"},
		{name: "http", spec: Spec{Type: "http", HTTP: HTTPOptions{URL: "http://127.0.0.1:8080/health"}}, wantType: "*probe.HTTP"},
		{name: "https", spec: Spec{Type: "http", HTTP: HTTPOptions{URL: "https://127.0.0.1:8443/health"}}, wantType: "*probe.HTTP"},
		{name: "http bad", spec: Spec{Type: "http", HTTP: HTTPOptions{URL: "ftp://x/"}}, wantErr: `new http probe: url "ftp://x/": scheme must be http or https`},
		{name: "unknown", spec: Spec{Type: "icmp"}, wantErr: `new probe: unknown type "icmp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.spec)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("New error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := fmt.Sprintf("%T", p); got != tt.wantType {
				t.Errorf("New returned %s, want %s", got, tt.wantType)
			}
		})
	}
}
