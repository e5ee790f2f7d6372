package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummaryOfRealRun runs `go test -json` on a module of its own whose
// tests pass, fail, skip, fail in a subtest and panic, with a package that
// does not build and one without tests, and wants each counted and each
// failure's output shown.
func TestSummaryOfRealRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test; not with -short")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":      "module example.com/m\n\ngo 1.22\n",
		"a/a.go":      "package a\n",
		"a/a_test.go": "package a\n\nimport \"testing\"\n\nfunc TestPass(t *testing.T) {}\n\nfunc TestFail(t *testing.T) { t.Log(\"the log of TestFail\"); t.Error(\"boom\") }\n\nfunc TestSkip(t *testing.T) { t.Skip(\"needs root\") }\n\nfunc TestSub(t *testing.T) {\n\tt.Run(\"ok\", func(t *testing.T) {})\n\tt.Run(\"bad\", func(t *testing.T) { t.Fatal(\"sub failed\") })\n}\n",
		"b/b.go":      "package b\n",
		"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestPanics(t *testing.T) { panic(\"kaput\") }\n",
		"c/c.go":      "package c\n\nfunc F() int { return \"not an int\" }\n",
		"c/c_test.go": "package c\n\nimport \"testing\"\n\nfunc TestC(t *testing.T) {}\n",
		"d/d.go":      "package d\n",
		"e/e_test.go": "package e\n\nimport \"testing\"\n\nfunc TestE(t *testing.T) {}\n",
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	input, err := cmd.Output()
	if err == nil {
		t.Fatalf("go test passed on failing tests:\n%s", input)
	}

	var out bytes.Buffer
	s := newSummary(&out)
	for _, l := range bytes.Split(input, []byte("\n")) {
		if len(l) > 0 {
			s.line(l)
		}
	}
	line := s.finish()
	text := out.String()
	if want := "packages: 1 ok, 3 failed, 1 without tests; tests: 3 passed, 4 failed, 1 skipped"; line != want {
		t.Errorf("summary %q, want %q\n%s", line, want, text)
	}
	if !s.anyError {
		t.Errorf("no error recorded")
	}
	for _, want := range []string{
		"ok    example.com/m/e ",
		"the log of TestFail", "boom", "sub failed", "kaput",
		"FAIL  example.com/m/a ", "FAIL  example.com/m/b ", "FAIL  example.com/m/c ",
		"(build failed)", "not an int",
		"example.com/m/a TestSkip: needs root",
		"failed (3):\n  example.com/m/a TestFail\n  example.com/m/a TestSub/bad\n  example.com/m/b TestPanics\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "=== RUN   TestPass") {
		t.Errorf("the output of a passing test is shown:\n%s", text)
	}
}

func TestSummaryPassesOtherLines(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out)
	s.line([]byte("go: downloading example.com/x v1.0.0"))
	s.line([]byte(`{"Action":"start","Package":"p"}`))
	s.line([]byte(`{"Action":"run","Package":"p","Test":"TestA"}`))
	s.line([]byte(`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`))
	// A timeout: the package fails while TestA runs.
	s.line([]byte(`{"Action":"output","Package":"p","Output":"panic: test timed out after 1s\n"}`))
	s.line([]byte(`{"Action":"fail","Package":"p","Elapsed":1.5}`))
	line := s.finish()
	if want := "packages: 0 ok, 1 failed, 0 without tests; tests: 0 passed, 1 failed, 0 skipped"; line != want {
		t.Errorf("summary %q, want %q", line, want)
	}
	for _, want := range []string{"go: downloading example.com/x v1.0.0\n", "--- FAIL: TestA (did not finish)", "panic: test timed out", "FAIL  p 1.5s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
