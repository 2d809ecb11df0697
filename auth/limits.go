package auth

import (
	"context"
	"fmt"
	"time"
)

// ErrRateLimited is a request refused because its key has used up its
// allowance; the error is a *RateLimitError that says for how long.
var ErrRateLimited = fmt.Errorf("rate limited")

// RateLimitError is ErrRateLimited with the time until the allowance
// returns (Retry-After).
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string { return fmt.Sprintf("rate limited for %s", e.RetryAfter) }

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// Limiter counts events per key in a fixed window with a maximum. It is
// implemented by package ratelimit, in memory or in Redis (shared by every
// instance).
type Limiter interface {
	// Check reports how long key must wait: zero when it may go on, more
	// when it has reached its maximum in the current window. It records
	// nothing.
	Check(ctx context.Context, key string) (retryAfter time.Duration, err error)
	// Hit records one event for key.
	Hit(ctx context.Context, key string) error
}

// counter is one limiter and the key it counts; a nil limiter counts
// nothing.
type counter struct {
	l   Limiter
	key string
}

// wait refuses, with the longest wait, when any counter has used up its
// allowance. It records nothing.
func wait(ctx context.Context, cs ...counter) error {
	var longest time.Duration
	for _, c := range cs {
		if c.l == nil {
			continue
		}
		w, err := c.l.Check(ctx, c.key)
		if err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
		longest = max(longest, w)
	}
	if longest > 0 {
		return &RateLimitError{RetryAfter: longest}
	}
	return nil
}

// count records one event on every counter.
func count(ctx context.Context, cs ...counter) error {
	for _, c := range cs {
		if c.l == nil {
			continue
		}
		if err := c.l.Hit(ctx, c.key); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
	}
	return nil
}

// take counts an event that every counter must allow: refused when any
// has used up its allowance, else recorded on all.
func take(ctx context.Context, cs ...counter) error {
	if err := wait(ctx, cs...); err != nil {
		return err
	}
	return count(ctx, cs...)
}

// clientKey is the limit key of a client address, in canonical form so
// that one address has one counter however it was written.
func clientKey(meta ClientMeta) string {
	return "ip:" + cleanIP(meta.IP)
}
