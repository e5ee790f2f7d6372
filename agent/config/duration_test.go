package config

import (
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDurationUnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"10s", 10 * time.Second, false},
		{"1h30m", 90 * time.Minute, false},
		{"250ms", 250 * time.Millisecond, false},
		{"1.5s", 1500 * time.Millisecond, false},
		{"0", 0, false},
		{"0s", 0, false},
		{" 5m ", 5 * time.Minute, false},
		{"-5s", -5 * time.Second, false}, // Validate rejects it, naming the key
		{"10", 0, true},
		{"1.5", 0, true},
		{"", 0, true},
		{"ten seconds", 0, true},
		{"5 s", 0, true},
		{"1d", 0, true},
	}
	for _, tt := range tests {
		var d Duration
		err := d.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("UnmarshalText(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && d.Duration != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, d.Duration, tt.want)
		}
	}
}

func TestDurationTOML(t *testing.T) {
	var v struct{ D Duration }
	if _, err := toml.Decode(`D = "1h30m"`, &v); err != nil || v.D.Duration != 90*time.Minute {
		t.Errorf(`decode "1h30m" = %v, %v; want 1h30m`, v.D, err)
	}
	if _, err := toml.Decode(`D = 0`, &v); err != nil || v.D.Duration != 0 {
		t.Errorf(`decode 0 = %v, %v; want 0`, v.D, err)
	}
	if _, err := toml.Decode(`D = 30`, &v); err == nil {
		t.Errorf("decode 30 (no unit) succeeded, want an error")
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{10 * time.Second, "10s"},
		{10 * time.Minute, "10m"},
		{4 * time.Hour, "4h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{1500 * time.Millisecond, "1.5s"},
		{-5 * time.Second, "-5s"},
	}
	for _, tt := range tests {
		d := Duration{tt.d}
		if got := d.String(); got != tt.want {
			t.Errorf("String(%v) = %q, want %q", tt.d, got, tt.want)
		}
		text, err := d.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Errorf("round trip of %v through %q = %v, %v", tt.d, text, back, err)
		}
	}
}
