package auth

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a fixed clock the tests advance by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start is deliberately not on a microsecond and not in UTC.
var start = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Issuer = "https://latchkey.test"
	cfg.MasterKey = bytes.Repeat([]byte{7}, 32)
	return cfg
}

// newTestService builds a Service on a fresh test store with a fixed clock;
// edit changes the configuration first.
func newTestService(t *testing.T, edit ...func(*Config)) (*Service, *testStore, *testClock) {
	t.Helper()
	cfg := testConfig()
	for _, e := range edit {
		e(&cfg)
	}
	st := newTestStore(t)
	clk := &testClock{t: start}
	s, err := NewService(context.Background(), st, cfg, WithClock(clk.now))
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return s, st, clk
}

// register creates a secret account named name.
func register(t *testing.T, s *Service, name string) (*User, string, *Tokens) {
	t.Helper()
	u, secret, tok, err := s.RegisterSecret(context.Background(), RegisterSecretInput{Name: name}, ClientMeta{})
	if err != nil {
		t.Fatalf("RegisterSecret(%q): %v", name, err)
	}
	return u, secret, tok
}

// signIn starts another session with the secret.
func signIn(t *testing.T, s *Service, secret string) *Tokens {
	t.Helper()
	res, err := s.SignIn(context.Background(), Credentials{Secret: secret}, ClientMeta{})
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	return res.Tokens
}

// fieldsOf returns the fields named in a ValidationError, or fails.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	var fields []string
	for _, f := range ve.Fields {
		fields = append(fields, f.Field)
	}
	return fields
}

func TestNewServiceConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }},
		{"short master key", func(c *Config) { c.MasterKey = c.MasterKey[:16] }},
		{"no master key", func(c *Config) { c.MasterKey = nil }},
		{"zero access TTL", func(c *Config) { c.AccessTokenTTL = 0 }},
		{"negative refresh TTL", func(c *Config) { c.RefreshTokenTTL = -time.Hour }},
		{"negative grace", func(c *Config) { c.RefreshReuseGrace = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.edit(&cfg)
			st := newTestStore(t)
			if _, err := NewService(context.Background(), st, cfg); err == nil {
				t.Fatal("NewService accepted a bad config")
			}
			if st.count(t, "signing_keys") != 0 {
				t.Error("a key was stored despite the bad config")
			}
		})
	}
}

func TestNewServiceKeepsKeysAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	s1, st, clk := newTestService(t)
	if st.count(t, "signing_keys") != 1 {
		t.Fatalf("stored keys = %d, want 1", st.count(t, "signing_keys"))
	}
	_, _, tok := register(t, s1, "Ada")

	s2, err := NewService(ctx, st, testConfig(), WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	if st.count(t, "signing_keys") != 1 {
		t.Errorf("restart created a key: %d stored", st.count(t, "signing_keys"))
	}
	if _, err := s2.Authenticate(ctx, tok.AccessToken); err != nil {
		t.Errorf("token of the first instance refused after restart: %v", err)
	}

	cfg := testConfig()
	cfg.MasterKey = bytes.Repeat([]byte{8}, 32)
	if _, err := NewService(ctx, st, cfg); err == nil {
		t.Error("NewService opened the signing key under another master key")
	}
}

func TestNowIsUTCMicroseconds(t *testing.T) {
	s, _, _ := newTestService(t)
	got := s.now()
	want := start.UTC().Truncate(time.Microsecond)
	if !got.Equal(want) || got.Location() != time.UTC || got.Nanosecond()%1000 != 0 {
		t.Errorf("now() = %v, want %v in UTC", got, want)
	}
}

func TestReady(t *testing.T) {
	s, st, _ := newTestService(t)
	if err := s.Ready(context.Background()); err != nil {
		t.Errorf("Ready: %v", err)
	}
	st.pingErr = errors.New("down")
	if err := s.Ready(context.Background()); err == nil {
		t.Error("Ready hid a store failure")
	}
}

func TestClientMetaCleaning(t *testing.T) {
	tests := []struct {
		name   string
		meta   ClientMeta
		wantUA string
		wantIP string
	}{
		{"plain", ClientMeta{"curl/8", "192.0.2.1"}, "curl/8", "192.0.2.1"},
		{"mapped IPv4", ClientMeta{"", "::ffff:192.0.2.1"}, "", "192.0.2.1"},
		{"IPv6", ClientMeta{"", "2001:DB8::1"}, "", "2001:db8::1"},
		{"not an IP", ClientMeta{"", "example.com"}, "", ""},
		{"invalid UTF-8", ClientMeta{"a\xffb", ""}, "a\uFFFDb", ""},
		{"long, cut on a rune", ClientMeta{"x" + strings.Repeat("é", 300), ""}, "x" + strings.Repeat("é", 255), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, _ := newTestService(t)
			_, secret, _ := register(t, s, "Ada")
			res, err := s.SignIn(context.Background(), Credentials{Secret: secret}, tt.meta)
			if err != nil {
				t.Fatal(err)
			}
			sess := st.session(t, res.Tokens.SessionID)
			if sess.UserAgent != tt.wantUA || sess.IP != tt.wantIP {
				t.Errorf("session UA %q IP %q, want %q %q", sess.UserAgent, sess.IP, tt.wantUA, tt.wantIP)
			}
			if len(sess.UserAgent) > maxUserAgent {
				t.Errorf("user agent is %d bytes", len(sess.UserAgent))
			}
		})
	}
}

func mustSecret(t *testing.T, s *Service, userID string) string {
	t.Helper()
	secret, err := s.Secret(context.Background(), userID)
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	return secret
}
