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
