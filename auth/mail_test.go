package auth

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth/outbox"
)

// fakeMailer records what it is asked to send, or fails with err.
type fakeMailer struct {
	mu   sync.Mutex
	err  error
	sent []Mail
}

func (m *fakeMailer) Send(_ context.Context, mail Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.sent = append(m.sent, mail)
	return nil
}

func (m *fakeMailer) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

// take returns the mails sent since the last take.
func (m *fakeMailer) take() []Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.sent
	m.sent = nil
	return out
}

// mailEnv is a password service with confirmation required, a test store,
// a fixed clock and a fake mailer behind an outbox.
type mailEnv struct {
	t      *testing.T
	s      *Service
	st     *testStore
	clk    *testClock
	mailer *fakeMailer
	outbox *outbox.Worker
}

func newMailEnv(t *testing.T, edit ...func(*Config)) *mailEnv {
	t.Helper()
	edit = append([]func(*Config){func(c *Config) { c.EmailConfirmationRequired = true }}, edit...)
	s, st, clk := newPasswordService(t, edit...)
	m := &fakeMailer{}
	return &mailEnv{t: t, s: s, st: st, clk: clk, mailer: m, outbox: newWorker(t, s, m, outbox.DefaultConfig())}
}

// newWorker is an outbox worker sending s's mails through m.
func newWorker(t *testing.T, s *Service, m Mailer, cfg outbox.Config) *outbox.Worker {
	t.Helper()
	w, err := outbox.New(s.MailQueue(m), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// flush runs one outbox pass and returns what the mailer took.
func (e *mailEnv) flush() []Mail {
	e.t.Helper()
	if _, err := e.outbox.SendDue(context.Background()); err != nil {
		e.t.Fatalf("SendDue: %v", err)
	}
	return e.mailer.take()
}

// one runs an outbox pass and expects exactly one mail, of kind to to.
func (e *mailEnv) one(kind MailKind, to string) Mail {
	e.t.Helper()
	sent := e.flush()
	if len(sent) != 1 || sent[0].Kind != kind || sent[0].To != to {
		e.t.Fatalf("sent %+v, want one %s mail to %s", sent, kind, to)
	}
	return sent[0]
}

// pending registers an unconfirmed account and returns its confirmation
// mail.
func (e *mailEnv) pending(email, username string) Mail {
	e.t.Helper()
	in := RegisterPasswordInput{Email: email, Password: adaPassword, Locale: "fr-CH"}
	if username != "" {
		in.Username = &username
	}
	u, tok, err := e.s.RegisterPassword(context.Background(), in, ClientMeta{IP: "192.0.2.1"})
	if err != nil || u != nil || tok != nil {
		e.t.Fatalf("RegisterPassword = %v, %v, %v; want nothing (pending)", u, tok, err)
	}
	return e.one(MailConfirm, email)
}

func (e *mailEnv) user(email string) *User {
	e.t.Helper()
	u, err := e.st.UserByEmail(context.Background(), email)
	if err != nil {
		e.t.Fatalf("UserByEmail(%s): %v", email, err)
	}
	return u
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func TestRegisterPending(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	m := e.pending(adaEmail, adaUsername)
	u := e.user(adaEmail)
	if u.EmailConfirmed || m.Name != adaUsername || m.Locale != "fr-CH" || m.Token == "" || m.ID == "" {
		t.Errorf("user %+v, mail %+v", u, m)
	}
	if n := e.st.count(t, "sessions"); n != 0 {
		t.Errorf("%d sessions after a pending registration, want 0", n)
	}
	toks := e.st.tokens(t, u.ID)
	now := start.UTC().Truncate(time.Microsecond)
	if len(toks) != 1 || toks[0].Kind != TokenConfirm || toks[0].Email != adaEmail ||
		!toks[0].ExpiresAt.Equal(now.Add(24*time.Hour)) || !bytes.Equal(toks[0].Hash, tokenHash("confirm", m.Token)) {
		t.Errorf("tokens = %+v", toks)
	}
	if sent := e.flush(); len(sent) != 0 {
		t.Errorf("a sent mail went again: %+v", sent)
	}

	_, err := e.s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{})
	wantErr(t, "sign-in before confirming", err, ErrEmailNotConfirmed)
	res, err := e.s.ConfirmEmail(ctx, m.Token, ClientMeta{UserAgent: "ua"})
	if err != nil || res.Tokens == nil {
		t.Fatalf("ConfirmEmail = %+v, %v", res, err)
	}
	if p, err := e.s.Authenticate(ctx, res.Tokens.AccessToken); err != nil || p.UserID != u.ID {
		t.Errorf("Authenticate = %+v, %v", p, err)
	}
	if !e.user(adaEmail).EmailConfirmed {
		t.Error("not confirmed")
	}
	_, err = e.s.ConfirmEmail(ctx, m.Token, ClientMeta{})
	wantErr(t, "reused token", err, ErrInvalidToken)
	if _, err := e.s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{}); err != nil {
		t.Errorf("sign-in after confirming: %v", err)
	}
}

// TestRegisterPendingExisting: an address with an account gets the same
// answer, no second account, and its owner a notice with a working reset
// link; a taken username is still refused.
func TestRegisterPendingExisting(t *testing.T) {
	ctx := context.Background()
	limits := newFakeLimiter(2, time.Hour)
	e := newMailEnv(t, func(c *Config) { c.Limits.MailAddress = limits })
	e.pending(adaEmail, adaUsername)
	owner := e.user(adaEmail)

	again := RegisterPasswordInput{Email: "ADA.lovelace@example.com", Password: "quiet maple harbour 7", Username: ptr("someone_else")}
	u, tok, err := e.s.RegisterPassword(ctx, again, ClientMeta{})
	if err != nil || u != nil || tok != nil {
		t.Fatalf("RegisterPassword = %v, %v, %v", u, tok, err)
	}
	if n := e.st.count(t, "users"); n != 1 {
		t.Fatalf("%d users, want 1", n)
	}
	notice := e.one(MailAlreadyRegistered, adaEmail)
	if notice.Locale != "fr-CH" || notice.Token == "" {
		t.Errorf("notice = %+v", notice)
	}
	if err := e.s.ResetPassword(ctx, ResetPasswordInput{Token: notice.Token, Password: "quiet maple harbour 7"}); err != nil {
		t.Fatalf("the notice's reset link: %v", err)
	}
	if storedHash(t, e.st, owner.ID) == owner.PasswordHash {
		t.Error("the password did not change")
	}
	e.flush() // the password-changed notice

	_, _, err = e.s.RegisterPassword(ctx, RegisterPasswordInput{Email: adaEmail, Password: "quiet maple harbour 7", Username: ptr("ADA_l")}, ClientMeta{})
	wantErr(t, "taken username", err, ErrUsernameTaken)
	_, _, err = e.s.RegisterPassword(ctx, RegisterPasswordInput{Email: "new@example.com", Password: "quiet maple harbour 7", Username: ptr("ada_L")}, ClientMeta{})
	wantErr(t, "taken username, new address", err, ErrUsernameTaken)

	// Over the per-address limit the notice is silently not sent.
	limits.fill("email:" + adaEmail)
	if _, _, err := e.s.RegisterPassword(ctx, again, ClientMeta{}); err != nil {
		t.Fatalf("over the limit: %v", err)
	}
	if sent := e.flush(); len(sent) != 0 {
		t.Errorf("sent over the limit: %+v", sent)
	}
}

// TestMailTokenExpiry checks each kind's lifetime to the microsecond.
func TestMailTokenExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		ttl  time.Duration
		mail func(e *mailEnv) string
		use  func(e *mailEnv, token string) error
	}{
		{"confirm", 24 * time.Hour, func(e *mailEnv) string { return e.pending(adaEmail, "").Token },
			func(e *mailEnv, token string) error { _, err := e.s.ConfirmEmail(ctx, token, ClientMeta{}); return err }},
		{"reset", time.Hour, func(e *mailEnv) string {
			e.pending(adaEmail, "")
			if err := e.s.RequestPasswordReset(ctx, adaEmail, ClientMeta{}); err != nil {
				t.Fatal(err)
			}
			return e.one(MailPasswordReset, adaEmail).Token
		}, func(e *mailEnv, token string) error {
			return e.s.ResetPassword(ctx, ResetPasswordInput{Token: token, Password: "quiet maple harbour 7"})
		}},
	}
	for _, tt := range tests {
		for _, late := range []bool{false, true} {
			name := tt.name + "/just in time"
			if late {
				name = tt.name + "/just expired"
			}
			t.Run(name, func(t *testing.T) {
				e := newMailEnv(t)
				token := tt.mail(e)
				e.clk.advance(tt.ttl - time.Microsecond)
				if late {
					e.clk.advance(time.Microsecond)
				}
				err := tt.use(e, token)
				if late {
					wantErr(t, "expired", err, ErrInvalidToken)
				} else if err != nil {
					t.Fatalf("in time: %v", err)
				}
			})
		}
	}
}

// TestTokensAreTyped: each token works only for its own purpose.
func TestTokensAreTyped(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	confirm := e.pending(adaEmail, "").Token
	if err := e.s.RequestPasswordReset(ctx, adaEmail, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	reset := e.one(MailPasswordReset, adaEmail).Token

	err := e.s.ResetPassword(ctx, ResetPasswordInput{Token: confirm, Password: "quiet maple harbour 7"})
	wantErr(t, "confirmation token as reset token", err, ErrInvalidToken)
	_, err = e.s.ConfirmEmail(ctx, reset, ClientMeta{})
	wantErr(t, "reset token as confirmation token", err, ErrInvalidToken)
	for _, token := range []string{confirm, reset} {
		_, err = e.s.Refresh(ctx, token)
		wantErr(t, "mailed token as refresh token", err, ErrUnauthenticated)
		_, err = e.s.Authenticate(ctx, token)
		wantErr(t, "mailed token as access token", err, ErrUnauthenticated)
		_, err = e.s.SignIn(ctx, Credentials{Secret: token}, ClientMeta{})
		wantErr(t, "mailed token as secret", err, ErrInvalidCredentials)
	}
	for _, token := range []string{"", "x", confirm + "x"} {
		_, err = e.s.ConfirmEmail(ctx, token, ClientMeta{})
		wantErr(t, "unknown token", err, ErrInvalidToken)
	}
	// Both still work for their own purpose.
	if _, err := e.s.ConfirmEmail(ctx, confirm, ClientMeta{}); err != nil {
		t.Errorf("confirm: %v", err)
	}
	if err := e.s.ResetPassword(ctx, ResetPasswordInput{Token: reset, Password: "quiet maple harbour 7"}); err != nil {
		t.Errorf("reset: %v", err)
	}
}

// TestNewerTokenVoidsOlder for confirmation and reset mails.
func TestNewerTokenVoidsOlder(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	first := e.pending(adaEmail, "").Token
	if err := e.s.ResendConfirmation(ctx, " ADA.Lovelace@example.com", ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	second := e.one(MailConfirm, adaEmail).Token
	_, err := e.s.ConfirmEmail(ctx, first, ClientMeta{})
	wantErr(t, "voided confirmation token", err, ErrInvalidToken)

	var resets []string
	for range 2 {
		if err := e.s.RequestPasswordReset(ctx, adaEmail, ClientMeta{}); err != nil {
			t.Fatal(err)
		}
		resets = append(resets, e.one(MailPasswordReset, adaEmail).Token)
	}
	err = e.s.ResetPassword(ctx, ResetPasswordInput{Token: resets[0], Password: "quiet maple harbour 7"})
	wantErr(t, "voided reset token", err, ErrInvalidToken)
	if err := e.s.ResetPassword(ctx, ResetPasswordInput{Token: resets[1], Password: "quiet maple harbour 7"}); err != nil {
		t.Fatalf("newest reset token: %v", err)
	}
	// The reset confirmed the address and voided every other link.
	_, err = e.s.ConfirmEmail(ctx, second, ClientMeta{})
	wantErr(t, "confirmation link after a reset", err, ErrInvalidToken)
}

func TestResendConfirmationSaysNothing(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	m := e.pending(adaEmail, "")
	if _, err := e.s.ConfirmEmail(ctx, m.Token, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.s.RegisterSecret(ctx, RegisterSecretInput{Name: "anon"}, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{adaEmail, "nobody@example.com"} {
		if err := e.s.ResendConfirmation(ctx, email, ClientMeta{}); err != nil {
			t.Errorf("ResendConfirmation(%s) = %v", email, err)
		}
	}
	if sent := e.flush(); len(sent) != 0 {
		t.Errorf("sent %+v, want nothing (confirmed, unknown)", sent)
	}
	err := e.s.ResendConfirmation(ctx, "not an address", ClientMeta{})
	if f := fieldsOf(t, err); !slices.Equal(f, []string{"email"}) {
		t.Errorf("fields = %v", f)
	}
}

func TestResetPassword(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t, func(c *Config) { c.EmailConfirmationRequired = false })
	u, tok := registerPassword(t, e.s, adaEmail, adaUsername, adaPassword)
	if err := e.s.RequestPasswordReset(ctx, adaEmail, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	m := e.one(MailPasswordReset, adaEmail)

	// Weak passwords and a mismatched confirmation do not use the token up.
	err := e.s.ResetPassword(ctx, ResetPasswordInput{Token: m.Token, Password: "password"})
	wantErr(t, "common password", err, ErrWeakPassword)
	err = e.s.ResetPassword(ctx, ResetPasswordInput{Token: m.Token, Password: "ada_l was here 99"})
	wantErr(t, "password with the username", err, ErrWeakPassword)
	err = e.s.ResetPassword(ctx, ResetPasswordInput{Token: m.Token, Password: "quiet maple harbour 7", PasswordConf: ptr("other")})
	if f := fieldsOf(t, err); !slices.Equal(f, []string{"password_conf"}) {
		t.Errorf("fields = %v", f)
	}
	if err := e.s.ResetPassword(ctx, ResetPasswordInput{Token: m.Token, Password: "quiet maple harbour 7", PasswordConf: ptr("quiet maple harbour 7")}); err != nil {
		t.Fatalf("ResetPassword: %v", err)
	}
	if _, err := e.s.Authenticate(ctx, tok.AccessToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("the old session survived the reset: %v", err)
	}
	_, err = e.s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{})
	wantErr(t, "old password", err, ErrInvalidCredentials)
	if _, err := e.s.SignIn(ctx, Credentials{Email: adaEmail, Password: "quiet maple harbour 7"}, ClientMeta{}); err != nil {
		t.Errorf("new password: %v", err)
	}
	if !e.user(adaEmail).EmailConfirmed {
		t.Error("a reset did not confirm the address")
	}
	notice := e.one(MailPasswordChanged, adaEmail)
	if notice.Token != "" || notice.Name != u.Name {
		t.Errorf("notice = %+v", notice)
	}
	err = e.s.ResetPassword(ctx, ResetPasswordInput{Token: m.Token, Password: "another fine phrase 8"})
	wantErr(t, "reused token", err, ErrInvalidToken)
}

func TestRequestPasswordResetSaysNothing(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	e.pending(adaEmail, "") // unconfirmed accounts get reset mails too
	if _, _, _, err := e.s.RegisterSecret(ctx, RegisterSecretInput{Name: "anon"}, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"nobody@example.com", adaEmail} {
		if err := e.s.RequestPasswordReset(ctx, email, ClientMeta{}); err != nil {
			t.Errorf("RequestPasswordReset(%s) = %v", email, err)
		}
	}
	e.one(MailPasswordReset, adaEmail)
}

// TestMailLimits: the mail endpoints count per address and per client,
// known address or not, and refuse once either is used up.
func TestMailLimits(t *testing.T) {
	ctx := context.Background()
	addr, client := newFakeLimiter(2, time.Hour), newFakeLimiter(3, 30*time.Minute)
	e := newMailEnv(t, func(c *Config) { c.Limits.MailAddress, c.Limits.MailClient = addr, client })
	meta := ClientMeta{IP: "198.51.100.4"}
	for range 2 {
		if err := e.s.RequestPasswordReset(ctx, "nobody@example.com", meta); err != nil {
			t.Fatal(err)
		}
	}
	var rl *RateLimitError
	err := e.s.ResendConfirmation(ctx, "Nobody@example.com", meta)
	if !errors.As(err, &rl) || rl.RetryAfter != time.Hour {
		t.Fatalf("third mail to one address: %v", err)
	}
	if err := e.s.RequestPasswordReset(ctx, "other@example.com", meta); err != nil {
		t.Fatal(err)
	}
	err = e.s.RequestPasswordReset(ctx, "third@example.com", meta)
	if !errors.As(err, &rl) || rl.RetryAfter != 30*time.Minute {
		t.Fatalf("fourth mail from one client: %v", err)
	}
	if calls := addr.take(); !slices.Contains(calls, "take email:nobody@example.com") {
		t.Errorf("address limiter calls %v", calls)
	}
	if calls := client.take(); !slices.Contains(calls, "take ip:198.51.100.4") {
		t.Errorf("client limiter calls %v", calls)
	}
}

func TestChangeEmail(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t, func(c *Config) { c.EmailConfirmationRequired = false })
	u, tok := registerPassword(t, e.s, adaEmail, adaUsername, adaPassword)
	registerPassword(t, e.s, "taken@example.com", "", adaPassword)
	p := Principal{UserID: u.ID, SessionID: tok.SessionID}
	const newEmail = "ada@lovelace.example"

	_, _, stok := register(t, e.s, "anon")
	sp, _ := e.s.Authenticate(ctx, stok.AccessToken)
	wantErr(t, "secret account", e.s.ChangeEmail(ctx, sp, newEmail, "x", ClientMeta{}), ErrNotApplicable)
	wantErr(t, "wrong password", e.s.ChangeEmail(ctx, p, newEmail, "wrong password!", ClientMeta{}), ErrInvalidCredentials)
	wantErr(t, "taken", e.s.ChangeEmail(ctx, p, "Taken@example.com", adaPassword, ClientMeta{}), ErrEmailTaken)
	if f := fieldsOf(t, e.s.ChangeEmail(ctx, p, adaEmail, adaPassword, ClientMeta{})); !slices.Equal(f, []string{"email"}) {
		t.Errorf("same address: fields %v", f)
	}
	if f := fieldsOf(t, e.s.ChangeEmail(ctx, p, "nope", adaPassword, ClientMeta{})); !slices.Equal(f, []string{"email"}) {
		t.Errorf("bad address: fields %v", f)
	}
	// A reset link mailed to the old address dies with the change.
	if err := e.s.RequestPasswordReset(ctx, adaEmail, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	reset := e.one(MailPasswordReset, adaEmail).Token

	if err := e.s.ChangeEmail(ctx, p, " ADA@Lovelace.example", adaPassword, ClientMeta{}); err != nil {
		t.Fatalf("ChangeEmail: %v", err)
	}
	sent := e.flush()
	if len(sent) != 2 {
		t.Fatalf("sent %+v, want two mails", sent)
	}
	slices.SortFunc(sent, func(a, b Mail) int { return len(a.Kind) - len(b.Kind) })
	if c := sent[0]; c.Kind != MailEmailChange || c.To != newEmail || c.Token == "" {
		t.Errorf("confirmation = %+v", c)
	}
	if n := sent[1]; n.Kind != MailEmailChangeNotice || n.To != adaEmail || n.NewEmail != newEmail || n.Token != "" {
		t.Errorf("notice = %+v", n)
	}
	if deref(e.user(adaEmail).Email) != adaEmail {
		t.Error("the address changed before confirmation")
	}
	res, err := e.s.ConfirmEmail(ctx, sent[0].Token, ClientMeta{})
	if err != nil || res.Tokens == nil {
		t.Fatalf("ConfirmEmail = %+v, %v", res, err)
	}
	if got := e.user(newEmail); got.ID != u.ID || !got.EmailConfirmed {
		t.Errorf("user = %+v", got)
	}
	_, err = e.s.SignIn(ctx, Credentials{Email: adaEmail, Password: adaPassword}, ClientMeta{})
	wantErr(t, "old address", err, ErrInvalidCredentials)
	if _, err := e.s.SignIn(ctx, Credentials{Email: newEmail, Password: adaPassword}, ClientMeta{}); err != nil {
		t.Errorf("new address: %v", err)
	}
	err = e.s.ResetPassword(ctx, ResetPasswordInput{Token: reset, Password: "quiet maple harbour 7"})
	wantErr(t, "reset link of the old address", err, ErrInvalidToken)
}

func TestChangeEmailTakenMeanwhile(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t, func(c *Config) { c.EmailConfirmationRequired = false })
	u, tok := registerPassword(t, e.s, adaEmail, "", adaPassword)
	p := Principal{UserID: u.ID, SessionID: tok.SessionID}
	if err := e.s.ChangeEmail(ctx, p, "new@example.com", adaPassword, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	var token string
	for _, m := range e.flush() {
		if m.Kind == MailEmailChange {
			token = m.Token
		}
	}
	registerPassword(t, e.s, "new@example.com", "", adaPassword)
	_, err := e.s.ConfirmEmail(ctx, token, ClientMeta{})
	wantErr(t, "address taken meanwhile", err, ErrEmailTaken)
	if deref(e.user(adaEmail).Email) != adaEmail {
		t.Error("the address changed")
	}
}

// TestOutboxDropsPayloads: on the real store, a sent mail and a mail given
// up keep no payload (the sealed token), and neither is sent again. The
// worker's backoff and give-up rules are tested in auth/outbox.
func TestOutboxDropsPayloads(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	cfg := outbox.DefaultConfig()
	cfg.MaxAge = 5 * time.Minute
	e.outbox = newWorker(t, e.s, e.mailer, cfg)
	if _, _, err := e.s.RegisterPassword(ctx, RegisterPasswordInput{Email: adaEmail, Password: adaPassword}, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	e.one(MailConfirm, adaEmail)
	if m := e.st.mails(t)[0]; m.SentAt == nil || len(m.Payload) != 0 {
		t.Errorf("sent mail = %+v, want sent without payload", m)
	}

	e.mailer.fail(errors.New("550 no such user"))
	if err := e.s.RequestPasswordReset(ctx, adaEmail, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		e.flush()
		e.clk.advance(time.Minute)
	}
	mails := e.st.mails(t)
	if len(mails) != 2 {
		t.Fatalf("%d mails, want 2", len(mails))
	}
	for _, m := range mails {
		if m.Kind == MailPasswordReset && (m.FailedAt == nil || len(m.Payload) != 0) {
			t.Errorf("mail = %+v, want given up without payload", m)
		}
	}
	e.mailer.fail(nil)
	e.clk.advance(time.Hour)
	if sent := e.flush(); len(sent) != 0 {
		t.Errorf("sent again: %+v", sent)
	}
}

// TestOutboxPayloadIsSealed: the stored mail does not hold the token in
// clear, and a payload moved to another mail does not open.
func TestOutboxPayloadIsSealed(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	for _, email := range []string{adaEmail, "b@example.com"} {
		if _, _, err := e.s.RegisterPassword(ctx, RegisterPasswordInput{Email: email, Password: adaPassword}, ClientMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	mails := e.st.mails(t)
	e.st.exec(t, "UPDATE mail_outbox SET payload = ? WHERE id = ?", mails[1].Payload, mails[0].ID)
	e.st.exec(t, "UPDATE mail_outbox SET payload = ? WHERE id = ?", mails[0].Payload, mails[1].ID)
	if sent := e.flush(); len(sent) != 0 {
		t.Fatalf("swapped payloads opened: %+v", sent)
	}
	for _, m := range e.st.mails(t) {
		if m.FailedAt == nil {
			t.Errorf("mail %s not given up", m.ID)
		}
	}

	e2 := newMailEnv(t)
	m := e2.pending(adaEmail, "")
	for _, om := range e2.st.mails(t) {
		if bytes.Contains(om.Payload, []byte(m.Token)) || bytes.Contains(om.Payload, []byte(adaUsername)) {
			t.Error("the payload holds the token in clear")
		}
	}
}

// TestPruneMail deletes expired tokens and old finished mails only.
func TestPruneMail(t *testing.T) {
	ctx := context.Background()
	e := newMailEnv(t)
	e.pending(adaEmail, "")
	if err := e.s.RequestPasswordReset(ctx, adaEmail, ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	reqs, err := e.s.MailQueue(e.mailer).Requests(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs { // queue the reset mail, do not send it
		if err := r.Resolve(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.advance(2 * time.Hour) // the reset token has expired, the confirmation not
	now := e.clk.now()
	if err := e.st.PruneMail(ctx, now, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	toks := e.st.tokens(t, e.user(adaEmail).ID)
	if len(toks) != 1 || toks[0].Kind != TokenConfirm {
		t.Errorf("tokens after prune = %+v", toks)
	}
	if n := len(e.st.mails(t)); n != 1 {
		t.Errorf("%d mails after prune, want 1 (the reset mail is not sent yet)", n)
	}
}
