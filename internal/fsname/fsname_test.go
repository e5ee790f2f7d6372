package fsname

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		name    string
		wantErr string
	}{
		{"ops-email", ""},
		{"my_app.v2", ""},
		{"a", ""},
		{strings.Repeat("a", MaxLen), ""},
		{"", "empty name"},
		{strings.Repeat("a", MaxLen+1), "at most 64"},
		{strings.Repeat("a", 300), "of 300 bytes"},
		{".hidden", "starts with a dot"},
		{".", "starts with a dot"},
		{"..", "starts with a dot"},
		{"corrupt", "reserved"},
		{"a/b", "path separator"},
		{"a b", "use only letters"},
		{"a\x00b", "path separator or NUL"},
		{"a\nb", "use only letters"},
		{"é", "use only letters"},
	} {
		err := Check(tt.name)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Check(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Check(%q) = %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestLongestNameFits writes the longest file medic makes of a name, a
// state file's temporary copy, for a name of MaxLen bytes.
func TestLongestNameFits(t *testing.T) {
	name := strings.Repeat("n", MaxLen)
	f, err := os.CreateTemp(t.TempDir(), "."+name+".json.tmp-")
	if err != nil {
		t.Fatalf("temporary state file of a %d-byte name: %v", MaxLen, err)
	}
	f.Close()
	if err := os.Rename(f.Name(), filepath.Join(filepath.Dir(f.Name()), name+".json")); err != nil {
		t.Fatal(err)
	}
}
