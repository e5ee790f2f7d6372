package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/probe"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		target   string
		wantType probe.Type
		wantA    string
		wantErr  string
	}{
		{target: "tcp://127.0.0.1:8080", wantType: "tcp", wantA: "127.0.0.1:8080"},
		{target: "127.0.0.1:8080", wantType: "tcp", wantA: "127.0.0.1:8080"},
		{target: "[::1]:80", wantType: "tcp", wantA: "[::1]:80"},
		{target: "localhost:8080", wantType: "tcp", wantA: "localhost:8080"},
		{target: "unix:/run/app.sock", wantType: "unix", wantA: "/run/app.sock"},
		{target: "http://127.0.0.1:8080/health", wantType: "http", wantA: "http://127.0.0.1:8080/health"},
		{target: "tcp://127.0.0.1:99999", wantErr: `invalid port "99999": want a number from 1 to 65535`},
		{target: "127.0.0.1:0", wantErr: `invalid port "0"`},
		{target: "tcp://127.0.0.1", wantErr: "missing port"},
		{target: "tcp://:80", wantErr: "missing host"},
		{target: "http://127.0.0.1:70000/", wantErr: `invalid port "70000"`},
		{target: "unix:run/app.sock", wantErr: "not an absolute path"},
		{target: "unix:/" + strings.Repeat("x", 200), wantErr: "at most 107 fit"},
		{target: "ftp://x", wantErr: "want tcp://host:port"},
		{target: "localhost", wantErr: "want tcp://host:port"},
	} {
		spec, err := parseTarget(tc.target)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseTarget(%q) = %+v, %v; want error with %q", tc.target, spec, err, tc.wantErr)
			}
			continue
		}
		got := spec.Address + spec.Path + spec.HTTP.URL
		if err != nil || spec.Type != tc.wantType || got != tc.wantA {
			t.Errorf("parseTarget(%q) = %s %q, %v; want %s %q", tc.target, spec.Type, got, err, tc.wantType, tc.wantA)
		}
	}
}

// TestDiagnoseBareHostPort: host:port is a TCP target; a port out of
// range is refused before any probe.
func TestDiagnoseBareHostPort(t *testing.T) {
	addr := closedPort(t)
	out, _, err := execute("diagnose", addr)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 || !strings.Contains(out, addr+" connection refused") {
		t.Errorf("diagnose %s: err %v, output:\n%s", addr, err, out)
	}
	_, _, err = execute("diagnose", "tcp://127.0.0.1:99999")
	if err == nil || errors.As(err, &ec) || !strings.Contains(err.Error(), `invalid port "99999"`) {
		t.Errorf("diagnose of port 99999: err %v, want a parse error naming the port", err)
	}
}

// TestDiagnoseUnitBusUnreachable: --unit with no bus to read it from
// says the unit's state is unavailable, names the bus and exits 1.
func TestDiagnoseUnitBusUnreachable(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+t.TempDir()+"/no-bus")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, _, err := execute("diagnose", "--bus", "user", "--unit", "app.service", "tcp://"+ln.Addr().String())
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Errorf("err %v, want exit status 1 (the unit's state is unknown)", err)
	}
	for _, want := range []string{"? backend running", "app.service: state unavailable", "user bus", "no-bus", "not available: unit app.service"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "no unit configured") {
		t.Errorf("output says no unit is configured:\n%s", out)
	}

	// Nothing listens: the fix names the unit given, not "name its unit".
	closed := closedPort(t)
	out, _, _ = execute("diagnose", "--bus", "user", "--unit", "app.service", "tcp://"+closed)
	if !strings.Contains(out, "fix:     start app.service, which should listen on "+closed) || strings.Contains(out, "name its unit") {
		t.Errorf("closed port, unit unreadable: output:\n%s", out)
	}
}

// TestDiagnoseUnitInactive: a probe that passes does not make diagnose
// exit 0 when the named unit is not active (someone else answers).
func TestDiagnoseUnitInactive(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := fmt.Sprintf("medic-diagnose-inactive-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	out, _, err := execute("diagnose", "--bus", "user", "--unit", unit, ln.Addr().String())
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Errorf("err %v, want exit status 1: the unit is inactive", err)
	}
	if !strings.Contains(out, "answers") || !strings.Contains(out, "✗ backend running") || !strings.Contains(out, unit+": inactive/dead") {
		t.Errorf("output:\n%s", out)
	}
}
