package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/metrics"
)

// countingObserver passes upstream errors to the metrics and counts them.
type countingObserver struct {
	*metrics.Metrics
	upstreamLines atomic.Int64
}

func (o *countingObserver) ObserveUpstreamError(upstream string, errno int) {
	o.Metrics.ObserveUpstreamError(upstream, errno)
	o.upstreamLines.Add(1)
}

// TestUpstreamSeriesStayFew writes 100,000 upstream error lines naming
// 100,000 distinct upstreams (and errnos) into a followed nginx error log,
// as anyone who can write that log (www-data) could: only the upstream a
// check probes gets its own series, the rest are "other", the metrics
// page stays small and the heap does not grow with the lines.
func TestUpstreamSeriesStayFew(t *testing.T) {
	dir := t.TempDir()
	errorLog := filepath.Join(dir, "error.log")
	f, err := os.Create(errorLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	probed := "127.0.0.1:1"
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
[[check]]
name = "web"
interval = "1h"
timeout = "100ms"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  action = "none"
[[watch.nginx]]
error_log = %q
`, dir, probed, errorLog)), "bound.toml")
	if err != nil {
		t.Fatal(err)
	}
	obs := &countingObserver{Metrics: metrics.New(metrics.Sources{})}
	a, err := agent.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), noRemedy{t}, &memOutbox{}, agent.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond) // the follower starts at the end of the log

	line := func(upstream string, errno int) string {
		return fmt.Sprintf("2026/11/21 08:00:00 [error] 1234#1234: *5 connect() failed (%d: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://%s/\", host: \"x\"\n", errno, upstream)
	}
	write := func(from, to int) {
		w := bufio.NewWriter(f)
		for i := from; i < to; i++ {
			fmt.Fprint(w, line(fmt.Sprintf("10.%d.%d.%d:%d", i>>16, (i>>8)&255, i&255, 1000+i%50000), 200+i%800))
		}
		fmt.Fprint(w, line(probed, 111))
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	waitLines := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for obs.upstreamLines.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d lines seen in 60s", obs.upstreamLines.Load(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}

	write(0, 10_000)
	waitLines(10_001)
	before := heap()
	write(10_000, 100_000)
	waitLines(100_002)
	after := heap()

	rec := httptest.NewRecorder()
	obs.Handler().ServeHTTP(rec, httptest.NewRequest("GET", metrics.Path, nil))
	page, _ := io.ReadAll(rec.Body)
	var series []string
	for _, l := range strings.Split(string(page), "\n") {
		if strings.HasPrefix(l, "medic_nginx_upstream_errors_total{") {
			series = append(series, l)
		}
	}
	t.Logf("%d series, metrics page %d bytes, heap %d KB before the last 90,000 lines and %d KB after", len(series), len(page), before>>10, after>>10)
	if len(series) != 2 {
		t.Errorf("series:\n%s\nwant the probed upstream and other", strings.Join(series, "\n"))
	}
	for _, want := range []string{
		`medic_nginx_upstream_errors_total{errno="111",upstream="` + probed + `"} 2`,
		`medic_nginx_upstream_errors_total{errno="other",upstream="other"} 100000`,
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("metrics page lacks %s", want)
		}
	}
	if len(page) > 64<<10 {
		t.Errorf("metrics page is %d bytes", len(page))
	}
	if grew := int64(after) - int64(before); grew > 4<<20 {
		t.Errorf("heap grew by %d KB over 90,000 lines of distinct upstreams", grew>>10)
	}
}
