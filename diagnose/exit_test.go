package diagnose

import "testing"

func TestMainExit(t *testing.T) {
	for _, tc := range []struct {
		code, status int32
		want         string
	}{
		{0, 0, ""},
		{1, 1, "exited, status 1"},
		{2, 9, "killed by signal 9 (KILL)"},
		{3, 11, "dumped core, signal 11 (SEGV)"},
		{2, 40, "killed by signal 40 (RTMIN+6)"},
	} {
		if got := MainExit(tc.code, tc.status); got != tc.want {
			t.Errorf("MainExit(%d, %d) = %q, want %q", tc.code, tc.status, got, tc.want)
		}
	}
}

func TestStatusMark(t *testing.T) {
	for s, want := range map[Status]string{Pass: "✓", Fail: "✗", Unchecked: "?", NotApplicable: "–"} {
		if got := s.Mark(); got != want {
			t.Errorf("%s.Mark() = %q, want %q", s, got, want)
		}
	}
}
