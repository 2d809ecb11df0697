package main

import (
	"testing"
	"time"
)

// The bench's own arithmetic; no test here measures or asserts a timing.

func TestQuantile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := quantile(lat, c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %v", got)
	}
}

func TestErrorsText(t *testing.T) {
	if got := errorsText(nil); got != "-" {
		t.Errorf("no errors: %q", got)
	}
	if got := errorsText(map[string]int{"503": 2, "err": 5, "401": 2}); got != "err×5 401×2 503×2" {
		t.Errorf("errorsText = %q", got)
	}
}
