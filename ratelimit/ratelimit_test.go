package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/ratelimit"
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

func check(t *testing.T, l auth.Limiter, key string) time.Duration {
	t.Helper()
	d, err := l.Check(context.Background(), key)
	if err != nil {
		t.Fatalf("Check(%q): %v", key, err)
	}
	return d
}

func hit(t *testing.T, l auth.Limiter, key string) {
	t.Helper()
	if err := l.Hit(context.Background(), key); err != nil {
		t.Fatalf("Hit(%q): %v", key, err)
	}
}

// waitOpen polls Check until key may go on again, failing after timeout.
func waitOpen(t *testing.T, l auth.Limiter, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for check(t, l, key) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Check(%q) still blocked %s later", key, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLimiter(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			b := be.open(t)

			t.Run("blocks once max events are recorded", func(t *testing.T) {
				t.Parallel()
				const window = time.Minute
				l := b.New(randomPrefix(t), 3, window)
				key := "Alice@Example.com"
				for i := range 3 {
					if d := check(t, l, key); d != 0 {
						t.Fatalf("after %d hits: Check = %s, want 0", i, d)
					}
					hit(t, l, key)
				}
				if d := check(t, l, key); d <= 0 || d > window || d%time.Second != 0 {
					t.Fatalf("after 3 hits: Check = %s, want whole seconds in (0, %s]", d, window)
				}
				// Check records nothing: still blocked, and no more so.
				if d := check(t, l, key); d <= 0 {
					t.Fatalf("second Check = %s, want > 0", d)
				}
			})

			t.Run("keys and policies are independent", func(t *testing.T) {
				t.Parallel()
				prefix := randomPrefix(t)
				l := b.New(prefix, 3, time.Minute)
				for range 3 {
					hit(t, l, "alice@example.com")
				}
				if d := check(t, l, "alice@example.com"); d == 0 {
					t.Fatal("blocked key: Check = 0")
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
					if d := check(t, c.l, c.key); d != 0 {
						t.Errorf("%s: Check = %s, want 0", c.name, d)
					}
				}
			})

			t.Run("window expires", func(t *testing.T) {
				t.Parallel()
				const window = time.Second
				l := b.New(randomPrefix(t), 1, window)
				key := "203.0.113.7"
				hit(t, l, key)
				if d := check(t, l, key); d != time.Second {
					t.Fatalf("Check = %s, want %s (a 1 s window rounds up to it)", d, time.Second)
				}
				waitOpen(t, l, key, 5*time.Second)
				// A new window starts with the next event.
				hit(t, l, key)
				if d := check(t, l, key); d == 0 {
					t.Fatal("after a hit in the new window: Check = 0")
				}
			})

			t.Run("concurrent hits are all counted", func(t *testing.T) {
				t.Parallel()
				const n = 50
				prefix := randomPrefix(t)
				l := b.New(prefix, n, time.Minute)
				key := "carol@example.com"
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for range n {
					wg.Go(func() { errs <- l.Hit(context.Background(), key) })
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("Hit: %v", err)
					}
				}
				if d := check(t, l, key); d == 0 {
					t.Errorf("max %d after %d hits: Check = 0, want blocked", n, n)
				}
				// The same policy with room for one more: exactly n were counted.
				if d := check(t, b.New(prefix, n+1, time.Minute), key); d != 0 {
					t.Errorf("max %d after %d hits: Check = %s, want 0", n+1, n, d)
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

	hit(t, la, key)
	hit(t, lb, key)
	hit(t, la, key)
	if d := check(t, lb, key); d != 0 {
		t.Fatalf("3 of 4 hits: Check = %s, want 0", d)
	}
	hit(t, lb, key)
	for name, l := range map[string]auth.Limiter{"first instance": la, "second instance": lb} {
		if d := check(t, l, key); d == 0 {
			t.Errorf("%s: 4 of 4 hits through two instances: Check = 0, want blocked", name)
		}
	}
}

func TestRedisKeysAreHashed(t *testing.T) {
	t.Parallel()
	b := openRedis(t)
	prefix := randomPrefix(t)
	email := "erin." + randomHex(4) + "@example.com"
	hit(t, b.New(prefix, 3, time.Minute), email)

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
	if _, err := l.Check(context.Background(), "k"); err == nil {
		t.Error("Check on a closed backend: nil error")
	}
	if err := l.Hit(context.Background(), "k"); err == nil {
		t.Error("Hit on a closed backend: nil error")
	}

	// A cancelled context ends a call.
	live := openRedis(t).New(randomPrefix(t), 3, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := live.Hit(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hit with a cancelled context: %v, want context.Canceled", err)
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
	now := time.Unix(1000, 0)
	cases := []struct {
		name   string
		now    time.Time
		reset  int64 // the window ends within [reset, reset+1)
		window time.Duration
		want   time.Duration
	}{
		{"ends within the next second", now, 1000, time.Minute, time.Second},
		{"ends in 10 s", now, 1010, time.Minute, 11 * time.Second},
		{"partial second rounds up", now.Add(300 * time.Millisecond), 1010, time.Minute, 11 * time.Second},
		{"already past: at least 1 s", now, 990, time.Minute, time.Second},
		{"never more than the window", now, 1060, time.Minute, time.Minute},
		{"sub-second window rounds up to 1 s", now, 1000, 200 * time.Millisecond, time.Second},
	}
	for _, c := range cases {
		if got := ratelimit.RetryAfter(c.now, c.reset, c.window); got != c.want {
			t.Errorf("%s: RetryAfter = %s, want %s", c.name, got, c.want)
		}
	}
}
