package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/outbox"
	"github.com/latchkey-dev/latchkey/mail"
	"github.com/latchkey-dev/latchkey/mail/mailtest"
	"github.com/latchkey-dev/latchkey/ratelimit"
	"github.com/latchkey-dev/latchkey/store"
)

// Mail flows end to end: the production stack with the SMTP mailer, which
// speaks real SMTP to a server in this process (mailtest). Tests read the
// tokens from the delivered mails, as users do.

const (
	publicURL   = "http://localhost:8080"
	adaEmail    = "ada@example.com"
	adaPassword = "plum violet orbit 42"
	newPassword = "quiet maple harbour 7"
)

// mailStack is a stack with email confirmation required (unless tweak says
// otherwise), the SMTP mailer on smtp, and an outbox the test drives with
// flush.
type mailStack struct {
	*harness
	svc    *auth.Service
	smtp   *mailtest.Server
	mailer auth.Mailer
	outbox *outbox.Worker
	tweak  func(*auth.Config)
	seen   int // messages already handed out by flush
}

// withMail builds a mail stack on h's database.
func (h *harness) withMail(srv *mailtest.Server, tweak func(*auth.Config)) *mailStack {
	h.t.Helper()
	mailer, err := mail.NewSMTP(srv.URL(), mail.Config{
		From:        "Latchkey <no-reply@latchkey.test>",
		PublicURL:   publicURL,
		ConfirmPath: mail.DefaultConfirmPath,
		ResetPath:   mail.DefaultResetPath,
		ConfirmTTL:  auth.DefaultConfirmTokenTTL,
		ResetTTL:    auth.DefaultResetTokenTTL,
	}, mail.SMTPOptions{TLSConfig: srv.ClientTLS(), Timeout: 5 * time.Second})
	if err != nil {
		h.t.Fatalf("mail.NewSMTP: %v", err)
	}
	m := &mailStack{smtp: srv, mailer: mailer, tweak: tweak, seen: len(srv.Messages())}
	m.build(h)
	return m
}

// build (re)makes the service, the Echo app and the outbox on h.db.
func (m *mailStack) build(h *harness) {
	h.t.Helper()
	hasher := newHasher(h.t, cheapParams, 4, time.Second)
	c := *h
	svc, handler := h.build(func(cfg *auth.Config) {
		cfg.Issuer = publicURL
		cfg.EmailConfirmationRequired = true
		cfg.Hasher = hasher
		if m.tweak != nil {
			m.tweak(cfg)
		}
	})
	c.h = handler
	m.harness, m.svc = &c, svc
	m.outbox = newWorker(h.t, svc, m.mailer, func(c *outbox.Config) { c.MinBackoff, c.SendTimeout = time.Minute, 5*time.Second })
}

// newWorker is an outbox worker sending svc's mails through mailer, with
// the default settings as edit changes them.
func newWorker(t *testing.T, svc *auth.Service, mailer auth.Mailer, edit func(*outbox.Config)) *outbox.Worker {
	t.Helper()
	cfg := outbox.DefaultConfig()
	edit(&cfg)
	w, err := outbox.New(svc.MailQueue(mailer), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// restart closes the database and builds everything again on the same
// database, key and clock, as a restarted process would.
func (m *mailStack) restart() {
	m.t.Helper()
	m.harness.restart()
	m.build(m.harness)
}

// flush runs one outbox pass and returns the messages delivered since the
// last flush.
func (m *mailStack) flush() []mailtest.Message {
	m.t.Helper()
	if _, err := m.outbox.SendDue(context.Background()); err != nil {
		m.t.Fatalf("SendDue: %v", err)
	}
	msgs := m.smtp.Messages()
	out := msgs[m.seen:]
	m.seen = len(msgs)
	return out
}

// mailTo flushes and expects exactly one new message, to addr.
func (m *mailStack) mailTo(addr string) mailtest.Message {
	m.t.Helper()
	msgs := m.flush()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != addr {
		m.t.Fatalf("delivered %s, want one message to %s", describe(msgs), addr)
	}
	return msgs[0]
}

// noMail flushes and expects nothing new.
func (m *mailStack) noMail() {
	m.t.Helper()
	if msgs := m.flush(); len(msgs) != 0 {
		m.t.Fatalf("delivered %s, want nothing", describe(msgs))
	}
}

func describe(msgs []mailtest.Message) string {
	parts := make([]string, len(msgs))
	for i, msg := range msgs {
		parts[i] = strings.Join(msg.To, ",") + ": " + msg.Subject
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// accepted checks a 202 with the Accepted body and its code.
func (m *mailStack) accepted(r response, code string) {
	m.t.Helper()
	m.want(r, http.StatusAccepted, "")
	var body struct{ Code, Message string }
	m.decode(r, &body)
	if body.Code != code || body.Message == "" {
		m.t.Fatalf("202 body %s, want code %s", r.Body, code)
	}
}

// registerPending registers a password account and returns its
// confirmation mail.
func (m *mailStack) registerPending(email string, extra map[string]any, headers ...header) mailtest.Message {
	m.t.Helper()
	body := map[string]any{"email": email, "password": adaPassword}
	for k, v := range extra {
		body[k] = v
	}
	m.accepted(m.do("POST", "/api/register", body, headers...), "PENDING_CONFIRMATION")
	return m.mailTo(email)
}

// confirm sends a token to /auth/confirm and expects tokens back.
func (m *mailStack) confirm(token string) tokenPair {
	m.t.Helper()
	r := m.do("POST", "/api/auth/confirm", map[string]any{"token": token})
	m.want(r, http.StatusOK, "")
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		m.t.Errorf("Cache-Control %q", cc)
	}
	var res authResult
	m.decode(r, &res)
	if res.TwoFactorRequired || res.AccessToken == "" || res.RefreshToken == "" {
		m.t.Fatalf("confirm result %s", r.Body)
	}
	return res.tokenPair
}

// confirmed registers and confirms an account; it returns its tokens.
func (m *mailStack) confirmed(email string) tokenPair {
	m.t.Helper()
	return m.confirm(m.registerPending(email, nil).Token())
}

// requestReset asks for a reset mail and returns it.
func (m *mailStack) requestReset(email string) mailtest.Message {
	m.t.Helper()
	m.accepted(m.do("POST", "/api/auth/password/reset-request", map[string]any{"email": email}), "ACCEPTED")
	return m.mailTo(email)
}

func (m *mailStack) reset(token, pw string) response {
	m.t.Helper()
	return m.do("POST", "/api/auth/password/reset", map[string]any{"token": token, "password": pw})
}

func wantLink(t *testing.T, msg mailtest.Message, path string) {
	t.Helper()
	if !strings.HasPrefix(msg.Link(), publicURL+path+"?token=") || len(msg.Token()) != 43 {
		t.Fatalf("link %q, want %s%s?token=<43 characters>", msg.Link(), publicURL, path)
	}
	if !strings.Contains(msg.HTML, `href="`+msg.Link()+`"`) {
		t.Errorf("the HTML part lacks the link")
	}
}

func TestMailRegistration(t *testing.T) {
	eachDB(t, func(h *harness) {
		srv := mailtest.Start(h.t, mailtest.Options{})
		m := h.withMail(srv, nil)

		first := m.do("POST", "/api/register", map[string]any{"email": adaEmail, "password": adaPassword, "username": "ada_l"})
		m.accepted(first, "PENDING_CONFIRMATION")
		if n := m.countUsers(adaEmail); n != 1 {
			m.t.Fatalf("%d users", n)
		}
		m.want(m.signInPw(adaEmail, "wrong password 1"), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		m.want(m.signInPw(adaEmail, adaPassword), http.StatusForbidden, "EMAIL_NOT_CONFIRMED")
		m.want(m.signInPw("ada_l", adaPassword), http.StatusForbidden, "EMAIL_NOT_CONFIRMED")

		msg := m.mailTo(adaEmail)
		if msg.Subject != "Confirm your email address" || !strings.Contains(msg.Text, "Hello ada_l") {
			m.t.Errorf("mail %q:\n%s", msg.Subject, msg.Text)
		}
		wantLink(m.t, msg, "/confirm")
		m.noMail() // sent once

		tokens := m.confirm(msg.Token())
		if u := m.me(tokens.AccessToken); !u.EmailConfirmed || deref(u.Email) != adaEmail {
			m.t.Errorf("user %+v", u)
		}
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": msg.Token()}), http.StatusBadRequest, "INVALID_TOKEN")
		m.wantSignIn(adaEmail, adaPassword)

		// The address again: the same answer, no second account, and a
		// notice to the owner whose reset link works.
		again := m.do("POST", "/api/register", map[string]any{"email": "ADA@example.com", "password": newPassword})
		m.accepted(again, "PENDING_CONFIRMATION")
		if !bytes.Equal(again.Body, first.Body) {
			m.t.Errorf("bodies differ: %s vs %s", again.Body, first.Body)
		}
		if n := m.countUsers(adaEmail); n != 1 {
			m.t.Errorf("%d users after a second registration", n)
		}
		notice := m.mailTo(adaEmail)
		if notice.Subject != "Someone tried to register with your address" {
			m.t.Errorf("notice %q", notice.Subject)
		}
		wantLink(m.t, notice, "/reset-password")
		m.want(m.reset(notice.Token(), newPassword), http.StatusNoContent, "")
		m.wantSignIn(adaEmail, newPassword)
		m.flush() // the password-changed notice

		// Usernames are public: taken is taken.
		m.want(m.do("POST", "/api/register", map[string]any{"email": adaEmail, "password": newPassword, "username": "ADA_L"}),
			http.StatusConflict, "USERNAME_TAKEN")
		m.want(m.do("POST", "/api/register", map[string]any{"email": "bob@example.com", "password": newPassword, "username": "Ada_l"}),
			http.StatusConflict, "USERNAME_TAKEN")
		m.noMail()

		// Form bodies work too.
		r := m.do("POST", "/api/register", url.Values{"email": {"carol@example.com"}, "password": {adaPassword}})
		m.accepted(r, "PENDING_CONFIRMATION")
		c := m.mailTo("carol@example.com")
		r = m.do("POST", "/api/auth/confirm", url.Values{"token": {c.Token()}})
		m.want(r, http.StatusOK, "")
	})
}

func TestMailResendConfirmation(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		resend := func(email string) {
			m.t.Helper()
			m.accepted(m.do("POST", "/api/auth/confirm/resend", map[string]any{"email": email}), "ACCEPTED")
		}
		resend("nobody@example.com")
		m.noMail()

		old := m.registerPending(adaEmail, nil)
		resend("Ada@Example.com")
		fresh := m.mailTo(adaEmail)
		if fresh.Token() == old.Token() {
			m.t.Fatal("the resent token is the old one")
		}
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": old.Token()}), http.StatusBadRequest, "INVALID_TOKEN")
		m.confirm(fresh.Token())

		resend(adaEmail) // confirmed now: nothing to send
		m.noMail()
		m.want(m.do("POST", "/api/auth/confirm/resend", map[string]any{"email": "not an address"}), http.StatusBadRequest, "INVALID_REQUEST")
	})
}

func TestMailPasswordReset(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		first := m.confirmed(adaEmail)
		second := m.wantSignIn(adaEmail, adaPassword)

		m.accepted(m.do("POST", "/api/auth/password/reset-request", map[string]any{"email": "nobody@example.com"}), "ACCEPTED")
		m.noMail()

		older := m.requestReset(adaEmail)
		msg := m.requestReset(adaEmail)
		if msg.Subject != "Reset your password" {
			m.t.Errorf("subject %q", msg.Subject)
		}
		wantLink(m.t, msg, "/reset-password")
		m.want(m.reset(older.Token(), newPassword), http.StatusBadRequest, "INVALID_TOKEN")

		// A weak password does not use the token up.
		r := m.reset(msg.Token(), "password")
		m.want(r, http.StatusBadRequest, "WEAK_PASSWORD")
		if e := m.apiErr(r); len(e.Details) != 1 || e.Details[0].Field != "password" {
			m.t.Errorf("details %+v", e.Details)
		}
		r = m.do("POST", "/api/auth/password/reset", map[string]any{"token": msg.Token(), "password": newPassword, "password_conf": "other"})
		m.want(r, http.StatusBadRequest, "INVALID_REQUEST")
		r = m.do("POST", "/api/auth/password/reset", url.Values{"token": {msg.Token()}, "password": {newPassword}, "password_conf": {newPassword}})
		m.want(r, http.StatusNoContent, "")

		for _, tp := range []tokenPair{first, second} {
			m.wantAccess(tp.AccessToken, false)
			m.want(m.refresh(tp.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
		}
		m.want(m.signInPw(adaEmail, adaPassword), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		m.wantSignIn(adaEmail, newPassword)
		notice := m.mailTo(adaEmail)
		if notice.Subject != "Your password was changed" || notice.Token() != "" {
			m.t.Errorf("notice %q, token %q", notice.Subject, notice.Token())
		}
		m.want(m.reset(msg.Token(), "another fine phrase 8"), http.StatusBadRequest, "INVALID_TOKEN")

		// A reset voids a pending email change: its link may be in the
		// hands of whoever made the reset necessary.
		thief := m.wantSignIn(adaEmail, newPassword)
		m.accepted(m.do("PUT", "/api/me/email", map[string]any{"email": "thief@example.com", "password": newPassword},
			bearer(thief.AccessToken)), "ACCEPTED")
		var stolen string
		for _, msg := range m.flush() {
			if msg.To[0] == "thief@example.com" {
				stolen = msg.Token()
			}
		}
		m.want(m.reset(m.requestReset(adaEmail).Token(), adaPassword), http.StatusNoContent, "")
		m.flush()
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": stolen}), http.StatusBadRequest, "INVALID_TOKEN")
		m.wantSignIn(adaEmail, adaPassword)

		// An unconfirmed account gets the mail too, and the reset confirms it.
		m.registerPending("bob@example.com", nil)
		m.want(m.signInPw("bob@example.com", adaPassword), http.StatusForbidden, "EMAIL_NOT_CONFIRMED")
		bob := m.requestReset("bob@example.com")
		m.want(m.reset(bob.Token(), newPassword), http.StatusNoContent, "")
		m.wantSignIn("bob@example.com", newPassword)
	})
}

// TestMailTokens: expired, reused and wrong-type tokens are 400
// INVALID_TOKEN, and no mailed token works as an access or refresh token.
func TestMailTokens(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		confirm := m.registerPending(adaEmail, nil).Token()
		reset := m.requestReset(adaEmail).Token()

		m.want(m.reset(confirm, newPassword), http.StatusBadRequest, "INVALID_TOKEN")
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": reset}), http.StatusBadRequest, "INVALID_TOKEN")
		for _, tok := range []string{confirm, reset} {
			m.wantAccess(tok, false)
			m.want(m.refresh(tok), http.StatusUnauthorized, "UNAUTHENTICATED")
		}
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": "nonsense"}), http.StatusBadRequest, "INVALID_TOKEN")

		// Expiry: the reset link lasts an hour, the confirmation a day.
		m.clock.advance(time.Hour)
		m.want(m.reset(reset, newPassword), http.StatusBadRequest, "INVALID_TOKEN")
		m.clock.advance(23*time.Hour - time.Second)
		m.confirm(confirm)
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": confirm}), http.StatusBadRequest, "INVALID_TOKEN")

		late := m.registerPending("bob@example.com", nil).Token()
		m.clock.advance(24 * time.Hour)
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": late}), http.StatusBadRequest, "INVALID_TOKEN")
	})
}

func TestMailChangeEmail(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		ada := m.confirmed(adaEmail)
		m.confirmed("bob@example.com")
		change := func(access string, body map[string]any) response {
			m.t.Helper()
			return m.do("PUT", "/api/me/email", body, bearer(access))
		}
		const newEmail = "ada@lovelace.example"

		secret := m.register("anon")
		m.want(change(secret.AccessToken, map[string]any{"email": newEmail, "password": "x"}), http.StatusConflict, "NOT_APPLICABLE")
		m.want(change(ada.AccessToken, map[string]any{"email": newEmail, "password": "wrong password 1"}), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		m.want(change(ada.AccessToken, map[string]any{"email": "BOB@example.com", "password": adaPassword}), http.StatusConflict, "EMAIL_TAKEN")
		m.want(change(ada.AccessToken, map[string]any{"email": "nope", "password": adaPassword}), http.StatusBadRequest, "INVALID_REQUEST")
		m.want(change("", map[string]any{"email": newEmail, "password": adaPassword}), http.StatusUnauthorized, "UNAUTHENTICATED")
		m.noMail()

		m.accepted(change(ada.AccessToken, map[string]any{"email": newEmail, "password": adaPassword}), "ACCEPTED")
		msgs := m.flush()
		if len(msgs) != 2 {
			m.t.Fatalf("delivered %s, want two messages", describe(msgs))
		}
		var toNew, toOld mailtest.Message
		for _, msg := range msgs {
			switch msg.To[0] {
			case newEmail:
				toNew = msg
			case adaEmail:
				toOld = msg
			}
		}
		if toNew.Subject != "Confirm your new email address" {
			m.t.Errorf("to the new address: %q", toNew.Subject)
		}
		wantLink(m.t, toNew, "/confirm")
		if toOld.Subject != "Your email address is being changed" || !strings.Contains(toOld.Text, newEmail) || toOld.Token() != "" {
			m.t.Errorf("to the old address: %q\n%s", toOld.Subject, toOld.Text)
		}

		// Nothing changes until the new address confirms.
		m.want(m.signInPw(newEmail, adaPassword), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		m.wantSignIn(adaEmail, adaPassword)
		r := m.do("POST", "/api/auth/confirm", url.Values{"token": {toNew.Token()}})
		m.want(r, http.StatusOK, "")
		if u := m.me(ada.AccessToken); deref(u.Email) != newEmail || !u.EmailConfirmed {
			m.t.Errorf("user %+v", u)
		}
		m.want(m.signInPw(adaEmail, adaPassword), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		m.wantSignIn(newEmail, adaPassword)
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": toNew.Token()}), http.StatusBadRequest, "INVALID_TOKEN")

		// The new address is registered by someone else meanwhile.
		m.accepted(change(ada.AccessToken, map[string]any{"email": "carol@example.com", "password": adaPassword}), "ACCEPTED")
		var token string
		for _, msg := range m.flush() {
			if msg.To[0] == "carol@example.com" {
				token = msg.Token()
			}
		}
		m.registerPending("carol@example.com", nil)
		m.want(m.do("POST", "/api/auth/confirm", map[string]any{"token": token}), http.StatusConflict, "EMAIL_TAKEN")
		if u := m.me(ada.AccessToken); deref(u.Email) != newEmail {
			m.t.Errorf("the address changed to %v", deref(u.Email))
		}
	})
}

// TestMailOutage: a reset asked for while the mail server is down, then a
// restart of the service, then the mail server back: the mail arrives,
// once.
func TestMailOutage(t *testing.T) {
	eachDB(t, func(h *harness) {
		srv := mailtest.Start(h.t, mailtest.Options{})
		m := h.withMail(srv, nil)
		m.confirmed(adaEmail)

		srv.Stop()
		start := time.Now()
		m.accepted(m.do("POST", "/api/auth/password/reset-request", map[string]any{"email": adaEmail}), "ACCEPTED")
		if d := time.Since(start); d > 2*time.Second {
			m.t.Errorf("the answer took %s with the mail server down", d)
		}
		m.noMail() // the attempt fails

		m.restart()
		srv.Restart()
		m.noMail() // not due yet: backing off
		m.clock.advance(time.Minute)
		msg := m.mailTo(adaEmail)
		m.clock.advance(10 * time.Minute) // past any lease and backoff
		m.noMail()
		m.restart()
		m.noMail()
		if n := len(srv.To(adaEmail)); n != 2 { // confirmation + reset
			m.t.Errorf("%d messages to %s, want 2", n, adaEmail)
		}
		m.want(m.reset(msg.Token(), newPassword), http.StatusNoContent, "")
	})
}

// TestMailTwoInstances: two stacks on one database drain one outbox at the
// same time; every mail is delivered exactly once.
func TestMailTwoInstances(t *testing.T) {
	eachDB(t, func(h *harness) {
		srv := mailtest.Start(h.t, mailtest.Options{})
		a := h.withMail(srv, nil)
		// The second instance has a connection pool of its own.
		db2, err := store.Open(context.Background(), h.dsn, slog.New(slog.DiscardHandler))
		if err != nil {
			h.t.Fatalf("store.Open: %v", err)
		}
		h.t.Cleanup(func() { _ = db2.Close() })
		h2 := *h
		h2.db = db2
		b := h2.withMail(srv, nil)
		const n = 12
		for i := range n {
			email := "user" + string(rune('a'+i)) + "@example.com"
			a.accepted(a.do("POST", "/api/register", map[string]any{"email": email, "password": adaPassword}), "PENDING_CONFIRMATION")
		}
		var wg sync.WaitGroup
		for _, o := range []*outbox.Worker{a.outbox, b.outbox} {
			wg.Go(func() {
				for range 3 {
					if _, err := o.SendDue(context.Background()); err != nil {
						h.t.Errorf("SendDue: %v", err)
					}
				}
			})
		}
		wg.Wait()
		ids := map[string]int{}
		for _, msg := range srv.Messages() {
			ids[msg.Header.Get("Message-Id")]++
		}
		if len(ids) != n {
			h.t.Errorf("%d distinct mails delivered, want %d", len(ids), n)
		}
		for id, c := range ids {
			if c != 1 {
				h.t.Errorf("mail %s delivered %d times", id, c)
			}
		}
	})
}

// TestMailLanguages: mails are in the language of the user's locale.
func TestMailLanguages(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		fr := m.registerPending("amelie@example.fr", map[string]any{"locale": "fr-CH"})
		if fr.Subject != "Confirmez votre adresse e-mail" || !strings.Contains(fr.Text, "Bonjour amelie") ||
			fr.Header.Get("Content-Language") != "fr" {
			m.t.Errorf("French confirmation %q:\n%s", fr.Subject, fr.Text)
		}
		m.confirm(fr.Token())
		if reset := m.requestReset("amelie@example.fr"); reset.Subject != "Réinitialisez votre mot de passe" ||
			!strings.Contains(reset.Text, "valable 1 heure") {
			m.t.Errorf("French reset %q:\n%s", reset.Subject, reset.Text)
		}
		// From Accept-Language when no locale is given.
		de := m.registerPending("jonas@example.de", nil, hdr("Accept-Language", "de-AT,de;q=0.9,en;q=0.5"))
		if de.Subject != "Bestätigen Sie Ihre E-Mail-Adresse" {
			m.t.Errorf("German confirmation %q", de.Subject)
		}
		if es := m.registerPending("sofia@example.es", map[string]any{"locale": "es-ES"}); es.Subject != "Confirm your email address" {
			m.t.Errorf("Spanish falls back to English: %q", es.Subject)
		}
	})
}

// TestMailSMTPTransport: STARTTLS offered by the server is used, with
// authentication over it.
func TestMailSMTPTransport(t *testing.T) {
	eachDB(t, func(h *harness) {
		srv := mailtest.Start(h.t, mailtest.Options{STARTTLS: true, Username: "latchkey", Password: "relay secret"})
		m := h.withMail(srv, nil)
		msg := m.registerPending(adaEmail, nil)
		if !msg.TLS || msg.AuthUser != "latchkey" || msg.From != "no-reply@latchkey.test" {
			m.t.Errorf("TLS %v, user %q, from %q", msg.TLS, msg.AuthUser, msg.From)
		}
	})
}

func TestMailRateLimits(t *testing.T) {
	eachDB(t, func(h *harness) {
		mem := ratelimit.Memory()
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), func(c *auth.Config) {
			c.Limits.MailAddress = mem.New("mail-address", 2, time.Hour)
			c.Limits.MailClient = mem.New("mail-client", 4, time.Hour)
		})
		ada := m.confirmed(adaEmail)
		limited := func(r response) {
			m.t.Helper()
			m.want(r, http.StatusTooManyRequests, "RATE_LIMITED")
			if r.Header.Get("Retry-After") == "" {
				m.t.Error("no Retry-After")
			}
		}
		post := func(path, email string, headers ...header) response {
			m.t.Helper()
			return m.do("POST", path, map[string]any{"email": email}, headers...)
		}
		// Per address, across the mail endpoints.
		m.accepted(post("/api/auth/password/reset-request", adaEmail), "ACCEPTED")
		m.accepted(post("/api/auth/confirm/resend", adaEmail), "ACCEPTED")
		limited(post("/api/auth/password/reset-request", "ADA@example.com", from("198.51.100.9:1234")))
		// Per client: two more addresses from clientIP use it up.
		m.accepted(post("/api/auth/password/reset-request", "x@example.com"), "ACCEPTED")
		m.accepted(post("/api/auth/password/reset-request", "y@example.com"), "ACCEPTED")
		limited(post("/api/auth/confirm/resend", "z@example.com"))
		limited(m.do("PUT", "/api/me/email", map[string]any{"email": "new@example.com", "password": adaPassword}, bearer(ada.AccessToken)))
		m.accepted(post("/api/auth/password/reset-request", "z@example.com", from("198.51.100.9:1234")), "ACCEPTED")
		m.accepted(m.do("PUT", "/api/me/email", map[string]any{"email": "new@example.com", "password": adaPassword},
			bearer(ada.AccessToken), from("198.51.100.10:1234")), "ACCEPTED")
		if msgs := m.flush(); len(msgs) != 3 { // a reset mail; the change's confirmation and notice
			m.t.Errorf("delivered %s, want 3", describe(msgs))
		}
	})
}

// TestMailWorker: the outbox worker sends in the background; requests do
// not wait for it.
func TestMailWorker(t *testing.T) {
	eachDB(t, func(h *harness) {
		srv := mailtest.Start(h.t, mailtest.Options{})
		m := h.withMail(srv, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		worker := newWorker(h.t, m.svc, m.mailer, func(c *outbox.Config) { c.Poll = 10 * time.Millisecond })
		go func() { worker.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		m.accepted(m.do("POST", "/api/register", map[string]any{"email": adaEmail, "password": adaPassword}), "PENDING_CONFIRMATION")
		msg := srv.Wait(1, 10*time.Second)[0]
		m.confirm(msg.Token())
	})
}

// TestMailConfirmTwoFactor: /auth/confirm answers like /auth, so an
// account with two-factor on gets a challenge, not tokens.
func TestMailConfirmTwoFactor(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		msg := m.registerPending(adaEmail, nil)
		// Turn two-factor on through the store's own methods (UpdateUser
		// does not write the two-factor state).
		u := m.storedUser(adaEmail)
		ctx, now := context.Background(), time.Now().UTC().Truncate(time.Microsecond)
		if err := m.db.SetPendingTwoFactor(ctx, u.ID, []byte("sealed key"), now); err != nil {
			m.t.Fatal(err)
		}
		if err := m.db.EnableTwoFactor(ctx, u.ID, []byte("sealed key"), 1, nil, now); err != nil {
			m.t.Fatal(err)
		}
		r := m.do("POST", "/api/auth/confirm", map[string]any{"token": msg.Token()})
		m.want(r, http.StatusOK, "")
		var res struct {
			TwoFactorRequired bool   `json:"two_factor_required"`
			TwoFactorToken    string `json:"two_factor_token"`
			AccessToken       string `json:"access_token"`
		}
		m.decode(r, &res)
		if !res.TwoFactorRequired || res.TwoFactorToken == "" || res.AccessToken != "" {
			m.t.Errorf("confirm with two-factor on = %s", r.Body)
		}
		if !m.storedUser(adaEmail).EmailConfirmed {
			m.t.Error("the address is not confirmed")
		}
	})
}
