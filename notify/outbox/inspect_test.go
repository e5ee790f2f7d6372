package outbox

import (
	"path/filepath"
	"testing"

	"github.com/medic-watchdog/medic/notify"
)

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	if st, err := Inspect(filepath.Join(dir, "missing")); err != nil || st != nil {
		t.Fatalf("Inspect(missing) = %v, %v", st, err)
	}
	o := open(t, testOptions(t, dir), newRecorder("mail"), newRecorder("hook"))
	enqueue(t, o, "mail", msg("a.1", notify.Firing), msg("a.2", notify.Reminder))
	stats, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Stat{}
	for _, s := range stats {
		got[s.Notifier] = s
	}
	if len(got) != 2 || got["mail"].Pending != 2 || got["hook"].Pending != 0 || got["mail"].OldestPending.IsZero() {
		t.Errorf("Inspect = %+v, want mail with 2 pending and an oldest time, hook empty", stats)
	}
}
