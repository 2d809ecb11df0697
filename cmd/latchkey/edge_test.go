package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDataFilesArePrivate: under the most permissive umask, a first start
// creates the data dir 0700 and the master key, database, WAL and
// shared-memory files 0600.
func TestDataFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	serveOnce(t, dir, func(base string) {
		if status, body := postJSON(t, base+"/api/register", "", `{"name":"Ada"}`); status != http.StatusCreated {
			t.Fatalf("register: %d %v", status, body)
		}
		for name, want := range map[string]os.FileMode{
			"":                0o700,
			"master.key":      0o600,
			"latchkey.db":     0o600,
			"latchkey.db-wal": 0o600,
			"latchkey.db-shm": 0o600,
		} {
			info, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != want {
				t.Errorf("%q has mode %04o, want %04o", name, info.Mode().Perm(), want)
			}
		}
	})
}

// TestMasterKeyReadableByOthersStops: a master key file others may read
// stops the process with a message saying how to fix it.
func TestMasterKeyReadableByOthersStops(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	if err := os.WriteFile(path, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"serve"}, env(map[string]string{
		"LATCHKEY_DATA_DIR": dir, "LATCHKEY_ADDR": "127.0.0.1:0", "LATCHKEY_LOG_FORMAT": "json",
	}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), path) {
		t.Fatalf("serve with a 0644 master key: %v", err)
	}
}

// TestMetricsOnTheirOwnListener: with LATCHKEY_METRICS_ADDR the metrics
// move to that listener and the public one answers 404.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	serveWith(t, t.TempDir(), map[string]string{"LATCHKEY_METRICS_ADDR": addr}, func(base string) {
		res, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("public /metrics: %d, want 404", res.StatusCode)
		}
		res, err = http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "latchkey_http_requests_total") {
			t.Errorf("metrics listener: %d %.200s", res.StatusCode, body)
		}
	})
}

func TestEdgeSettings(t *testing.T) {
	for _, bad := range []map[string]string{
		{"LATCHKEY_CORS_ORIGINS": "app.example.com"},
		{"LATCHKEY_CORS_ORIGINS": "https://app.example.com/"},
		{"LATCHKEY_METRICS_ADDR": "nine-thousand"},
	} {
		_, err := parseConfig(nil, env(bad), io.Discard)
		for k := range bad {
			if err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%v: error %v, want one naming %s", bad, err, k)
			}
		}
	}
	c, err := parseConfig(nil, env(map[string]string{"LATCHKEY_CORS_ORIGINS": "https://a.example.com, http://localhost:5173"}), io.Discard)
	if err != nil || len(c.CORSOrigins) != 2 {
		t.Fatalf("%v %v", c, err)
	}
}
