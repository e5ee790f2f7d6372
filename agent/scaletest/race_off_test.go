//go:build !race

package scaletest

// raceEnabled is true under the race detector.
const raceEnabled = false
