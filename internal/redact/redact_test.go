package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		url      string
		hidePath bool
		want     string
	}{
		{"https://hooks.example.com/medic", false, "https://hooks.example.com/medic"},
		{"https://u:p@hooks.example.com:8443/a/b?x=1&api_key=k#frag", false, "https://xxxxx@hooks.example.com:8443/a/b?api_key=xxxxx&x=xxxxx"},
		{"https://token@hooks.example.com/", false, "https://xxxxx@hooks.example.com/"},
		{"http://127.0.0.1:8080/health?token=s3cret", false, "http://127.0.0.1:8080/health?token=xxxxx"},
		{"http://127.0.0.1:8080/health?%zz", false, "http://127.0.0.1:8080/health?xxxxx"},
		{"https://hooks.slack.com/services/T000/B000/XXXX", true, "https://hooks.slack.com/services/xxxxx"},
		{"https://chat.example.com/hooks/abcdef", true, "https://chat.example.com/hooks/xxxxx"},
		{"https://chat.example.com/hooks", true, "https://chat.example.com/hooks"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := URL(u, tt.hidePath); got != tt.want {
			t.Errorf("URL(%s, %v) = %s, want %s", tt.url, tt.hidePath, got, tt.want)
		}
	}
}

func TestURLString(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"http://user:pw@h/p?token=s3cret", "http://xxxxx@h/p?token=xxxxx"},
		{"/login?next=/&token=s3cret", "/login?next=xxxxx&token=xxxxx"},
		{"/login", "/login"},
		{"::?token=s3cret", "::?xxxxx"},
		{"://user:s3cret@host", "xxxxx"},
		{"", ""},
	} {
		got := URLString(tt.in)
		if got != tt.want {
			t.Errorf("URLString(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("URLString(%q) = %q shows the secret", tt.in, got)
		}
	}
}
