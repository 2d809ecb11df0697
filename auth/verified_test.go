package auth

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestVerifiedTokenCache: a token verified once is taken from the cache,
// but a hit decides as a full check would — a token differing in one byte
// of its signature, an expired token and a token whose key no longer
// verifies are refused — and the session is still read on every request.
func TestVerifiedTokenCache(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newTestService(t)
	_, _, tok := register(t, s, "Ada")

	if _, err := s.Authenticate(ctx, tok.AccessToken); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if _, ok := s.verified.get(tok.AccessToken); !ok {
		t.Fatal("a verified token is not cached")
	}
	if _, err := s.Authenticate(ctx, tok.AccessToken); err != nil {
		t.Fatalf("Authenticate from the cache: %v", err)
	}

	t.Run("tampered signature", func(t *testing.T) {
		b := []byte(tok.AccessToken)
		last := len(b) - 2 // not the last character, whose low bits base64 may ignore
		b[last] = map[bool]byte{true: 'B', false: 'A'}[b[last] == 'A']
		if _, err := s.Authenticate(ctx, string(b)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("tampered token: %v, want ErrUnauthenticated", err)
		}
	})

	t.Run("key no longer verifies", func(t *testing.T) {
		_, _, tok2 := register(t, s, "Bob")
		if _, err := s.Authenticate(ctx, tok2.AccessToken); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		kid, _ := s.keys.signingKey()
		s.keys.mu.Lock()
		saved := s.keys.verify[kid]
		long := s.now().Add(-time.Hour) // retired long enough ago to verify nothing now
		s.keys.verify[kid] = verifyKey{pub: saved.pub, retiredAt: &long}
		s.keys.mu.Unlock()
		_, err := s.Authenticate(ctx, tok2.AccessToken)
		s.keys.mu.Lock()
		s.keys.verify[kid] = saved
		s.keys.mu.Unlock()
		if !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("cached token of a key that no longer verifies: %v, want ErrUnauthenticated", err)
		}
	})

	t.Run("revoked session", func(t *testing.T) {
		_, _, tok3 := register(t, s, "Cy")
		if _, err := s.Authenticate(ctx, tok3.AccessToken); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		if err := s.LogoutRefresh(ctx, tok3.RefreshToken); err != nil {
			t.Fatalf("LogoutRefresh: %v", err)
		}
		if _, err := s.Authenticate(ctx, tok3.AccessToken); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("cached token of a revoked session: %v, want ErrUnauthenticated", err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		clk.advance(15*time.Minute + 6*time.Second)
		if _, err := s.Authenticate(ctx, tok.AccessToken); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("cached token after its expiry: %v, want ErrUnauthenticated", err)
		}
	})
}

// TestVerifiedTokensBounded: the cache never holds more than
// maxVerifiedTokens; when full it starts over.
func TestVerifiedTokensBounded(t *testing.T) {
	var c verifiedTokens
	for i := range maxVerifiedTokens + 1 {
		c.put(strconv.Itoa(i), verifiedToken{})
	}
	if n := len(c.entries); n != 1 {
		t.Errorf("%d entries after overflowing, want 1", n)
	}
	if _, ok := c.get(strconv.Itoa(maxVerifiedTokens)); !ok {
		t.Error("the newest entry is missing")
	}
}

// TestVerifiedTokenCacheParallel: 20 requests at once with the same tokens
// all pass (the cache filled while they run), and once the sessions are
// revoked, 20 at once are all refused although every token is cached.
func TestVerifiedTokenCacheParallel(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	var toks []*Tokens
	for _, name := range []string{"Ada", "Bob"} {
		_, _, tok := register(t, s, name)
		toks = append(toks, tok)
	}
	run := func(wantErr error) {
		t.Helper()
		errs := make(chan error, 20)
		for i := range 20 {
			go func() {
				_, err := s.Authenticate(ctx, toks[i%len(toks)].AccessToken)
				errs <- err
			}()
		}
		for range 20 {
			if err := <-errs; !errors.Is(err, wantErr) {
				t.Errorf("Authenticate = %v, want %v", err, wantErr)
			}
		}
	}
	run(nil)
	for _, tok := range toks {
		if err := s.LogoutRefresh(ctx, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
	}
	run(ErrUnauthenticated)
}
