package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobody is the uid and gid the secret-file tests run medic as when they
// run as root: root reads a file of mode 0000, medic's own user does not.
const nobody = 65534

// TestCheckConfigSecretFiles runs `medic check-config` (as uid 65534 when
// the test runs as root, so that a file of mode 0000 is unreadable as it is
// for the medic user) on configurations whose secret and certificate files
// are missing, unreadable, malformed or fine. Every file check-config
// refuses, `medic run` refuses too, with the same file:line: key: message.
func TestCheckConfigSecretFiles(t *testing.T) {
	bin := medicBinary(t)
	dir, err := os.MkdirTemp("", "medic-secrets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	present := write("smtp-password", "s3cret-password\n", 0o644)
	unreadable := write("locked-password", "s3cret-password\n", 0)
	missing := filepath.Join(dir, "no-such-file")
	credDir := filepath.Join(dir, "credentials")
	if err := os.Mkdir(credDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write("credentials/smtp", "s3cret-password\n", 0o644)
	notPEM := write("ca.pem", "not a certificate\n", 0o644)
	badSecret := write("webhook-secret", "whsec_!!!not base64\n", 0o644)

	email := func(secretLine string) string {
		return "[[notifier]]\nname = \"ops\"\ntype = \"email\"\nhost = \"smtp.example.com\"\nfrom = \"medic@example.com\"\nto = [\"ops@example.com\"]\nusername = \"medic\"\n" + secretLine + "\n"
	}
	tests := []struct {
		name     string
		body     string
		credDir  string // $CREDENTIALS_DIRECTORY; "" leaves it unset
		wantOK   bool
		wantLine string // the key's line, as "key = ..." in body
		wantMsg  string // file:line: key: + this
	}{
		{name: "present password_file", body: email(fmt.Sprintf("password_file = %q", present)), wantOK: true},
		{name: "missing password_file", body: email(fmt.Sprintf("password_file = %q", missing)),
			wantLine: "password_file", wantMsg: "notifier[0].password_file: read secret file: open " + missing + ": no such file or directory"},
		{name: "unreadable password_file", body: email(fmt.Sprintf("password_file = %q", unreadable)),
			wantLine: "password_file", wantMsg: "notifier[0].password_file: read secret file: open " + unreadable + ": permission denied"},
		{name: "credential without CREDENTIALS_DIRECTORY", body: email(`password_credential = "smtp"`), wantOK: true,
			wantLine: "password_credential", wantMsg: `notifier[0].password_credential: warning: credential "smtp" not checked: $CREDENTIALS_DIRECTORY is not set here`},
		{name: "present credential", body: email(`password_credential = "smtp"`), credDir: credDir, wantOK: true},
		{name: "missing credential", body: email(`password_credential = "smtp-other"`), credDir: credDir,
			wantLine: "password_credential", wantMsg: `notifier[0].password_credential: read credential "smtp-other": open ` + filepath.Join(credDir, "smtp-other") + ": no such file or directory"},
		{name: "email ca_file without a certificate", body: email(fmt.Sprintf("password_file = %q\nca_file = %q", present, notPEM)),
			wantLine: "ca_file", wantMsg: "notifier[0].ca_file: read certificate file " + notPEM + ": no PEM certificate in it"},
		{name: "missing webhook secret_file", body: fmt.Sprintf("[[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret_file = %q\n", missing),
			wantLine: "secret_file", wantMsg: "notifier[0].secret_file: read secret file: open " + missing + ": no such file or directory"},
		{name: "malformed webhook secret", body: fmt.Sprintf("[[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret_file = %q\n", badSecret),
			wantLine: "secret_file", wantMsg: `notifier[0].secret_file: parse webhook secret: invalid base64 after "whsec_"`},
		{name: "missing probe ca_file", body: fmt.Sprintf("[[check]]\nname = \"web\"\n  [[check.probe]]\n  type = \"http\"\n  url = \"https://127.0.0.1:1/\"\n  ca_file = %q\n  [check.remedy]\n  action = \"none\"\n", missing),
			wantLine: "ca_file", wantMsg: "check[0].probe[0].ca_file: new http probe: read ca_file: open " + missing + ": no such file or directory"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := filepath.Join(dir, "state"+fmt.Sprint(i))
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			if os.Geteuid() == 0 {
				if err := os.Chown(state, nobody, nobody); err != nil {
					t.Fatal(err)
				}
			}
			text := fmt.Sprintf("[agent]\nbus = \"user\"\nstate_dir = %q\nstatus_socket = \"\"\n", state) + tt.body
			if !strings.Contains(text, "[[check]]") { // else check-config says there is nothing to check
				text += "[[check]]\nname = \"c\"\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:1\"\n  [check.remedy]\n  action = \"none\"\n"
			}
			cfg := write(fmt.Sprintf("medic-%d.toml", i), text, 0o644)
			want := ""
			if tt.wantMsg != "" {
				want = fmt.Sprintf("%s:%d: %s", cfg, lineOf(t, text, tt.wantLine), tt.wantMsg)
			}

			stdout, stderr, err := runMedicAs(t, bin, tt.credDir, 10*time.Second, "check-config", "-c", cfg)
			if tt.wantOK {
				if err != nil || !strings.Contains(stdout, "configuration OK") {
					t.Errorf("check-config: %v, stdout %q, stderr:\n%s\nwant configuration OK", err, stdout, stderr)
				}
			} else {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Contains(stdout, "configuration OK") {
					t.Errorf("check-config: %v, stdout %q; want exit status 1", err, stdout)
				}
			}
			if want != "" && !strings.Contains(stderr, want) {
				t.Errorf("check-config stderr lacks %q:\n%s", want, stderr)
			}
			if want == "" && stderr != "" {
				t.Errorf("check-config stderr %q, want nothing", stderr)
			}
			if strings.Contains(stderr, "s3cret") {
				t.Errorf("a secret leaked into the output:\n%s", stderr)
			}
			if tt.wantOK {
				return
			}
			// medic run refuses the same file for the same reason (with
			// file:line: key for the notifiers' files, which it reads
			// the same way).
			_, msg, _ := strings.Cut(tt.wantMsg, ": ")
			if strings.HasPrefix(tt.wantMsg, "notifier[") {
				msg = want
			}
			_, stderr, err = runMedicAs(t, bin, tt.credDir, 20*time.Second, "run", "-c", cfg, "--log-format", "json")
			if err == nil || !strings.Contains(stderr, msg) {
				t.Errorf("medic run: %v, want it to refuse with %q; stderr:\n%s", err, msg, stderr)
			}
		})
	}
}

// lineOf returns the 1-based line of text where key is set.
func lineOf(t *testing.T, text, key string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), key+" =") {
			return i + 1
		}
	}
	t.Fatalf("%s is not set in\n%s", key, text)
	return 0
}

// runMedicAs runs medic with args, as uid and gid 65534 when the test runs
// as root, with $CREDENTIALS_DIRECTORY set to credDir unless it is empty,
// and returns its output and the error of exec.Cmd.Run.
func runMedicAs(t *testing.T, bin, credDir string, timeout time.Duration, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent"}
	if credDir != "" {
		cmd.Env = append(cmd.Env, "CREDENTIALS_DIRECTORY="+credDir)
	}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatalf("start medic as uid %d: %v", nobody, err)
		}
		t.Skipf("skipping: cannot start medic as uid %d: %v (set MEDIC_REQUIRE_SYSTEMD=1 to fail instead)", nobody, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.String(), stderr.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("medic %s still running after %s; stderr:\n%s", strings.Join(args, " "), timeout, stderr.String())
		return "", "", nil
	}
}

// TestCheckConfigNoChecks: a valid file without [[check]] is not
// "configuration OK": check-config says there is nothing to check, warns
// on stderr, and exits 0 (the package installs such a file).
func TestCheckConfigNoChecks(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "medic.toml")
	if err := os.WriteFile(cfg, []byte("[agent]\nbus = \"user\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := execute("check-config", "-c", cfg)
	if err != nil {
		t.Errorf("err %v, want exit status 0: the file is valid", err)
	}
	if strings.Contains(out, "configuration OK") || out != cfg+": configuration valid, but there is nothing to check\n" {
		t.Errorf("stdout %q", out)
	}
	if want := cfg + ": warning: no [[check]]: medic run starts but has nothing to check"; !strings.Contains(errOut, want) {
		t.Errorf("stderr %q lacks %q", errOut, want)
	}
}
