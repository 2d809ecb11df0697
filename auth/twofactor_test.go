package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/auth/totp"
)

// twoFactorService is newTestService with a cheap password hasher.
func twoFactorService(t *testing.T, edit ...func(*Config)) (*Service, *testStore, *testClock) {
	t.Helper()
	h, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return newTestService(t, append([]func(*Config){func(c *Config) { c.Hasher = h }}, edit...)...)
}

// countingLimiter counts takes per key (less refunds) and refuses a key
// that has max.
type countingLimiter struct {
	mu     sync.Mutex
	max    int
	counts map[string]int
}

func newCountingLimiter(max int) *countingLimiter {
	return &countingLimiter{max: max, counts: map[string]int{}}
}

func (l *countingLimiter) Take(_ context.Context, key string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts[key] >= l.max {
		return time.Minute, nil
	}
	l.counts[key]++
	return 0, nil
}

func (l *countingLimiter) Refund(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts[key] > 0 {
		l.counts[key]--
	}
	return nil
}

func (l *countingLimiter) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[key]
}

// codeAt is the code of key at t, as an authenticator app shows it.
func codeAt(key []byte, t time.Time) string {
	return totp.Code(key, totp.Step(t))
}

// wrongCode is a code of the right shape that key does not give near now.
func wrongCode(key []byte, now time.Time) string {
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", i)
		if _, ok := totp.Match(key, c, now, 0); !ok {
			return c
		}
	}
}

// enroll starts an enrolment and returns it with the key it carries.
func enroll(t *testing.T, s *Service, userID string, c TwoFactorCredentials) (*TwoFactorEnrollment, []byte) {
	t.Helper()
	e, err := s.EnrollTwoFactor(context.Background(), userID, c, ClientMeta{})
	if err != nil {
		t.Fatalf("EnrollTwoFactor: %v", err)
	}
	key, err := totp.DecodeKey(e.Secret)
	if err != nil {
		t.Fatalf("the enrolment's secret %q is not base32: %v", e.Secret, err)
	}
	return e, key
}

// enable enrols and confirms two-factor at the clock's current step, and
// returns the key and the recovery codes.
func enable(t *testing.T, s *Service, clk *testClock, userID string, c TwoFactorCredentials) ([]byte, []string) {
	t.Helper()
	_, key := enroll(t, s, userID, c)
	codes, err := s.ConfirmTwoFactor(context.Background(), userID, codeAt(key, clk.now()), ClientMeta{})
	if err != nil {
		t.Fatalf("ConfirmTwoFactor: %v", err)
	}
	return key, codes
}

// challenge signs in with the secret and returns the two-factor token.
func challenge(t *testing.T, s *Service, secret string) string {
	t.Helper()
	res, err := s.SignIn(context.Background(), Credentials{Secret: secret}, ClientMeta{UserAgent: "first/1.0", IP: "192.0.2.9"})
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	if res.Tokens != nil || res.TwoFactorToken == "" {
		t.Fatalf("SignIn = %+v, want a challenge and no tokens", res)
	}
	return res.TwoFactorToken
}

func wantIs(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

var recoveryCodeShape = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)

func TestEnrollAndConfirmSecretAccount(t *testing.T) {
	ctx := context.Background()
	s, st, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "Ada: the Countess")

	e, key := enroll(t, s, u.ID, TwoFactorCredentials{Secret: secret})
	if len(key) != 20 {
		t.Errorf("key of %d bytes, want 20 (160 bits)", len(key))
	}
	wantURL := "otpauth://totp/Latchkey:Ada%3A%20the%20Countess?secret=" + e.Secret + "&issuer=Latchkey&algorithm=SHA1&digits=6&period=30"
	if e.URL != wantURL {
		t.Errorf("URL = %s, want %s", e.URL, wantURL)
	}
	if !bytes.HasPrefix(e.QRCode, []byte("\x89PNG\r\n\x1a\n")) {
		t.Error("the QR code is not a PNG")
	}

	stored, _ := st.UserByID(ctx, u.ID)
	if stored.TwoFactorEnabled || stored.TOTPKeyEnc != nil {
		t.Fatal("two-factor is on before confirmation")
	}
	if len(stored.TOTPPendingEnc) == 0 || bytes.Contains(stored.TOTPPendingEnc, key) {
		t.Fatal("the pending key is not stored sealed")
	}
	if opened, err := s.sealer.open(purposeTOTPKey, u.ID, stored.TOTPPendingEnc); err != nil || !bytes.Equal(opened, key) {
		t.Fatalf("the sealed pending key opens to %x, %v", opened, err)
	}

	now := clk.now()
	_, err := s.ConfirmTwoFactor(ctx, u.ID, codeAt(key, now.Add(-2*totp.Period)), ClientMeta{})
	wantIs(t, "confirm with a stale code", err, ErrInvalidCode)
	_, err = s.ConfirmTwoFactor(ctx, u.ID, "12345-67890", ClientMeta{})
	wantIs(t, "confirm with a recovery-shaped code", err, ErrInvalidCode)

	code := codeAt(key, now)
	codes, err := s.ConfirmTwoFactor(ctx, u.ID, code[:3]+" "+code[3:], ClientMeta{})
	if err != nil {
		t.Fatalf("ConfirmTwoFactor: %v", err)
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes, want 10", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !recoveryCodeShape.MatchString(c) || seen[c] {
			t.Errorf("recovery code %q is malformed or repeated", c)
		}
		seen[c] = true
	}

	stored, _ = st.UserByID(ctx, u.ID)
	switch {
	case !stored.TwoFactorEnabled:
		t.Error("two-factor is not on after confirmation")
	case stored.TOTPPendingEnc != nil:
		t.Error("the pending key is still pending")
	case stored.TOTPLastStep != totp.Step(now):
		t.Errorf("last step = %d, want the confirming step %d", stored.TOTPLastStep, totp.Step(now))
	}
	if opened, err := s.sealer.open(purposeTOTPKey, u.ID, stored.TOTPKeyEnc); err != nil || !bytes.Equal(opened, key) {
		t.Errorf("the key opens to %x, %v", opened, err)
	}
	if n := st.count(t, "recovery_codes WHERE user_id = ?", u.ID); n != 10 {
		t.Errorf("%d recovery codes stored, want 10", n)
	}
	for _, h := range st.blobs(t, "SELECT hash FROM recovery_codes") {
		for _, c := range codes {
			if strings.Contains(string(h), strings.ReplaceAll(c, "-", "")) {
				t.Fatal("a recovery code is stored in plaintext")
			}
		}
	}

	_, err = s.ConfirmTwoFactor(ctx, u.ID, codeAt(key, now), ClientMeta{})
	wantIs(t, "confirm again", err, ErrAlreadyEnabled)
	_, err = s.EnrollTwoFactor(ctx, u.ID, TwoFactorCredentials{Secret: secret}, ClientMeta{})
	wantIs(t, "enrol again", err, ErrAlreadyEnabled)
	if me, _ := s.Me(ctx, u.ID); !me.TwoFactorEnabled {
		t.Error("Me does not show two-factor on")
	}
}

func TestEnrollCredentials(t *testing.T) {
	ctx := context.Background()
	s, _, _ := twoFactorService(t)
	sec, secret, _ := register(t, s, "secret")
	pw, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: "Ada@Example.com", Password: "analytical engine 1843", Username: new("ada_l")}, ClientMeta{})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		userID  string
		c       TwoFactorCredentials
		want    error
		invalid string // the field of a ValidationError
	}{
		{"secret: wrong secret", sec.ID, TwoFactorCredentials{Secret: secret + "x"}, ErrInvalidCredentials, ""},
		{"secret: missing", sec.ID, TwoFactorCredentials{}, nil, "secret"},
		{"secret: a password instead", sec.ID, TwoFactorCredentials{Password: "whatever it is"}, nil, "password"},
		{"password: wrong password", pw.ID, TwoFactorCredentials{Password: "analytical engine 1842"}, ErrInvalidCredentials, ""},
		{"password: missing", pw.ID, TwoFactorCredentials{}, nil, "password"},
		{"password: a secret instead", pw.ID, TwoFactorCredentials{Secret: secret}, nil, "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.EnrollTwoFactor(ctx, tt.userID, tt.c, ClientMeta{})
			if tt.invalid != "" {
				if f := fieldsOf(t, err); len(f) != 1 || f[0] != tt.invalid {
					t.Fatalf("fields %v, want [%s]", f, tt.invalid)
				}
				return
			}
			wantIs(t, "EnrollTwoFactor", err, tt.want)
		})
	}

	e, _ := enroll(t, s, pw.ID, TwoFactorCredentials{Password: "analytical engine 1843"})
	if !strings.HasPrefix(e.URL, "otpauth://totp/Latchkey:ada%40example.com?") {
		t.Errorf("URL %s does not name the account by its email", e.URL)
	}
}

func TestEnrollWrongCredentialsCount(t *testing.T) {
	ctx := context.Background()
	lim := newCountingLimiter(3)
	s, _, _ := twoFactorService(t, func(c *Config) { c.Limits.LoginAccount, c.Limits.LoginClient = lim, lim })
	u, secret, _ := register(t, s, "guessed")
	meta := ClientMeta{IP: "192.0.2.44"}
	for range 3 {
		_, err := s.EnrollTwoFactor(ctx, u.ID, TwoFactorCredentials{Secret: "wrong"}, meta)
		wantIs(t, "wrong secret", err, ErrInvalidCredentials)
	}
	if lim.count("user:"+u.ID) != 3 || lim.count("ip:192.0.2.44") != 3 {
		t.Errorf("counts = %v, want 3 for the account and the address", lim.counts)
	}
	_, err := s.EnrollTwoFactor(ctx, u.ID, TwoFactorCredentials{Secret: secret}, meta)
	wantIs(t, "right secret past the limit", err, ErrRateLimited)
}

func TestReenrollReplacesPendingKey(t *testing.T) {
	ctx := context.Background()
	s, _, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "twice")
	_, first := enroll(t, s, u.ID, TwoFactorCredentials{Secret: secret})
	_, second := enroll(t, s, u.ID, TwoFactorCredentials{Secret: secret})
	if bytes.Equal(first, second) {
		t.Fatal("re-enrolling returned the same key")
	}
	_, err := s.ConfirmTwoFactor(ctx, u.ID, codeAt(first, clk.now()), ClientMeta{})
	wantIs(t, "code of the replaced key", err, ErrInvalidCode)
	if _, err := s.ConfirmTwoFactor(ctx, u.ID, codeAt(second, clk.now()), ClientMeta{}); err != nil {
		t.Fatalf("code of the new key: %v", err)
	}
}

func TestConfirmNothingPending(t *testing.T) {
	s, _, _ := twoFactorService(t)
	u, _, _ := register(t, s, "idle")
	_, err := s.ConfirmTwoFactor(context.Background(), u.ID, "123456", ClientMeta{})
	wantIs(t, "ConfirmTwoFactor", err, ErrNotApplicable)
	err = s.DisableTwoFactor(context.Background(), u.ID, "123456", ClientMeta{})
	wantIs(t, "DisableTwoFactor", err, ErrNotApplicable)
}

func TestSignInTwoFactor(t *testing.T) {
	ctx := context.Background()
	s, st, clk := twoFactorService(t, func(c *Config) { c.TwoFactorTTL = 2 * time.Minute })
	u, secret, _ := register(t, s, "guarded")
	key, _ := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})

	res, err := s.SignIn(ctx, Credentials{Secret: secret}, ClientMeta{UserAgent: "first/1.0", IP: "192.0.2.9"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tokens != nil || res.TwoFactorExpiresIn != 120 || len(res.TwoFactorToken) != 43 {
		t.Fatalf("SignIn = %+v, want a 256-bit challenge token for 120 s and no tokens", res)
	}
	c, err := st.TwoFactorChallenge(ctx, tokenHash(kindTwoFactor, res.TwoFactorToken))
	if err != nil {
		t.Fatalf("the challenge is not stored under its hash: %v", err)
	}
	if c.UserID != u.ID || c.AttemptsLeft != 5 || !c.ExpiresAt.Equal(s.now().Add(2*time.Minute)) || c.IP != "192.0.2.9" {
		t.Errorf("challenge = %+v", c)
	}

	// The step that confirmed enrolment is used: the next one signs in.
	_, err = s.SignInTwoFactor(ctx, res.TwoFactorToken, codeAt(key, clk.now()), ClientMeta{})
	wantIs(t, "the confirming step", err, ErrInvalidCode)
	out, err := s.SignInTwoFactor(ctx, res.TwoFactorToken, codeAt(key, clk.now().Add(totp.Period)), ClientMeta{IP: "198.51.100.1"})
	if err != nil {
		t.Fatalf("SignInTwoFactor: %v", err)
	}
	if out.Tokens == nil || out.TwoFactorToken != "" {
		t.Fatalf("SignInTwoFactor = %+v, want tokens", out)
	}
	p, err := s.Authenticate(ctx, out.Tokens.AccessToken)
	if err != nil || p.UserID != u.ID {
		t.Fatalf("the access token: %+v, %v", p, err)
	}
	sess := st.session(t, out.Tokens.SessionID)
	if sess.UserAgent != "first/1.0" || sess.IP != "192.0.2.9" {
		t.Errorf("session meta = %q %q, want the first factor's", sess.UserAgent, sess.IP)
	}

	// Single use.
	_, err = s.SignInTwoFactor(ctx, res.TwoFactorToken, codeAt(key, clk.now().Add(totp.Period)), ClientMeta{})
	wantIs(t, "the used challenge", err, ErrInvalidToken)
	_, err = s.SignInTwoFactor(ctx, "not-a-token", "123456", ClientMeta{})
	wantIs(t, "an unknown challenge", err, ErrInvalidToken)
}

func TestSignInTwoFactorSteps(t *testing.T) {
	ctx := context.Background()
	s, _, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "steps")
	key, _ := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})
	clk.advance(10 * totp.Period)
	now := clk.now()

	token := challenge(t, s, secret)
	for _, d := range []time.Duration{-2 * totp.Period, 2 * totp.Period} {
		_, err := s.SignInTwoFactor(ctx, token, codeAt(key, now.Add(d)), ClientMeta{})
		wantIs(t, "a code "+d.String()+" away", err, ErrInvalidCode)
	}
	if _, err := s.SignInTwoFactor(ctx, token, codeAt(key, now.Add(-totp.Period)), ClientMeta{}); err != nil {
		t.Fatalf("the previous step: %v", err)
	}
	// Replays of that step, and of earlier ones, fail; later ones work.
	token = challenge(t, s, secret)
	_, err := s.SignInTwoFactor(ctx, token, codeAt(key, now.Add(-totp.Period)), ClientMeta{})
	wantIs(t, "a replayed step", err, ErrInvalidCode)
	if _, err := s.SignInTwoFactor(ctx, token, codeAt(key, now), ClientMeta{}); err != nil {
		t.Fatalf("the current step: %v", err)
	}
	token = challenge(t, s, secret)
	_, err = s.SignInTwoFactor(ctx, token, codeAt(key, now), ClientMeta{})
	wantIs(t, "the current step again", err, ErrInvalidCode)
	if _, err := s.SignInTwoFactor(ctx, token, codeAt(key, now.Add(totp.Period)), ClientMeta{}); err != nil {
		t.Fatalf("the next step: %v", err)
	}
	token = challenge(t, s, secret)
	_, err = s.SignInTwoFactor(ctx, token, codeAt(key, now), ClientMeta{})
	wantIs(t, "a step before the last used one", err, ErrInvalidCode)
}

func TestSignInTwoFactorRecoveryCodes(t *testing.T) {
	ctx := context.Background()
	s, st, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "lost phone")
	_, codes := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})

	// Typed loosely: upper case, spaces, no dash.
	loose := strings.ToUpper(strings.Replace(codes[0], "-", " ", 1))
	token := challenge(t, s, secret)
	if _, err := s.SignInTwoFactor(ctx, token, loose, ClientMeta{}); err != nil {
		t.Fatalf("a recovery code: %v", err)
	}
	if n := st.count(t, "recovery_codes WHERE user_id = ?", u.ID); n != 9 {
		t.Errorf("%d recovery codes left, want 9", n)
	}
	token = challenge(t, s, secret)
	_, err := s.SignInTwoFactor(ctx, token, codes[0], ClientMeta{})
	wantIs(t, "a used recovery code", err, ErrInvalidCode)
	_, err = s.SignInTwoFactor(ctx, token, "zzzzz-zzzzz", ClientMeta{})
	wantIs(t, "an unknown recovery code", err, ErrInvalidCode)
	if _, err := s.SignInTwoFactor(ctx, token, codes[1], ClientMeta{}); err != nil {
		t.Fatalf("another recovery code: %v", err)
	}

	// Another account's codes are not this one's.
	other, otherSecret, _ := register(t, s, "other")
	_, otherCodes := enable(t, s, clk, other.ID, TwoFactorCredentials{Secret: otherSecret})
	token = challenge(t, s, secret)
	_, err = s.SignInTwoFactor(ctx, token, otherCodes[0], ClientMeta{})
	wantIs(t, "another account's recovery code", err, ErrInvalidCode)
}

func TestChallengeDiesAfterFiveWrongCodes(t *testing.T) {
	ctx := context.Background()
	// No rate limits at all: the challenge's own count still applies.
	s, _, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "guessed")
	key, _ := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})
	right := codeAt(key, clk.now().Add(totp.Period))
	wrong := wrongCode(key, clk.now())

	token := challenge(t, s, secret)
	for i := 1; i <= 5; i++ {
		_, err := s.SignInTwoFactor(ctx, token, wrong, ClientMeta{})
		wantIs(t, "wrong code", err, ErrInvalidCode)
	}
	_, err := s.SignInTwoFactor(ctx, token, right, ClientMeta{})
	wantIs(t, "the right code after five wrong ones", err, ErrInvalidToken)

	// Four wrong codes leave one attempt.
	token = challenge(t, s, secret)
	for range 4 {
		_, err := s.SignInTwoFactor(ctx, token, "not a code", ClientMeta{})
		wantIs(t, "wrong code", err, ErrInvalidCode)
	}
	if _, err := s.SignInTwoFactor(ctx, token, right, ClientMeta{}); err != nil {
		t.Fatalf("the right code after four wrong ones: %v", err)
	}
}

func TestChallengeExpires(t *testing.T) {
	ctx := context.Background()
	s, st, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "slow")
	key, _ := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})

	token := challenge(t, s, secret)
	clk.advance(5 * time.Minute)
	_, err := s.SignInTwoFactor(ctx, token, codeAt(key, clk.now()), ClientMeta{})
	wantIs(t, "an expired challenge", err, ErrInvalidToken)

	// The next challenge sweeps the expired one.
	token = challenge(t, s, secret)
	if n := st.count(t, "two_factor_challenges"); n != 1 {
		t.Errorf("%d challenges stored, want 1", n)
	}
	clk.advance(5*time.Minute - time.Microsecond)
	if _, err := s.SignInTwoFactor(ctx, token, codeAt(key, clk.now()), ClientMeta{}); err != nil {
		t.Fatalf("a challenge at the end of its life: %v", err)
	}
}

func TestWrongCodesCountTowardSignInLimits(t *testing.T) {
	ctx := context.Background()
	account, client := newCountingLimiter(4), newCountingLimiter(40)
	s, _, clk := twoFactorService(t, func(c *Config) { c.Limits.LoginAccount, c.Limits.LoginClient = account, client })
	pw := "analytical engine 1843"
	u, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: "ada@example.com", Password: pw, Username: new("Ada_L")}, ClientMeta{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := enable(t, s, clk, u.ID, TwoFactorCredentials{Password: pw})
	meta := ClientMeta{IP: "192.0.2.80"}

	res, err := s.SignIn(ctx, Credentials{Username: "ada_l", Password: pw}, meta)
	if err != nil || res.TwoFactorToken == "" {
		t.Fatalf("SignIn = %+v, %v; want a challenge", res, err)
	}
	for range 3 {
		_, err := s.SignInTwoFactor(ctx, res.TwoFactorToken, wrongCode(key, clk.now()), meta)
		wantIs(t, "wrong code", err, ErrInvalidCode)
	}
	if n := account.count("user:" + u.ID); n != 3 {
		t.Errorf("account limit counted %d, want 3", n)
	}
	if n := client.count("ip:192.0.2.80"); n != 3 {
		t.Errorf("client limit counted %d, want 3", n)
	}
	// A wrong code on disabling counts too, and then the account is at
	// its limit: even a right code is refused, as is a password sign-in.
	err = s.DisableTwoFactor(ctx, u.ID, wrongCode(key, clk.now()), meta)
	wantIs(t, "wrong code on disable", err, ErrInvalidCode)
	_, err = s.SignInTwoFactor(ctx, res.TwoFactorToken, codeAt(key, clk.now().Add(totp.Period)), meta)
	wantIs(t, "a right code past the limit", err, ErrRateLimited)
	_, err = s.SignIn(ctx, Credentials{Email: "ada@example.com", Password: pw}, meta)
	wantIs(t, "a password sign-in past the limit", err, ErrRateLimited)
}

func TestSignInTwoFactorConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "racy")
	key, _ := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})

	for _, sameChallenge := range []bool{true, false} {
		clk.advance(2 * totp.Period) // a fresh step each round
		code := codeAt(key, clk.now())
		tokens := make([]string, 10)
		for i := range tokens {
			if i == 0 || !sameChallenge {
				tokens[i] = challenge(t, s, secret)
			} else {
				tokens[i] = tokens[0]
			}
		}
		var (
			wg sync.WaitGroup
			mu sync.Mutex
			ok int
		)
		for _, tok := range tokens {
			wg.Go(func() {
				_, err := s.SignInTwoFactor(ctx, tok, code, ClientMeta{})
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				} else if !errors.Is(err, ErrInvalidCode) && !errors.Is(err, ErrInvalidToken) {
					t.Errorf("SignInTwoFactor: %v", err)
				}
			})
		}
		wg.Wait()
		if ok != 1 {
			t.Errorf("same challenge %v: %d successes, want 1", sameChallenge, ok)
		}
	}
}

func TestDisableTwoFactor(t *testing.T) {
	ctx := context.Background()
	s, st, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "done")
	key, codes := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})
	challenge(t, s, secret) // outstanding; dies with two-factor

	err := s.DisableTwoFactor(ctx, u.ID, codeAt(key, clk.now()), ClientMeta{})
	wantIs(t, "the confirming step", err, ErrInvalidCode)
	err = s.DisableTwoFactor(ctx, u.ID, "zzzzz-zzzzz", ClientMeta{})
	wantIs(t, "an unknown recovery code", err, ErrInvalidCode)
	if err := s.DisableTwoFactor(ctx, u.ID, codes[3], ClientMeta{}); err != nil {
		t.Fatalf("DisableTwoFactor with a recovery code: %v", err)
	}
	stored, _ := st.UserByID(ctx, u.ID)
	if stored.TwoFactorEnabled || stored.TOTPKeyEnc != nil || stored.TOTPPendingEnc != nil {
		t.Errorf("two-factor state after disabling: %+v", stored)
	}
	if st.count(t, "recovery_codes WHERE user_id = ?", u.ID) != 0 || st.count(t, "two_factor_challenges") != 0 {
		t.Error("recovery codes or challenges survive disabling")
	}
	if tok := signIn(t, s, secret); tok == nil {
		t.Error("sign-in after disabling gives no tokens")
	}
	err = s.DisableTwoFactor(ctx, u.ID, codes[4], ClientMeta{})
	wantIs(t, "disable again", err, ErrNotApplicable)

	// Enabled again with a new key, and disabled with a TOTP code; the
	// steps used before stay used.
	clk.advance(totp.Period)
	key, _ = enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})
	clk.advance(totp.Period)
	if err := s.DisableTwoFactor(ctx, u.ID, codeAt(key, clk.now()), ClientMeta{}); err != nil {
		t.Fatalf("DisableTwoFactor with a TOTP code: %v", err)
	}
}

func TestSignInTwoFactorAfterChanges(t *testing.T) {
	ctx := context.Background()
	s, st, clk := twoFactorService(t)
	u, secret, _ := register(t, s, "changing")
	key, _ := enable(t, s, clk, u.ID, TwoFactorCredentials{Secret: secret})
	next := codeAt(key, clk.now().Add(totp.Period))

	token := challenge(t, s, secret)
	st.exec(t, "UPDATE users SET disabled = 1 WHERE id = ?", u.ID)
	_, err := s.SignInTwoFactor(ctx, token, next, ClientMeta{})
	wantIs(t, "a disabled account", err, ErrAccountDisabled)

	st.exec(t, "UPDATE users SET disabled = 0, two_factor_enabled = 0 WHERE id = ?", u.ID)
	_, err = s.SignInTwoFactor(ctx, token, next, ClientMeta{})
	wantIs(t, "two-factor turned off meanwhile", err, ErrInvalidToken)
}

func TestRecoveryCodeNormalization(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"abcde-fghjk", "abcdefghjk", true},
		{"ABCDE FGHJK", "abcdefghjk", true},
		{"0o1il-23456", "0011123456", true},
		{"abcde-fghj", "", false},
		{"abcde-fghjkm", "", false},
		{"abcde-fghju", "", false}, // u is not Crockford
		{"abcde_fghjk", "", false},
		{"abcdé-fghjk", "", false},
	}
	for _, tt := range tests {
		got, ok := normalizeRecoveryCode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeRecoveryCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
