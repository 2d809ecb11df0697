package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRegisterSecret(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	u, secret, tok, err := s.RegisterSecret(ctx, RegisterSecretInput{Name: "  Ada Lovelace "},
		ClientMeta{UserAgent: "test/1", IP: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	now := start.UTC().Truncate(time.Microsecond)
	if u.Name != "Ada Lovelace" || u.AccountType != AccountSecret || u.Locale != "en" || u.Timezone != "UTC" ||
		!u.CreatedAt.Equal(now) || u.Email != nil || u.Username != nil {
		t.Errorf("user = %+v", u)
	}
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not 256 bits of base64url without padding", secret)
	}
	stored, err := st.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.SecretHash, tokenHash(kindSecret, secret)) {
		t.Error("stored hash is not the typed hash of the secret")
	}
	if bytes.Contains(stored.SecretEnc, []byte(secret)) || bytes.Contains(stored.SecretEnc, raw) {
		t.Error("secret stored in plaintext")
	}
	if got := mustSecret(t, s, u.ID); got != secret {
		t.Errorf("Secret() = %q, want the registered secret", got)
	}

	p, err := s.Authenticate(ctx, tok.AccessToken)
	if err != nil || p.UserID != u.ID || p.SessionID != tok.SessionID {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if tok.ExpiresIn != 900 || tok.RefreshExpiresIn != 720*3600 {
		t.Errorf("expires in %d / %d", tok.ExpiresIn, tok.RefreshExpiresIn)
	}
	sess := st.session(t, tok.SessionID)
	if sess.UserID != u.ID || sess.UserAgent != "test/1" || sess.IP != "192.0.2.7" ||
		!sess.ExpiresAt.Equal(now.Add(720*time.Hour)) {
		t.Errorf("session = %+v", sess)
	}

	_, secret2, _ := register(t, s, "Bob")
	if secret2 == secret {
		t.Error("two registrations got the same secret")
	}
}

func TestRegisterSecretClosed(t *testing.T) {
	s, st, _ := newTestService(t, func(c *Config) { c.RegistrationOpen = false })
	_, _, _, err := s.RegisterSecret(context.Background(), RegisterSecretInput{Name: "Ada"}, ClientMeta{})
	if !errors.Is(err, ErrRegistrationDisabled) {
		t.Errorf("err = %v, want ErrRegistrationDisabled", err)
	}
	if st.count(t, "users") != 0 {
		t.Error("a user was created")
	}
}

func TestRegisterSecretValidation(t *testing.T) {
	tests := []struct {
		name, inName, inLocale string
		wantName, wantLocale   string
		wantFields             []string // nil: valid
	}{
		{"trimmed", " Ada ", "", "Ada", "en", nil},
		{"64 runes", strings.Repeat("é", 64), "", strings.Repeat("é", 64), "en", nil},
		{"canonical locale", "Ada", "EN-us", "Ada", "en-US", nil},
		{"locale with script", "Ada", "zh-hant-tw", "Ada", "zh-Hant-TW", nil},
		{"empty name", "", "", "", "", []string{"name"}},
		{"blank name", " \t ", "", "", "", []string{"name"}},
		{"65 runes", strings.Repeat("é", 65), "", "", "", []string{"name"}},
		{"NUL", "a\x00b", "", "", "", []string{"name"}},
		{"newline", "a\nb", "", "", "", []string{"name"}},
		{"invalid UTF-8", "a\xffb", "", "", "", []string{"name"}},
		{"bad locale", "Ada", "not a tag", "", "", []string{"locale"}},
		{"und locale", "Ada", "und", "", "", []string{"locale"}},
		{"both bad", "", "en_US!", "", "", []string{"name", "locale"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, _ := newTestService(t)
			u, _, _, err := s.RegisterSecret(context.Background(),
				RegisterSecretInput{Name: tt.inName, Locale: tt.inLocale}, ClientMeta{})
			if tt.wantFields != nil {
				if got := fieldsOf(t, err); !slices.Equal(got, tt.wantFields) {
					t.Errorf("fields = %v, want %v", got, tt.wantFields)
				}
				if st.count(t, "users") != 0 {
					t.Error("invalid registration stored a user")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Name != tt.wantName || u.Locale != tt.wantLocale {
				t.Errorf("name %q locale %q, want %q %q", u.Name, u.Locale, tt.wantName, tt.wantLocale)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	u, secret, regTok := register(t, s, "Ada")
	disabled, disabledSecret, _ := register(t, s, "Eve")
	st.exec(t, "UPDATE users SET disabled = 1 WHERE id = ?", disabled.ID)

	tests := []struct {
		name string
		c    Credentials
		want error // nil: tokens for u
	}{
		{"secret", Credentials{Secret: secret}, nil},
		{"wrong secret", Credentials{Secret: secret + "x"}, ErrInvalidCredentials},
		{"refresh token as secret", Credentials{Secret: regTok.RefreshToken}, ErrInvalidCredentials},
		{"disabled", Credentials{Secret: disabledSecret}, ErrAccountDisabled},
		{"unknown email", Credentials{Email: "a@example.com", Password: "pw123456"}, ErrInvalidCredentials},
		{"unknown username", Credentials{Username: "ada", Password: "pw123456"}, ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.SignIn(ctx, tt.c, ClientMeta{})
			if tt.want != nil {
				if !errors.Is(err, tt.want) || res != nil {
					t.Fatalf("SignIn = %v, %v; want %v", res, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Tokens == nil || res.TwoFactorToken != "" {
				t.Fatalf("result = %+v", res)
			}
			if res.Tokens.SessionID == regTok.SessionID {
				t.Error("sign-in reused the registration session")
			}
			p, err := s.Authenticate(ctx, res.Tokens.AccessToken)
			if err != nil || p.UserID != u.ID {
				t.Errorf("Authenticate = %+v, %v", p, err)
			}
		})
	}
}

func TestSignInValidation(t *testing.T) {
	tests := []struct {
		name  string
		c     Credentials
		field string
	}{
		{"nothing", Credentials{}, "secret"},
		{"secret and password", Credentials{Secret: "s", Password: "p"}, "secret"},
		{"secret and email", Credentials{Secret: "s", Email: "a@example.com"}, "secret"},
		{"email and username", Credentials{Email: "a@example.com", Username: "ada", Password: "p"}, "username"},
		{"password alone", Credentials{Password: "p"}, "email"},
		{"email without password", Credentials{Email: "a@example.com"}, "password"},
	}
	s, _, _ := newTestService(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.SignIn(context.Background(), tt.c, ClientMeta{})
			if got := fieldsOf(t, err); !slices.Equal(got, []string{tt.field}) {
				t.Errorf("fields = %v, want [%s]", got, tt.field)
			}
		})
	}
}

func TestDeleteMe(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	u, secret, tok := register(t, s, "Ada")
	other, otherSecret, otherTok := register(t, s, "Bob")

	for _, c := range []DeleteCredentials{{}, {Secret: otherSecret}, {Secret: secret + "x"}, {Password: secret}} {
		if err := s.DeleteMe(ctx, u.ID, c, ClientMeta{}); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("DeleteMe(%+v) = %v, want ErrInvalidCredentials", c, err)
		}
	}
	if _, err := st.UserByID(ctx, u.ID); err != nil {
		t.Fatal("user deleted with wrong credentials")
	}

	if err := s.DeleteMe(ctx, u.ID, DeleteCredentials{Secret: secret}, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Me(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Me after delete = %v", err)
	}
	if _, err := s.Authenticate(ctx, tok.AccessToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("access token after delete: %v", err)
	}
	if _, err := s.Refresh(ctx, tok.RefreshToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("refresh after delete: %v", err)
	}
	if _, err := s.SignIn(ctx, Credentials{Secret: secret}, ClientMeta{}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("sign-in after delete: %v", err)
	}
	if _, err := s.Authenticate(ctx, otherTok.AccessToken); err != nil {
		t.Errorf("other user's session hurt: %v", err)
	}
	_ = other
}

func TestPasswordAccountNotApplicable(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	email := "ada@example.com"
	hash, err := s.hasher.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	st.createUser(t, User{ID: testUserID, AccountType: AccountPassword, Name: "Ada", Email: &email, PasswordHash: hash})
	if _, err := s.Secret(ctx, testUserID); !errors.Is(err, ErrNotApplicable) {
		t.Errorf("Secret = %v, want ErrNotApplicable", err)
	}
	if err := s.DeleteMe(ctx, testUserID, DeleteCredentials{Password: "whatever"}, ClientMeta{}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("DeleteMe = %v, want ErrInvalidCredentials", err)
	}
}

func TestSecretSwappedBetweenUsersDoesNotOpen(t *testing.T) {
	ctx := context.Background()
	s, st, _ := newTestService(t)
	a, _, _ := register(t, s, "Ada")
	b, _, _ := register(t, s, "Bob")
	st.exec(t, "UPDATE users SET secret_enc = ? WHERE id = ?", b.SecretEnc, a.ID)
	if got, err := s.Secret(ctx, a.ID); err == nil {
		t.Errorf("Secret opened another user's sealed secret: %q", got)
	}
}
