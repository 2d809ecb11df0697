package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey-dev/latchkey/store/storetest"
)

// postgresTarget is the PostgreSQL target of storetest (a schema of this
// test's own), or skips/fails as storetest does without one.
func postgresTarget(t *testing.T) (base, dsn string) {
	t.Helper()
	for _, target := range storetest.Targets(t) {
		if target.Name == "postgres" {
			return os.Getenv(storetest.EnvPostgresURL), target.DSN
		}
	}
	t.Skip("database faults are a PostgreSQL matter: set " + storetest.EnvPostgresURL)
	return "", ""
}

// withParams sets URL query parameters of a PostgreSQL DSN (and, when
// host is not empty, its host:port).
func withParams(t *testing.T, dsn, host string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	if host != "" {
		u.Host = host
	}
	return u.String()
}

// terminateOwn ends the server side of every connection whose
// application_name is app: this test's own pool, never another's.
func terminateOwn(t *testing.T, base, app string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func appName(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "latchkey_fault_test_" + hex.EncodeToString(b[:])
}

// TestTerminatedConnectionsHeal: after PostgreSQL drops every connection
// of the pool (pg_terminate_backend, as in a failover or restart), reads
// answer at once on fresh connections and writes at worst 503 UNAVAILABLE
// with Retry-After, never 500; the pool heals without a restart. Ten
// rounds of terminate-then-request: each round's first request meets dead
// connections.
func TestTerminatedConnectionsHeal(t *testing.T) {
	base, dsn := postgresTarget(t)
	app := appName(t)
	h := &harness{t: t, dsn: withParams(t, dsn, "", "application_name", app), key: make([]byte, 32), clock: &clock{now: time.Now().UTC()}}
	h.start(nil)
	a := h.register("Ada")
	for round := range 10 {
		// Fill the pool with several connections used just now (pgx
		// pings a connection on reuse only after a second idle).
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { h.want(h.do("GET", "/api/me/sessions", nil, bearer(a.AccessToken)), http.StatusOK, "") })
		}
		wg.Wait()
		if n := terminateOwn(t, base, app); n == 0 {
			t.Fatalf("round %d: no connection of %s to terminate", round, app)
		}
		time.Sleep(50 * time.Millisecond) // the backends exit
		r := h.do("GET", "/api/me", nil, bearer(a.AccessToken))
		h.want(r, http.StatusOK, "")
		if round%2 == 1 {
			terminateOwn(t, base, app)
			time.Sleep(50 * time.Millisecond)
		}
		// A write is not retried; it either worked on a fresh connection
		// or says 503 UNAVAILABLE with Retry-After.
		r = h.do("PATCH", "/api/me", map[string]any{"bio": "round"}, bearer(a.AccessToken))
		switch r.Code {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			h.want(r, http.StatusServiceUnavailable, "UNAVAILABLE")
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		default:
			t.Fatalf("round %d: PATCH /me after termination: %s", round, r)
		}
		h.want(h.do("PATCH", "/api/me", map[string]any{"bio": "healed"}, bearer(a.AccessToken)), http.StatusOK, "")
		h.want(h.do("GET", "/readyz", nil), http.StatusOK, "")
	}
}

// proxy forwards TCP connections to a PostgreSQL server and can cut them
// all and refuse new ones, as a network partition would, for this test's
// pool alone.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// down closes the listener and every forwarded connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// up listens again on the same address.
func (p *proxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// TestUnreachableDatabase: while the database cannot be reached, requests
// answer 503 UNAVAILABLE with Retry-After and /readyz 503; once it is back
// everything answers again without a restart.
func TestUnreachableDatabase(t *testing.T) {
	_, dsn := postgresTarget(t)
	u, _ := url.Parse(dsn)
	px := newProxy(t, u.Host)
	h := &harness{t: t, dsn: withParams(t, dsn, px.addr, "connect_timeout", "2"), key: make([]byte, 32), clock: &clock{now: time.Now().UTC()}}
	h.start(nil)
	a := h.register("Ada")
	h.want(h.do("GET", "/api/me", nil, bearer(a.AccessToken)), http.StatusOK, "")

	px.down()
	for _, r := range []response{
		h.do("GET", "/api/me", nil, bearer(a.AccessToken)),
		h.do("GET", "/api/me/sessions", nil, bearer(a.AccessToken)),
		h.refresh(a.RefreshToken),
		h.do("POST", "/api/register", map[string]any{"name": "Bob"}),
		h.do("GET", "/readyz", nil),
	} {
		h.want(r, http.StatusServiceUnavailable, "UNAVAILABLE")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After: %s", r)
		}
	}

	px.up()
	h.want(h.do("GET", "/readyz", nil), http.StatusOK, "")
	h.want(h.do("GET", "/api/me", nil, bearer(a.AccessToken)), http.StatusOK, "")
	h.want(h.refresh(a.RefreshToken), http.StatusOK, "")
}
