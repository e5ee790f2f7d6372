//go:build race

package agent_test

// raceEnabled is true under the race detector.
const raceEnabled = true
