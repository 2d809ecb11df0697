package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		check   func(t *testing.T, c *config)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, c *config) {
			if c.Addr != ":8080" || c.PublicURL != "http://localhost:8080" || c.Registration != "open" ||
				c.AccessTokenTTL != 15*time.Minute || c.RefreshTokenTTL != 720*time.Hour ||
				c.RefreshReuseGrace != 10*time.Second || c.AvatarMaxBytes != 1<<20 || c.Audience != "latchkey" {
				t.Errorf("defaults: %+v", c)
			}
			if c.DatabaseURL != "sqlite:"+filepath.Join("data", "latchkey.db") {
				t.Errorf("database url %q", c.DatabaseURL)
			}
		}},
		{name: "env", env: map[string]string{"LATCHKEY_ACCESS_TOKEN_TTL": "1m", "LATCHKEY_REGISTRATION": "closed", "LATCHKEY_PUBLIC_URL": "https://id.example.com/"},
			check: func(t *testing.T, c *config) {
				if c.AccessTokenTTL != time.Minute || c.Registration != "closed" || c.PublicURL != "https://id.example.com" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "flag wins over env", env: map[string]string{"LATCHKEY_ADDR": ":1"}, args: []string{"--addr", ":2"},
			check: func(t *testing.T, c *config) {
				if c.Addr != ":2" {
					t.Errorf("addr %q", c.Addr)
				}
			}},
		{name: "trusted proxies", env: map[string]string{"LATCHKEY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1/32"},
			check: func(t *testing.T, c *config) {
				if len(c.TrustedProxies) != 2 {
					t.Errorf("%v", c.TrustedProxies)
				}
			}},
		{name: "postgres with key", env: map[string]string{"LATCHKEY_DATABASE_URL": "postgres://x/y", "LATCHKEY_MASTER_KEY": key}},
		{name: "bad duration", env: map[string]string{"LATCHKEY_ACCESS_TOKEN_TTL": "soon"}, wantErr: "LATCHKEY_ACCESS_TOKEN_TTL"},
		{name: "negative duration", env: map[string]string{"LATCHKEY_REFRESH_TOKEN_TTL": "-1h"}, wantErr: "LATCHKEY_REFRESH_TOKEN_TTL"},
		{name: "bad registration", env: map[string]string{"LATCHKEY_REGISTRATION": "maybe"}, wantErr: "LATCHKEY_REGISTRATION"},
		{name: "bad public url", env: map[string]string{"LATCHKEY_PUBLIC_URL": "localhost"}, wantErr: "LATCHKEY_PUBLIC_URL"},
		{name: "bad database url", env: map[string]string{"LATCHKEY_DATABASE_URL": "mysql://x"}, wantErr: "LATCHKEY_DATABASE_URL"},
		{name: "short master key", env: map[string]string{"LATCHKEY_MASTER_KEY": "c2hvcnQ="}, wantErr: "LATCHKEY_MASTER_KEY"},
		{name: "postgres without key", env: map[string]string{"LATCHKEY_DATABASE_URL": "postgres://x/y"}, wantErr: "LATCHKEY_MASTER_KEY is required"},
		{name: "bad avatar limit", env: map[string]string{"LATCHKEY_AVATAR_MAX_BYTES": "lots"}, wantErr: "LATCHKEY_AVATAR_MAX_BYTES"},
		{name: "bad cidr", env: map[string]string{"LATCHKEY_TRUSTED_PROXIES": "10.0.0.1"}, wantErr: "LATCHKEY_TRUSTED_PROXIES"},
		{name: "bad log level", env: map[string]string{"LATCHKEY_LOG_LEVEL": "loud"}, wantErr: "LATCHKEY_LOG_LEVEL"},
		{name: "bad flag value", args: []string{"--access-token-ttl", "x"}, wantErr: "access-token-ttl"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "latchkey ") {
		t.Errorf("version printed %q", out.String())
	}
	if err := run(context.Background(), []string{"frobnicate"}, env(nil), io.Discard, io.Discard); err == nil {
		t.Error("an unknown command must fail")
	}
}

// serveOnce runs the real binary's serve command on dataDir, calls fn with
// its base URL, then stops it as SIGTERM would and checks it exits cleanly.
func serveOnce(t *testing.T, dataDir string, fn func(base string)) {
	t.Helper()
	serveWith(t, dataDir, nil, fn)
}

// serveWith is serveOnce with more settings in extra.
func serveWith(t *testing.T, dataDir string, extra map[string]string, fn func(base string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	vars := map[string]string{"LATCHKEY_DATA_DIR": dataDir, "LATCHKEY_ADDR": "127.0.0.1:0", "LATCHKEY_LOG_FORMAT": "json"}
	for k, v := range extra {
		vars[k] = v
	}
	go func() {
		done <- run(ctx, []string{"serve"}, env(vars), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no start-up line: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	base := regexp.MustCompile(`http://localhost:\d+`).FindString(line)
	if base == "" || !strings.Contains(line, base+"/docs") {
		t.Fatalf("start-up line does not say where to go: %q", line)
	}
	fn(base)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func postJSON(t *testing.T, url, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if res.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
	}
	return res.StatusCode, out
}

// TestRestartKeepsData starts the binary on a fresh data dir, signs up,
// stops it, starts it again on the same dir: the master key, signing keys,
// account and session survive, so the same tokens keep working.
func TestRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var access, refresh, secret string
	serveOnce(t, dir, func(base string) {
		status, body := postJSON(t, base+"/api/register", "", `{"name":"Ada"}`)
		if status != http.StatusCreated {
			t.Fatalf("register: %d %v", status, body)
		}
		tokens := body["tokens"].(map[string]any)
		access, refresh, secret = tokens["access_token"].(string), tokens["refresh_token"].(string), body["secret"].(string)
	})
	if info, err := os.Stat(filepath.Join(dir, "master.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", info, err)
	}
	serveOnce(t, dir, func(base string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+access)
		if status, body := doJSON(t, req); status != http.StatusOK || body["name"] != "Ada" {
			t.Fatalf("me after restart: %d %v", status, body)
		}
		if status, body := postJSON(t, base+"/api/auth/refresh", "", `{"refresh_token":"`+refresh+`"}`); status != http.StatusOK {
			t.Fatalf("refresh after restart: %d %v", status, body)
		}
		if status, body := postJSON(t, base+"/api/auth", "", `{"secret":"`+secret+`"}`); status != http.StatusOK {
			t.Fatalf("sign-in after restart: %d %v", status, body)
		}
	})
}

func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	if err := run(context.Background(), []string{"migrate"}, env(map[string]string{"LATCHKEY_DATA_DIR": dir}), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "latchkey.db")); err != nil {
		t.Fatal(err)
	}
}
