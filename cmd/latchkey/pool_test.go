package main

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestPoolMetricsAndDebugListener: /metrics shows the connections the
// pool opened and its size, and LATCHKEY_DEBUG_ADDR serves the profiles but not
// the command line (which may hold secrets passed as flags).
func TestPoolMetricsAndDebugListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := ln.Addr().String()
	ln.Close()
	get := func(url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	serveWith(t, filepath.Join(t.TempDir(), "data"), map[string]string{"LATCHKEY_DEBUG_ADDR": debugAddr}, func(base string) {
		status, body := get(base + "/metrics")
		for _, want := range []string{`latchkey_db_connections_opened_total{pool="main"}`, `go_sql_max_open_connections{db_name="main"} 20`} {
			if status != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("/metrics: %d, no %s", status, want)
			}
		}
		if status, _ := get("http://" + debugAddr + "/debug/pprof/"); status != http.StatusOK {
			t.Errorf("/debug/pprof/: %d", status)
		}
		if status, _ := get("http://" + debugAddr + "/debug/pprof/cmdline"); status == http.StatusOK {
			t.Error("/debug/pprof/cmdline is served")
		}
	})
}
