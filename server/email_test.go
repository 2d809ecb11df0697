package server_test

import (
	"net/http"
	"testing"

	"github.com/latchkey-dev/latchkey/mail/mailtest"
)

// One mailbox, one account: the Unicode, Punycode and NFD spellings of a
// domain (and any case) are one address, stored and returned with its
// domain in ASCII (Punycode) form.
const (
	idnUnicode  = "x@ex\u00e4mple.com"  // exämple, precomposed (NFC)
	idnNFD      = "x@exa\u0308mple.com" // a + combining diaeresis
	idnPunycode = "x@xn--exmple-cua.com"
	idnUpper    = "X@EX\u00c4MPLE.COM"
)

func TestEmailOneMailboxOneAccount(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.passwords(nil)
		h.run("POST /register/409 every spelling of one address", func(h *harness) {
			a := h.registerPassword(map[string]any{"email": idnUnicode, "password": goodPw})
			if u := h.me(a.AccessToken); deref(u.Email) != idnPunycode {
				h.t.Errorf("stored email %q, want %q", deref(u.Email), idnPunycode)
			}
			for _, e := range []string{idnPunycode, idnNFD, idnUpper} {
				h.want(h.do("POST", "/api/register", map[string]any{"email": e, "password": otherPw}), http.StatusConflict, "EMAIL_TAKEN")
			}
			if n := h.countUsers(idnPunycode) + h.countUsers(idnUnicode) + h.countUsers(idnNFD); n != 1 {
				h.t.Errorf("%d accounts, want 1", n)
			}
			for _, e := range []string{idnUnicode, idnPunycode, idnNFD, idnUpper} {
				tp := h.wantSignIn(e, goodPw)
				if u := h.me(tp.AccessToken); u.ID != a.ID {
					h.t.Errorf("signing in as %q reached account %s, want %s", e, u.ID, a.ID)
				}
			}
		})
		h.run("POST /register/409 the NFD spelling first", func(h *harness) {
			h.registerPassword(map[string]any{"email": "y@exa\u0308mple.org", "password": goodPw})
			h.want(h.do("POST", "/api/register", map[string]any{"email": "y@ex\u00e4mple.org", "password": otherPw}), http.StatusConflict, "EMAIL_TAKEN")
			h.want(h.do("POST", "/api/register", map[string]any{"email": "y@xn--exmple-cua.org", "password": otherPw}), http.StatusConflict, "EMAIL_TAKEN")
		})
		h.run("POST /register/400 a domain IDNA refuses", func(h *harness) {
			for _, e := range []string{"x@exa_mple.com", "x@-example.com", "x@example..com", "x@xn--a.com"} {
				h.want(h.do("POST", "/api/register", map[string]any{"email": e, "password": goodPw}), http.StatusBadRequest, "INVALID_REQUEST")
			}
		})
	})
}

// TestEmailSpellingsInMailFlows: reset, resend, confirmation and email
// change find the account whichever spelling is given.
func TestEmailSpellingsInMailFlows(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		m.accepted(m.do("POST", "/api/register", map[string]any{"email": idnNFD, "password": adaPassword}), "PENDING_CONFIRMATION")
		msg := m.mailTo(idnPunycode) // the stored form
		m.want(m.do("POST", "/api/register", map[string]any{"email": idnUnicode, "password": adaPassword}), http.StatusAccepted, "")
		m.mailTo(idnPunycode) // the already-registered notice
		m.accepted(m.do("POST", "/api/auth/confirm/resend", map[string]any{"email": idnUpper}), "ACCEPTED")
		fresh := m.mailTo(idnPunycode)
		if fresh.Token() == msg.Token() {
			m.t.Fatal("no new confirmation token")
		}
		m.confirm(fresh.Token())

		m.accepted(m.do("POST", "/api/auth/password/reset-request", map[string]any{"email": idnUnicode}), "ACCEPTED")
		reset := m.mailTo(idnPunycode)
		m.want(m.reset(reset.Token(), newPassword), http.StatusNoContent, "")
		m.flush()
		tp := m.wantSignIn(idnNFD, newPassword)

		// Another account may not take any spelling of it.
		bob := m.confirmed("bob@example.com")
		for _, e := range []string{idnUnicode, idnNFD, idnPunycode} {
			m.want(m.do("PUT", "/api/me/email", map[string]any{"email": e, "password": adaPassword}, bearer(bob.AccessToken)),
				http.StatusConflict, "EMAIL_TAKEN")
		}
		// Its own address in another spelling is no change.
		m.want(m.do("PUT", "/api/me/email", map[string]any{"email": idnUpper, "password": newPassword}, bearer(tp.AccessToken)),
			http.StatusBadRequest, "INVALID_REQUEST")
		// A change to a Unicode domain is confirmed to, and stored as, its
		// ASCII form.
		m.accepted(m.do("PUT", "/api/me/email", map[string]any{"email": "bob@b\u00fccher.example", "password": adaPassword},
			bearer(bob.AccessToken)), "ACCEPTED")
		var token string
		for _, msg := range m.flush() {
			if msg.To[0] == "bob@xn--bcher-kva.example" {
				token = msg.Token()
			}
		}
		m.confirm(token)
		if u := m.me(bob.AccessToken); deref(u.Email) != "bob@xn--bcher-kva.example" {
			m.t.Errorf("email %q after the change", deref(u.Email))
		}
		m.wantSignIn("bob@B\u00dcCHER.example", adaPassword)
	})
}
