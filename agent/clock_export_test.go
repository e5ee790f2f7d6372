package agent

import "time"

// NewMonotonic exposes the default Clock's constructor to package
// agent_test, whose tests drive it with a fake monotonic clock.
func NewMonotonic(start time.Time, elapsed func() time.Duration) Clock {
	return newMonotonic(start, elapsed)
}
