package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/ratelimit"
	"github.com/latchkey-dev/latchkey/ratelimit/redistest"
	"github.com/latchkey-dev/latchkey/server"
)

// parallel sends the n requests made by req at once (released together)
// and returns the answers, in order.
func parallel(n int, req func(i int) response) []response {
	out := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = req(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// wantAtMost checks that of rs at most max are 401 INVALID_CREDENTIALS and
// every other is 429 RATE_LIMITED with a Retry-After.
func (h *harness) wantAtMost(rs []response, max int) {
	h.t.Helper()
	var refused int
	for _, r := range rs {
		switch r.Code {
		case http.StatusUnauthorized:
			h.want(r, http.StatusUnauthorized, "INVALID_CREDENTIALS")
			refused++
		case http.StatusTooManyRequests:
			h.wantRateLimited(r, time.Hour)
		default:
			h.t.Fatalf("answer %s, want 401 or 429", r)
		}
	}
	if refused > max {
		h.t.Fatalf("%d of %d parallel wrong passwords were verified (401), want at most %d", refused, len(rs), max)
	}
}

// TestSignInLimitsUnderConcurrency: an attempt is counted before the
// password is verified, so parallel wrong passwords cannot pass the limit
// together. Checking before hashing and counting after let all 24 through
// on main (24 × 401); each case runs 5 rounds of 24 requests released at
// once, so the old race shows almost surely, while a correct limiter can
// never give more than the limit.
func TestSignInLimitsUnderConcurrency(t *testing.T) {
	eachDB(t, func(h *harness) {
		const (
			n      = 3 // LoginMaxFailures
			tries  = 24
			rounds = 5
		)
		// A hash of a few milliseconds (not the cheapest) widens the window
		// between checking a limit and counting a failure that the old
		// code had, so the race shows on every round.
		hasher := newHasher(h.t, password.Params{Memory: 4 << 10, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, 4, 10*time.Second)
		limited := func(h *harness) *harness {
			return h.passwords(func(c *auth.Config) { c.Limits, c.Hasher = memoryLimits(n, time.Hour, 0), hasher })
		}
		h.run("POST /auth/429 parallel wrong passwords by email", func(h *harness) {
			h = limited(h)
			for round := range rounds {
				a := h.registerPassword(map[string]any{"email": fmt.Sprintf("par%d@example.com", round), "password": goodPw})
				h.wantAtMost(parallel(tries, func(int) response { return h.signInPw(a.Email, wrongPw) }), n)
				h.wantRateLimited(h.signInPw(a.Email, goodPw), time.Hour)
			}
		})
		h.run("POST /auth/429 an account is one counter, by email or username", func(h *harness) {
			h = limited(h)
			for round := range rounds {
				email, name := fmt.Sprintf("mixed%d@example.com", round), fmt.Sprintf("mixed_%d", round)
				h.registerPassword(map[string]any{"email": email, "username": name, "password": goodPw})
				idents := []string{email, name, strings.ToUpper(email), strings.ToUpper(name)}
				h.wantAtMost(parallel(tries, func(i int) response { return h.signInPw(idents[i%len(idents)], wrongPw) }), n)
			}
			// One at a time too: the username does not get a counter of its own.
			h.registerPassword(map[string]any{"email": "serial@example.com", "username": "serial_one", "password": goodPw})
			for i := range n {
				ident := []string{"serial@example.com", "serial_one"}[i%2]
				h.want(h.signInPw(ident, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			}
			h.wantRateLimited(h.signInPw("serial_one", goodPw), time.Hour)
			h.wantRateLimited(h.signInPw("serial@example.com", goodPw), time.Hour)
		})
		h.run("POST /auth/200 a right password gives its attempt back", func(h *harness) {
			h = limited(h)
			a := h.registerPassword(map[string]any{"email": "refund@example.com", "password": goodPw})
			for range 3 * n {
				h.wantSignIn(a.Email, goodPw)
			}
			for range n - 1 {
				h.want(h.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			}
			h.wantSignIn(a.Email, goodPw)
			h.want(h.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.wantRateLimited(h.signInPw(a.Email, goodPw), time.Hour)
		})
		h.run("POST /auth/429 parallel wrong passwords per client address", func(h *harness) {
			h = limited(h)
			// Every request names another unknown email: only the address
			// limit (10 × n) applies.
			rs := parallel(2*10*n, func(i int) response {
				return h.signInPw(fmt.Sprintf("spray%d@example.com", i), wrongPw)
			})
			h.wantAtMost(rs, 10*n)
		})
		h.run("PUT /me/password, DELETE /me, PUT /me/email, POST /me/two-factor/429 parallel re-checks share the limit", func(h *harness) {
			h = limited(h)
			for round := range rounds {
				a := h.registerPassword(map[string]any{"email": fmt.Sprintf("recheck%d@example.com", round), "password": goodPw})
				auth := bearer(a.AccessToken)
				rs := parallel(tries, func(i int) response {
					switch i % 4 {
					case 0:
						return h.do("PUT", "/api/me/password", map[string]any{"current_password": wrongPw, "new_password": "a brand new passphrase"}, auth)
					case 1:
						return h.do("DELETE", "/api/me", map[string]any{"password": wrongPw}, auth)
					case 2:
						return h.do("PUT", "/api/me/email", map[string]any{"email": fmt.Sprintf("new%d@example.com", i), "password": wrongPw}, auth)
					}
					return h.do("POST", "/api/me/two-factor", map[string]any{"password": wrongPw}, auth)
				})
				h.wantAtMost(rs, n)
				// The account's sign-in is at its limit too.
				h.wantRateLimited(h.signInPw(a.Email, goodPw), time.Hour)
			}
		})
		h.run("DELETE /me, POST /me/two-factor/429 a secret account's re-checks share the limit", func(h *harness) {
			// DELETE /me compared the secret without counting it (unlimited
			// guesses with a stolen access token): 24 × 401 before.
			h = limited(h)
			for range rounds {
				a := h.register("Secret Sam")
				auth := bearer(a.AccessToken)
				wrong := strings.Repeat("A", len(a.Secret))
				rs := parallel(tries, func(i int) response {
					if i%2 == 0 {
						return h.do("DELETE", "/api/me", map[string]any{"secret": wrong}, auth)
					}
					return h.do("POST", "/api/me/two-factor", map[string]any{"secret": wrong}, auth)
				})
				h.wantAtMost(rs, n)
			}
		})
		h.run("POST /auth/429 parallel wrong passwords, limits in Redis", func(h *harness) {
			url := redisURL(h.t)
			b, err := ratelimit.Redis(context.Background(), url)
			if err != nil {
				h.t.Fatalf("ratelimit.Redis: %v", err)
			}
			h.t.Cleanup(func() { _ = b.Close() })
			prefix := "test-" + randomHex(8) + "-" // this run's counters only
			one := h.passwords(func(c *auth.Config) { c.Limits = limitsOn(b, prefix, n, time.Hour, 0) })
			two := h.passwords(func(c *auth.Config) { c.Limits = limitsOn(b, prefix, n, time.Hour, 0) })
			for round := range rounds {
				email, name := fmt.Sprintf("redis%d@example.com", round), fmt.Sprintf("redis_%d", round)
				one.registerPassword(map[string]any{"email": email, "username": name, "password": goodPw})
				rs := parallel(tries, func(i int) response {
					inst := []*harness{one, two}[i%2]
					return inst.signInPw([]string{email, name}[(i/2)%2], wrongPw)
				})
				h.wantAtMost(rs, n)
			}
		})
	})
}

// TestSignInLimitsRedisOutage stops this test's own redis-server (never
// the shared one) in the middle: sign-ins never fail for it (main answered
// every one 500), the limits hold on this instance's counters, and once
// Redis answers again they are shared there again.
func TestSignInLimitsRedisOutage(t *testing.T) {
	eachDB(t, func(h *harness) {
		const n = 3
		srv := redistest.Start(h.t)
		b, err := ratelimit.Redis(context.Background(), srv.URL(),
			ratelimit.WithLogger(slog.New(slog.DiscardHandler)), ratelimit.WithRetryInterval(50*time.Millisecond))
		if err != nil {
			h.t.Fatalf("ratelimit.Redis: %v", err)
		}
		h.t.Cleanup(func() { _ = b.Close() })
		h = h.passwords(func(c *auth.Config) { c.Limits = limitsOn(b, "", n, time.Hour, 0) })
		a := h.registerPassword(map[string]any{"email": "outage@example.com", "password": goodPw})
		h.want(h.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")

		srv.Stop()
		h.wantSignIn(a.Email, goodPw)
		// This instance's counters start empty; they hold the limit, also
		// in parallel.
		h.wantAtMost(parallel(12, func(int) response { return h.signInPw(a.Email, wrongPw) }), n)
		h.wantRateLimited(h.signInPw(a.Email, goodPw), time.Hour)

		srv.Restart()
		// Back on Redis (empty after its restart), the right password
		// passes again. Not a timing assertion: the deadline only stops a
		// backend that never returns from hanging the test.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := h.signInPw(a.Email, goodPw)
			if r.Code == http.StatusOK {
				break
			}
			h.wantRateLimited(r, time.Hour)
			if time.Now().After(deadline) {
				h.t.Fatal("still limited by this instance's counters long after Redis came back")
			}
		}
		h.want(h.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		rdb := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0")})
		defer rdb.Close()
		keys, err := rdb.Keys(context.Background(), "latchkey:ratelimit:login-account:*").Result()
		if err != nil || len(keys) != 1 {
			h.t.Fatalf("Redis holds %q (%v), want the account's counter", keys, err)
		}
		if n, _ := rdb.Get(context.Background(), keys[0]).Int(); n != 1 {
			h.t.Errorf("Redis counts %d failures, want 1", n)
		}
	})
}

// TestRateLimitMetrics: the collectors given in server.Config (cmd/latchkey
// passes the rate-limit backend's) are served on /metrics, and show an
// outage of Redis.
func TestRateLimitMetrics(t *testing.T) {
	eachDB(t, func(h *harness) {
		srv := redistest.Start(h.t)
		b, err := ratelimit.Redis(context.Background(), srv.URL(), ratelimit.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			h.t.Fatalf("ratelimit.Redis: %v", err)
		}
		h.t.Cleanup(func() { _ = b.Close() })
		svc, _ := h.build(func(c *auth.Config) { c.Limits = limitsOn(b, "", 3, time.Hour, 0) })
		e, err := server.New(svc, server.Config{Spec: latchkey.OpenAPIYAML, Logger: slog.New(slog.DiscardHandler), Metrics: b.Collectors()})
		if err != nil {
			h.t.Fatal(err)
		}
		h.h = e
		metrics := func() string {
			r := h.do("GET", "/metrics", nil)
			h.want(r, http.StatusOK, "")
			return string(r.Body)
		}
		if m := metrics(); !strings.Contains(m, "latchkey_ratelimit_redis_up 1") || !strings.Contains(m, "latchkey_ratelimit_fallback_total 0") {
			h.t.Errorf("/metrics before the outage lacks redis_up 1 and fallback_total 0:\n%s", m)
		}
		srv.Stop()
		h.want(h.signInPw("nobody@example.com", wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		if m := metrics(); !strings.Contains(m, "latchkey_ratelimit_redis_up 0") || strings.Contains(m, "latchkey_ratelimit_fallback_total 0") {
			h.t.Errorf("/metrics during the outage lacks redis_up 0 and a fallback count:\n%s", m)
		}
	})
}

// TestSignInLimitsIPv6: IPv6 clients are limited per /64, so stepping
// through the addresses of one subscriber's block does not reset the
// count; the next /64 is another client. IPv4-mapped addresses are their
// IPv4 address.
func TestSignInLimitsIPv6(t *testing.T) {
	eachDB(t, func(h *harness) {
		const n = 3 // per client address: 10 × n
		h = h.passwords(func(c *auth.Config) { c.Limits = memoryLimits(n, time.Hour, 0) })
		for i := range 10 * n {
			addr := fmt.Sprintf("[2001:db8:1:2:%x::%x]:4000", i, i+1)
			h.want(h.signInPw(fmt.Sprintf("v6spray%d@example.com", i), wrongPw, from(addr)), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		}
		h.wantRateLimited(h.signInPw("fresh@example.com", wrongPw, from("[2001:db8:1:2:ffff:ffff:ffff:ffff]:4000")), time.Hour)
		h.wantRateLimited(h.signInPw("fresh@example.com", wrongPw, from("[2001:DB8:1:2::]:4000")), time.Hour)
		h.want(h.signInPw("fresh@example.com", wrongPw, from("[2001:db8:1:3::1]:4000")), http.StatusUnauthorized, "INVALID_CREDENTIALS")

		for i := range 10 * n {
			h.want(h.signInPw(fmt.Sprintf("v4spray%d@example.com", i), wrongPw, from("198.51.100.77:4000")), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		}
		h.wantRateLimited(h.signInPw("fresh@example.com", wrongPw, from("[::ffff:198.51.100.77]:4000")), time.Hour)
		h.want(h.signInPw("fresh@example.com", wrongPw, from("198.51.100.78:4000")), http.StatusUnauthorized, "INVALID_CREDENTIALS")
	})
}
