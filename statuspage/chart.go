package statuspage

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/medic-watchdog/medic/history"
)

// chart is the time-to-recovery chart, drawn as inline SVG: one row per
// check, one mark per incident, placed on a logarithmic axis of time to
// recovery from 0.1 s to 1 h (shorter and longer ones at the ends); an
// incident medic gave up on is a square in the "gave up" column. Each mark
// has a <title> (a tooltip, no script) with the incident's figures.
type chart struct {
	Width, Height    int
	PlotTop          int
	PlotLeft         int
	PlotRight        int
	GaveUpX          int
	StatsX           int
	AxisY            int
	Ticks            []tick
	Lanes            []lane
	Marks            int
	OmittedChecks    int
	OmittedIncidents int
	ChecksInWindow   int
}

type tick struct {
	X     int
	Label string
}

type lane struct {
	Check       string
	Top, Middle int
	Height      int
	Stats       string
	Marks       []mark
}

type mark struct {
	X, Y   int
	GaveUp bool
	// Class is "escalated" or "quiet" for a resolved incident.
	Class string
	Title string
}

// Geometry of the chart, in SVG user units (pixels at 100%).
const (
	chartWidth     = 960
	chartPlotLeft  = 170
	chartPlotRight = 770
	chartGaveUpX   = 815
	chartStatsX    = 850
	chartTop       = 8
	chartLane      = 26
	chartAxis      = 34
	ttrMin         = 100 * time.Millisecond
	ttrMax         = time.Hour
)

// ttrTicks label the axis.
var ttrTicks = []struct {
	d     time.Duration
	label string
}{
	{100 * time.Millisecond, "0.1s"}, {time.Second, "1s"}, {10 * time.Second, "10s"},
	{time.Minute, "1m"}, {10 * time.Minute, "10m"}, {time.Hour, "1h"},
}

// jitter spreads the marks of one row vertically, so that incidents of
// the same time to recovery stay countable.
var jitter = []int{0, -6, 6, -3, 3, -9, 9}

// makeChart draws recs (newest first): at most MaxChartChecks rows, the
// checks with the most incidents, by name; at most MaxChartMarks marks,
// the newest.
func makeChart(recs []history.Record) chart {
	c := chart{Width: chartWidth, PlotTop: chartTop, PlotLeft: chartPlotLeft, PlotRight: chartPlotRight, GaveUpX: chartGaveUpX, StatsX: chartStatsX}
	if len(recs) == 0 {
		return c
	}
	if len(recs) > MaxChartMarks {
		c.OmittedIncidents = len(recs) - MaxChartMarks
		recs = recs[:MaxChartMarks]
	}
	count := map[string]int{}
	for _, r := range recs {
		count[r.Check]++
	}
	checks := make([]string, 0, len(count))
	for name := range count {
		checks = append(checks, name)
	}
	c.ChecksInWindow = len(checks)
	if len(checks) > MaxChartChecks {
		slices.SortFunc(checks, func(a, b string) int { return cmp.Or(cmp.Compare(count[b], count[a]), cmp.Compare(a, b)) })
		for _, name := range checks[MaxChartChecks:] {
			c.OmittedIncidents += count[name]
		}
		c.OmittedChecks = len(checks) - MaxChartChecks
		checks = checks[:MaxChartChecks]
	}
	slices.Sort(checks)
	row := make(map[string]int, len(checks))
	for i, name := range checks {
		top := chartTop + i*chartLane
		c.Lanes = append(c.Lanes, lane{Check: clean(name), Top: top, Middle: top + chartLane/2, Height: chartLane})
		row[name] = i
	}
	c.AxisY = chartTop + len(checks)*chartLane
	c.Height = c.AxisY + chartAxis
	for _, t := range ttrTicks {
		c.Ticks = append(c.Ticks, tick{X: ttrX(t.d), Label: t.label})
	}
	ttrs := make([][]time.Duration, len(checks))
	gaveUp := make([]int, len(checks))
	for _, r := range recs {
		i, ok := row[r.Check]
		if !ok {
			continue
		}
		l := &c.Lanes[i]
		m := mark{Y: l.Middle + jitter[len(l.Marks)%len(jitter)]}
		title := clean(r.Check) + " · opened " + stamp(r.Since)
		if r.Outcome == history.Resolved {
			d := r.TimeToRecovery()
			ttrs[i] = append(ttrs[i], d)
			m.X, m.Class = ttrX(d), "quiet"
			if r.Escalated {
				m.Class = "escalated"
			}
			title += " · time to recovery " + ttr(d) + " · " + m.Class
		} else {
			gaveUp[i]++
			m.X, m.GaveUp = chartGaveUpX, true
			title += " · gave up"
		}
		if r.Cause != "" {
			title += " · " + clean(r.Cause)
		}
		title += " · " + clean(r.ID)
		m.Title = title
		l.Marks = append(l.Marks, m)
		c.Marks++
	}
	for i := range c.Lanes {
		l := &c.Lanes[i]
		l.Stats = strconv.Itoa(len(l.Marks))
		if len(ttrs[i]) > 0 {
			l.Stats += " · median " + ttr(median(ttrs[i]))
		}
	}
	return c
}

// ttrX places d on the logarithmic axis, clamped to its ends.
func ttrX(d time.Duration) int {
	d = min(max(d, ttrMin), ttrMax)
	f := math.Log(float64(d)/float64(ttrMin)) / math.Log(float64(ttrMax)/float64(ttrMin))
	return chartPlotLeft + int(math.Round(f*float64(chartPlotRight-chartPlotLeft)))
}

// median of ds (not empty); ds is sorted in place.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}
