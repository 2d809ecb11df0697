package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
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
			if c.Addr != ":8080" || c.PublicURL != "http://localhost:8080" || !c.RegistrationOpen ||
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
				if c.AccessTokenTTL != time.Minute || c.RegistrationOpen || c.PublicURL != "https://id.example.com" {
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
		{name: "database max conns", env: map[string]string{"LATCHKEY_DATABASE_MAX_CONNS": "7", "LATCHKEY_DEBUG_ADDR": "127.0.0.1:6060"},
			check: func(t *testing.T, c *config) {
				if c.DatabaseMaxConns != 7 || c.DebugAddr != "127.0.0.1:6060" {
					t.Errorf("%+v", c)
				}
			}},
		{name: "database max conns default", check: func(t *testing.T, c *config) {
			if c.DatabaseMaxConns != 20 || c.DebugAddr != "" {
				t.Errorf("%+v", c)
			}
		}},
		{name: "bad database max conns", env: map[string]string{"LATCHKEY_DATABASE_MAX_CONNS": "0"}, wantErr: "LATCHKEY_DATABASE_MAX_CONNS"},
		{name: "debug addr on every interface", env: map[string]string{"LATCHKEY_DEBUG_ADDR": ":6060"}, wantErr: "LATCHKEY_DEBUG_ADDR"},
		{name: "debug addr not loopback", env: map[string]string{"LATCHKEY_DEBUG_ADDR": "10.1.2.3:6060"}, wantErr: "LATCHKEY_DEBUG_ADDR"},
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

// TestHelp: --help, -h and help print the commands and every setting of
// the table, grouped, to stdout, and succeed.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"migrate", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := run(context.Background(), args, env(nil), &out, &errOut); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			if errOut.Len() != 0 {
				t.Errorf("help wrote to stderr: %q", errOut.String())
			}
			help := out.String()
			for _, c := range commands {
				if !strings.Contains(help, "  "+c.name+" ") {
					t.Errorf("help does not list the command %q", c.name)
				}
			}
			for _, s := range settingsOf(&config{}) {
				if !strings.Contains(help, s.env()+", --"+s.name) {
					t.Errorf("help does not list %s", s.env())
				}
			}
			for _, g := range settingGroups {
				if !strings.Contains(help, "\n"+g.title+":\n") {
					t.Errorf("help has no %q group", g.title)
				}
			}
		})
	}
}

// TestHelpGroupsEverySetting: a setting added to the table is listed even
// without a group, under "Other settings"; today's settings all have one.
func TestHelpGroupsEverySetting(t *testing.T) {
	grouped := map[string]bool{}
	for _, g := range settingGroups {
		for _, name := range g.settings {
			grouped[name] = true
		}
	}
	var out bytes.Buffer
	printHelp(&out)
	for _, s := range settingsOf(&config{}) {
		if !grouped[s.name] && !strings.Contains(out.String(), "Other settings:") {
			t.Errorf("%s is in no group and no \"Other settings\" heading is printed", s.env())
		}
	}
}

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "latchkey ") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("--version printed %q", out.String())
	}
}

// TestCommandLineErrors: each mistake is one line naming what is wrong,
// never the usage, and never a secret value.
func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad flag value", []string{"--access-token-ttl", "soon"}, nil, "--access-token-ttl: must be a positive Go duration"},
		{"bad flag value after the command", []string{"serve", "--registration=maybe"}, nil, "--registration: must be one of open, closed"},
		{"unknown flag", []string{"--acess-token-ttl", "1m"}, nil, "unknown flag --acess-token-ttl (see latchkey --help)"},
		{"flag without value", []string{"--addr"}, nil, "--addr needs a value"},
		{"bogus address", nil, map[string]string{"LATCHKEY_ADDR": "bogus"}, "LATCHKEY_ADDR: must be a listen address"},
		{"bogus address flag", []string{"--addr", "localhost"}, nil, "--addr: must be a listen address"},
		{"bad master key", nil, map[string]string{"LATCHKEY_MASTER_KEY": "c2VjcmV0LXNlY3JldA=="}, "LATCHKEY_MASTER_KEY: must be 32 random bytes"},
		{"bad master key flag", []string{"--master-key", "c2VjcmV0LXNlY3JldA=="}, nil, "--master-key: must be 32 random bytes"},
		{"unknown command", []string{"frobnicate"}, nil, `unknown command "frobnicate" (see latchkey --help)`},
		{"stray argument", []string{"serve", "extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, env(tt.env), &out, &errOut)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line containing %q", msg, tt.want)
			}
			if strings.Count(msg, "LATCHKEY_MASTER_KEY") > 1 || strings.Contains(msg, "c2VjcmV0") {
				t.Errorf("error %q repeats the variable or echoes the value", msg)
			}
			if out.Len() != 0 || errOut.Len() != 0 {
				t.Errorf("printed more than the error: %q %q", out.String(), errOut.String())
			}
		})
	}
}

// TestBusyPort: a taken port is reported naming LATCHKEY_ADDR.
func TestBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"serve"}, env(map[string]string{
		"LATCHKEY_DATA_DIR": t.TempDir(), "LATCHKEY_ADDR": ln.Addr().String(), "LATCHKEY_LOG_LEVEL": "error",
	}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "LATCHKEY_ADDR: "+ln.Addr().String()+" is in use") {
		t.Fatalf("error %v, want one naming LATCHKEY_ADDR and the address in use", err)
	}
}

// logLines starts serve (data dir, JSON log) with the process variables
// environ, stops it at once, and answers its log records.
func logLines(t *testing.T, dataDir string, environment []string) []map[string]any {
	t.Helper()
	old := environ
	environ = func() []string { return environment }
	defer func() { environ = old }()
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, env(map[string]string{
			"LATCHKEY_DATA_DIR": dataDir, "LATCHKEY_ADDR": "127.0.0.1:0", "LATCHKEY_LOG_FORMAT": "json",
		}), pw, &logs)
		pw.Close()
	}()
	if _, err := bufio.NewReader(pr).ReadString('\n'); err != nil {
		t.Fatalf("no start-up line: %v (%v)", err, <-done)
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

func messagesOf(recs []map[string]any, substr string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if msg, _ := r["msg"].(string); strings.Contains(msg, substr) {
			out = append(out, r)
		}
	}
	return out
}

// TestUnknownVariableWarning: a LATCHKEY_* variable that is no setting (a
// typo) is warned about at start, with the setting it probably meant;
// settings and the test suites' LATCHKEY_TEST_* are not.
func TestUnknownVariableWarning(t *testing.T) {
	recs := logLines(t, t.TempDir(), []string{
		"LATCHKEY_ACESS_TOKEN_TTL=1m", "LATCHKEY_ADDR=:1", "LATCHKEY_TEST_POSTGRES_URL=x", "PATH=/bin", "LATCHKEY_FROBNICATE=1",
	})
	typo := messagesOf(recs, "LATCHKEY_ACESS_TOKEN_TTL")
	if len(typo) != 1 || typo[0]["level"] != "WARN" || !strings.Contains(typo[0]["msg"].(string), "did you mean LATCHKEY_ACCESS_TOKEN_TTL?") {
		t.Errorf("typo warning: %v", typo)
	}
	if other := messagesOf(recs, "LATCHKEY_FROBNICATE"); len(other) != 1 || strings.Contains(other[0]["msg"].(string), "did you mean") {
		t.Errorf("unknown variable warning: %v", other)
	}
	for _, name := range []string{"LATCHKEY_ADDR", "LATCHKEY_TEST_POSTGRES_URL"} {
		if got := messagesOf(recs, name+" is not"); len(got) != 0 {
			t.Errorf("%s warned about: %v", name, got)
		}
	}
}

// TestDevMasterKeyLogged: generating the development master key is logged
// once, with its path; a restart that reads it logs nothing about it.
func TestDevMasterKeyLogged(t *testing.T) {
	dir := t.TempDir()
	first := messagesOf(logLines(t, dir, nil), "master key")
	if len(first) != 1 || first[0]["path"] != filepath.Join(dir, "master.key") {
		t.Fatalf("first start: %v, want one record with the path", first)
	}
	if again := messagesOf(logLines(t, dir, nil), "master key"); len(again) != 0 {
		t.Errorf("second start logged %v", again)
	}
}
