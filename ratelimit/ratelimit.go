// Package ratelimit implements auth.Limiter: fixed-window counters kept in
// this process, or in Redis so that every instance of the service shares
// them.
//
// An event is reserved atomically before the work it limits (Take: a
// mutex-guarded counter in memory, one Lua script in Redis), so parallel
// requests can never pass a limit together, and can be given back (Refund)
// when it turns out not to count, such as a sign-in whose password was
// right.
//
// When Redis does not answer, a Redis backend serves from this instance's
// own counters (the limits still hold, per instance), logs the outage once,
// counts the calls it served so in a metric, and returns to Redis as soon as
// it answers again (it tries again at most once a second).
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
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/latchkey-dev/latchkey/auth"
)

// storePrefix begins every key this package writes, so that a Redis
// database shared with other software stays readable.
const storePrefix = "latchkey:ratelimit"

// pingTimeout bounds how long Redis waits for the server to answer at
// start.
const pingTimeout = 5 * time.Second

// Defaults of a Redis backend's fault handling.
const (
	// callTimeout bounds one Redis call; past it the call is served from
	// this instance's counters.
	callTimeout = time.Second
	// retryInterval is how long after a failed call Redis is left alone
	// (calls are served from this instance's counters) before one call
	// tries it again.
	retryInterval = time.Second
)

// Backend is where counters live: in this process, or in Redis shared by
// every instance (with this process's counters as the fallback).
type Backend struct {
	mem    *memoryStore
	client *redis.Client // nil in memory

	logger        *slog.Logger
	callTimeout   time.Duration
	retryInterval time.Duration

	mu       sync.Mutex
	down     bool      // the last Redis call failed
	probing  bool      // one call is trying Redis again
	retryAt  time.Time // when a call may try Redis again
	fallback prometheus.Counter
	redisUp  prometheus.Gauge
}

// Option adjusts a backend.
type Option func(*Backend)

// WithLogger sets where a Redis backend reports an outage and its end
// (slog.Default otherwise).
func WithLogger(l *slog.Logger) Option {
	return func(b *Backend) { b.logger = l }
}

// WithRetryInterval sets how long after a failed Redis call the backend
// serves from its own counters before it tries Redis again (default 1 s).
func WithRetryInterval(d time.Duration) Option {
	return func(b *Backend) { b.retryInterval = d }
}

func newBackend(opts []Option) *Backend {
	b := &Backend{
		mem:           newMemoryStore(time.Now),
		logger:        slog.Default(),
		callTimeout:   callTimeout,
		retryInterval: retryInterval,
		fallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latchkey_ratelimit_fallback_total",
			Help: "Rate-limit calls served from this instance's own counters because Redis did not answer.",
		}),
		redisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "latchkey_ratelimit_redis_up",
			Help: "1 while the shared rate limits in Redis answer, 0 while this instance uses its own counters.",
		}),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Memory returns a backend whose counters live in this process. Expired
// counters are swept as new ones are made.
func Memory(opts ...Option) *Backend {
	return newBackend(opts)
}

// Redis connects to a redis:// or rediss:// URL (see redis.ParseURL), pings
// it (an error if it does not answer within 5 s, or before ctx ends), and
// returns a backend whose counters every instance shares. Redis calls made
// by its limiters honour their context's deadline and cancellation; when
// Redis fails them otherwise they are served from this process's counters.
func Redis(ctx context.Context, rawURL string, opts ...Option) (*Backend, error) {
	ropts, err := redis.ParseURL(rawURL)
	if err != nil {
		// A *url.Error quotes the URL, password included: keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("ratelimit: invalid Redis URL: %w", err)
	}
	ropts.ContextTimeoutEnabled = true
	ropts.MaxRetries = 1 // an outage is handled by the fallback, not by retrying
	client := redis.NewClient(ropts)

	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("ratelimit: Redis at %s does not answer: %w", ropts.Addr, err)
	}
	b := newBackend(opts)
	b.client = client
	b.redisUp.Set(1)
	return b, nil
}

// Close releases the backend's connections. Limiters made by b must not be
// used afterwards.
func (b *Backend) Close() error {
	if b.client == nil {
		return nil
	}
	return b.client.Close()
}

// Collectors are the backend's Prometheus series: the calls served from
// this instance's counters while Redis did not answer, and whether Redis
// answers.
func (b *Backend) Collectors() []prometheus.Collector {
	return []prometheus.Collector{b.fallback, b.redisUp}
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
	return &fixedWindow{b: b, prefix: prefix, limit: int64(limit), window: window}
}

// fixedWindow is one policy on a backend.
type fixedWindow struct {
	b      *Backend
	prefix string
	limit  int64
	window time.Duration
}

var _ auth.Limiter = (*fixedWindow)(nil)

// Take reserves one event for key: zero when it was recorded, else (when
// limit events are already recorded in the key's window) the time until
// that window ends, rounded up to whole seconds, with nothing recorded.
func (l *fixedWindow) Take(ctx context.Context, key string) (time.Duration, error) {
	k := l.storeKey(key)
	var left time.Duration
	err := l.b.do(ctx, func(ctx context.Context) (err error) {
		left, err = redisTake(ctx, l.b.client, k, l.limit, l.window)
		return err
	}, func() {
		left = l.b.mem.take(k, l.limit, l.window)
	})
	if err != nil {
		return 0, fmt.Errorf("ratelimit: take %s: %w", l.prefix, err)
	}
	if left == 0 {
		return 0, nil
	}
	return retryAfter(left, l.window), nil
}

// Refund gives back one event Take recorded for key; a key with none left
// (its window ended meanwhile) is left alone.
func (l *fixedWindow) Refund(ctx context.Context, key string) error {
	k := l.storeKey(key)
	err := l.b.do(ctx, func(ctx context.Context) error {
		return refundScript.Run(ctx, l.b.client, []string{k}).Err()
	}, func() {
		l.b.mem.refund(k)
	})
	if err != nil {
		return fmt.Errorf("ratelimit: refund %s: %w", l.prefix, err)
	}
	return nil
}

// storeKey is the store prefix, the policy's prefix and the hex SHA-256 of
// key. The hash has no colon, so distinct (prefix, key) pairs never share a
// store key.
func (l *fixedWindow) storeKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return storePrefix + ":" + l.prefix + ":" + hex.EncodeToString(sum[:])
}

// do runs remote on Redis when the backend has one and Redis is believed
// up (or it is this call's turn to try it again), else local. A Redis
// failure is served by local, except when the caller's own context ended:
// that error is returned.
func (b *Backend) do(ctx context.Context, remote func(context.Context) error, local func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.client == nil {
		local()
		return nil
	}
	if !b.useRedis() {
		b.fallback.Inc()
		local()
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, b.callTimeout)
	err := remote(cctx)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		b.unprobe() // the caller left; that says nothing about Redis
		return ctx.Err()
	case errors.Is(err, redis.ErrClosed):
		b.unprobe()
		return err // used after Close: a bug, not an outage
	}
	b.settle(err)
	if err != nil {
		b.fallback.Inc()
		local()
	}
	return nil
}

// useRedis reports whether a call should go to Redis: always while it is
// up; while it is down, one call at a time once the retry interval passed.
func (b *Backend) useRedis() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down {
		return true
	}
	if b.probing || time.Now().Before(b.retryAt) {
		return false
	}
	b.probing = true
	return true
}

// unprobe ends a call that learnt nothing about Redis.
func (b *Backend) unprobe() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

// settle records the outcome of a Redis call (nil err: it answered),
// logging only the changes between up and down.
func (b *Backend) settle(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if err == nil {
		if b.down {
			b.down = false
			b.redisUp.Set(1)
			b.logger.Info("Redis answers again: rate limits are shared again")
		}
		return
	}
	b.retryAt = time.Now().Add(b.retryInterval)
	if !b.down {
		b.down = true
		b.redisUp.Set(0)
		b.logger.Warn("Redis does not answer: rate limits fall back to this instance's own counters until it does",
			"error", err.Error())
	}
}

// takeScript reserves one event: it refuses (returning the key's
// milliseconds to live) when the count has reached the limit, else counts
// the event (starting the window on the first) and returns -1.
var takeScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return ttl
end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return -1
`)

// refundScript gives back one event, never going below zero; the window
// keeps its end.
var refundScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
`)

// redisTake runs takeScript: 0 when the event was recorded, else the time
// left in the key's window.
func redisTake(ctx context.Context, c *redis.Client, key string, limit int64, window time.Duration) (time.Duration, error) {
	ms, err := takeScript.Run(ctx, c, []string{key}, limit, max(window.Milliseconds(), 1)).Int64()
	if err != nil {
		return 0, err
	}
	if ms < 0 {
		return 0, nil
	}
	return time.Duration(max(ms, 1)) * time.Millisecond, nil
}

// retryAfter is the time left in a window, rounded up to whole seconds, at
// least one second and at most the window itself (rounded up).
func retryAfter(left, window time.Duration) time.Duration {
	d := (left + time.Second - 1).Truncate(time.Second)
	ceiling := (window + time.Second - 1).Truncate(time.Second)
	return min(max(d, time.Second), ceiling)
}
