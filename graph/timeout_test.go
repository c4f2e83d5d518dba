package graph

import (
	"testing"
	"time"
)

func TestFormatTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second:        "30s",
		30 * time.Minute:        "30m",
		2 * time.Hour:           "2h",
		90 * time.Minute:        "1h30m",
		300 * time.Millisecond:  "300ms",
		time.Hour + time.Second: "1h0m1s",
	} {
		if got := FormatTimeout(d); got != want {
			t.Errorf("FormatTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}
