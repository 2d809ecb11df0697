// Package ratelimit implements auth.Limiter on github.com/ulule/limiter:
// fixed-window counters kept in this process, or in Redis so that every
// instance of the service shares them.
//
// Keys may be user input (an email address, a client address); they are
// hashed with SHA-256 before they reach a store, so Redis keys have a bounded
// length and hold no address in clear.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/latchkey-dev/latchkey/auth"
)

// storePrefix begins every key this package writes, so that a Redis
// database shared with other software stays readable.
const storePrefix = "latchkey:ratelimit"

// pingTimeout bounds how long Redis waits for the server to answer.
const pingTimeout = 5 * time.Second

// Backend is where counters live: in this process, or in Redis shared by
// every instance.
type Backend struct {
	store  limiter.Store
	client *redis.Client // nil in memory
}

// Memory returns a backend whose counters live in this process. Expired
// counters are swept every 30 seconds.
func Memory() *Backend {
	return &Backend{store: memory.NewStoreWithOptions(limiter.StoreOptions{
		Prefix:          storePrefix,
		CleanUpInterval: limiter.DefaultCleanUpInterval,
	})}
}

// Redis connects to a redis:// or rediss:// URL (see redis.ParseURL), pings
// it (an error if it does not answer within 5 s, or before ctx ends), and
// returns a backend whose counters every instance shares. Redis calls made
// by its limiters honour their context's deadline and cancellation.
func Redis(ctx context.Context, rawURL string) (*Backend, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		// A *url.Error quotes the URL, password included: keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("ratelimit: invalid Redis URL: %w", err)
	}
	opts.ContextTimeoutEnabled = true
	client := redis.NewClient(opts)

	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("ratelimit: Redis at %s does not answer: %w", opts.Addr, err)
	}
	store, err := redisstore.NewStoreWithOptions(client, limiter.StoreOptions{Prefix: storePrefix})
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("ratelimit: Redis at %s: %w", opts.Addr, err)
	}
	return &Backend{store: store, client: client}, nil
}

// Close releases the backend's connections. Limiters made by b must not be
// used afterwards.
func (b *Backend) Close() error {
	if b.client == nil {
		return nil
	}
	return b.client.Close()
}

// New returns a limiter for one policy: at most limit events per key within
// window, the window starting at a key's first event. prefix separates
// policies ("login-account", "login-client", "register") so their keys never
// collide; two limiters with the same prefix on backends that share a store
// count the same events. New panics if limit or window is not positive.
func (b *Backend) New(prefix string, limit int, window time.Duration) auth.Limiter {
	if limit < 1 || window <= 0 {
		panic(fmt.Sprintf("ratelimit: policy %q: limit %d and window %s must be positive", prefix, limit, window))
	}
	return &fixedWindow{
		store:  b.store,
		prefix: prefix,
		rate:   limiter.Rate{Limit: int64(limit), Period: window},
	}
}

// fixedWindow is one policy on a store.
type fixedWindow struct {
	store  limiter.Store
	prefix string
	rate   limiter.Rate
}

var _ auth.Limiter = (*fixedWindow)(nil)

// Check reports how long key must wait: zero while fewer than limit events
// were recorded in its current window, else the time until that window ends,
// rounded up to whole seconds. It records nothing.
func (l *fixedWindow) Check(ctx context.Context, key string) (time.Duration, error) {
	lctx, err := l.store.Peek(ctx, l.storeKey(key), l.rate)
	if err != nil {
		return 0, fmt.Errorf("ratelimit: check %s: %w", l.prefix, err)
	}
	// ulule sets Reached only once the count exceeds the limit; Remaining
	// is zero as soon as it equals it, which is when the next event must
	// be refused.
	if lctx.Remaining > 0 {
		return 0, nil
	}
	return retryAfter(time.Now(), lctx.Reset, l.rate.Period), nil
}

// Hit records one event for key.
func (l *fixedWindow) Hit(ctx context.Context, key string) error {
	if _, err := l.store.Get(ctx, l.storeKey(key), l.rate); err != nil {
		return fmt.Errorf("ratelimit: hit %s: %w", l.prefix, err)
	}
	return nil
}

// storeKey is the policy's prefix and the hex SHA-256 of key. The hash
// has no colon, so distinct (prefix, key) pairs never share a store key.
func (l *fixedWindow) storeKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return l.prefix + ":" + hex.EncodeToString(sum[:])
}

// retryAfter is the time from now until a window that ends within the
// second starting at the Unix time reset (ulule truncates the end of a
// window to whole seconds), rounded up to whole seconds, at least one second
// and at most the window itself (rounded up).
func retryAfter(now time.Time, reset int64, window time.Duration) time.Duration {
	d := time.Unix(reset+1, 0).Sub(now)
	d = (d + time.Second - 1).Truncate(time.Second)
	ceiling := (window + time.Second - 1).Truncate(time.Second)
	return min(max(d, time.Second), ceiling)
}
