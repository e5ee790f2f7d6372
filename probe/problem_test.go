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
