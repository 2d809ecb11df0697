package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/latchkey-dev/latchkey/auth/password"
)

// cheapParams keep the tests' hashes fast.
var cheapParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// cheapPrefix starts every hash made with cheapParams.
const cheapPrefix = "$argon2id$v=19$m=64,t=1,p=1$"

// A password account used throughout. The password contains neither the
// local part nor the username, and is not a common password.
const (
	adaEmail    = "ada.lovelace@example.com"
	adaUsername = "Ada_L"
	adaPassword = "plum violet orbit 42"
)

func newHasher(t testing.TB, p password.Params, concurrency int, maxWait time.Duration) *password.Hasher {
	t.Helper()
	h, err := password.NewHasher(p, concurrency, maxWait)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

func withHasher(h *password.Hasher) func(*Config) {
	return func(c *Config) { c.Hasher = h }
}

// newPasswordService is newTestService with a cheap hasher; edit may
// replace it.
func newPasswordService(t *testing.T, edit ...func(*Config)) (*Service, *testStore, *testClock) {
	t.Helper()
	return newTestService(t, append([]func(*Config){withHasher(newHasher(t, cheapParams, 4, time.Second))}, edit...)...)
}

// registerPassword creates a password account (username may be empty).
func registerPassword(t *testing.T, s *Service, email, username, pw string) (*User, *Tokens) {
	t.Helper()
	in := RegisterPasswordInput{Email: email, Password: pw}
	if username != "" {
		in.Username = &username
	}
	u, tok, err := s.RegisterPassword(context.Background(), in, ClientMeta{})
	if err != nil {
		t.Fatalf("RegisterPassword(%s): %v", email, err)
	}
	return u, tok
}

// storedHash returns the user's stored password hash.
func storedHash(t *testing.T, st *testStore, id string) string {
	t.Helper()
	u, err := st.UserByID(context.Background(), id)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	return u.PasswordHash
}

// fakeLimiter counts takes per key and refuses a key that has max of
// them; it records every call as "take KEY" (recorded), "refused KEY" or
// "refund KEY".
type fakeLimiter struct {
	mu         sync.Mutex
	max        int
	retryAfter time.Duration
	takeErr    error
	refundErr  error
	counts     map[string]int
	calls      []string
}

func newFakeLimiter(max int, retryAfter time.Duration) *fakeLimiter {
	return &fakeLimiter{max: max, retryAfter: retryAfter, counts: map[string]int{}}
}

func (l *fakeLimiter) Take(_ context.Context, key string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.takeErr != nil {
		l.calls = append(l.calls, "failed "+key)
		return 0, l.takeErr
	}
	if l.counts[key] >= l.max {
		l.calls = append(l.calls, "refused "+key)
		return l.retryAfter, nil
	}
	l.calls = append(l.calls, "take "+key)
	l.counts[key]++
	return 0, nil
}

func (l *fakeLimiter) Refund(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, "refund "+key)
	if l.refundErr != nil {
		return l.refundErr
	}
	if l.counts[key] > 0 {
		l.counts[key]--
	}
	return nil
}

// fill uses up key's allowance.
func (l *fakeLimiter) fill(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[key] = l.max
}

// take returns the calls recorded since the last take.
func (l *fakeLimiter) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls := l.calls
	l.calls = nil
	return calls
}

// limiters are the three limits a test watches.
type limiters struct{ account, client, register *fakeLimiter }

func newLimiters() *limiters {
	return &limiters{
		account:  newFakeLimiter(100, 30*time.Second),
		client:   newFakeLimiter(100, 90*time.Second),
		register: newFakeLimiter(100, time.Hour),
	}
}

func (l *limiters) edit(c *Config) {
	c.Limits.LoginAccount, c.Limits.LoginClient, c.Limits.Register = l.account, l.client, l.register
}

func TestRegisterPassword(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newPasswordService(t)
	u, tok, err := s.RegisterPassword(ctx, RegisterPasswordInput{
		Email:        "  Ada.Lovelace@Example.COM ",
		Password:     adaPassword,
		PasswordConf: ptr(adaPassword),
		Username:     ptr(adaUsername),
		Bio:          ptr("  Analyst\n"),
		Locale:       "EN-gb",
		Timezone:     "Europe/London",
	}, ClientMeta{UserAgent: "test/1", IP: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	now := start.UTC().Truncate(time.Microsecond)
	if u.AccountType != AccountPassword || deref(u.Email) != adaEmail || deref(u.Username) != adaUsername ||
		u.Name != adaUsername || deref(u.Bio) != "Analyst" || u.Locale != "en-GB" || u.Timezone != "Europe/London" ||
		!u.CreatedAt.Equal(now) || !u.UpdatedAt.Equal(now) || u.EmailConfirmed || u.SecretHash != nil {
		t.Errorf("user = %+v", u)
	}
	hash := storedHash(t, st, u.ID)
	if !strings.HasPrefix(hash, cheapPrefix) || strings.Contains(hash, adaPassword) {
		t.Errorf("stored hash %q is not an argon2id hash with the hasher's parameters", hash)
	}
	if ok, rehash, err := s.hasher.Verify(ctx, adaPassword, hash); !ok || rehash || err != nil {
		t.Errorf("Verify(stored hash) = %v, %v, %v", ok, rehash, err)
	}
	p, err := s.Authenticate(ctx, tok.AccessToken)
	if err != nil || p.UserID != u.ID || p.SessionID != tok.SessionID {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if sess := st.session(t, tok.SessionID); sess.UserAgent != "test/1" || sess.IP != "192.0.2.7" {
		t.Errorf("session = %+v", sess)
	}
	if _, err := s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{}); err != nil {
		t.Errorf("sign-in after registration: %v", err)
	}
}

func TestRegisterPasswordValidation(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*RegisterPasswordInput)
		fields []string
		weak   bool // ErrWeakPassword
	}{
		{"no email", func(in *RegisterPasswordInput) { in.Email = "" }, []string{"email"}, false},
		{"blank email", func(in *RegisterPasswordInput) { in.Email = " \t " }, []string{"email"}, false},
		{"no @", func(in *RegisterPasswordInput) { in.Email = "ada.example.com" }, []string{"email"}, false},
		{"no local part", func(in *RegisterPasswordInput) { in.Email = "@example.com" }, []string{"email"}, false},
		{"no domain", func(in *RegisterPasswordInput) { in.Email = "ada@" }, []string{"email"}, false},
		{"two @", func(in *RegisterPasswordInput) { in.Email = "ada@b@example.com" }, []string{"email"}, false},
		{"dotless domain", func(in *RegisterPasswordInput) { in.Email = "ada@localhost" }, []string{"email"}, false},
		{"space inside email", func(in *RegisterPasswordInput) { in.Email = "ada l@example.com" }, []string{"email"}, false},
		{"control in email", func(in *RegisterPasswordInput) { in.Email = "ada\x01@example.com" }, []string{"email"}, false},
		{"email of 255 bytes", func(in *RegisterPasswordInput) { in.Email = strings.Repeat("a", 243) + "@example.com" }, []string{"email"}, false},
		{"username of 2", func(in *RegisterPasswordInput) { in.Username = ptr("ab") }, []string{"username"}, false},
		{"username of 31", func(in *RegisterPasswordInput) { in.Username = ptr(strings.Repeat("a", 31)) }, []string{"username"}, false},
		{"username with space", func(in *RegisterPasswordInput) { in.Username = ptr("ada l") }, []string{"username"}, false},
		{"username with @", func(in *RegisterPasswordInput) { in.Username = ptr("ada@l") }, []string{"username"}, false},
		{"username not ASCII", func(in *RegisterPasswordInput) { in.Username = ptr("adà_l") }, []string{"username"}, false},
		{"blank name", func(in *RegisterPasswordInput) { in.Name = ptr("  ") }, []string{"name"}, false},
		{"name of 65", func(in *RegisterPasswordInput) { in.Name = ptr(strings.Repeat("é", 65)) }, []string{"name"}, false},
		{"bio of 501", func(in *RegisterPasswordInput) { in.Bio = ptr(strings.Repeat("x", 501)) }, []string{"bio"}, false},
		{"NUL in bio", func(in *RegisterPasswordInput) { in.Bio = ptr("a\x00b") }, []string{"bio"}, false},
		{"bad locale", func(in *RegisterPasswordInput) { in.Locale = "not a tag" }, []string{"locale"}, false},
		{"unknown timezone", func(in *RegisterPasswordInput) { in.Timezone = "Mars/Olympus_Mons" }, []string{"timezone"}, false},
		{"Local timezone", func(in *RegisterPasswordInput) { in.Timezone = "Local" }, []string{"timezone"}, false},
		{"confirmation differs", func(in *RegisterPasswordInput) { in.PasswordConf = ptr(adaPassword + "!") }, []string{"password_conf"}, false},
		{"empty confirmation", func(in *RegisterPasswordInput) { in.PasswordConf = ptr("") }, []string{"password_conf"}, false},
		{"every field at once", func(in *RegisterPasswordInput) {
			in.Email, in.Username, in.Name, in.Bio = "nope", ptr("a"), ptr(""), ptr(strings.Repeat("x", 501))
			in.Locale, in.Timezone, in.PasswordConf = "not a tag", "Nowhere/Void", ptr("other")
		}, []string{"bio", "email", "locale", "name", "password_conf", "timezone", "username"}, false},
		// A weak password together with another bad field is reported as
		// that field alone, as INVALID_REQUEST.
		{"weak password and bad email", func(in *RegisterPasswordInput) { in.Email, in.Password = "nope", "short" }, []string{"email"}, false},

		{"empty password", func(in *RegisterPasswordInput) { in.Password = "" }, []string{"password"}, true},
		{"7 characters", func(in *RegisterPasswordInput) { in.Password = "zq7#kw!" }, []string{"password"}, true},
		{"7 characters after NFC", func(in *RegisterPasswordInput) { in.Password = strings.Repeat("e\u0301", 7) }, []string{"password"}, true},
		{"129 characters", func(in *RegisterPasswordInput) { in.Password = strings.Repeat("zq7#", 32) + "k" }, []string{"password"}, true},
		{"common", func(in *RegisterPasswordInput) { in.Password = "password1" }, []string{"password"}, true},
		{"common in other case", func(in *RegisterPasswordInput) { in.Password = "PassWord1" }, []string{"password"}, true},
		{"equals the local part", func(in *RegisterPasswordInput) { in.Password = "ADA.Lovelace" }, []string{"password"}, true},
		{"contains the local part", func(in *RegisterPasswordInput) { in.Password = "my ada.lovelace pw" }, []string{"password"}, true},
		{"contains the username", func(in *RegisterPasswordInput) {
			in.Username, in.Password = ptr("Zyx_Q"), "quite long zyx_q pass"
		}, []string{"password"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, _ := newPasswordService(t)
			in := RegisterPasswordInput{Email: adaEmail, Password: adaPassword}
			tt.edit(&in)
			u, tok, err := s.RegisterPassword(context.Background(), in, ClientMeta{})
			if u != nil || tok != nil {
				t.Errorf("invalid registration returned %+v, %+v", u, tok)
			}
			got := fieldsOf(t, err)
			slices.Sort(got)
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %v, want %v", got, tt.fields)
			}
			if errors.Is(err, ErrWeakPassword) != tt.weak {
				t.Errorf("errors.Is(%v, ErrWeakPassword) = %v, want %v", err, !tt.weak, tt.weak)
			}
			if st.count(t, "users") != 0 {
				t.Error("invalid registration stored a user")
			}
		})
	}
}

func TestRegisterPasswordAccepts(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*RegisterPasswordInput)
		signIn string // the password that signs in afterwards
	}{
		{"8 characters", func(in *RegisterPasswordInput) { in.Password = "zq7#kw!p" }, "zq7#kw!p"},
		{"128 characters", func(in *RegisterPasswordInput) { in.Password = strings.Repeat("zq7#", 32) }, strings.Repeat("zq7#", 32)},
		{"128 characters after NFC, sent decomposed", func(in *RegisterPasswordInput) {
			in.Password = strings.Repeat("e\u0301", 128)
		}, strings.Repeat("\u00e9", 128)},
		{"confirmation in another normal form", func(in *RegisterPasswordInput) {
			in.Password, in.PasswordConf = "caf\u00e9 violet orbit", ptr("cafe\u0301 violet orbit")
		}, "caf\u00e9 violet orbit"},
		{"a local part under 3 characters may appear in it", func(in *RegisterPasswordInput) {
			in.Email, in.Password = "zz@example.com", "fizzbuzz orbit 9"
		}, "fizzbuzz orbit 9"},
		{"username of 3", func(in *RegisterPasswordInput) { in.Username = ptr("a.b") }, adaPassword},
		{"username of 30", func(in *RegisterPasswordInput) { in.Username = ptr(strings.Repeat("a-", 15)) }, adaPassword},
		{"email of 254 bytes", func(in *RegisterPasswordInput) { in.Email = strings.Repeat("a", 242) + "@example.com" }, adaPassword},
		{"name of 64", func(in *RegisterPasswordInput) { in.Name = ptr(strings.Repeat("é", 64)) }, adaPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, _, _ := newPasswordService(t)
			in := RegisterPasswordInput{Email: adaEmail, Password: adaPassword}
			tt.edit(&in)
			u, _, err := s.RegisterPassword(ctx, in, ClientMeta{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.SignIn(ctx, Credentials{Email: *u.Email, Password: tt.signIn}, ClientMeta{}); err != nil {
				t.Errorf("SignIn: %v", err)
			}
		})
	}
}

func TestRegisterPasswordDefaults(t *testing.T) {
	tests := []struct {
		name                                   string
		in                                     RegisterPasswordInput
		wantEmail, wantName, wantLoc, wantZone string
	}{
		{"name from username", RegisterPasswordInput{Email: adaEmail, Username: ptr(adaUsername)},
			adaEmail, adaUsername, "en", "UTC"},
		{"name from the normalised local part", RegisterPasswordInput{Email: " Ada.Lovelace@Example.COM\t"},
			adaEmail, "ada.lovelace", "en", "UTC"},
		{"local part cut to 64 runes", RegisterPasswordInput{Email: strings.Repeat("é", 70) + "@example.com"},
			strings.Repeat("é", 70) + "@example.com", strings.Repeat("é", 64), "en", "UTC"},
		{"given name wins, trimmed", RegisterPasswordInput{Email: adaEmail, Username: ptr(adaUsername), Name: ptr(" Ada Lovelace ")},
			adaEmail, "Ada Lovelace", "en", "UTC"},
		{"locale canonical, timezone kept", RegisterPasswordInput{Email: adaEmail, Locale: "pt-br", Timezone: "America/Sao_Paulo"},
			adaEmail, "ada.lovelace", "pt-BR", "America/Sao_Paulo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, st, _ := newPasswordService(t)
			tt.in.Password = adaPassword
			u, _, err := s.RegisterPassword(ctx, tt.in, ClientMeta{})
			if err != nil {
				t.Fatal(err)
			}
			stored, err := st.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range []*User{u, stored} {
				if deref(got.Email) != tt.wantEmail || got.Name != tt.wantName || got.Locale != tt.wantLoc || got.Timezone != tt.wantZone {
					t.Errorf("email %q name %q locale %q timezone %q, want %q %q %q %q", deref(got.Email), got.Name,
						got.Locale, got.Timezone, tt.wantEmail, tt.wantName, tt.wantLoc, tt.wantZone)
				}
			}
		})
	}
}

func TestRegisterPasswordClosed(t *testing.T) {
	l := newLimiters()
	s, st, _ := newPasswordService(t, func(c *Config) { c.RegistrationOpen = false }, l.edit)
	_, _, err := s.RegisterPassword(context.Background(), RegisterPasswordInput{Email: adaEmail, Password: adaPassword},
		ClientMeta{IP: "192.0.2.1"})
	if !errors.Is(err, ErrRegistrationDisabled) {
		t.Errorf("err = %v, want ErrRegistrationDisabled", err)
	}
	if st.count(t, "users") != 0 {
		t.Error("a user was created")
	}
	if got := l.register.take(); got != nil {
		t.Errorf("a closed registration was counted: %q", got)
	}
}

func TestRegisterPasswordTaken(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newPasswordService(t)
	first, _ := registerPassword(t, s, adaEmail, adaUsername, adaPassword)
	hash := storedHash(t, st, first.ID)
	tests := []struct {
		name     string
		email    string
		username *string
		want     error
	}{
		{"email in other case", "ADA.Lovelace@example.com", nil, ErrEmailTaken},
		{"email with spaces", "  " + adaEmail, ptr("other"), ErrEmailTaken},
		{"username in other case", "other@example.com", ptr("aDA_l"), ErrUsernameTaken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{
				Email: tt.email, Username: tt.username, Password: "quiet maple harbour 7",
			}, ClientMeta{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if st.count(t, "users") != 1 || storedHash(t, st, first.ID) != hash {
				t.Error("a duplicate registration changed the store")
			}
		})
	}
}

func TestSignInPassword(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newPasswordService(t)
	ada, _ := registerPassword(t, s, adaEmail, adaUsername, adaPassword)
	long, _ := registerPassword(t, s, "long@example.com", "", strings.Repeat("zq7#", 32))
	accent, _ := registerPassword(t, s, "accent@example.com", "", "caf\u00e9 violet orbit")
	eve, _ := registerPassword(t, s, "eve@example.com", "Eve_X", adaPassword)
	st.exec(t, "UPDATE users SET disabled = 1 WHERE id = ?", eve.ID)
	broken, _ := registerPassword(t, s, "broken@example.com", "", adaPassword)
	st.exec(t, "UPDATE users SET password_hash = ? WHERE id = ?", "$argon2id$v=19$m=64,t=1,p=1$!!!$!!!", broken.ID)
	// Secret accounts have no username or email, and one that somehow got
	// a username still does not sign in by password.
	register(t, s, "grace_h")
	hopper, hopperSecret, _ := register(t, s, "Hopper")
	st.exec(t, "UPDATE users SET username = ? WHERE id = ?", "hopper_g", hopper.ID)

	tests := []struct {
		name     string
		c        Credentials
		wantUser string // on success
		want     error  // nil: success
	}{
		{"email", Credentials{Email: adaEmail, Password: adaPassword}, ada.ID, nil},
		{"email in other case, spaced", Credentials{Email: " ADA.Lovelace@Example.com ", Password: adaPassword}, ada.ID, nil},
		{"username", Credentials{Username: adaUsername, Password: adaPassword}, ada.ID, nil},
		{"username in other case", Credentials{Username: "aDA_L", Password: adaPassword}, ada.ID, nil},
		{"128 characters", Credentials{Email: "long@example.com", Password: strings.Repeat("zq7#", 32)}, long.ID, nil},
		{"127-character prefix", Credentials{Email: "long@example.com", Password: strings.Repeat("zq7#", 32)[:127]}, "", ErrInvalidCredentials},
		{"decomposed form", Credentials{Email: "accent@example.com", Password: "cafe\u0301 violet orbit"}, accent.ID, nil},
		{"wrong password by email", Credentials{Email: adaEmail, Password: adaPassword + "x"}, "", ErrInvalidCredentials},
		{"wrong password by username", Credentials{Username: adaUsername, Password: adaPassword + "x"}, "", ErrInvalidCredentials},
		{"password in other case", Credentials{Email: adaEmail, Password: strings.ToUpper(adaPassword)}, "", ErrInvalidCredentials},
		{"unknown email", Credentials{Email: "nobody@example.com", Password: adaPassword}, "", ErrInvalidCredentials},
		{"unknown username", Credentials{Username: "nobody", Password: adaPassword}, "", ErrInvalidCredentials},
		{"username given as email", Credentials{Email: adaUsername, Password: adaPassword}, "", ErrInvalidCredentials},
		{"secret account's name as username", Credentials{Username: "grace_h", Password: adaPassword}, "", ErrInvalidCredentials},
		{"secret account with a username", Credentials{Username: "hopper_g", Password: hopperSecret}, "", ErrInvalidCredentials},
		{"disabled, right password", Credentials{Email: "eve@example.com", Password: adaPassword}, "", ErrAccountDisabled},
		{"disabled by username", Credentials{Username: "eve_x", Password: adaPassword}, "", ErrAccountDisabled},
		{"disabled, wrong password", Credentials{Email: "eve@example.com", Password: "not the password"}, "", ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.SignIn(ctx, tt.c, ClientMeta{})
			if tt.want != nil {
				if !errors.Is(err, tt.want) || res != nil {
					t.Fatalf("SignIn = %+v, %v; want %v", res, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Authenticate(ctx, res.Tokens.AccessToken)
			if err != nil || p.UserID != tt.wantUser {
				t.Errorf("Authenticate = %+v, %v; want user %s", p, err, tt.wantUser)
			}
		})
	}

	t.Run("malformed stored hash", func(t *testing.T) {
		for _, pw := range []string{adaPassword, "not the password"} {
			res, err := s.SignIn(ctx, Credentials{Email: "broken@example.com", Password: pw}, ClientMeta{})
			if err == nil || res != nil || errors.Is(err, ErrInvalidCredentials) || !errors.Is(err, password.ErrMalformed) {
				t.Errorf("SignIn(%q) = %+v, %v; want an internal error wrapping ErrMalformed", pw, res, err)
			}
		}
	})
}

func TestSignInRehashes(t *testing.T) {
	ctx := context.Background()
	weaker := newHasher(t, password.Params{Memory: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 16}, 1, time.Second)
	stronger := newHasher(t, password.Params{Memory: 128, Time: 2, Threads: 2, SaltLen: 32, KeyLen: 32}, 1, time.Second)
	tests := []struct {
		name string
		hash func(t *testing.T) string
	}{
		{"weaker argon2id", func(t *testing.T) string { return mustHash(t, weaker, adaPassword) }},
		{"other argon2id", func(t *testing.T) string { return mustHash(t, stronger, adaPassword) }},
		{"bcrypt", func(t *testing.T) string {
			b, err := bcrypt.GenerateFromPassword([]byte(adaPassword), 4)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, clk := newPasswordService(t)
			old := tt.hash(t)
			st.createUser(t, User{ID: testUserID, AccountType: AccountPassword, Name: "Ada", Email: ptr(adaEmail),
				Locale: "en", Timezone: "UTC", CreatedAt: s.now(), UpdatedAt: s.now(), PasswordHash: old})
			clk.advance(time.Hour)

			if _, err := s.SignIn(ctx, Credentials{Email: adaEmail, Password: "not the password"}, ClientMeta{}); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
			if got := storedHash(t, st, testUserID); got != old {
				t.Fatalf("a wrong password rewrote the hash: %q", got)
			}

			if _, err := s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{}); err != nil {
				t.Fatal(err)
			}
			stored, _ := st.UserByID(ctx, testUserID)
			if !strings.HasPrefix(stored.PasswordHash, cheapPrefix) {
				t.Fatalf("hash after sign-in = %q, want the hasher's parameters", stored.PasswordHash)
			}
			if ok, rehash, err := s.hasher.Verify(ctx, adaPassword, stored.PasswordHash); !ok || rehash || err != nil {
				t.Errorf("Verify(new hash) = %v, %v, %v", ok, rehash, err)
			}
			if !stored.UpdatedAt.Equal(s.now()) {
				t.Errorf("UpdatedAt = %v, want %v", stored.UpdatedAt, s.now())
			}

			// A current hash is left alone.
			if _, err := s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{}); err != nil {
				t.Fatal(err)
			}
			if got := storedHash(t, st, testUserID); got != stored.PasswordHash {
				t.Error("a current hash was rewritten")
			}
		})
	}
}

func mustHash(t *testing.T, h *password.Hasher, pw string) string {
	t.Helper()
	hash, err := h.Hash(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

func TestSignInLimitKeys(t *testing.T) {
	ctx := context.Background()
	l := newLimiters()
	s, _, _ := newPasswordService(t, l.edit)
	registerPassword(t, s, adaEmail, adaUsername, adaPassword)
	_, secret, _ := register(t, s, "Grace")
	const addr = "192.0.2.9"
	meta := ClientMeta{IP: addr}

	ada, err := s.st.UserByEmail(ctx, adaEmail)
	if err != nil {
		t.Fatal(err)
	}
	// Every attempt is taken before the credential is checked and given
	// back when it was right; an account has one key whichever identifier
	// named it.
	adaKey, ip := "user:"+ada.ID, "ip:"+addr
	failed := func(key string) []string { return []string{"take " + key} }
	passed := func(key string) []string { return []string{"take " + key, "refund " + key} }
	tests := []struct {
		name                    string
		c                       Credentials
		meta                    ClientMeta
		ok                      bool
		wantAccount, wantClient []string
	}{
		{"wrong password by email", Credentials{Email: " ADA.Lovelace@Example.com ", Password: "wrong password"}, meta, false,
			failed(adaKey), failed(ip)},
		{"wrong password by username", Credentials{Username: "ADA_l", Password: "wrong password"}, meta, false,
			failed(adaKey), failed(ip)},
		{"unknown email", Credentials{Email: "Nobody@example.com", Password: "wrong password"}, meta, false,
			failed("email:nobody@example.com"), failed(ip)},
		{"unknown username", Credentials{Username: "Nobody", Password: "wrong password"}, meta, false,
			failed("username:nobody"), failed(ip)},
		{"no address", Credentials{Email: adaEmail, Password: "wrong password"}, ClientMeta{}, false,
			failed(adaKey), nil},
		{"right password by email", Credentials{Email: adaEmail, Password: adaPassword}, meta, true,
			passed(adaKey), passed(ip)},
		{"right password by username", Credentials{Username: adaUsername, Password: adaPassword}, meta, true,
			passed(adaKey), passed(ip)},
		{"wrong secret", Credentials{Secret: secret + "x"}, meta, false,
			nil, failed(ip)},
		{"right secret", Credentials{Secret: secret}, meta, true,
			nil, passed(ip)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l.account.take()
			l.client.take()
			_, err := s.SignIn(ctx, tt.c, tt.meta)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidCredentials)) {
				t.Fatalf("SignIn: %v, want ok=%v", err, tt.ok)
			}
			if got := l.account.take(); !slices.Equal(got, tt.wantAccount) {
				t.Errorf("account limiter calls = %q, want %q", got, tt.wantAccount)
			}
			if got := l.client.take(); !slices.Equal(got, tt.wantClient) {
				t.Errorf("client limiter calls = %q, want %q", got, tt.wantClient)
			}
			if got := l.register.take(); got != nil {
				t.Errorf("register limiter calls = %q", got)
			}
		})
	}
}

func TestSignInBlocked(t *testing.T) {
	const addr = "192.0.2.9"
	// adaKey stands for Ada's account key, known once she is registered.
	const adaKey = "ada's account"
	tests := []struct {
		name      string
		block     func(l *limiters)
		c         Credentials
		wantAfter time.Duration
	}{
		{"account key by email", func(l *limiters) { l.account.fill(adaKey) },
			Credentials{Email: "ADA.Lovelace@example.com", Password: adaPassword}, 30 * time.Second},
		{"account key by username", func(l *limiters) { l.account.fill(adaKey) },
			Credentials{Username: adaUsername, Password: adaPassword}, 30 * time.Second},
		{"unknown email", func(l *limiters) { l.account.fill("email:nobody@example.com") },
			Credentials{Email: "nobody@example.com", Password: adaPassword}, 30 * time.Second},
		{"address", func(l *limiters) { l.client.fill("ip:" + addr) },
			Credentials{Email: adaEmail, Password: adaPassword}, 90 * time.Second},
		{"both: the longer wait, the address's", func(l *limiters) { l.account.fill(adaKey); l.client.fill("ip:" + addr) },
			Credentials{Email: adaEmail, Password: adaPassword}, 90 * time.Second},
		{"secret by address", func(l *limiters) { l.client.fill("ip:" + addr) },
			Credentials{Secret: "filled in below"}, 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiters()
			h := newHasher(t, cheapParams, 1, 0)
			s, st, _ := newPasswordService(t, withHasher(h), l.edit)
			registerPassword(t, s, adaEmail, adaUsername, adaPassword)
			_, secret, _ := register(t, s, "Grace")
			if tt.c.Secret != "" {
				tt.c.Secret = secret
			}
			tt.block(l)
			if n, ok := l.account.counts[adaKey]; ok {
				ada, _ := st.UserByEmail(context.Background(), adaEmail)
				delete(l.account.counts, adaKey)
				l.account.counts["user:"+ada.ID] = n
			}
			sessions := st.count(t, "sessions")

			// Any hash while the only hashing slot is held fails with
			// ErrBusy, so RateLimitError shows that none was attempted.
			var res *AuthResult
			var err error
			whileBusy(t, h, func() {
				l.account.take()
				l.client.take()
				res, err = s.SignIn(context.Background(), tt.c, ClientMeta{IP: addr})
			})
			var rl *RateLimitError
			if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) || res != nil {
				t.Fatalf("SignIn = %+v, %v; want *RateLimitError", res, err)
			}
			if rl.RetryAfter != tt.wantAfter {
				t.Errorf("RetryAfter = %v, want %v", rl.RetryAfter, tt.wantAfter)
			}
			if st.count(t, "sessions") != sessions {
				t.Error("a refused sign-in started a session")
			}
			counts := map[string]int{}
			for _, c := range append(l.account.take(), l.client.take()...) {
				op, key, _ := strings.Cut(c, " ")
				switch op {
				case "take":
					counts[key]++
				case "refund":
					counts[key]--
				}
			}
			for key, n := range counts {
				if n != 0 {
					t.Errorf("a refused sign-in was counted on %s", key)
				}
			}
		})
	}
}

func TestSignInLockout(t *testing.T) {
	ctx := context.Background()
	l := newLimiters()
	l.account.max, l.client.max = 3, 5
	s, _, _ := newPasswordService(t, l.edit)
	registerPassword(t, s, adaEmail, "", adaPassword)
	registerPassword(t, s, "bob@example.com", "", adaPassword)
	here, there := ClientMeta{IP: "192.0.2.1"}, ClientMeta{IP: "198.51.100.1"}
	signIn := func(email, pw string, meta ClientMeta) error {
		_, err := s.SignIn(ctx, Credentials{Email: email, Password: pw}, meta)
		return err
	}

	for i := range 3 {
		if err := signIn(adaEmail, "wrong password", here); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	for _, meta := range []ClientMeta{here, there} {
		if err := signIn(adaEmail, adaPassword, meta); !errors.Is(err, ErrRateLimited) {
			t.Errorf("right password after 3 failures from %s: %v, want ErrRateLimited", meta.IP, err)
		}
	}
	// Another account from the same address is not locked out yet.
	if err := signIn("bob@example.com", adaPassword, here); err != nil {
		t.Fatalf("other account: %v", err)
	}
	for i := range 2 {
		if err := signIn("bob@example.com", "wrong password", here); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("bob's failure %d: %v", i+1, err)
		}
	}
	// Five failures from here: the address is blocked, not bob elsewhere.
	if err := signIn("bob@example.com", adaPassword, here); !errors.Is(err, ErrRateLimited) {
		t.Errorf("address after 5 failures: %v, want ErrRateLimited", err)
	}
	if err := signIn("bob@example.com", adaPassword, there); err != nil {
		t.Errorf("bob from another address: %v", err)
	}
}

func TestLimiterErrorsAreReturned(t *testing.T) {
	boom := errors.New("limiter down")
	right := Credentials{Email: adaEmail, Password: adaPassword}
	wrong := Credentials{Email: adaEmail, Password: "wrong password"}
	tests := []struct {
		name  string
		fault func(l *limiters)
		c     *Credentials // nil: RegisterPassword
	}{
		{"account, right password", func(l *limiters) { l.account.takeErr = boom }, &right},
		{"client, right password", func(l *limiters) { l.client.takeErr = boom }, &right},
		{"account, wrong password", func(l *limiters) { l.account.takeErr = boom }, &wrong},
		{"client, wrong password", func(l *limiters) { l.client.takeErr = boom }, &wrong},
		{"register", func(l *limiters) { l.register.takeErr = boom }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			l := newLimiters()
			s, st, _ := newPasswordService(t, l.edit)
			registerPassword(t, s, adaEmail, "", adaPassword)
			tt.fault(l)
			meta := ClientMeta{IP: "192.0.2.1"}
			var err error
			if tt.c != nil {
				_, err = s.SignIn(ctx, *tt.c, meta)
			} else {
				_, _, err = s.RegisterPassword(ctx, RegisterPasswordInput{Email: "bob@example.com", Password: adaPassword}, meta)
				if st.count(t, "users") != 1 {
					t.Error("a user was created despite the limiter error")
				}
			}
			if !errors.Is(err, boom) || errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrRateLimited) {
				t.Errorf("err = %v, want the limiter's error", err)
			}
		})
	}
}

func TestRegisterPasswordLimit(t *testing.T) {
	ctx := context.Background()
	l := newLimiters()
	l.register.max = 2
	s, st, _ := newPasswordService(t, l.edit)
	const addr = "192.0.2.5"
	meta := ClientMeta{IP: addr}
	want := []string{"take ip:" + addr}

	// An invalid attempt counts too.
	if _, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: "nope", Password: adaPassword}, meta); err == nil {
		t.Fatal("invalid registration accepted")
	}
	if got := l.register.take(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if _, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: adaEmail, Password: adaPassword}, meta); err != nil {
		t.Fatal(err)
	}
	if got := l.register.take(); !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}

	_, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: "bob@example.com", Password: adaPassword}, meta)
	var rl *RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) || rl.RetryAfter != time.Hour {
		t.Fatalf("third registration: %v, want *RateLimitError of 1h", err)
	}
	if got := l.register.take(); !slices.Equal(got, []string{"refused ip:" + addr}) {
		t.Errorf("calls = %q, want %q", got, []string{"refused ip:" + addr})
	}
	if st.count(t, "users") != 1 {
		t.Errorf("%d users, want 1", st.count(t, "users"))
	}

	// Other addresses, and unknown ones, are not limited by it.
	if _, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: "bob@example.com", Password: adaPassword}, ClientMeta{IP: "192.0.2.6"}); err != nil {
		t.Errorf("other address: %v", err)
	}
	if _, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: "cy@example.com", Password: adaPassword}, ClientMeta{}); err != nil {
		t.Errorf("no address: %v", err)
	}
	if got := l.register.take(); !slices.Equal(got, []string{"take ip:192.0.2.6"}) {
		t.Errorf("calls = %q", got)
	}
	if got := append(l.account.take(), l.client.take()...); got != nil {
		t.Errorf("registration used the sign-in limits: %q", got)
	}
}

// slowHash is an argon2id hash with m=32 MiB, t=8: verifying a password
// against it holds a hashing slot for a few hundred milliseconds.
const slowHash = "$argon2id$v=19$m=32768,t=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"

// holdSlot starts a slow verification on h, whose concurrency is 1 and
// whose wait is 0, and returns once it is seen holding the slot (a probe
// finds the hasher busy); done receives the holder's error when it ends.
// ok is false when the holder lost the slot to a probe or ended first.
func holdSlot(h *password.Hasher) (done <-chan error, ok bool) {
	ch := make(chan error, 1)
	go func() {
		_, _, err := h.Verify(context.Background(), "x", slowHash)
		ch <- err
	}()
	for {
		select {
		case <-ch:
			return nil, false
		case <-time.After(time.Millisecond): // let the holder take the slot first
		}
		if errors.Is(h.VerifyDummy(context.Background(), "probe"), password.ErrBusy) {
			return ch, true
		}
	}
}

// TestHasherBusy checks that what needs a hash while the only hashing slot
// is taken is refused with ErrOverloaded. The slot is held by a slow
// verification; the checks count only when it is seen holding the slot
// both before and after them, else the attempt is repeated.
func TestHasherBusy(t *testing.T) {
	ctx := context.Background()
	h := newHasher(t, cheapParams, 1, 0)
	l := newLimiters()
	s, st, _ := newPasswordService(t, withHasher(h), l.edit)
	ada, _ := registerPassword(t, s, adaEmail, "", adaPassword)

	calls := []struct {
		name string
		call func() error
	}{
		{"sign-in", func() error {
			_, err := s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{IP: "192.0.2.1"})
			return err
		}},
		{"sign-in of an unknown account", func() error {
			_, err := s.SignIn(ctx, Credentials{Email: "nobody@example.com", Password: adaPassword}, ClientMeta{IP: "192.0.2.1"})
			return err
		}},
		{"registration", func() error {
			_, _, err := s.RegisterPassword(ctx, RegisterPasswordInput{Email: "bob@example.com", Password: adaPassword}, ClientMeta{})
			return err
		}},
	}
	var users int
	errs := make([]error, len(calls))
	whileBusy(t, h, func() {
		users = st.count(t, "users")
		l.account.take()
		l.client.take()
		for i, c := range calls {
			errs[i] = c.call()
		}
	})
	for i, c := range calls {
		if !errors.Is(errs[i], ErrOverloaded) || !errors.Is(errs[i], password.ErrBusy) {
			t.Errorf("%s = %v, want ErrOverloaded", c.name, errs[i])
		}
	}
	if st.count(t, "users") != users {
		t.Error("a registration went through without a hash")
	}
	if n := l.account.counts; len(n) != 0 && (n["user:"+ada.ID] != 0 || n["email:nobody@example.com"] != 0) {
		t.Errorf("an overloaded sign-in was counted as a failure: %v", n)
	}
	if n := l.client.counts["ip:192.0.2.1"]; n != 0 {
		t.Errorf("an overloaded sign-in was counted as a failure on the address: %d", n)
	}
}

// whileBusy runs calls while a slow verification is seen holding h's only
// hashing slot (h has concurrency 1 and no wait) both before and after
// them, so that any hash the calls attempt fails with password.ErrBusy.
// A run the holder did not cover is repeated, up to 20 runs.
func whileBusy(t *testing.T, h *password.Hasher, calls func()) {
	t.Helper()
	for range 20 {
		done, ok := holdSlot(h)
		if !ok {
			continue
		}
		calls()
		select {
		case <-done:
			continue // the slot was released during the calls: inconclusive
		default:
		}
		if err := <-done; err != nil {
			t.Fatalf("holder: %v", err)
		}
		return
	}
	t.Fatal("could not hold the hashing slot")
}

func TestChangePassword(t *testing.T) {
	ctx := context.Background()
	l := newLimiters()
	s, st, _ := newPasswordService(t, l.edit)
	u, first := registerPassword(t, s, adaEmail, adaUsername, adaPassword)
	caller := signInPassword(t, s, adaEmail, adaPassword)
	other := signInPassword(t, s, adaEmail, adaPassword)
	p := Principal{UserID: u.ID, SessionID: caller.SessionID}
	hash := storedHash(t, st, u.ID)
	l.account.take()

	fails := []struct {
		name          string
		current, next string
		want          error
		field         string // for a ValidationError
	}{
		{"wrong current", "not the password", "a brand new secret", ErrInvalidCredentials, ""},
		{"empty current", "", "a brand new secret", ErrInvalidCredentials, ""},
		{"new too short", adaPassword, "zq7#kw!", ErrWeakPassword, "new_password"},
		{"new too long", adaPassword, strings.Repeat("zq7#", 32) + "k", ErrWeakPassword, "new_password"},
		{"new common", adaPassword, "letmein1", ErrWeakPassword, "new_password"},
		{"new contains the local part", adaPassword, "ada.lovelace rocks", ErrWeakPassword, "new_password"},
		{"new contains the username", adaPassword, "call me ADA_L now", ErrWeakPassword, "new_password"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			err := s.ChangePassword(ctx, p, tt.current, tt.next, ClientMeta{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.field != "" {
				if got := fieldsOf(t, err); !slices.Equal(got, []string{tt.field}) {
					t.Errorf("fields = %v, want [%s]", got, tt.field)
				}
			}
			if storedHash(t, st, u.ID) != hash {
				t.Error("a failed change stored a new hash")
			}
			for _, id := range []string{first.SessionID, caller.SessionID, other.SessionID} {
				if sess := st.session(t, id); sess.RevokedAt != nil {
					t.Errorf("a failed change revoked session %s", id)
				}
			}
		})
	}
	// Wrong current passwords count toward the account's sign-in limit;
	// weak new ones do not (the right current password is given back).
	key := "user:" + u.ID
	want := []string{"take " + key, "take " + key}
	for range 5 {
		want = append(want, "take "+key, "refund "+key)
	}
	if got := l.account.take(); !slices.Equal(got, want) {
		t.Errorf("account limiter calls = %q, want %q", got, want)
	}

	const next = "a brand new secret"
	if err := s.ChangePassword(ctx, p, adaPassword, next, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	if h := storedHash(t, st, u.ID); h == hash || !strings.HasPrefix(h, cheapPrefix) {
		t.Errorf("stored hash %q not replaced", h)
	}
	for _, id := range []string{first.SessionID, other.SessionID} {
		if sess := st.session(t, id); sess.RevokedAt == nil || !sess.RevokedAt.Equal(s.now()) {
			t.Errorf("other session %s: RevokedAt = %v, want %v", id, sess.RevokedAt, s.now())
		}
	}
	if _, err := s.Authenticate(ctx, caller.AccessToken); err != nil {
		t.Errorf("the caller's session was revoked: %v", err)
	}
	if _, err := s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("old password: %v, want ErrInvalidCredentials", err)
	}
	if _, err := s.SignIn(ctx, Credentials{Username: adaUsername, Password: next}, ClientMeta{}); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func signInPassword(t *testing.T, s *Service, email, pw string) *Tokens {
	t.Helper()
	res, err := s.SignIn(context.Background(), Credentials{Email: email, Password: pw}, ClientMeta{})
	if err != nil {
		t.Fatalf("SignIn(%s): %v", email, err)
	}
	return res.Tokens
}

func TestChangePasswordLimited(t *testing.T) {
	l := newLimiters()
	h := newHasher(t, cheapParams, 1, 0)
	s, _, _ := newPasswordService(t, withHasher(h), l.edit)
	u, tok := registerPassword(t, s, adaEmail, "", adaPassword)
	l.account.fill("user:" + u.ID)
	var err error
	whileBusy(t, h, func() { // any hash would fail with password.ErrBusy
		err = s.ChangePassword(context.Background(), Principal{UserID: u.ID, SessionID: tok.SessionID}, adaPassword, "a brand new secret", ClientMeta{})
	})
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != 30*time.Second {
		t.Errorf("err = %v, want *RateLimitError of 30s", err)
	}
}

func TestChangePasswordSecretAccount(t *testing.T) {
	s, st, _ := newPasswordService(t)
	u, secret, tok := register(t, s, "Grace")
	before, _ := st.UserByID(context.Background(), u.ID)
	for _, current := range []string{secret, "", "anything at all"} {
		err := s.ChangePassword(context.Background(), Principal{UserID: u.ID, SessionID: tok.SessionID}, current, "a brand new secret", ClientMeta{})
		if !errors.Is(err, ErrNotApplicable) {
			t.Errorf("ChangePassword(%q) = %v, want ErrNotApplicable", current, err)
		}
	}
	if after, _ := st.UserByID(context.Background(), u.ID); after.PasswordHash != before.PasswordHash || after.PasswordHash != "" {
		t.Error("a secret account got a password")
	}
}

func TestDeleteMePassword(t *testing.T) {
	ctx := context.Background()
	l := newLimiters()
	s, st, _ := newPasswordService(t, l.edit)
	u, tok := registerPassword(t, s, adaEmail, "", adaPassword)
	_, otherTok := registerPassword(t, s, "bob@example.com", "", adaPassword)
	l.account.take()

	for _, c := range []DeleteCredentials{{}, {Password: "not the password"}, {Password: strings.ToUpper(adaPassword)}, {Secret: adaPassword}} {
		if err := s.DeleteMe(ctx, u.ID, c, ClientMeta{}); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("DeleteMe(%+v) = %v, want ErrInvalidCredentials", c, err)
		}
	}
	if _, err := st.UserByID(ctx, u.ID); err != nil {
		t.Fatal("user deleted with a wrong password")
	}
	if got := l.account.take(); !slices.Equal(got, slices.Repeat([]string{"take user:" + u.ID}, 4)) {
		t.Errorf("account limiter calls = %q, want 4 counted failures", got)
	}

	if err := s.DeleteMe(ctx, u.ID, DeleteCredentials{Password: adaPassword}, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UserByID(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByID after delete = %v", err)
	}
	if _, err := s.Authenticate(ctx, tok.AccessToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("access token after delete: %v", err)
	}
	if _, err := s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("sign-in after delete: %v", err)
	}
	if _, err := s.Authenticate(ctx, otherTok.AccessToken); err != nil {
		t.Errorf("other user's session hurt: %v", err)
	}
}

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"Ada@Example.COM", "ada@example.com", true},
		{" ada@example.com ", "ada@example.com", true},
		{"x@ex\u00e4mple.com", "x@xn--exmple-cua.com", true},
		{"x@exa\u0308mple.com", "x@xn--exmple-cua.com", true},
		{"X@EX\u00c4MPLE.COM", "x@xn--exmple-cua.com", true},
		{"x@xn--exmple-cua.com", "x@xn--exmple-cua.com", true},
		{"Jo\u0308rg@example.com", "j\u00f6rg@example.com", true}, // the local part NFC too
		{"x@bu\u0308cher.example", "x@xn--bcher-kva.example", true},
		{"x@exa_mple.com", "x@exa_mple.com", false},
		{"x@example..com", "x@example..com", false},
		{"x@example", "x@example", false},
		{"x@xn--a.com", "x@xn--a.com", false},
		{"no-at-sign", "no-at-sign", false},
		{"a@b@example.com", "a@b@example.com", false},
	} {
		got, ok := NormalizeEmail(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
