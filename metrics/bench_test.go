package metrics

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkObserveProbe measures recording one probe run as the agent does
// it through Metrics.ObserveProbe: the probe's name formatted by the caller
// ("0-tcp"), then labels checked and series looked up at every call.
func BenchmarkObserveProbe(b *testing.B) {
	m := New(Sources{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m.ObserveProbe("web", fmt.Sprintf("%d-%s", 0, "tcp"), i%2 == 0, 300*time.Microsecond)
	}
}

// BenchmarkCheckObserver measures recording one probe run through the
// handles ForCheck made once.
func BenchmarkCheckObserver(b *testing.B) {
	o := New(Sources{}).ForCheck("web", []string{"0-tcp", "1-http"})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		o.ObserveProbe(i&1, i%3 == 0, 300*time.Microsecond)
	}
}
