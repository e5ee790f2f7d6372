package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		in, want, wantLines string
	}{
		{"plain text, ünïcode ✓", "plain text, ünïcode ✓", "plain text, ünïcode ✓"},
		{"\x1b]0;pwned\x07\x1b[2J\r", `\x1b]0;pwned\x07\x1b[2J\r`, `\x1b]0;pwned\x07\x1b[2J\r`},
		{"a\nb\tc", `a\nb\tc`, "a\nb\\tc"},
		{"\u009b31m C1 CSI", `\u009b31m C1 CSI`, `\u009b31m C1 CSI`},
		{"evil\u202egnp.exe", `evil\u202egnp.exe`, `evil\u202egnp.exe`},
		{"\u2066x\u2069\u200e\u061c", `\u2066x\u2069\u200e\u061c`, `\u2066x\u2069\u200e\u061c`},
		{"bad \xff\xfe byte", `bad \xff\xfe byte`, `bad \xff\xfe byte`},
		{"del\x7f nul\x00", `del\x7f nul\x00`, `del\x7f nul\x00`},
		{"line\u2028sep", `line\u2028sep`, `line\u2028sep`},
		{`back\slash`, `back\slash`, `back\slash`},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := EscapeLines(tt.in); got != tt.wantLines {
			t.Errorf("EscapeLines(%q) = %q, want %q", tt.in, got, tt.wantLines)
		}
	}
}

func TestTruncate(t *testing.T) {
	if got := Truncate("short", 10); got != "short" {
		t.Errorf("Truncate(short) = %q", got)
	}
	got := Truncate(strings.Repeat("é", 10), 5) // 2 bytes each: cut at 4
	if got != "éé…" || !utf8.ValidString(got) {
		t.Errorf("Truncate = %q, want éé…", got)
	}
}

// FuzzEscape checks that no output of Escape carries a control character.
func FuzzEscape(f *testing.F) {
	f.Add("\x1b]0;pwned\x07\x1b[2J\r")
	f.Add("\u202e\xc2\x9b")
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q, not valid UTF-8", s, out)
		}
		for _, r := range out {
			if needs(r, utf8.RuneLen(r), false) {
				t.Fatalf("Escape(%q) = %q keeps %U", s, out, r)
			}
		}
	})
}
