package config

import "testing"

func TestLocator(t *testing.T) {
	src := `# medic.toml
[agent]
interval = "10s"   # a comment with key = value
"bus" = "user"

[[check]]
name = "a"
description = """
not_a_key = 1
[[check]]
"""
  [[check.probe]]
  type = "tcp"
  [[check.probe]]
  type = "http"
  headers = { Host = "x", "X-A" = "b" }
  expect_status = [
    200,
    "2xx",
  ]
  expect_body = "a = b"
  [check.remedy]
  action = "none"

[[check]]
name = "b"
remedy.window = "5m"
  [[check.probe]]
  type = "unix"
  [check.escalate]
  notify = ["x"]

[[notifier]]
name = 'n'
`
	l := newLocator([]byte(src))
	tests := []struct {
		key  string
		want int
	}{
		{"agent", 2},
		{"agent.interval", 3},
		{"agent.bus", 4},
		{"agent.timeout", 2}, // not set: its table
		{"check[0]", 6},
		{"check[0].name", 7},
		{"check[0].description", 8},
		{"check[0].not_a_key", 6}, // inside a multi-line string
		{"check[0].probe[0]", 12},
		{"check[0].probe[0].type", 13},
		{"check[0].probe[1].type", 15},
		{"check[0].probe[1].headers", 16},
		{"check[0].probe[1].expect_status", 17},
		{"check[0].probe[1].expect_status[1]", 17},
		{"check[0].probe[1].expect_body", 21},
		{"check[0].remedy.action", 23},
		{"check[0].remedy.window", 22},
		{"check[1]", 25},
		{"check[1].name", 26},
		{"check[1].remedy.window", 27},
		{"check[1].probe[0].type", 29},
		{"check[1].probe[0].address", 28}, // not set: its [[check.probe]]
		{"check[1].escalate.notify[0]", 31},
		{"check[2].name", 0}, // no such check
		{"notifier[0].name", 34},
		{"notifier[0].type", 33},
		{"nothing", 0},
	}
	for _, tt := range tests {
		if got := l.line(tt.key); got != tt.want {
			t.Errorf("line(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}

	found := l.find("check.probe.type")
	want := []locEntry{{"check[0].probe[0].type", 13}, {"check[0].probe[1].type", 15}, {"check[1].probe[0].type", 29}}
	if len(found) != len(want) {
		t.Fatalf("find(check.probe.type) = %v, want %v", found, want)
	}
	for i := range want {
		if found[i] != want[i] {
			t.Errorf("find(check.probe.type)[%d] = %v, want %v", i, found[i], want[i])
		}
	}
}

func TestSplitKey(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"check.probe", []string{"check", "probe"}},
		{` check . probe `, []string{"check", "probe"}},
		{`"a.b".c`, []string{"a.b", "c"}},
		{`'x y'`, []string{"x y"}},
		{`a."q\"uote"`, []string{"a", `q"uote`}},
	}
	for _, tt := range tests {
		got := splitKey(tt.in)
		if len(got) != len(tt.want) {
			t.Errorf("splitKey(%q) = %q, want %q", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("splitKey(%q) = %q, want %q", tt.in, got, tt.want)
			}
		}
	}
}
