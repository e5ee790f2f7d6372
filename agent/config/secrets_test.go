package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	password := write("smtp-password", "pa55\r\n", 0o600)
	unreadable := write("locked", "pa55\n", 0)
	missing := filepath.Join(dir, "missing")
	webhookSecret := write("webhook-secret", "whsec_c2VjcmV0\n", 0o600)
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "smtp"), []byte("cr3d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	email := func(line string) string {
		return "[[notifier]]\nname = \"ops\"\ntype = \"email\"\nhost = \"smtp.example.com\"\nfrom = \"m@example.com\"\nto = [\"o@example.com\"]\nusername = \"m\"\n" + line + "\n"
	}
	tests := []struct {
		name         string
		src          string
		creds        string // $CREDENTIALS_DIRECTORY
		needNonRoot  bool
		wantErr      string // ReadSecrets' and CheckFiles' error
		wantWarning  string // CheckFiles' warning; ReadSecrets fails with it
		wantPassword string
		wantKey      string
	}{
		{name: "password_file", src: email(fmt.Sprintf("password_file = %q", password)), wantPassword: "pa55"},
		{name: "inline", src: email(`password = "inline"`), wantPassword: "inline"},
		{name: "missing password_file", src: email(fmt.Sprintf("password_file = %q", missing)),
			wantErr: "medic.toml:8: notifier[0].password_file: read secret file: open " + missing + ": no such file or directory"},
		{name: "unreadable password_file", src: email(fmt.Sprintf("password_file = %q", unreadable)), needNonRoot: true,
			wantErr: "medic.toml:8: notifier[0].password_file: read secret file: open " + unreadable + ": permission denied"},
		{name: "credential", src: email(`password_credential = "smtp"`), creds: creds, wantPassword: "cr3d"},
		{name: "missing credential", src: email(`password_credential = "other"`), creds: creds,
			wantErr: `medic.toml:8: notifier[0].password_credential: read credential "other": open ` + filepath.Join(creds, "other") + ": no such file or directory"},
		{name: "credential without CREDENTIALS_DIRECTORY", src: email(`password_credential = "smtp"`),
			wantWarning: `medic.toml:8: notifier[0].password_credential: credential "smtp" not checked: $CREDENTIALS_DIRECTORY is not set here`},
		{name: "webhook secret_file", src: fmt.Sprintf("[[notifier]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret_file = %q\n", webhookSecret), wantKey: "secret"},
		{name: "empty webhook secret", src: fmt.Sprintf("[[notifier]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nsecret_file = %q\n", write("empty", "\n", 0o600)),
			wantErr: "medic.toml:5: notifier[0].secret_file: parse webhook secret: empty"},
		{name: "email ca_file", src: email(fmt.Sprintf("ca_file = %q", missing)),
			wantErr: "medic.toml:8: notifier[0].ca_file: read certificate file: open " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needNonRoot && os.Geteuid() == 0 {
				// Root reads a file of mode 0000; cmd/medic's
				// TestCheckConfigSecretFiles runs this case as uid 65534.
				t.Log("root reads any file; this case runs as uid 65534 in cmd/medic's TestCheckConfigSecretFiles")
				return
			}
			t.Setenv("CREDENTIALS_DIRECTORY", tt.creds)
			cfg, err := Parse([]byte(tt.src), "medic.toml")
			if err != nil {
				t.Fatal(err)
			}
			secrets, err := cfg.ReadSecrets()
			wantReadErr := tt.wantErr
			if tt.wantWarning != "" {
				wantReadErr = `medic.toml:8: notifier[0].password_credential: read credential "smtp": $CREDENTIALS_DIRECTORY is not set`
			}
			var list Errors
			switch {
			case wantReadErr == "" && err != nil:
				t.Fatalf("ReadSecrets: %v", err)
			case wantReadErr != "" && (!errors.As(err, &list) || len(list) != 1 || !strings.HasPrefix(list[0].Error(), wantReadErr)):
				t.Fatalf("ReadSecrets: %v, want Errors with one %q", err, wantReadErr)
			case wantReadErr == "":
				if secrets[0].Password != tt.wantPassword || string(secrets[0].SigningKey) != tt.wantKey {
					t.Errorf("secrets %q, key %q; want %q, %q", secrets[0].Password, secrets[0].SigningKey, tt.wantPassword, tt.wantKey)
				}
			}

			warnings, err := cfg.CheckFiles()
			if got := errText(err); !strings.HasPrefix(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Errorf("CheckFiles error %q, want %q", got, tt.wantErr)
			}
			if got := errText(warnings); !strings.HasPrefix(got, tt.wantWarning) || (tt.wantWarning == "") != (got == "") {
				t.Errorf("CheckFiles warnings %q, want %q", got, tt.wantWarning)
			}
			for _, s := range []string{"pa55", "cr3d", "c2VjcmV0"} {
				if strings.Contains(errText(err)+errText(warnings), s) {
					t.Errorf("secret %q in %q", s, errText(err))
				}
			}
		})
	}
}

// TestCheckFilesProbeCAFile: a probe's ca_file that probe.New cannot read is
// named with its key and line.
func TestCheckFilesProbeCAFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ca.pem")
	cfg, err := Parse([]byte(fmt.Sprintf(`[[check]]
name = "web"
  [[check.probe]]
  type = "http"
  url = "https://127.0.0.1:1/"
  ca_file = %q
  [check.remedy]
  action = "none"
`, missing)), "medic.toml")
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := cfg.CheckFiles()
	want := "medic.toml:6: check[0].probe[0].ca_file: new http probe: read ca_file: open " + missing + ": no such file or directory"
	if errText(err) != want || warnings != nil {
		t.Errorf("CheckFiles = %v, %q; want no warnings, %q", warnings, errText(err), want)
	}
}

func errText(err error) string {
	var list Errors
	if errors.As(err, &list) && len(list) == 0 {
		return ""
	}
	if err == nil {
		return ""
	}
	return err.Error()
}
