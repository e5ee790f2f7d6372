package logging

import (
	"strings"
	"testing"
)

func TestJournalFieldName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"check", "CHECK"},
		{"unit", "UNIT"},
		{"message_id", "MESSAGE_ID"},
		{"elapsed_ms", "ELAPSED_MS"},
		{"outcome_job_result", "OUTCOME_JOB_RESULT"},
		{"job-result", "JOB_RESULT"},
		{"errorVerbose", "ERRORVERBOSE"},
		{"a.b c", "A_B_C"},
		{"_pid", "PID"},
		{"__", "F_"},
		{"", "F_"},
		{"2fa", "F_2FA"},
		{"ünit", "NIT"}, // "_NIT" would be a trusted field
		{strings.Repeat("x", 70), strings.Repeat("X", 64)},
	}
	for _, tt := range tests {
		if got := JournalFieldName(tt.key); got != tt.want {
			t.Errorf("JournalFieldName(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestCatalogIDs(t *testing.T) {
	ids := map[string]string{
		"RestartPerformed": RestartPerformed, "RestartFailed": RestartFailed, "GaveUp": GaveUp,
		"ConfigReloaded": ConfigReloaded, "ConfigReloadFailed": ConfigReloadFailed,
		"IncidentFiring": IncidentFiring, "IncidentResolved": IncidentResolved,
	}
	seen := map[string]string{}
	for name, id := range ids {
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("%s = %q, want 32 lowercase hex digits", name, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share %s", name, other, id)
		}
		seen[id] = name
	}
}
