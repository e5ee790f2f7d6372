package agent

import "time"

// Clock tells medic the time. Every time the agent computes with (grace
// periods, verify deadlines, backoffs, the restart budget's window, reminder
// intervals, the watchdog's heartbeats) comes from one Clock.
type Clock interface {
	Now() time.Time
}

// monotonic is the default Clock: its times advance only with the monotonic
// clock, from the wall-clock time it was created at. A jump of the wall
// clock (an operator's `date -s`, an NTP step, a VM resumed with a stale
// clock) never shows in its times, not even in their wall part: a time
// that lost its monotonic reading (Round(0), UTC(), UnixNano and back, a
// JSON round trip) still compares right with the others, so no grace
// period, backoff, window or heartbeat is cut short or stretched by the
// jump.
//
// The price: after a jump its times are off from the wall clock by the
// jump, until medic restarts. They are exact as durations, and every
// duration medic acts on is one; the times shown (status, alerts) are a
// little off, which is the lesser evil than a storm of probes, a renewed
// restart budget or a watchdog that fires.
type monotonic struct {
	start   time.Time
	elapsed func() time.Duration // monotonic time since start
}

// Now returns start plus the monotonic time since start.
func (c *monotonic) Now() time.Time { return c.start.Add(c.elapsed()) }

// monotonicClock returns the Now of a monotonic Clock starting at the
// current wall-clock time. time.Since reads the monotonic clock of start.
func monotonicClock() func() time.Time {
	start := time.Now()
	return newMonotonic(start, func() time.Duration { return time.Since(start) }).Now
}

// newMonotonic returns a Clock that reads start plus elapsed(); tests
// drive it with a fake elapsed.
func newMonotonic(start time.Time, elapsed func() time.Duration) *monotonic {
	return &monotonic{start: start, elapsed: elapsed}
}
