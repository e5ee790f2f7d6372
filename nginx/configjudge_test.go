package nginx

import (
	"strings"
	"testing"
)

// TestJudgeTest reads what Debian's nginx 1.22.1 printed for nginx -t run
// as user nobody and as root (copied from real runs).
func TestJudgeTest(t *testing.T) {
	tests := []struct {
		name, output string
		wantOutcome  TestOutcome
		wantMessage  string
	}{
		{"pid file denied after the syntax check", `2026/11/30 04:04:18 [warn] 7352#7352: the "user" directive makes sense only if the master process runs with super-user privileges, ignored in /tmp/ngxt/nginx.conf:4
nginx: the configuration file /tmp/ngxt/nginx.conf syntax is ok
2026/11/30 04:04:18 [emerg] 7352#7352: open() "/tmp/ngxt/nginx.pid" failed (13: Permission denied)
nginx: configuration file /tmp/ngxt/nginx.conf test failed
`, TestUnavailable, `the syntax is ok, but the test needs more rights (open() "/tmp/ngxt/nginx.pid" failed (13: Permission denied))`},
		{"configuration unreadable", `2026/11/30 04:04:18 [emerg] 7364#7364: open() "/tmp/ngxt/nginx.conf" failed (13: Permission denied)
nginx: configuration file /tmp/ngxt/nginx.conf test failed
`, TestUnavailable, `could not read or open a file (open() "/tmp/ngxt/nginx.conf" failed (13: Permission denied))`},
		{"unknown directive as nobody", `2026/11/30 04:04:18 [warn] 7360#7360: the "user" directive makes sense only if the master process runs with super-user privileges, ignored in /tmp/ngxt/nginx.conf:4
2026/11/30 04:04:18 [emerg] 7360#7360: unknown directive "acess_log" in /tmp/ngxt/nginx.conf:7
nginx: configuration file /tmp/ngxt/nginx.conf test failed
`, TestFailed, `unknown directive "acess_log" in /tmp/ngxt/nginx.conf:7`},
		{"before the log is set up", `nginx: [emerg] unexpected "}" in /etc/nginx/nginx.conf:9
nginx: configuration file /etc/nginx/nginx.conf test failed
`, TestFailed, `unexpected "}" in /etc/nginx/nginx.conf:9`},
		{"no emerg", "nginx: configuration file /x test failed\n", TestUnavailable, "nginx -t failed without an [emerg] line: configuration file /x test failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := judgeTest(ConfigTest{Output: tt.output})
			if r.Outcome != tt.wantOutcome || !strings.Contains(r.Message, tt.wantMessage) {
				t.Errorf("%s %q, want %s containing %q", r.Outcome, r.Message, tt.wantOutcome, tt.wantMessage)
			}
		})
	}
}
