package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// nestedInline returns "a = {a = {a = ... = 1}...}" n tables deep.
func nestedInline(n int) []byte {
	return []byte("x = " + strings.Repeat("{a = ", n) + "1" + strings.Repeat("}", n) + "\n")
}

func TestPrescan(t *testing.T) {
	deepArray := "x = [\n" + strings.Repeat("[\n", MaxDepth) + "1" + strings.Repeat("]", MaxDepth+1) + "\n"
	for _, tt := range []struct {
		name     string
		text     string
		wantLine int // 0: accepted
	}{
		{"flat", "[agent]\nbus = \"user\"\n", 0},
		{"32 deep inline", string(nestedInline(MaxDepth)), 0},
		{"33 deep inline", string(nestedInline(MaxDepth + 1)), 1},
		{"deep inline on line 3", "[agent]\n\n" + string(nestedInline(100)), 3},
		{"deep in a header's table", "[a.b.c.d]\n" + string(nestedInline(MaxDepth-3)), 2},
		{"deep array across lines", deepArray, MaxDepth + 1},
		{"header of 32 pieces", "[" + strings.Repeat("a.", MaxDepth-1) + "a]\n", 0},
		{"header of 33 pieces", "\n[" + strings.Repeat("a.", MaxDepth) + "a]\n", 2},
		{"array header of 33 pieces", "[[" + strings.Repeat("a.", MaxDepth) + "a]]\n", 1},
		{"quoted dots in a header", "[\"" + strings.Repeat("a.", 100) + "\"]\n", 0},
		{"dotted key of 33 pieces", strings.Repeat("a.", MaxDepth) + "a = 1\n", 0},
		{"dotted key of 34 pieces", strings.Repeat("a.", MaxDepth+1) + "a = 1\n", 1},
		{"dotted keys in inline tables", "x = " + strings.Repeat("{a.a = ", 17) + "1" + strings.Repeat("}", 17) + "\n", 1},
		{"brackets in a basic string", "x = \"" + strings.Repeat("[{", 1000) + "\"\n", 0},
		{"brackets in a literal string", "x = '" + strings.Repeat("[{", 1000) + "'\n", 0},
		{"brackets after an escaped quote", "x = \"\\\"" + strings.Repeat("[", 1000) + "\"\n", 0},
		{"brackets in a multi-line string", "x = \"\"\"\n" + strings.Repeat("[{\n", 100) + "\"\"\"\ny = " + string(nestedInline(MaxDepth+1)), 103},
		{"brackets in a multi-line literal", "x = '''\n" + strings.Repeat("[{'\n", 100) + "'''\n", 0},
		{"quotes closing a multi-line string", "x = \"\"\"a\"\"\"\"\"\ny = 1\n" + string(nestedInline(MaxDepth+1)), 3},
		{"brackets in a comment", "# " + strings.Repeat("[{", 1000) + "\nx = 1 # " + strings.Repeat("{", 100) + "\n", 0},
		{"closing brackets first", strings.Repeat("}", 100) + "\n", 0},
		{"example", mustRead(t, "../../config.example.toml"), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := prescan([]byte(tt.text), "m.toml")
			switch {
			case tt.wantLine == 0 && err != nil:
				t.Errorf("prescan = %v, want nil", err)
			case tt.wantLine != 0 && err == nil:
				t.Errorf("prescan accepted it, want an error on line %d", tt.wantLine)
			case tt.wantLine != 0 && (err.Line != tt.wantLine || !strings.Contains(err.Msg, "nested too deep")):
				t.Errorf("prescan = %v, want a nesting error on line %d", err, tt.wantLine)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// allocated returns the bytes f allocates and the time it takes.
func allocated(f func()) (uint64, time.Duration) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, took
}

// TestHostileNesting loads the configs that took check-config to 24 GB
// and a running medic to 1.5 GB: inline tables 50,000 and 6,000 deep. Both
// are refused at once, with the line, and allocate almost nothing.
func TestHostileNesting(t *testing.T) {
	for _, depth := range []int{6000, 50000} {
		data := append([]byte("[agent]\nbus = \"user\"\n"), nestedInline(depth)...)
		path := filepath.Join(t.TempDir(), "medic.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var err error
		alloc, took := allocated(func() { _, err = Load(path) })
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 {
			t.Fatalf("%d deep: Load = %v, want one error", depth, err)
		}
		want := path + ":3: nested too deep: 33 levels of tables and arrays, at most 32"
		if errs[0].Error() != want {
			t.Errorf("%d deep: error %q, want %q", depth, errs[0], want)
		}
		if took > time.Second || alloc > 4*uint64(len(data))+1<<20 {
			t.Errorf("%d deep (%d bytes): refusing took %s and %d bytes", depth, len(data), took, alloc)
		}
	}
}

// TestHostileSize loads a file twice the limit (valid TOML, one long
// comment): it is refused without being read whole.
func TestHostileSize(t *testing.T) {
	data := append([]byte("[agent]\nbus = \"user\"\n# "), bytes.Repeat([]byte("x"), 2*MaxFileSize)...)
	path := filepath.Join(t.TempDir(), "medic.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	alloc, took := allocated(func() { _, err = Load(path) })
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != 3 || !strings.Contains(errs[0].Msg, "file too large") {
		t.Fatalf("Load = %v, want one file too large error on line 3", err)
	}
	if took > time.Second || alloc > 2*MaxFileSize {
		t.Errorf("refusing a %d-byte file took %s and %d bytes", len(data), took, alloc)
	}
	if _, err := Parse(data, "m.toml"); err == nil || !strings.Contains(err.Error(), "m.toml:3: file too large") {
		t.Errorf("Parse = %v, want file too large", err)
	}
}

// FuzzPrescan feeds arbitrary text to the pre-decode scanner. It must not
// panic, must name a line inside the text, and when it accepts text that
// decodes, the decoded value must be nested no deeper than the bound allows
// (an array of tables is two levels in the decoded value, a slice and a
// map, and one in the scanner's count).
func FuzzPrescan(f *testing.F) {
	for _, s := range []string{
		"[agent]\nbus = \"user\"\n",
		"x = {a = {b = [1, {c = 2}]}}\n",
		"[[a.b]]\n[[a.b.c]]\nx.y.z = [[[]]]\n",
		"x = \"\"\"\n[{\n\"\"\"\ny = '''[''' # [\n",
		"a = \"\\\"[\"\n[\"x.y\".z]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := prescan(data, "f.toml")
		lines := bytes.Count(data, []byte("\n")) + 1
		if err != nil {
			if err.Line < 1 || err.Line > lines || err.File != "f.toml" {
				t.Fatalf("error %q outside the text's %d lines", err.Error(), lines)
			}
			return
		}
		var v map[string]any
		if _, derr := toml.Decode(string(data), &v); derr != nil {
			return
		}
		if d := nesting(v); d > 2*MaxDepth+1 {
			t.Fatalf("prescan accepted text that decodes %d levels deep", d)
		}
	})
}

// nesting is how deep maps and slices nest in v (0 for a scalar).
func nesting(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			d = max(d, nesting(e))
		}
		return d + 1
	case []map[string]any:
		for _, e := range v {
			d = max(d, nesting(e))
		}
		return d + 1
	case []any:
		for _, e := range v {
			d = max(d, nesting(e))
		}
		return d + 1
	}
	return 0
}
