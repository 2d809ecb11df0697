package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/server"
	"github.com/latchkey-dev/latchkey/store"
)

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func peakRSS(b *testing.B) int64 {
	b.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	b.Skip("no VmHWM in /proc/self/status")
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux 4.0+).
func resetPeakRSS(b *testing.B) {
	b.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS: %v", err)
	}
}

// BenchmarkAvatarUploadPeakRSS sends 8 uploads at once of a 16-bit
// 4096×4096 PNG (about 130 KB, 128 MiB decoded) through the production
// stack with the default decode budget (256 MiB) and wait (2 s), and
// reports the process's peak RSS during them (target: at most 400 MiB),
// its RSS before them, and how many were stored (204) or refused (503
// OVERLOADED). On main (one decode per CPU, no budget) four in parallel took
// the process to 831 MiB.
//
//	go test ./server -run '^$' -bench AvatarUploadPeakRSS -benchtime 1x
func BenchmarkAvatarUploadPeakRSS(b *testing.B) {
	const uploads = 8
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := testAuthConfig(key)
	cfg.RefreshTokenTTL, cfg.RefreshReuseGrace = time.Hour, 0
	svc, err := auth.NewService(ctx, db, cfg)
	if err != nil {
		b.Fatal(err)
	}
	e, err := server.New(svc, server.Config{AvatarMaxBytes: 1 << 20, Spec: latchkey.OpenAPIYAML, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	send := func(method, path string, body []byte, headers ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.RemoteAddr = "203.0.113.7:1234"
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	tokens := make([]string, uploads)
	for i := range tokens {
		rec := send("POST", "/api/register", []byte(fmt.Sprintf(`{"name":"bench %d"}`, i)), "Content-Type", "application/json")
		var res struct {
			Tokens struct {
				AccessToken string `json:"access_token"`
			} `json:"tokens"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Tokens.AccessToken == "" {
			b.Fatalf("register: %d %s", rec.Code, rec.Body)
		}
		tokens[i] = res.Tokens.AccessToken
	}
	img := png16(b, 4096, 4096)
	b.ReportMetric(float64(len(img))/1024, "KiB-image")

	var peak, before int64
	var stored, overloaded int
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS(b)
		before = max(before, peakRSS(b))
		codes := make([]int, uploads)
		var wg sync.WaitGroup
		for i := range uploads {
			wg.Go(func() {
				codes[i] = send("POST", "/api/me/avatar", img, "Authorization", "Bearer "+tokens[i], "Content-Type", "image/png").Code
			})
		}
		wg.Wait()
		peak = max(peak, peakRSS(b))
		for _, c := range codes {
			switch c {
			case http.StatusNoContent:
				stored++
			case http.StatusServiceUnavailable:
				overloaded++
			default:
				b.Fatalf("upload answered %d", c)
			}
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-RSS")
	b.ReportMetric(float64(before)/(1<<20), "MiB-RSS-before")
	b.ReportMetric(float64(stored)/float64(b.N), "stored/op")
	b.ReportMetric(float64(overloaded)/float64(b.N), "overloaded/op")
}
