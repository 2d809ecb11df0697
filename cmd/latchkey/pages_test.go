package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// syncBuffer is a log sink the test reads while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePort answers a loopback port nothing listens on (now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serveInProcess runs serve on a free port with the log mailer, its JSON
// log in the returned buffer, PUBLIC_URL pointing at it, until the test
// ends.
func serveInProcess(t *testing.T, extra map[string]string) (string, *syncBuffer) {
	t.Helper()
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	vars := map[string]string{
		"LATCHKEY_DATA_DIR": t.TempDir(), "LATCHKEY_ADDR": "127.0.0.1:" + strconv.Itoa(port),
		"LATCHKEY_PUBLIC_URL": base, "LATCHKEY_LOG_FORMAT": "json",
	}
	for k, v := range extra {
		vars[k] = v
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env(vars), &syncBuffer{}, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			return base, logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mailLink waits for the log mailer's record of a mail of kind to to and
// answers its link.
func mailLink(t *testing.T, logs *syncBuffer, kind, to string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct {
				Kind, To, Link string
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Kind == kind && rec.To == to && rec.Link != "" {
				return rec.Link
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s mail to %s in the log:\n%s", kind, to, logs)
	return ""
}

// requireTool finds a program, or fails in CI (CI=true) and skips
// elsewhere.
func requireTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (.ci/run installs it)", names[0])
	}
	t.Skipf("%s is not installed (apt-get install %s); CI runs this test", names[0], names[0])
	return ""
}

// TestMailPagesInChromium drives the two development pages behind the
// mailed links in headless Chromium against the real server: confirm an
// address, then reset a password (a weak one first), with no script
// error and no Content-Security-Policy violation.
func TestMailPagesInChromium(t *testing.T) {
	chromium := requireTool(t, "chromium", "chromium-browser", "google-chrome")
	base, logs := serveInProcess(t, map[string]string{"LATCHKEY_EMAIL_CONFIRMATION": "required", "LATCHKEY_RATE_LIMITS": "off"})
	const email = "page@example.com"
	if status, body := postJSON(t, base+"/api/register", "", `{"email":"`+email+`","password":"the first long passphrase"}`); status != http.StatusAccepted {
		t.Fatalf("register: %d %v", status, body)
	}
	confirmLink := mailLink(t, logs, "confirm", email)
	if !strings.HasPrefix(confirmLink, base+"/confirm?token=") {
		t.Fatalf("confirmation link %q", confirmLink)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, "console "+string(e.Type))
			}
		}
	})
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}

	// state waits until the status line reaches want.
	state := func(want string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(`#status[data-state="` + want + `"]`)
	}
	text := func(what string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text("#status"))
		if err != nil {
			t.Fatalf("%s: reading the status: %v", what, err)
		}
		return s
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(confirmLink), chromedp.WaitVisible("#submit")); err != nil {
		t.Fatalf("confirmation page: %v", err)
	}
	address, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(address, "token") {
		t.Errorf("the token stays in the address bar: %s", address)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#submit"), state("done")); err != nil {
		t.Fatalf("confirmation page: %v", err)
	}
	if got := text("confirmation"); !strings.Contains(got, "confirmed") {
		t.Errorf("confirmation page says %q", got)
	}
	// Confirmed: the password signs in now.
	if status, body := postJSON(t, base+"/api/auth", "", `{"email":"`+email+`","password":"the first long passphrase"}`); status != http.StatusOK {
		t.Fatalf("sign-in after confirming: %d %v", status, body)
	}
	// The link was used: opening it again says so.
	if err := chromedp.Do(ctx, chromedp.Navigate(confirmLink), chromedp.Click("#submit"), state("error")); err != nil {
		t.Fatal(err)
	}
	if got := text("used link"); !strings.Contains(got, "already used") {
		t.Errorf("a used link says %q", got)
	}

	if status, body := postJSON(t, base+"/api/auth/password/reset-request", "", `{"email":"`+email+`"}`); status != http.StatusAccepted {
		t.Fatalf("reset request: %d %v", status, body)
	}
	resetLink := mailLink(t, logs, "password-reset", email)
	if !strings.HasPrefix(resetLink, base+"/reset-password?token=") {
		t.Fatalf("reset link %q", resetLink)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(resetLink),
		chromedp.WaitVisible("#password"),
		chromedp.SendKeys("#password", "password1"),
		chromedp.SendKeys("#password_conf", "password1"),
		chromedp.Click("#submit"),
		state("error"),
	); err != nil {
		t.Fatalf("reset page: %v", err)
	}
	if got := text("weak password"); !strings.Contains(got, "password") {
		t.Errorf("a weak password says %q", got)
	}
	// A weak password does not use the link up: open it again.
	const newPassword = "a second and better passphrase"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(resetLink),
		chromedp.WaitVisible("#password"),
		chromedp.SendKeys("#password", newPassword),
		chromedp.SendKeys("#password_conf", newPassword),
		chromedp.Click("#submit"),
		state("done"),
	); err != nil {
		t.Fatalf("reset page: %v", err)
	}
	if got := text("reset"); !strings.Contains(got, "password is changed") {
		t.Errorf("the reset page says %q", got)
	}
	if status, body := postJSON(t, base+"/api/auth", "", `{"email":"`+email+`","password":"`+newPassword+`"}`); status != http.StatusOK {
		t.Fatalf("sign-in with the new password: %d %v", status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the pages logged problems: %v", problems)
	}
}

// TestMailPagesServed: the pages are at the configured paths, with a
// strict Content-Security-Policy, no external asset, no inline script.
func TestMailPagesServed(t *testing.T) {
	base, _ := serveInProcess(t, map[string]string{"LATCHKEY_CONFIRM_PATH": "/account/confirm", "LATCHKEY_RESET_PATH": "/account/reset"})
	external := regexp.MustCompile(`(?i)(src|href|action)\s*=\s*"(?:[a-z]+:|//)`)
	for _, c := range []struct{ path, contentType string }{
		{"/account/confirm?token=x", "text/html"},
		{"/account/reset?token=x", "text/html"},
		{"/_latchkey/mail-pages.js", "application/javascript"},
	} {
		res, err := http.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), c.contentType) {
			t.Errorf("GET %s: %d %s", c.path, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, csp)
		}
		if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: Cache-Control %q, Referrer-Policy %q", c.path, res.Header.Get("Cache-Control"), res.Header.Get("Referrer-Policy"))
		}
		if m := external.FindString(body.String()); m != "" {
			t.Errorf("GET %s refers to another origin: %s", c.path, m)
		}
		if c.contentType == "text/html" && regexp.MustCompile(`<script>|<script [^>]*>[^<]|style=|<style`).MatchString(body.String()) {
			t.Errorf("GET %s has inline script or style", c.path)
		}
	}
	for _, path := range []string{"/confirm", "/reset-password"} {
		if res, err := http.Get(base + path); err != nil || res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s with other paths configured: %v %v", path, res.StatusCode, err)
		}
	}
	if _, err := url.Parse(base); err != nil {
		t.Fatal(err)
	}
}
