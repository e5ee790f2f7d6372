package ostest_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/ostest"
)

// mttrTrials is how many kills each side gets per suite; mttrSettle is the
// pause after each.
const (
	mttrTrials = 15
	mttrSettle = 2 * time.Second
)

// killAndWait kills the main process of a unit with SIGKILL inside the
// machine and prints the milliseconds until the port answers again, as
// seen from the machine itself (no nsenter round trip in the measurement):
// first it waits for the old listener to go, then polls every 0.2 ms.
const killAndWait = `
import os, socket, subprocess, sys, time
unit, port = sys.argv[1], int(sys.argv[2])
pid = int(subprocess.check_output(["systemctl", "show", "-p", "MainPID", "--value", unit]).strip())
def up():
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
if pid == 0 or not up():
    sys.exit("%s is not running and answering before the kill" % unit)
t0 = time.monotonic()
os.kill(pid, 9)
while up():
    if time.monotonic() - t0 > 5:
        sys.exit("the killed listener still answers after 5s")
while not up():
    if time.monotonic() - t0 > 30:
        sys.exit("no answer within 30s of the kill")
    time.sleep(0.0002)
print("%.3f" % ((time.monotonic() - t0) * 1000))
`

// BenchmarkMTTR measures MTTR, the time from a backend's death (SIGKILL of
// its main process) to its port answering again, on the installed package
// under PID-1 systemd with the configuration a user writes first (only
// name, unit and one http probe per check: every threshold, grace period
// and backoff at its default), against systemd's own Restart=always on a
// twin unit (RestartSec at its default, 100 ms) in the same machine, the
// two killed in turn. Each check and twin is killed once, so medic's
// restart budget and systemd's start limit never play a part. It reports
// the medians and 90th percentiles in milliseconds, and the difference of
// the medians:
//
//	MEDIC_REQUIRE_SYSTEMD=1 go test -run '^$' -bench MTTR -v ./ostest/
func BenchmarkMTTR(b *testing.B) {
	if err := ostest.Available(); err != nil {
		ostest.Unavailable(b, err.Error())
	}
	for _, suite := range ostest.Suites {
		b.Run(suite, func(b *testing.B) {
			m := ostest.Boot(b, suite)
			install(b, m, versionA)
			var cfg strings.Builder
			cfg.WriteString("[agent]\nbus = \"system\"\n")
			for i := range mttrTrials {
				medicUnit, twin := fmt.Sprintf("app%d.service", i), fmt.Sprintf("twin%d.service", i)
				m.StartBackend(b, medicUnit, fmt.Sprintf("127.0.0.1:%d", 8100+i))
				m.StartBackend(b, twin, fmt.Sprintf("127.0.0.1:%d", 8300+i), "Restart=always")
				fmt.Fprintf(&cfg, "\n[[check]]\nname = \"app%d\"\nunit = %q\n\n  [[check.probe]]\n  type = \"http\"\n  url = \"http://127.0.0.1:%d/health\"\n", i, medicUnit, 8100+i)
			}
			configure(b, m, cfg.String())
			b.ResetTimer()
			for range b.N {
				var medic, systemd []float64
				for i := range mttrTrials {
					// Each kill on a quiet machine: after a heal medic
					// verifies, diagnoses and reads the journal, which
					// would slow down whatever is measured next.
					medic = append(medic, measureMTTR(b, m, fmt.Sprintf("app%d.service", i), 8100+i))
					time.Sleep(mttrSettle)
					systemd = append(systemd, measureMTTR(b, m, fmt.Sprintf("twin%d.service", i), 8300+i))
					time.Sleep(mttrSettle)
				}
				mm, sm := percentile(medic, 50), percentile(systemd, 50)
				b.ReportMetric(mm, "medic-median-ms")
				b.ReportMetric(percentile(medic, 90), "medic-p90-ms")
				b.ReportMetric(sm, "systemd-median-ms")
				b.ReportMetric(percentile(systemd, 90), "systemd-p90-ms")
				b.ReportMetric(mm-sm, "medic-minus-systemd-median-ms")
				b.Logf("%s: MTTR after SIGKILL, %d kills each, ms\n%-22s %8s %8s %8s %8s\n%-22s %8.1f %8.1f %8.1f %8.1f\n%-22s %8.1f %8.1f %8.1f %8.1f",
					suite, mttrTrials, "", "min", "median", "p90", "max",
					"medic (defaults)", slices.Min(medic), mm, percentile(medic, 90), slices.Max(medic),
					"systemd Restart=always", slices.Min(systemd), sm, percentile(systemd, 90), slices.Max(systemd))
			}
		})
	}
}

// measureMTTR kills unit's main process and returns the milliseconds until
// port answers again.
func measureMTTR(b *testing.B, m *ostest.Machine, unit string, port int) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, errOut, err := m.Run(ctx, "python3", "-c", killAndWait, unit, strconv.Itoa(port))
	if err != nil {
		b.Fatalf("kill %s and wait for port %d: %v\n%s%s", unit, port, err, out, errOut)
	}
	ms, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatalf("kill %s: %q: %v", unit, out, err)
	}
	return ms
}

// percentile returns the p-th percentile of xs (nearest rank).
func percentile(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
