package auth

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestReserveAnswersTheLongestWait: when several counters refuse, the
// answer is the longest of their waits, whichever refused first, and the
// events taken on the counters that allowed are given back.
func TestReserveAnswersTheLongestWait(t *testing.T) {
	ctx := context.Background()
	short, long, open := newFakeLimiter(1, 10*time.Second), newFakeLimiter(1, time.Minute), newFakeLimiter(1, time.Hour)
	short.fill("k")
	long.fill("k")
	for _, order := range [][]counter{
		{{short, "k"}, {open, "k"}, {long, "k"}},
		{{long, "k"}, {open, "k"}, {short, "k"}},
	} {
		_, err := reserve(ctx, order...)
		var rl *RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter != time.Minute {
			t.Errorf("reserve = %v, want a *RateLimitError of 1m", err)
		}
		if calls := open.take(); !slices.Equal(calls, []string{"take k", "refund k"}) {
			t.Errorf("the allowing counter saw %q, want a take given back", calls)
		}
	}
	if _, err := reserve(ctx, counter{open, "k"}); err != nil {
		t.Errorf("reserve on the counter that was refunded = %v, want it allowed", err)
	}
}
