package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/mail/mailtest"
)

// TestSecurityNotices: a password change, a reset, turning two-factor off
// and using a recovery code each mail the account, in its language, with
// the time (in its time zone), the client address and the user agent.
func TestSecurityNotices(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), func(c *auth.Config) { c.EmailConfirmationRequired = false })
		const (
			email = "ada@example.com"
			pw1   = "first quiet horse"
			pw2   = "second quiet horse"
			pw3   = "third quiet horse"
			agent = "NoticeAgent/1.0 <b>bold</b>"
		)
		ua := hdr("User-Agent", agent)
		acct := m.registerPassword(map[string]any{"email": email, "password": pw1, "locale": "fr-CH", "timezone": "Europe/Paris"})
		m.noMail()
		details := func(msg mailtest.Message, ip, agent string) {
			h.t.Helper()
			for _, want := range []string{"Quand : ", "Adresse : " + ip, "Appareil : " + agent} {
				if !strings.Contains(msg.Text, want) {
					h.t.Errorf("%q: the text lacks %q:\n%s", msg.Subject, want, msg.Text)
				}
			}
			if zone := h.clock.Now().In(mustZone(h.t, "Europe/Paris")).Format("15:04 MST"); !strings.Contains(msg.Text, zone) {
				h.t.Errorf("%q: the time is not in the user's zone (%s):\n%s", msg.Subject, zone, msg.Text)
			}
			if strings.Contains(msg.HTML, "<b>bold</b>") {
				h.t.Errorf("%q: the user agent is not escaped in HTML", msg.Subject)
			}
		}

		{ // password changed
			m.want(m.do("PUT", "/api/me/password", map[string]any{"current_password": pw1, "new_password": pw2}, bearer(acct.AccessToken), ua), http.StatusNoContent, "")
			msg := m.mailTo(email)
			if msg.Subject != "Votre mot de passe a été modifié" {
				h.t.Errorf("subject %q", msg.Subject)
			}
			details(msg, clientIP, agent)
			// A refused change mails nothing.
			m.want(m.do("PUT", "/api/me/password", map[string]any{"current_password": "wrong one!", "new_password": pw3}, bearer(acct.AccessToken)), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			m.noMail()
		}
		{ // recovery code used, two-factor off
			_, key := m.enrollTwoFactor(acct.AccessToken, map[string]any{"password": pw2})
			codes := m.confirmTwoFactor(acct.AccessToken, appCode(key, h.clock.Now()))
			m.noMail()
			token := m.challenge(map[string]any{"email": email, "password": pw2})
			tp := m.wantTokens(m.answer(token, codes[0]))
			msg := m.mailTo(email)
			if msg.Subject != "Un code de secours a été utilisé" {
				h.t.Errorf("subject %q", msg.Subject)
			}
			details(msg, clientIP, "latchkey-test/1.0")
			h.nextStep()
			m.want(m.do("DELETE", "/api/me/two-factor", map[string]any{"code": appWrongCode(key, h.clock.Now())}, bearer(tp.AccessToken)), http.StatusUnauthorized, "INVALID_CODE")
			m.noMail()
			if evs, err := h.db.ListEvents(context.Background(), auth.EventFilter{UserID: acct.ID, Type: auth.EventTwoFactorFailed}, nil, 10); err != nil || len(evs) != 1 {
				h.t.Errorf("two_factor_failed events: %+v, %v", evs, err)
			}
			m.want(m.do("DELETE", "/api/me/two-factor", map[string]any{"code": appCode(key, h.clock.Now())}, bearer(tp.AccessToken), ua, from("198.51.100.20:1")), http.StatusNoContent, "")
			msg = m.mailTo(email)
			if msg.Subject != "La double authentification a été désactivée" {
				h.t.Errorf("subject %q", msg.Subject)
			}
			details(msg, "198.51.100.20", agent)
		}
		{ // password reset
			link := m.requestReset(email)
			m.want(m.do("POST", "/api/auth/password/reset", map[string]any{"token": link.Token(), "password": pw3}, ua), http.StatusNoContent, "")
			msg := m.mailTo(email)
			details(msg, clientIP, agent)
		}
		{ // in German and English
			for _, tc := range []struct{ locale, subject, when string }{
				{"de-AT", "Ihr Passwort wurde geändert", "Wann: "},
				{"pt-BR", "Your password was changed", "When: "},
			} {
				addr := "user-" + strings.ToLower(tc.locale) + "@example.com"
				a := m.registerPassword(map[string]any{"email": addr, "password": pw1, "locale": tc.locale})
				m.want(m.do("PUT", "/api/me/password", map[string]any{"current_password": pw1, "new_password": pw2}, bearer(a.AccessToken)), http.StatusNoContent, "")
				msg := m.mailTo(addr)
				if msg.Subject != tc.subject || !strings.Contains(msg.Text, tc.when) || !strings.Contains(msg.Text, "UTC") {
					h.t.Errorf("%s: %q\n%s", tc.locale, msg.Subject, msg.Text)
				}
			}
		}
	})
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
