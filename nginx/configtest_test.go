package nginx_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/internal/nginxtest"
	"github.com/medic-watchdog/medic/nginx"
)

// writeTestConf writes a configuration nginx -t can check as any user: every
// file it opens lies under dir.
func writeTestConf(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	text := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nevents { worker_connections 16; }\nhttp {\n    access_log " + dir + "/access.log;\n" + body + "\n}\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestRunConfigTest runs Debian's nginx -t on a good configuration and on
// one with an unknown directive.
func TestRunConfigTest(t *testing.T) {
	if err := nginxtest.Available(); err != nil {
		nginxtest.Unavailable(t, err.Error())
	}
	ctx := context.Background()

	good := writeTestConf(t, "upstream app { server 127.0.0.1:1; }\nserver { listen 127.0.0.1:1; location / { proxy_pass http://app; } }")
	r := nginx.RunConfigTest(ctx, nginxtest.Binary, good)
	if r.Outcome != nginx.TestPassed || !strings.Contains(r.Message, "test is successful") {
		t.Errorf("good configuration: %+v", r)
	}
	if strings.Join(r.Command, " ") != nginxtest.Binary+" -t -c "+good {
		t.Errorf("command %q", r.Command)
	}

	bad := writeTestConf(t, "acess_log off;")
	r = nginx.RunConfigTest(ctx, "", bad)
	if want := `unknown directive "acess_log" in ` + bad + ":6"; r.Outcome != nginx.TestFailed || r.Message != want {
		t.Errorf("unknown directive: %+v, want fail with %q", r, want)
	}

	r = nginx.RunConfigTest(ctx, filepath.Join(t.TempDir(), "nginx"), good)
	if r.Outcome != nginx.TestUnavailable || !strings.Contains(r.Message, "no such file") {
		t.Errorf("missing binary: %+v", r)
	}
}
