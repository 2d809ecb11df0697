package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/server"
)

// logBuffer collects JSON log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the records logged so far.
func (l *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// withLog is a stack on h's database that logs JSON into the returned
// buffer.
func (h *harness) withLog(tweak func(*auth.Config)) (*harness, *logBuffer) {
	logs := &logBuffer{}
	c := *h
	c.serverTweak = func(sc *server.Config) {
		sc.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	_, c.h = c.build(tweak)
	return &c, logs
}

// TestAbandonedRequestIsNotAServerError: a request whose client went away
// while the server worked on it is logged at info as abandoned, not as an
// ERROR 500, and nothing is written.
func TestAbandonedRequestIsNotAServerError(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		hl, logs := h.withLog(nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the client is gone before the database is asked
		req := httptest.NewRequest("GET", "/api/me", nil).WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+a.AccessToken)
		rec := httptest.NewRecorder()
		hl.h.ServeHTTP(rec, req)
		if rec.Body.Len() != 0 {
			t.Errorf("wrote %d %s to a client that left", rec.Code, rec.Body)
		}
		found := false
		for _, l := range logs.lines(t) {
			if l["level"] == "ERROR" {
				t.Errorf("ERROR logged: %v", l)
			}
			if l["msg"] == "request abandoned by the client" {
				found = true
				if l["level"] != "INFO" || l["status"] != float64(499) {
					t.Errorf("abandoned line %v", l)
				}
			}
		}
		if !found {
			t.Errorf("no abandoned line in %v", logs.lines(t))
		}
	})
}

// TestOverloadedIsCountedAndLoggedOnceASecond: 503 OVERLOADED answers are
// counted in latchkey_http_overloaded_total and summed up at warn at most
// once a second, not once per request.
func TestOverloadedIsCountedAndLoggedOnceASecond(t *testing.T) {
	eachDB(t, func(h *harness) {
		reg := h.passwords(nil)
		a := reg.registerPassword(map[string]any{"email": "flood@example.com", "password": "correct horse battery"})
		// One hashing slot and no wait: of parallel sign-ins all but the
		// one holding the slot are refused. Rounds repeat (at most 20)
		// until some were, so the test cannot miss them.
		hl, logs := h.withLog(func(c *auth.Config) {
			c.Hasher = newHasher(h.t, password.Params{Memory: 8 << 10, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, 1, 0)
		})
		start := time.Now()
		overloaded := 0
		for round := 0; round < 20 && overloaded < 5; round++ {
			var wg sync.WaitGroup
			res := make([]response, 12)
			for i := range res {
				wg.Go(func() { res[i] = hl.signInPw(a.Email, "correct horse battery") })
			}
			wg.Wait()
			for _, r := range res {
				if r.Code == http.StatusServiceUnavailable {
					hl.want(r, http.StatusServiceUnavailable, "OVERLOADED")
					overloaded++
				}
			}
		}
		elapsed := time.Since(start)
		if overloaded < 2 {
			t.Fatalf("only %d OVERLOADED answers", overloaded)
		}
		warns := 0
		for _, l := range logs.lines(t) {
			if l["level"] == "ERROR" {
				t.Errorf("ERROR logged: %v", l)
			}
			if l["level"] == "WARN" {
				warns++
			}
		}
		if limit := int(elapsed/time.Second) + 1; warns < 1 || warns > limit {
			t.Errorf("%d warn lines for %d OVERLOADED answers in %v, want 1..%d", warns, overloaded, elapsed, limit)
		}
		r := hl.do("GET", "/metrics", nil)
		m := regexp.MustCompile(`(?m)^latchkey_http_overloaded_total\{route="/api/auth"\} (\d+)$`).FindSubmatch(r.Body)
		if m == nil {
			t.Fatalf("no latchkey_http_overloaded_total for /api/auth in\n%s", r.Body)
		}
		if n, _ := strconv.Atoi(string(m[1])); n != overloaded {
			t.Errorf("latchkey_http_overloaded_total = %d, want %d", n, overloaded)
		}
	})
}
