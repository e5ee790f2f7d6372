package config

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must not panic, and it
// either returns a Config that validates, or Errors in which every problem
// names the file and a line inside it (0 only where the line is unknown).
// Seeds: testdata/fuzz/FuzzParse (config.example.toml and every file of
// testdata/).
func FuzzParse(f *testing.F) {
	f.Add([]byte("[agent]\nbus = \"user\"\n\n[[check]]\nname = \"app\"\nunit = \"app.service\"\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:8080\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.toml")
		if err == nil {
			if cfg == nil {
				t.Fatal("nil Config without an error")
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Parse accepted a Config that Validate rejects: %v", err)
			}
			return
		}
		if cfg != nil {
			t.Fatalf("a Config and an error: %v", err)
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %T is not a non-empty Errors: %v", err, err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, e := range errs {
			if e.File != "fuzz.toml" {
				t.Errorf("error without the file: %q", e.Error())
			}
			if e.Line < 0 || e.Line > lines {
				t.Errorf("line %d outside the file's %d lines: %q", e.Line, lines, e.Error())
			}
			if e.Msg == "" || !strings.HasPrefix(e.Error(), "fuzz.toml") {
				t.Errorf("malformed error %q", e.Error())
			}
		}
	})
}

// TestEveryErrorNamesFileLineKey loads every invalid file of testdata/:
// each problem names the file, a line and a key.
func TestEveryErrorNamesFileLineKey(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		_, err := Load(f)
		var errs Errors
		if !errors.As(err, &errs) {
			t.Errorf("%s: got %v, want Errors", f, err)
			continue
		}
		for _, e := range errs {
			if e.File != f || e.Line <= 0 || e.Key == "" {
				t.Errorf("%s: %q lacks the file, line or key", f, e.Error())
			}
		}
	}
}
