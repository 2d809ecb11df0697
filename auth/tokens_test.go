package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// forge signs claims with method and key, setting kid when not empty.
func forge(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return signed
}

func TestAuthenticateRefusals(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newTestService(t)
	u, _, tok := register(t, s, "Ada")
	other, _, _ := register(t, s, "Bob")
	kid, priv := s.keys.signingKey()
	pub := priv.Public().(ed25519.PublicKey)
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	now := s.now()

	// claims returns valid claims for u's session, changed by edit.
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": "https://latchkey.test",
			"aud": "latchkey",
			"sub": u.ID,
			"sid": tok.SessionID,
			"iat": now.Unix(),
			"exp": now.Add(15 * time.Minute).Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	ed := jwt.SigningMethodEdDSA
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"issued token", tok.AccessToken, true},
		{"forged with the right key", forge(t, ed, priv, kid, claims(nil)), true},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil)), false},
		{"HS256 keyed with the public key", forge(t, jwt.SigningMethodHS256, []byte(pub), kid, claims(nil)), false},
		{"another Ed25519 key", forge(t, ed, strangerKey, kid, claims(nil)), false},
		{"no kid", forge(t, ed, priv, "", claims(nil)), false},
		{"unknown kid", forge(t, ed, priv, "nope", claims(nil)), false},
		{"no exp", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "exp") })), false},
		{"expired within leeway", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-4 * time.Second).Unix() })), true},
		{"expired beyond leeway", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-6 * time.Second).Unix() })), false},
		{"wrong aud", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), false},
		{"no aud", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "aud") })), false},
		{"wrong iss", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), false},
		{"no sid", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { delete(c, "sid") })), false},
		{"unknown sid", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { c["sid"] = "no-such-session" })), false},
		{"session of another user", forge(t, ed, priv, kid, claims(func(c jwt.MapClaims) { c["sub"] = other.ID })), false},
		{"garbage", "not.a.jwt", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Authenticate(ctx, tt.token)
			if tt.ok {
				if err != nil || p.UserID != u.ID || p.SessionID != tok.SessionID || p.User == nil || p.User.ID != u.ID {
					t.Errorf("Authenticate = %+v, %v; want accepted", p, err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Authenticate = %+v, %v; want ErrUnauthenticated", p, err)
			}
		})
	}

	t.Run("clock", func(t *testing.T) {
		clk.advance(15*time.Minute + 4*time.Second)
		if _, err := s.Authenticate(ctx, tok.AccessToken); err != nil {
			t.Errorf("refused within leeway: %v", err)
		}
		clk.advance(2 * time.Second)
		if _, err := s.Authenticate(ctx, tok.AccessToken); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("accepted beyond leeway: %v", err)
		}
	})
}

func TestAuthenticateFollowsTheSession(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, st *testStore, sess Session, now time.Time)
	}{
		{"revoked", func(t *testing.T, st *testStore, sess Session, now time.Time) {
			if err := st.RevokeSession(ctx, sess.UserID, sess.ID, now); err != nil {
				t.Fatal(err)
			}
		}},
		{"expired before the token", func(t *testing.T, st *testStore, sess Session, now time.Time) {
			st.exec(t, "UPDATE sessions SET expires_at = ? WHERE id = ?", sqliteTime(now), sess.ID)
		}},
		{"deleted", func(t *testing.T, st *testStore, sess Session, _ time.Time) {
			if err := st.DeleteUser(ctx, sess.UserID); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, _ := newTestService(t)
			_, _, tok := register(t, s, "Ada")
			sess := st.session(t, tok.SessionID)
			tt.change(t, st, sess, s.now())
			if _, err := s.Authenticate(ctx, tok.AccessToken); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Authenticate = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestAccessTokenClaims(t *testing.T) {
	s, _, _ := newTestService(t, func(c *Config) { c.Audience = "my-app" })
	u, _, tok := register(t, s, "Ada")
	kid, priv := s.keys.signingKey()
	var c accessClaims
	parsed, err := jwt.ParseWithClaims(tok.AccessToken, &c, func(*jwt.Token) (any, error) {
		return priv.Public(), nil
	}, jwt.WithoutClaimsValidation())
	if err != nil {
		t.Fatal(err)
	}
	now := s.now()
	if parsed.Header["alg"] != "EdDSA" || parsed.Header["kid"] != kid {
		t.Errorf("header = %v", parsed.Header)
	}
	if c.Issuer != "https://latchkey.test" || len(c.Audience) != 1 || c.Audience[0] != "my-app" ||
		c.Subject != u.ID || c.SessionID != tok.SessionID ||
		c.IssuedAt.Unix() != now.Unix() || c.ExpiresAt.Unix() != now.Add(15*time.Minute).Unix() {
		t.Errorf("claims = %+v", c)
	}
}

// addKey stores a new signing key, as another instance would.
func addKey(t *testing.T, s *Service, st *testStore, createdAt time.Time, retiredAt *time.Time) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	kid := thumbprint(pub)
	enc, err := s.sealer.seal(purposeSigningKey, kid, priv.Seed())
	if err != nil {
		t.Fatal(err)
	}
	k := &SigningKey{ID: kid, PrivateEnc: enc, Public: pub, CreatedAt: createdAt, RetiredAt: retiredAt}
	if err := st.CreateSigningKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return kid, priv
}

func TestUnknownKidReloadsAtMostEvery30s(t *testing.T) {
	ctx := context.Background()
	s, st, clk := newTestService(t)
	u, _, tok := register(t, s, "Ada")
	claims := func() jwt.MapClaims {
		now := s.now()
		return jwt.MapClaims{"iss": "https://latchkey.test", "aud": "latchkey", "sub": u.ID,
			"sid": tok.SessionID, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	loads := func() int { st.mu.Lock(); defer st.mu.Unlock(); return st.keyLoads }

	// Another instance's key: the first unknown kid reloads and is accepted.
	kid1, priv1 := addKey(t, s, st, s.now().Add(time.Second), nil)
	before := loads()
	if _, err := s.Authenticate(ctx, forge(t, jwt.SigningMethodEdDSA, priv1, kid1, claims())); err != nil {
		t.Fatalf("token of a key created elsewhere refused: %v", err)
	}
	if loads() != before+1 {
		t.Errorf("reloads = %d, want 1", loads()-before)
	}
	if got, _ := s.keys.signingKey(); got != kid1 {
		t.Errorf("signer after reload = %s, want the newest key %s", got, kid1)
	}

	// Bogus kids within 30 s do not reach the store; a real new key waits.
	kid2, priv2 := addKey(t, s, st, s.now().Add(2*time.Second), nil)
	for range 5 {
		clk.advance(time.Second)
		s.Authenticate(ctx, forge(t, jwt.SigningMethodEdDSA, priv1, "bogus", claims()))
	}
	if _, err := s.Authenticate(ctx, forge(t, jwt.SigningMethodEdDSA, priv2, kid2, claims())); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("new key accepted before the reload interval: %v", err)
	}
	if loads() != before+1 {
		t.Errorf("bogus kids caused %d reloads", loads()-before-1)
	}
	clk.advance(25 * time.Second)
	if _, err := s.Authenticate(ctx, forge(t, jwt.SigningMethodEdDSA, priv2, kid2, claims())); err != nil {
		t.Errorf("new key refused after the reload interval: %v", err)
	}
	if loads() != before+2 {
		t.Errorf("reloads = %d, want 2", loads()-before)
	}
}

func TestRetiredKeys(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	u, _, tok := register(t, s, "Ada")
	now := s.now()
	recent := now.Add(-10 * time.Minute)
	// Retired longer ago than any token it (or an instance that had not
	// noticed the retirement yet) can have signed is valid.
	old := now.Add(-15*time.Minute - jwtLeeway - signerCheckInterval)
	recentKid, recentPriv := addKey(t, s, st, now.Add(-time.Hour), &recent)
	oldKid, oldPriv := addKey(t, s, st, now.Add(-2*time.Hour), &old)
	if _, err := s.reloadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if kid, _ := s.keys.signingKey(); kid == recentKid || kid == oldKid {
		t.Error("a retired key signs")
	}

	claims := jwt.MapClaims{"iss": "https://latchkey.test", "aud": "latchkey", "sub": u.ID,
		"sid": tok.SessionID, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	if _, err := s.Authenticate(ctx, forge(t, jwt.SigningMethodEdDSA, recentPriv, recentKid, claims)); err != nil {
		t.Errorf("recently retired key refused: %v", err)
	}
	if _, err := s.Authenticate(ctx, forge(t, jwt.SigningMethodEdDSA, oldPriv, oldKid, claims)); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("long retired key accepted: %v", err)
	}

	jwks, err := s.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	curKid, curPriv := s.keys.signingKey()
	want := map[string]ed25519.PublicKey{
		curKid:    curPriv.Public().(ed25519.PublicKey),
		recentKid: recentPriv.Public().(ed25519.PublicKey),
	}
	if len(jwks) != len(want) {
		t.Fatalf("JWKS has %d keys, want %d: %+v", len(jwks), len(want), jwks)
	}
	for _, k := range jwks {
		pub, ok := want[k.Kid]
		if !ok {
			t.Errorf("unexpected key %s", k.Kid)
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || !pub.Equal(ed25519.PublicKey(x)) {
			t.Errorf("key %s: x = %q", k.Kid, k.X)
		}
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Use != "sig" || k.Alg != "EdDSA" {
			t.Errorf("key %s = %+v", k.Kid, k)
		}
		if k.Kid != thumbprint(pub) {
			t.Errorf("kid %s is not the key's thumbprint", k.Kid)
		}
	}
}

func TestRefreshRotation(t *testing.T) {
	ctx := context.Background()
	s, st, clk := newTestService(t)
	u, _, tok := register(t, s, "Ada")

	clk.advance(time.Hour)
	next, err := s.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if next.RefreshToken == tok.RefreshToken || next.SessionID != tok.SessionID {
		t.Fatalf("rotation = %+v", next)
	}
	if next.RefreshExpiresIn != 720*3600 {
		t.Errorf("RefreshExpiresIn = %d, want the full sliding TTL", next.RefreshExpiresIn)
	}
	sess := st.session(t, tok.SessionID)
	if now := s.now(); !sess.ExpiresAt.Equal(now.Add(720*time.Hour)) || !sess.LastUsed.Equal(now) {
		t.Errorf("session not slid: %+v", sess)
	}
	if p, err := s.Authenticate(ctx, next.AccessToken); err != nil || p.UserID != u.ID {
		t.Errorf("new access token: %+v, %v", p, err)
	}

	// A retry within the grace answers with the same successor.
	clk.advance(10 * time.Second)
	again, err := s.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatalf("retry within grace: %v", err)
	}
	if again.RefreshToken != next.RefreshToken {
		t.Error("retry within grace got another successor")
	}
	if again.AccessToken == "" || again.RefreshExpiresIn != 720*3600-10 {
		t.Errorf("retry = %+v", again)
	}

	// The successor rotates in turn.
	third, err := s.Refresh(ctx, next.RefreshToken)
	if err != nil || third.RefreshToken == next.RefreshToken {
		t.Fatalf("second rotation = %+v, %v", third, err)
	}
}

func TestRefreshReuseRevokesTheSession(t *testing.T) {
	ctx := context.Background()
	s, st, clk := newTestService(t)
	_, secret, tok := register(t, s, "Ada")
	other := signIn(t, s, secret)
	next, err := s.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(10*time.Second + time.Microsecond)
	if _, err := s.Refresh(ctx, tok.RefreshToken); !errors.Is(err, ErrRefreshReused) {
		t.Fatalf("reuse after grace = %v, want ErrRefreshReused", err)
	}
	if sess := st.session(t, tok.SessionID); sess.RevokedAt == nil {
		t.Error("session not revoked")
	}
	if _, err := s.Refresh(ctx, next.RefreshToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("successor after reuse = %v, want ErrUnauthenticated", err)
	}
	if _, err := s.Authenticate(ctx, next.AccessToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("access token after reuse = %v, want ErrUnauthenticated", err)
	}
	if _, err := s.Authenticate(ctx, other.AccessToken); err != nil {
		t.Errorf("another session was hurt: %v", err)
	}
	if _, err := s.Refresh(ctx, tok.RefreshToken); !errors.Is(err, ErrRefreshReused) {
		t.Errorf("second reuse = %v, want ErrRefreshReused", err)
	}
}

func TestRefreshRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, s *Service, st *testStore, clk *testClock, tok *Tokens) string
	}{
		{"unknown", func(_ *testing.T, _ *Service, _ *testStore, _ *testClock, _ *Tokens) string {
			return "no-such-token"
		}},
		{"access token", func(_ *testing.T, _ *Service, _ *testStore, _ *testClock, tok *Tokens) string {
			return tok.AccessToken
		}},
		{"expired", func(_ *testing.T, _ *Service, _ *testStore, clk *testClock, tok *Tokens) string {
			clk.advance(720 * time.Hour)
			return tok.RefreshToken
		}},
		{"logged out", func(t *testing.T, s *Service, _ *testStore, _ *testClock, tok *Tokens) string {
			if err := s.LogoutRefresh(ctx, tok.RefreshToken); err != nil {
				t.Fatal(err)
			}
			return tok.RefreshToken
		}},
		{"retry within grace of a revoked session", func(t *testing.T, s *Service, _ *testStore, clk *testClock, tok *Tokens) string {
			next, err := s.Refresh(ctx, tok.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.LogoutRefresh(ctx, next.RefreshToken); err != nil {
				t.Fatal(err)
			}
			clk.advance(time.Second)
			return tok.RefreshToken
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, clk := newTestService(t)
			_, _, tok := register(t, s, "Ada")
			rt := tt.setup(t, s, st, clk, tok)
			if got, err := s.Refresh(ctx, rt); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Refresh = %+v, %v; want ErrUnauthenticated", got, err)
			}
		})
	}
}

func TestRefreshConcurrentTabsAgree(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	_, _, tok := register(t, s, "Ada")
	const n = 16
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := s.Refresh(ctx, tok.RefreshToken)
			errs[i] = err
			if err == nil {
				got[i] = res.RefreshToken
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("tab %d: %q, %v; tab 0: %q", i, got[i], errs[i], got[0])
		}
	}
}

func TestLogout(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		scope       string
		wantLive    [3]bool // current, second, third session
		wantInvalid bool
	}{
		{"", [3]bool{false, true, true}, false},
		{"current", [3]bool{false, true, true}, false},
		{"others", [3]bool{true, false, false}, false},
		{"all", [3]bool{false, false, false}, false},
		{"everything", [3]bool{true, true, true}, true},
		{"Current", [3]bool{true, true, true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			s, st, _ := newTestService(t)
			u, secret, tok := register(t, s, "Ada")
			toks := []*Tokens{tok, signIn(t, s, secret), signIn(t, s, secret)}
			_, _, bystander := register(t, s, "Bob")

			err := s.Logout(ctx, Principal{UserID: u.ID, SessionID: tok.SessionID}, tt.scope)
			if tt.wantInvalid {
				if got := fieldsOf(t, err); len(got) != 1 || got[0] != "scope" {
					t.Errorf("fields = %v", got)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for i, tk := range toks {
				_, err := s.Authenticate(ctx, tk.AccessToken)
				if live := err == nil; live != tt.wantLive[i] {
					t.Errorf("session %d live = %v, want %v", i, live, tt.wantLive[i])
				}
			}
			if _, err := s.Authenticate(ctx, bystander.AccessToken); err != nil {
				t.Errorf("another user's session hurt: %v", err)
			}
			if sess := st.session(t, bystander.SessionID); sess.RevokedAt != nil {
				t.Error("bystander revoked")
			}
		})
	}
}

func TestLogoutCurrentTwice(t *testing.T) {
	s, _, _ := newTestService(t)
	u, _, tok := register(t, s, "Ada")
	p := Principal{UserID: u.ID, SessionID: tok.SessionID}
	if err := s.Logout(context.Background(), p, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(context.Background(), p, ""); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("second logout = %v, want ErrUnauthenticated", err)
	}
}

func TestLogoutRefresh(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	_, _, tok := register(t, s, "Ada")
	if err := s.LogoutRefresh(ctx, "unknown"); err != nil {
		t.Errorf("unknown token = %v, want nil", err)
	}
	if err := s.LogoutRefresh(ctx, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, tok.AccessToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("access token after logout = %v", err)
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	s, _, clk := newTestService(t)
	u, secret, first := register(t, s, "Ada")
	clk.advance(time.Second)
	second := signIn(t, s, secret)
	clk.advance(time.Second)
	third := signIn(t, s, secret)
	_, _, bob := register(t, s, "Bob")
	me := Principal{UserID: u.ID, SessionID: third.SessionID}

	if err := s.RevokeSession(ctx, me, bob.SessionID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking another user's session = %v, want ErrNotFound", err)
	}
	if _, err := s.Authenticate(ctx, bob.AccessToken); err != nil {
		t.Errorf("another user's session revoked: %v", err)
	}
	if err := s.RevokeSession(ctx, me, "no-such-session"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session = %v, want ErrNotFound", err)
	}
	if err := s.RevokeSession(ctx, me, second.SessionID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSession(ctx, me, second.SessionID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice = %v, want ErrNotFound", err)
	}

	list, err := s.Sessions(ctx, me)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != third.SessionID || list[1].ID != first.SessionID {
		t.Errorf("sessions = %+v, want third then first", list)
	}
}
