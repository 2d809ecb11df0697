package ratelimit_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/ratelimit"
	"github.com/latchkey-dev/latchkey/ratelimit/redistest"
)

// redisURL is the Redis the tests use, from LATCHKEY_TEST_REDIS_URL. The
// test is skipped when it is unset, and fails instead when
// LATCHKEY_TEST_REQUIRE_REDIS=1 (CI).
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("LATCHKEY_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("LATCHKEY_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("LATCHKEY_TEST_REQUIRE_REDIS=1 but LATCHKEY_TEST_REDIS_URL is unset")
		}
		t.Skip("LATCHKEY_TEST_REDIS_URL is unset")
	}
	return url
}

func openRedis(t *testing.T) *ratelimit.Backend {
	t.Helper()
	b, err := ratelimit.Redis(context.Background(), redisURL(t))
	if err != nil {
		t.Fatalf("Redis: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func openMemory(t *testing.T) *ratelimit.Backend {
	t.Helper()
	b := ratelimit.Memory()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// backends are the stores every behaviour test runs on.
var backends = []struct {
	name string
	open func(t *testing.T) *ratelimit.Backend
}{
	{"memory", openMemory},
	{"redis", openRedis},
}

// randomPrefix is a policy name of its own, so that runs sharing a Redis
// never count each other's events.
func randomPrefix(t *testing.T) string {
	t.Helper()
	return "test-" + t.Name() + "-" + randomHex(8)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// take reserves one event and returns the wait (zero: recorded).
func take(t *testing.T, l auth.Limiter, key string) time.Duration {
	t.Helper()
	d, err := l.Take(context.Background(), key)
	if err != nil {
		t.Fatalf("Take(%q): %v", key, err)
	}
	return d
}

func refund(t *testing.T, l auth.Limiter, key string) {
	t.Helper()
	if err := l.Refund(context.Background(), key); err != nil {
		t.Fatalf("Refund(%q): %v", key, err)
	}
}

// fill takes n events for key, each of which must be recorded.
func fill(t *testing.T, l auth.Limiter, key string, n int) {
	t.Helper()
	for i := range n {
		if d := take(t, l, key); d != 0 {
			t.Fatalf("take %d of %d: refused for %s", i+1, n, d)
		}
	}
}

// waitOpen polls Take until key may go on again (which records one
// event), failing after timeout.
func waitOpen(t *testing.T, l auth.Limiter, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for take(t, l, key) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Take(%q) still refused %s later", key, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// parallelTakes runs n Takes of key at once and returns how many were
// recorded.
func parallelTakes(t *testing.T, l auth.Limiter, key string, n int) int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			d, err := l.Take(context.Background(), key)
			if err != nil {
				t.Errorf("Take: %v", err)
				return
			}
			if d == 0 {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return granted
}

func TestLimiter(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			b := be.open(t)

			t.Run("refuses once max events are recorded", func(t *testing.T) {
				t.Parallel()
				const window = time.Minute
				l := b.New(randomPrefix(t), 3, window)
				key := "Alice@Example.com"
				fill(t, l, key, 3)
				if d := take(t, l, key); d <= 0 || d > window || d%time.Second != 0 {
					t.Fatalf("after 3 events: Take = %s, want whole seconds in (0, %s]", d, window)
				}
				// A refused Take records nothing: one refund makes room for
				// exactly one more.
				if d := take(t, l, key); d <= 0 {
					t.Fatalf("second refused Take = %s, want > 0", d)
				}
				refund(t, l, key)
				fill(t, l, key, 1)
				if d := take(t, l, key); d <= 0 {
					t.Fatalf("after a refund and a take: Take = %s, want > 0", d)
				}
			})

			t.Run("refunds never go below zero", func(t *testing.T) {
				t.Parallel()
				l := b.New(randomPrefix(t), 2, time.Minute)
				key := "bob@example.com"
				refund(t, l, key) // nothing to give back
				fill(t, l, key, 1)
				refund(t, l, key)
				refund(t, l, key)
				fill(t, l, key, 2)
				if d := take(t, l, key); d == 0 {
					t.Fatal("3 events recorded with max 2")
				}
			})

			t.Run("keys and policies are independent", func(t *testing.T) {
				t.Parallel()
				prefix := randomPrefix(t)
				l := b.New(prefix, 3, time.Minute)
				fill(t, l, "alice@example.com", 3)
				if d := take(t, l, "alice@example.com"); d == 0 {
					t.Fatal("full key: Take = 0")
				}
				cases := []struct {
					name string
					l    auth.Limiter
					key  string
				}{
					{"other key", l, "bob@example.com"},
					{"key differing in case", l, "Alice@example.com"},
					{"key extending the hashed key", l, "alice@example.com:"},
					{"other policy, same key", b.New(prefix+"-other", 3, time.Minute), "alice@example.com"},
					{"policy whose prefix ends where the other's key begins", b.New(prefix+":", 3, time.Minute), "alice@example.com"},
				}
				for _, c := range cases {
					if d := take(t, c.l, c.key); d != 0 {
						t.Errorf("%s: Take = %s, want 0", c.name, d)
					}
				}
			})

			t.Run("window expires", func(t *testing.T) {
				t.Parallel()
				const window = time.Second
				l := b.New(randomPrefix(t), 1, window)
				key := "203.0.113.7"
				fill(t, l, key, 1)
				if d := take(t, l, key); d != time.Second {
					t.Fatalf("Take = %s, want %s (a 1 s window rounds up to it)", d, time.Second)
				}
				waitOpen(t, l, key, 5*time.Second)
				// That take started a new window.
				if d := take(t, l, key); d == 0 {
					t.Fatal("after a take in the new window: Take = 0")
				}
			})

			// Take is one atomic step: of 50 parallel takes with room for
			// 10, exactly 10 are recorded. Check-then-increment lets
			// almost all through at once (50 goroutines released
			// together); 20 rounds make a race all but certain to show.
			t.Run("parallel takes never pass the limit", func(t *testing.T) {
				t.Parallel()
				for round := range 20 {
					l := b.New(randomPrefix(t), 10, time.Minute)
					if got := parallelTakes(t, l, "carol@example.com", 50); got != 10 {
						t.Fatalf("round %d: %d of 50 parallel takes recorded with max 10", round, got)
					}
				}
			})

			t.Run("parallel takes within the limit are all recorded", func(t *testing.T) {
				t.Parallel()
				const n = 50
				prefix := randomPrefix(t)
				l := b.New(prefix, n, time.Minute)
				if got := parallelTakes(t, l, "dave@example.com", n); got != n {
					t.Fatalf("%d of %d parallel takes recorded with max %d", got, n, n)
				}
				if d := take(t, l, "dave@example.com"); d == 0 {
					t.Errorf("max %d after %d takes: Take = 0, want refused", n, n)
				}
			})
		})
	}
}

func TestRedisInstancesShareCounters(t *testing.T) {
	t.Parallel()
	a, b := openRedis(t), openRedis(t)
	prefix := randomPrefix(t)
	la, lb := a.New(prefix, 4, time.Minute), b.New(prefix, 4, time.Minute)
	key := "dave@example.com"

	fill(t, la, key, 1)
	fill(t, lb, key, 1)
	fill(t, la, key, 1)
	refund(t, lb, key) // given back through the other instance
	fill(t, lb, key, 2)
	for name, l := range map[string]auth.Limiter{"first instance": la, "second instance": lb} {
		if d := take(t, l, key); d == 0 {
			t.Errorf("%s: 4 of 4 events through two instances: Take = 0, want refused", name)
		}
	}
}

func TestRedisKeysAreHashed(t *testing.T) {
	t.Parallel()
	b := openRedis(t)
	prefix := randomPrefix(t)
	email := "erin." + randomHex(4) + "@example.com"
	fill(t, b.New(prefix, 3, time.Minute), email, 1)

	opts, err := redis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "*"+prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("keys for the policy = %q, want one", keys)
	}
	want := regexp.MustCompile(`^latchkey:ratelimit:` + regexp.QuoteMeta(prefix) + `:[0-9a-f]{64}$`)
	if !want.MatchString(keys[0]) || strings.Contains(keys[0], email) {
		t.Errorf("key = %q, want %s (no email in clear)", keys[0], want)
	}
	if ttl := rdb.PTTL(context.Background(), keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL = %s, want in (0, 1m]", ttl)
	}
}

func TestRedisErrorsAreReturned(t *testing.T) {
	t.Parallel()
	url := redisURL(t)
	b, err := ratelimit.Redis(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	l := b.New(randomPrefix(t), 3, time.Minute)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Take(context.Background(), "k"); err == nil {
		t.Error("Take on a closed backend: nil error")
	}
	if err := l.Refund(context.Background(), "k"); err == nil {
		t.Error("Refund on a closed backend: nil error")
	}

	// A cancelled context ends a call.
	live := openRedis(t).New(randomPrefix(t), 3, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := live.Take(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Take with a cancelled context: %v, want context.Canceled", err)
	}
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "redis://" + ln.Addr().String() + "/0"
}

func TestRedisUnreachable(t *testing.T) {
	cases := []struct {
		name    string
		url     func(t *testing.T) string
		timeout time.Duration // of the caller's context; 0 for none
		silent  bool          // the server accepts but never answers
	}{
		{"connection refused", func(*testing.T) string { return "redis://127.0.0.1:1/0" }, 0, false},
		{"no answer, caller's deadline", silentServer, 300 * time.Millisecond, true},
		{"no answer, 5 s bound", silentServer, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if c.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.timeout)
				defer cancel()
			}
			start := time.Now()
			b, err := ratelimit.Redis(ctx, c.url(t))
			if err == nil {
				b.Close()
				t.Fatal("Redis: nil error")
			}
			if c.silent && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Redis: %v, want a deadline exceeded", err)
			}
			// Not a timing assertion: a guard against hanging far past the 5 s bound.
			if elapsed := time.Since(start); elapsed > 15*time.Second {
				t.Errorf("Redis returned after %s", elapsed)
			}
		})
	}
}

func TestRedisInvalidURL(t *testing.T) {
	cases := []struct{ name, url string }{
		{"wrong scheme", "http://127.0.0.1:6379/0"},
		{"bad port", "redis://user:s3cret-pw@127.0.0.1:63x79/0"},
		{"bad database", "redis://127.0.0.1:6379/db"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := ratelimit.Redis(context.Background(), c.url)
			if err == nil {
				b.Close()
				t.Fatal("Redis: nil error")
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestNewRefusesEmptyPolicies(t *testing.T) {
	cases := []struct {
		name   string
		max    int
		window time.Duration
	}{
		{"zero max", 0, time.Minute},
		{"negative max", -1, time.Minute},
		{"zero window", 3, 0},
	}
	b := ratelimit.Memory()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			b.New("p", c.max, c.window)
		})
	}
}

func TestRetryAfter(t *testing.T) {
	cases := []struct {
		name   string
		left   time.Duration
		window time.Duration
		want   time.Duration
	}{
		{"under a second", 300 * time.Millisecond, time.Minute, time.Second},
		{"whole seconds stay", 10 * time.Second, time.Minute, 10 * time.Second},
		{"partial second rounds up", 10*time.Second + time.Millisecond, time.Minute, 11 * time.Second},
		{"nothing left: at least 1 s", 0, time.Minute, time.Second},
		{"never more than the window", 2 * time.Minute, time.Minute, time.Minute},
		{"sub-second window rounds up to 1 s", 100 * time.Millisecond, 200 * time.Millisecond, time.Second},
	}
	for _, c := range cases {
		if got := ratelimit.RetryAfter(c.left, c.window); got != c.want {
			t.Errorf("%s: RetryAfter = %s, want %s", c.name, got, c.want)
		}
	}
}

// syncBuffer is a log sink several goroutines may write.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

// metricValue reads a counter's or gauge's value.
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	m, ok := c.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not one metric", c)
	}
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	t.Fatalf("%T is neither a counter nor a gauge", c)
	return 0
}

// TestRedisOutage stops a private redis-server mid-test (never the shared
// one) and starts it again: meanwhile the limits hold on this instance's
// own counters, atomically, the outage is logged once and counted, and
// the backend returns to Redis once it answers.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	b, err := ratelimit.Redis(context.Background(), srv.URL(), ratelimit.WithLogger(logger), ratelimit.WithRetryInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	collectors := b.Collectors()
	fallbacks, up := collectors[0], collectors[1]
	if v := metricValue(t, up); v != 1 {
		t.Errorf("redis_up = %v before the outage, want 1", v)
	}
	l := b.New("outage", 3, time.Minute)
	fill(t, l, "erin@example.com", 2)

	srv.Stop()
	// This instance's counters start empty: three more, then refused.
	fill(t, l, "erin@example.com", 3)
	if d := take(t, l, "erin@example.com"); d == 0 {
		t.Error("during the outage: a fourth event recorded with max 3")
	}
	// Still atomic: 10 rounds of 50 parallel takes with room for 3.
	for round := range 10 {
		if got := parallelTakes(t, b.New("outage-parallel-"+strconv.Itoa(round), 3, time.Minute), "frank@example.com", 50); got != 3 {
			t.Fatalf("during the outage, round %d: %d of 50 parallel takes recorded with max 3", round, got)
		}
	}
	if n := logs.count("Redis does not answer"); n != 1 {
		t.Errorf("the outage was logged %d times, want once:\n%s", n, logs.b.String())
	}
	if v := metricValue(t, fallbacks); v < 500 {
		t.Errorf("fallback_total = %v, want at least the 500 calls served during the outage", v)
	}
	if v := metricValue(t, up); v != 0 {
		t.Errorf("redis_up = %v during the outage, want 0", v)
	}

	srv.Restart()
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0")})
	defer rdb.Close()
	sum := sha256.Sum256([]byte("grace@example.com"))
	stored := "latchkey:ratelimit:outage:" + hex.EncodeToString(sum[:])
	// Not a timing assertion: the deadline only stops a backend that never
	// returns from hanging the test.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fill(t, l, "grace@example.com", 1)
		refund(t, l, "grace@example.com")
		if rdb.Exists(context.Background(), stored).Val() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backend did not return to Redis")
		}
	}
	if n := logs.count("Redis answers again"); n != 1 {
		t.Errorf("the recovery was logged %d times, want once", n)
	}
	if v := metricValue(t, up); v != 1 {
		t.Errorf("redis_up = %v after the outage, want 1", v)
	}
	// Shared again: what this instance takes, Redis counts.
	fill(t, l, "grace@example.com", 3)
	if n, _ := rdb.Get(context.Background(), stored).Int(); n != 3 {
		t.Errorf("Redis counts %d for the key, want 3", n)
	}
}
