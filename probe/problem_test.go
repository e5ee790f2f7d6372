package probe

import (
	"errors"
	"testing"
)

func TestProblem(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{Result{OK: true, Target: "127.0.0.1:8080"}, ""},
		{Result{Class: ClassRefused, Target: "127.0.0.1:8080"}, "127.0.0.1:8080 connection refused"},
		{Result{Class: ClassTimeout, Target: "unix:/run/app.sock"}, "unix:/run/app.sock timed out"},
		{Result{Class: ClassDNS, Target: "db.invalid:5432"}, "db.invalid:5432 name does not resolve"},
		{Result{Class: ClassHTTPStatus, Target: "http://h/health", Err: &StatusError{Status: "503 Service Unavailable", Code: 503}}, "http://h/health returned 503 Service Unavailable"},
		{Result{Class: ClassBodyMismatch, Target: "http://h/health", Err: &BodyMismatchError{Want: "ok"}}, `http://h/health body lacks "ok"`},
		{Result{Class: ClassOther, Target: "x:1", Err: errors.New("boom")}, "x:1 failed: boom"},
	}
	for _, tt := range tests {
		if got := tt.r.Problem(); got != tt.want {
			t.Errorf("Problem(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestShortProblem(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080: refused: dial tcp 127.0.0.1:8080: connect: connection refused":           "127.0.0.1:8080 connection refused",
		"db.internal:5432: timeout: dial tcp 10.0.0.5:5432: i/o timeout":                          "db.internal:5432 timed out",
		"nope.invalid:80: dns: lookup nope.invalid: no such host":                                 "nope.invalid:80 name does not resolve",
		"/run/app.sock: permission: www-data may not connect":                                     "/run/app.sock permission denied",
		"http://h/x: body_mismatch: body does not contain \"ok\" (read 2 bytes)":                  "http://h/x body does not contain \"ok\" (read 2 bytes)",
		"127.0.0.1:8080: other: unit failed/failed, result exit-code, yet 127.0.0.1:8080 answers": "unit failed/failed, result exit-code, yet 127.0.0.1:8080 answers",
		"something else entirely": "something else entirely",
	} {
		if got := ShortProblem(in); got != want {
			t.Errorf("ShortProblem(%q) = %q, want %q", in, got, want)
		}
	}
}
