package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromium finds a headless Chromium, or fails the test in CI (CI=true,
// set by .ci/run, as for the other tools the tests need) and skips it
// otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no headless Chromium found (apt-get install chromium); CI=true requires it")
	}
	t.Skip("no headless Chromium (apt-get install chromium); CI runs this test")
	return ""
}

// TestDocsUnderCSP loads /docs in headless Chromium with the production
// Content-Security-Policy (plus a report-uri the test adds, to hear of
// violations) and checks that Swagger UI renders the operations of the
// spec and that the browser reported no violation.
func TestDocsUnderCSP(t *testing.T) {
	bin := chromium(t)
	h := &harness{t: t, dsn: "sqlite:" + t.TempDir() + "/db.sqlite", key: make([]byte, 32), clock: &clock{now: time.Now()}}
	h.start(nil)
	var (
		mu      sync.Mutex
		reports []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/csp-report" {
			var b strings.Builder
			buf := make([]byte, 4096)
			n, _ := r.Body.Read(buf)
			b.Write(buf[:n])
			mu.Lock()
			reports = append(reports, b.String())
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		rec := httptest.NewRecorder()
		h.h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if csp := w.Header().Get("Content-Security-Policy"); csp != "" {
			w.Header().Set("Content-Security-Policy", csp+"; report-uri /csp-report")
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/docs/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "script-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") {
		t.Errorf("CSP %q allows eval or inline scripts", csp)
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000", "--dump-dom", srv.URL+"/docs/")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	for _, op := range []string{"/register", "/auth/refresh", "/me/avatar", "opblock"} {
		if !strings.Contains(dom, op) {
			t.Errorf("Swagger UI did not render %q under the CSP; DOM starts %.500s", op, dom)
		}
	}
	// Reports go out asynchronously: give the last ones a moment.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, r := range reports {
		t.Errorf("CSP violation: %s", r)
	}
}
