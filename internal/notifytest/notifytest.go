// Package notifytest holds sample data shared by the notifiers' tests and
// the examples they render for the README.
package notifytest

import (
	"time"

	"github.com/medic-watchdog/medic/diagnose"
)

// CrashDiagnosis is the diagnosis of my-app.service after its main process
// exited with status 1, as diagnose.Diagnose reports it, gathered at at.
func CrashDiagnosis(at time.Time) *diagnose.Diagnosis {
	return &diagnose.Diagnosis{
		At:      at,
		Target:  "127.0.0.1:8080",
		Problem: "127.0.0.1:8080 connection refused",
		Primary: diagnose.Finding{
			Cause:   diagnose.Crashed,
			Summary: "my-app.service crashed: failed/failed, result exit-code, main process exited, status 1",
			Hint:    "read the unit's last journal lines (journalctl -u my-app.service), fix the cause, then start it",
			Evidence: map[string]any{
				"unit": "my-app.service", "active_state": "failed", "sub_state": "failed", "result": "exit-code",
				"exec_main_code": 1, "exec_main_status": 1, "n_restarts": 0,
			},
		},
		Checklist: []diagnose.Item{
			{Name: diagnose.ItemRunning, Status: diagnose.Fail, Evidence: "my-app.service: failed/failed, result exit-code, main process exited, status 1"},
			{Name: diagnose.ItemListening, Status: diagnose.Fail, Evidence: "nothing listens on 127.0.0.1:8080"},
			{Name: diagnose.ItemDirect, Status: diagnose.Fail, Evidence: "127.0.0.1:8080 connection refused"},
			{Name: diagnose.ItemSocket, Status: diagnose.NotApplicable, Evidence: "not a unix socket probe"},
			{Name: diagnose.ItemFirewall, Status: diagnose.Pass, Evidence: "refused, not dropped: the host answered"},
		},
	}
}
