package auth

import (
	"context"
	"fmt"
	"net/netip"
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
	// Take reserves one event for key, atomically: zero when it was
	// recorded, or how long key must wait, with nothing recorded, when it
	// has reached its maximum in the current window.
	Take(ctx context.Context, key string) (retryAfter time.Duration, err error)
	// Refund gives back one event Take recorded for key (an attempt that
	// proved not to count, such as a right password).
	Refund(ctx context.Context, key string) error
}

// counter is one limiter and the key it counts; a nil limiter counts
// nothing.
type counter struct {
	l   Limiter
	key string
}

// reservation is the events reserve recorded, to give back with refund.
type reservation []counter

// reserve takes one event on every counter, all or none: when one refuses
// (or fails), the events already taken are given back and the error is a
// *RateLimitError with that counter's wait. Limits count before the work
// they guard, so parallel requests cannot pass a limit together.
func reserve(ctx context.Context, cs ...counter) (reservation, error) {
	var taken reservation
	for _, c := range cs {
		if c.l == nil {
			continue
		}
		w, err := c.l.Take(ctx, c.key)
		if err == nil && w <= 0 {
			taken = append(taken, c)
			continue
		}
		taken.refund(ctx)
		if err != nil {
			return nil, fmt.Errorf("rate limit: %w", err)
		}
		return nil, &RateLimitError{RetryAfter: w}
	}
	return taken, nil
}

// refundTimeout bounds giving events back.
const refundTimeout = 2 * time.Second

// refund gives back the reserved events, also after the caller has gone
// (the answer was decided). A refund that fails leaves the event counted:
// the limits fail closed.
func (r reservation) refund(ctx context.Context) {
	if len(r) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	for _, c := range r {
		_ = c.l.Refund(ctx, c.key)
	}
}

// take counts an event that every counter must allow: refused when any
// has used up its allowance, else recorded on all.
func take(ctx context.Context, cs ...counter) error {
	_, err := reserve(ctx, cs...)
	return err
}

// clientKey is the limit key of a client address, in canonical form so
// that one address has one counter however it was written. IPv6 clients
// are counted per /64, the block one subscriber usually holds whole (so
// stepping through its addresses does not reset the count); IPv4 (also
// IPv4-mapped IPv6) per address.
func clientKey(meta ClientMeta) string {
	ip := cleanIP(meta.IP)
	if addr, err := netip.ParseAddr(ip); err == nil && addr.Is6() && !addr.Is4In6() {
		return "ip6:" + netip.PrefixFrom(addr.WithZone(""), 64).Masked().String()
	}
	return "ip:" + ip
}
