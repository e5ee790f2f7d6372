package config

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a Go duration string such as
// "500ms", "10s", "1h30m". A number without a unit is rejected, except "0".
// Negative durations decode; Validate rejects them where they make no sense.
type Duration struct {
	time.Duration
}

// UnmarshalText parses a Go duration string ("1h30m", "250ms"). It fails on
// an empty string and on a number without a unit other than "0".
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "" {
		return fmt.Errorf("invalid duration %q: want a number with a unit, e.g. \"10s\" or \"1h30m\"", s)
	}
	if s == "0" {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a number with a unit (ns, us, ms, s, m, h), e.g. \"10s\" or \"1h30m\"", s)
	}
	d.Duration = v
	return nil
}

// MarshalText writes d in the short form String returns, which UnmarshalText
// reads back.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// String formats d like time.Duration.String without the trailing zero units
// ("10m" rather than "10m0s", "4h" rather than "4h0m0s").
func (d Duration) String() string {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
