package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite", for countUsers
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for countUsers

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/ratelimit"
	"github.com/latchkey-dev/latchkey/server"
	"github.com/latchkey-dev/latchkey/store"
)

// cheapParams keep password hashing fast in tests that are not about its
// cost: 64 KiB and one pass instead of OWASP's 19 MiB and two.
var cheapParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// remoteAddrHeader is a test-only request header that stacks built by
// passwords turn into the request's RemoteAddr (and remove) before the
// server sees it, since harness.do always sends from clientIP.
const remoteAddrHeader = "X-Test-Remote-Addr"

// from makes a request come from addr ("host:port").
func from(addr string) header { return hdr(remoteAddrHeader, addr) }

// newHasher returns a hasher or fails the test.
func newHasher(t testing.TB, p password.Params, concurrency int, maxWait time.Duration) *password.Hasher {
	t.Helper()
	hs, err := password.NewHasher(p, concurrency, maxWait)
	if err != nil {
		t.Fatalf("password.NewHasher: %v", err)
	}
	return hs
}

// passwords is a stack on h's database like variant, with a cheap hasher
// (set before tweak, which may replace it) and proxies trusted as
// server.Config.TrustedProxies. Requests may pick their peer address with
// from.
func (h *harness) passwords(tweak func(*auth.Config), trusted ...*net.IPNet) *harness {
	h.t.Helper()
	hasher := newHasher(h.t, cheapParams, 4, time.Second)
	c := *h
	_, c.h = h.build(func(cfg *auth.Config) {
		cfg.Hasher = hasher
		if tweak != nil {
			tweak(cfg)
		}
	}, trusted...)
	return &c
}

// memoryLimits are limits in a fresh in-memory backend, wired as
// cmd/latchkey's newLimits does: maxFailures per account identifier, ten
// times that per client address, within window; register registrations
// per client address an hour (0: not limited).
func memoryLimits(maxFailures int, window time.Duration, register int) auth.Limits {
	return limitsOn(ratelimit.Memory(), "", maxFailures, window, register)
}

// limitsOn builds the limits on backend b, prefix before each policy's
// name so that tests sharing a Redis database do not count each other's
// events.
func limitsOn(b *ratelimit.Backend, prefix string, maxFailures int, window time.Duration, register int) auth.Limits {
	l := auth.Limits{
		LoginAccount: b.New(prefix+"login-account", maxFailures, window),
		LoginClient:  b.New(prefix+"login-client", 10*maxFailures, window),
	}
	if register > 0 {
		l.Register = b.New(prefix+"register", register, time.Hour)
	}
	return l
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Environment variables for the shared-limit test.
const (
	envRedisURL     = "LATCHKEY_TEST_REDIS_URL"
	envRequireRedis = "LATCHKEY_TEST_REQUIRE_REDIS"
)

// redisURL returns the test Redis URL, skipping the test when there is
// none (failing it when LATCHKEY_TEST_REQUIRE_REDIS=1).
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envRedisURL)
	if u == "" {
		if os.Getenv(envRequireRedis) == "1" {
			t.Fatalf("%s=1 but %s is not set", envRequireRedis, envRedisURL)
		}
		t.Skipf("%s is not set", envRedisURL)
	}
	return u
}

// pwAccount is a signed-in password account.
type pwAccount struct {
	ID, Email, Password string
	tokenPair
}

// registerPassword creates a password account from body, which must hold
// email and password.
func (h *harness) registerPassword(body map[string]any) pwAccount {
	h.t.Helper()
	r := h.do("POST", "/api/register", body)
	h.want(r, http.StatusCreated, "")
	var res registerResult
	h.decode(r, &res)
	return pwAccount{ID: res.User.ID, Email: body["email"].(string), Password: body["password"].(string), tokenPair: res.Tokens}
}

// signInPw sends POST /auth with an email (when it has an '@') or a
// username and a password.
func (h *harness) signInPw(ident, pw string, headers ...header) response {
	h.t.Helper()
	field := "username"
	if strings.Contains(ident, "@") {
		field = "email"
	}
	return h.do("POST", "/api/auth", map[string]any{field: ident, "password": pw}, headers...)
}

// wantSignIn checks that ident and pw sign in, and returns the tokens.
func (h *harness) wantSignIn(ident, pw string, headers ...header) tokenPair {
	h.t.Helper()
	r := h.signInPw(ident, pw, headers...)
	h.want(r, http.StatusOK, "")
	var res authResult
	h.decode(r, &res)
	if res.TwoFactorRequired || res.AccessToken == "" || res.RefreshToken == "" {
		h.t.Fatalf("sign-in result = %s", r.Body)
	}
	return res.tokenPair
}

// storedUser reads a user back through the store.
func (h *harness) storedUser(email string) *auth.User {
	h.t.Helper()
	u, err := h.db.UserByEmail(context.Background(), email)
	if err != nil {
		h.t.Fatalf("UserByEmail(%q): %v", email, err)
	}
	return u
}

// execSQL runs a statement on h's database with a connection of its own
// ($1… placeholders), for setting up what no API operation does.
func (h *harness) execSQL(query string, args ...any) {
	h.t.Helper()
	db := h.rawDB()
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
}

// rawDB opens h's database with database/sql, outside the store.
func (h *harness) rawDB() *sql.DB {
	h.t.Helper()
	driver, dsn := "sqlite", strings.TrimPrefix(h.dsn, "sqlite:")
	if strings.HasPrefix(h.dsn, "postgres") {
		u, err := url.Parse(h.dsn)
		if err != nil {
			h.t.Fatalf("parsing the test DSN: %v", err)
		}
		q := u.Query()
		q.Del("pool_max_conns") // storetest's, not pgx's
		u.RawQuery = q.Encode()
		driver, dsn = "pgx", u.String()
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		h.t.Fatalf("sql.Open: %v", err)
	}
	return db
}

// countUsers counts the rows of the users table whose email equals email
// regardless of case, with SQL of its own (the store has no such query), so
// that a duplicate row would show.
func (h *harness) countUsers(email string) int {
	h.t.Helper()
	db := h.rawDB()
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM users WHERE lower(email) = lower($1)", email).Scan(&n); err != nil {
		h.t.Fatalf("counting users: %v", err)
	}
	return n
}

// benchStack is the production stack on a fresh SQLite database for
// benchmarks (which have no harness): default password parameters, no rate
// limits.
func benchStack(b *testing.B) http.Handler {
	b.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+b.TempDir()+"/latchkey.db", slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatalf("store.Open: %v", err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		b.Fatalf("Migrate: %v", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	svc, err := auth.NewService(ctx, db, testAuthConfig(key))
	if err != nil {
		b.Fatalf("auth.NewService: %v", err)
	}
	e, err := server.New(svc, server.Config{AvatarMaxBytes: avatarMax, Spec: latchkey.OpenAPIYAML, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatalf("server.New: %v", err)
	}
	return e
}

// benchPost sends one JSON POST from clientIP to a benchmark's stack; it
// returns the request too, for checkResponse.
func benchPost(hd http.Handler, path, body string) (*http.Request, response) {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.RemoteAddr = clientIP + ":41234"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", clientAgent)
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, req)
	return req, response{Code: rec.Code, Header: rec.Result().Header, Body: rec.Body.Bytes()}
}

// currentSession is the session of an access token, from GET /me/sessions.
func (h *harness) currentSession(access string) session {
	h.t.Helper()
	for _, s := range h.sessions(access) {
		if s.Current {
			return s
		}
	}
	h.t.Fatalf("GET /me/sessions has no current session")
	return session{}
}

// wantRateLimited checks that r is 429 RATE_LIMITED with a Retry-After of
// whole seconds from 1 to window (rounded up), and returns it.
func (h *harness) wantRateLimited(r response, window time.Duration) time.Duration {
	h.t.Helper()
	h.want(r, http.StatusTooManyRequests, "RATE_LIMITED")
	ra := r.Header.Get("Retry-After")
	secs, err := strconv.Atoi(ra)
	if ceiling := int(math.Ceil(window.Seconds())); err != nil || secs < 1 || secs > ceiling {
		h.t.Fatalf("Retry-After %q, want whole seconds in 1..%d", ra, ceiling)
	}
	return time.Duration(secs) * time.Second
}
