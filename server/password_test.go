package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/ratelimit"
)

// Passwords that pass the policy for the addresses used below.
const (
	goodPw  = "correct horse battery staple"
	otherPw = "violet umbrella thunder 42"
	wrongPw = "not the password at all"
)

// currentPrefix begins a hash made with cheapParams, the parameters of
// the stacks built by passwords.
const currentPrefix = "$argon2id$v=19$m=64,t=1,p=1$"

// longPassword is a password of n characters (runes), the last 8 of them
// two-byte "é", so that characters and bytes differ.
func longPassword(n int) string {
	const alphabet = "Tr0ub4dor&3-zq"
	var b strings.Builder
	for i := range n - 8 {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String() + strings.Repeat("\u00e9", 8)
}

func TestRegisterPassword(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.passwords(nil)
		h.run("POST /register/201 password account", func(h *harness) {
			r := h.do("POST", "/api/register", map[string]any{"email": "Ada.L@Example.COM", "password": goodPw},
				hdr("Accept-Language", "fr-CH,fr;q=0.9,en;q=0.5"))
			h.want(r, http.StatusCreated, "")
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				h.t.Errorf("Cache-Control %q, want no-store", cc)
			}
			var raw map[string]json.RawMessage
			h.decode(r, &raw)
			if s, ok := raw["secret"]; ok {
				h.t.Errorf("a password account got a secret: %s", s)
			}
			var res registerResult
			h.decode(r, &res)
			u := res.User
			if u.AccountType != "password" || deref(u.Email) != "ada.l@example.com" || u.EmailConfirmed ||
				u.Name != "ada.l" || u.Username != nil || u.Locale != "fr-CH" || u.Timezone != "UTC" {
				h.t.Errorf("user = %+v (email %q)", u, deref(u.Email))
			}
			tp := res.Tokens
			if tp.TokenType != "Bearer" || tp.AccessToken == "" || tp.RefreshToken == "" || tp.SessionID == "" {
				h.t.Errorf("tokens = %+v", tp)
			}
			if me := h.me(tp.AccessToken); me.ID != u.ID || deref(me.Email) != "ada.l@example.com" {
				h.t.Errorf("GET /me = %+v", me)
			}
			h.wantSignIn("ada.l@example.com", goodPw)
		})
		h.run("POST /register/201 form", func(h *harness) {
			r := h.do("POST", "/api/register", url.Values{
				"email": {"grace@example.com"}, "password": {goodPw}, "password_conf": {goodPw},
				"username": {"Grace_H"}, "timezone": {"Europe/Paris"}, "bio": {"Admiral & programmer."},
			})
			h.want(r, http.StatusCreated, "")
			var res registerResult
			h.decode(r, &res)
			u := res.User
			if u.AccountType != "password" || u.Name != "Grace_H" || deref(u.Username) != "Grace_H" ||
				u.Timezone != "Europe/Paris" || u.Locale != "en" || deref(u.Bio) != "Admiral & programmer." || res.Secret != "" {
				h.t.Errorf("user = %+v", u)
			}
			h.wantSignIn("grace_h", goodPw)
		})
		h.run("POST /register/201 name and locale from the body", func(h *harness) {
			r := h.do("POST", "/api/register", map[string]any{
				"email": "lovelace@example.com", "password": goodPw, "name": "Ada Lovelace", "username": "ada_lovelace", "locale": "de-AT",
			}, hdr("Accept-Language", "fr"))
			h.want(r, http.StatusCreated, "")
			var res registerResult
			h.decode(r, &res)
			if res.User.Name != "Ada Lovelace" || res.User.Locale != "de-AT" {
				h.t.Errorf("user = %+v", res.User)
			}
		})
		h.run("POST /register/201 8 × é composed", func(h *harness) {
			h.registerPassword(map[string]any{"email": "nfc@example.com", "password": strings.Repeat("\u00e9", 8)})
		})
		h.run("POST /register/201 8 × é decomposed is 8 characters and signs in composed", func(h *harness) {
			nfd := strings.Repeat("e\u0301", 8) // 16 code points, 8 characters in NFC
			h.registerPassword(map[string]any{"email": "nfd@example.com", "password": nfd})
			h.wantSignIn("nfd@example.com", strings.Repeat("\u00e9", 8))
			h.wantSignIn("nfd@example.com", nfd)
		})

		for _, c := range []struct {
			name, email, username, password string
		}{
			{"7 characters", "short@example.com", "", "k9#vQ2m"},
			{"7 × é decomposed", "short.nfd@example.com", "", strings.Repeat("e\u0301", 7)}, // 14 code points
			{"129 characters", "long@example.com", "", longPassword(129)},
			{"common password", "common@example.com", "", "password1"},
			{"common password in other case", "common.case@example.com", "", "PassWord1"},
			{"contains the email local part in other case", "marguerite@example.com", "", "my MARGUERITE garden 7"},
			{"equals the username", "zebra@example.com", "zebra_crossing_9", "zebra_crossing_9"},
			{"contains the username in other case", "kangaroo@example.com", "quokka", "happyQUOKKA!day"},
		} {
			h.run("POST /register/400 weak password: "+c.name, func(h *harness) {
				body := map[string]any{"email": c.email, "password": c.password}
				if c.username != "" {
					body["username"] = c.username
				}
				r := h.do("POST", "/api/register", body)
				h.want(r, http.StatusBadRequest, "WEAK_PASSWORD")
				e := h.apiErr(r)
				if !slices.ContainsFunc(e.Details, func(d fieldError) bool { return d.Field == "password" && d.Message != "" }) {
					h.t.Errorf("details %+v have no entry for password", e.Details)
				}
				if n := h.countUsers(c.email); n != 0 {
					h.t.Errorf("%d accounts with %s, want none", n, c.email)
				}
			})
		}

		for _, c := range []struct {
			name  string
			body  any
			field string
		}{
			{"password_conf mismatch", map[string]any{"email": "conf@example.com", "password": goodPw, "password_conf": otherPw}, "password_conf"},
			{"bad email", map[string]any{"email": "conf.example.com", "password": goodPw}, "email"},
			{"bad username", map[string]any{"email": "user@example.com", "password": goodPw, "username": "a b"}, "username"},
			{"short username", map[string]any{"email": "user@example.com", "password": goodPw, "username": "ab"}, "username"},
			{"bad timezone", map[string]any{"email": "tz@example.com", "password": goodPw, "timezone": "Mars/Olympus_Mons"}, "timezone"},
			{"email without password", map[string]any{"email": "nopw@example.com"}, "password"},
			{"password without email", map[string]any{"password": goodPw}, "email"},
			{"password without email in a form", url.Values{"password": {goodPw}, "name": {"Ada"}}, "email"},
		} {
			h.run("POST /register/400 "+c.name, func(h *harness) {
				r := h.do("POST", "/api/register", c.body)
				h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
				e := h.apiErr(r)
				if !slices.ContainsFunc(e.Details, func(d fieldError) bool { return d.Field == c.field }) {
					h.t.Errorf("details %+v do not name %q", e.Details, c.field)
				}
				if m, ok := c.body.(map[string]any); ok && m["email"] != nil {
					if n := h.countUsers(m["email"].(string)); n != 0 {
						h.t.Errorf("%d accounts with %s, want none", n, m["email"])
					}
				}
			})
		}

		h.run("POST /register/409 email taken in other case", func(h *harness) {
			first := h.registerPassword(map[string]any{"email": "Case@Example.com", "password": goodPw})
			r := h.do("POST", "/api/register", map[string]any{"email": "case@EXAMPLE.COM", "password": otherPw})
			h.want(r, http.StatusConflict, "EMAIL_TAKEN")
			tp := h.wantSignIn("CASE@example.com", goodPw)
			if got := h.me(tp.AccessToken).ID; got != first.ID {
				h.t.Errorf("signed in as %s, want %s", got, first.ID)
			}
			h.want(h.signInPw("case@example.com", otherPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			if n := h.countUsers("case@example.com"); n != 1 {
				h.t.Errorf("%d accounts, want 1", n)
			}
		})
		h.run("POST /register/409 username taken in other case", func(h *harness) {
			h.registerPassword(map[string]any{"email": "hopper@example.com", "password": goodPw, "username": "Hopper"})
			r := h.do("POST", "/api/register", map[string]any{"email": "hopper2@example.com", "password": otherPw, "username": "hOPPER"})
			h.want(r, http.StatusConflict, "USERNAME_TAKEN")
			if n := h.countUsers("hopper2@example.com"); n != 0 {
				h.t.Errorf("%d accounts with the second email, want none", n)
			}
			h.wantSignIn("HOPPER", goodPw)
		})
		h.run("POST /register/403 registration closed", func(h *harness) {
			closed := h.passwords(func(c *auth.Config) { c.RegistrationOpen = false })
			r := closed.do("POST", "/api/register", map[string]any{"email": "closed@example.com", "password": goodPw})
			h.want(r, http.StatusForbidden, "REGISTRATION_DISABLED")
			if n := h.countUsers("closed@example.com"); n != 0 {
				h.t.Errorf("%d accounts, want none", n)
			}
		})
		h.run("POST /register/409 50 concurrent registrations of one email create one account", func(h *harness) {
			const n = 50
			emails := []string{"race@example.com", "Race@example.com", "race@EXAMPLE.com", "RACE@EXAMPLE.COM"}
			res := make([]response, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					res[i] = h.do("POST", "/api/register", map[string]any{"email": emails[i%len(emails)], "password": goodPw})
				})
			}
			wg.Wait()
			created := 0
			for _, r := range res {
				switch r.Code {
				case http.StatusCreated:
					created++
				case http.StatusConflict:
					if code := h.apiErr(r).Code; code != "EMAIL_TAKEN" {
						h.t.Errorf("409 %s, want EMAIL_TAKEN", code)
					}
				default:
					h.t.Errorf("unexpected answer %s", r)
				}
			}
			if created != 1 {
				h.t.Errorf("%d registrations succeeded, want exactly 1", created)
			}
			if c := h.countUsers("race@example.com"); c != 1 {
				h.t.Errorf("%d accounts, want 1", c)
			}
		})
	})
}

func TestSignInPassword(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.passwords(nil)
		ada := h.registerPassword(map[string]any{"email": "ada.l@example.com", "password": goodPw, "username": "Ada_L"})
		for _, c := range []struct {
			name string
			body any
		}{
			{"email", map[string]any{"email": "ada.l@example.com", "password": goodPw}},
			{"email in other case", map[string]any{"email": "ADA.L@Example.Com", "password": goodPw}},
			{"username", map[string]any{"username": "Ada_L", "password": goodPw}},
			{"username in other case", map[string]any{"username": "aDA_l", "password": goodPw}},
			{"username in a form", url.Values{"username": {"ada_l"}, "password": {goodPw}}},
			{"email in a form", url.Values{"email": {"Ada.L@example.com"}, "password": {goodPw}}},
		} {
			h.run("POST /auth/200 by "+c.name, func(h *harness) {
				ua := "Browser (" + c.name + ")"
				r := h.do("POST", "/api/auth", c.body, hdr("User-Agent", ua))
				h.want(r, http.StatusOK, "")
				if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
					h.t.Errorf("Cache-Control %q, want no-store", cc)
				}
				var res authResult
				h.decode(r, &res)
				if res.TwoFactorRequired || res.AccessToken == "" || res.SessionID == ada.SessionID {
					h.t.Fatalf("result = %s", r.Body)
				}
				if id := h.me(res.AccessToken).ID; id != ada.ID {
					h.t.Errorf("signed in as %s, want %s", id, ada.ID)
				}
				s := h.currentSession(res.AccessToken)
				if s.ID != res.SessionID || deref(s.UserAgent) != ua || deref(s.IP) != clientIP {
					h.t.Errorf("session %+v, want id %s, agent %q, ip %s", s, res.SessionID, ua, clientIP)
				}
			})
		}
		for _, c := range []struct{ name, ident, pw string }{
			{"wrong password", "ada.l@example.com", wrongPw},
			{"wrong password by username", "ada_l", wrongPw},
			{"password in other case", "ada.l@example.com", strings.ToUpper(goodPw)},
			{"unknown email", "nobody@example.com", goodPw},
			{"unknown username", "nobody_here", goodPw},
		} {
			h.run("POST /auth/401 "+c.name, func(h *harness) {
				h.want(h.signInPw(c.ident, c.pw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			})
		}
		h.run("POST /auth/401 unknown account and wrong password answer byte for byte alike", func(h *harness) {
			for _, pair := range [][2]string{{"ada.l@example.com", "nobody@example.com"}, {"Ada_L", "nobody_here"}} {
				wrong := h.signInPw(pair[0], wrongPw)
				unknown := h.signInPw(pair[1], wrongPw)
				h.want(wrong, http.StatusUnauthorized, "INVALID_CREDENTIALS")
				h.want(unknown, http.StatusUnauthorized, "INVALID_CREDENTIALS")
				if !bytes.Equal(wrong.Body, unknown.Body) {
					h.t.Errorf("bodies differ:\nwrong password: %s\nunknown:        %s", wrong.Body, unknown.Body)
				}
				wh, uh := wrong.Header.Clone(), unknown.Header.Clone()
				wh.Del("X-Request-Id")
				uh.Del("X-Request-Id")
				if !reflect.DeepEqual(wh, uh) {
					h.t.Errorf("headers differ:\nwrong password: %v\nunknown:        %v", wh, uh)
				}
			}
		})
		h.run("POST /auth/200 a 128-character password, not its 127-character prefix", func(h *harness) {
			pw := longPassword(128)
			h.registerPassword(map[string]any{"email": "long128@example.com", "password": pw})
			h.wantSignIn("long128@example.com", pw)
			runes := []rune(pw)
			h.want(h.signInPw("long128@example.com", string(runes[:127])), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.want(h.signInPw("long128@example.com", pw[:72]), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})
		h.run("POST /auth/403 disabled account, only with the right password", func(h *harness) {
			h.registerPassword(map[string]any{"email": "disabled@example.com", "password": goodPw, "username": "disabled_one"})
			h.execSQL("UPDATE users SET disabled = true WHERE email = $1", "disabled@example.com")
			h.want(h.signInPw("disabled@example.com", goodPw), http.StatusForbidden, "ACCOUNT_DISABLED")
			h.want(h.signInPw("Disabled_One", goodPw), http.StatusForbidden, "ACCOUNT_DISABLED")
			h.want(h.signInPw("disabled@example.com", wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})
		for _, c := range []struct {
			name string
			body map[string]any
		}{
			{"email and username together", map[string]any{"email": "ada.l@example.com", "username": "Ada_L", "password": goodPw}},
			{"password without identifier", map[string]any{"password": goodPw}},
			{"email without password", map[string]any{"email": "ada.l@example.com"}},
			{"username without password", map[string]any{"username": "Ada_L"}},
			{"secret with a password", map[string]any{"secret": "c2VjcmV0", "email": "ada.l@example.com", "password": goodPw}},
		} {
			h.run("POST /auth/400 "+c.name, func(h *harness) {
				h.want(h.do("POST", "/api/auth", c.body), http.StatusBadRequest, "INVALID_REQUEST")
			})
		}
	})
}

func TestPasswordRehash(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("POST /auth/200 weaker argon2id parameters are upgraded", func(h *harness) {
			weak := h.passwords(func(c *auth.Config) {
				c.Hasher = newHasher(h.t, password.Params{Memory: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4, time.Second)
			})
			cur := h.passwords(nil)
			a := weak.registerPassword(map[string]any{"email": "weak@example.com", "password": goodPw})
			before := h.storedUser(a.Email).PasswordHash
			if !strings.HasPrefix(before, "$argon2id$v=19$m=32,t=1,p=1$") {
				h.t.Fatalf("stored %q, want the weaker parameters", before)
			}
			cur.want(cur.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			if got := h.storedUser(a.Email).PasswordHash; got != before {
				h.t.Fatalf("a failed sign-in changed the hash to %q", got)
			}
			cur.wantSignIn(a.Email, goodPw)
			after := h.storedUser(a.Email).PasswordHash
			if !strings.HasPrefix(after, currentPrefix) {
				h.t.Fatalf("stored %q after sign-in, want prefix %q", after, currentPrefix)
			}
			cur.wantSignIn(a.Email, goodPw)
			cur.want(cur.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			if got := h.storedUser(a.Email).PasswordHash; got != after {
				h.t.Errorf("a sign-in with current parameters rehashed again")
			}
		})
		h.run("POST /auth/200 bcrypt hash is upgraded", func(h *harness) {
			cur := h.passwords(nil)
			a := cur.registerPassword(map[string]any{"email": "bcrypt@example.com", "password": goodPw})
			hash, err := bcrypt.GenerateFromPassword([]byte(goodPw), 4)
			if err != nil {
				h.t.Fatal(err)
			}
			h.execSQL("UPDATE users SET password_hash = $1 WHERE email = $2", string(hash), a.Email)
			cur.want(cur.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			if got := h.storedUser(a.Email).PasswordHash; got != string(hash) {
				h.t.Fatalf("a failed sign-in changed the hash to %q", got)
			}
			cur.wantSignIn(a.Email, goodPw)
			if got := h.storedUser(a.Email).PasswordHash; !strings.HasPrefix(got, currentPrefix) {
				h.t.Fatalf("stored %q after sign-in, want prefix %q", got, currentPrefix)
			}
			cur.wantSignIn(a.Email, goodPw)
		})
	})
}

func TestChangePassword(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.passwords(nil)
		change := func(h *harness, access, current, next string) response {
			h.t.Helper()
			return h.do("PUT", "/api/me/password", map[string]any{"current_password": current, "new_password": next}, bearer(access))
		}
		h.run("PUT /me/password/204 other sessions revoked", func(h *harness) {
			a := h.registerPassword(map[string]any{"email": "change@example.com", "password": goodPw})
			other := h.wantSignIn(a.Email, goodPw)
			third := h.wantSignIn(a.Email, goodPw)
			h.want(change(h, a.AccessToken, goodPw, otherPw), http.StatusNoContent, "")
			h.wantAccess(other.AccessToken, false)
			h.wantAccess(third.AccessToken, false)
			h.want(h.refresh(other.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
			h.want(h.refresh(third.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
			h.wantAccess(a.AccessToken, true)
			if s := h.sessions(a.AccessToken); len(s) != 1 || s[0].ID != a.SessionID {
				h.t.Errorf("sessions %+v, want only the caller's %s", s, a.SessionID)
			}
			h.want(h.refresh(a.RefreshToken), http.StatusOK, "")
			h.want(h.signInPw(a.Email, goodPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.wantSignIn(a.Email, otherPw)
		})
		h.run("PUT /me/password/401 wrong current password", func(h *harness) {
			a := h.registerPassword(map[string]any{"email": "change.wrong@example.com", "password": goodPw})
			other := h.wantSignIn(a.Email, goodPw)
			h.want(change(h, a.AccessToken, wrongPw, otherPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.wantAccess(a.AccessToken, true)
			h.wantAccess(other.AccessToken, true)
			h.wantSignIn(a.Email, goodPw)
			h.want(h.signInPw(a.Email, otherPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})
		for _, c := range []struct{ name, email, next string }{
			{"common", "weak.common@example.com", "password1"},
			{"7 characters", "weak.short@example.com", "k9#vQ2m"},
			{"contains the email local part", "changer.weak@example.com", "my Changer.Weak friend"},
		} {
			h.run("PUT /me/password/400 weak password: "+c.name, func(h *harness) {
				a := h.registerPassword(map[string]any{"email": c.email, "password": goodPw})
				r := change(h, a.AccessToken, goodPw, c.next)
				h.want(r, http.StatusBadRequest, "WEAK_PASSWORD")
				if e := h.apiErr(r); !slices.ContainsFunc(e.Details, func(d fieldError) bool { return d.Field == "new_password" }) {
					h.t.Errorf("details %+v do not name new_password", e.Details)
				}
				h.wantSignIn(a.Email, goodPw)
			})
		}
		h.run("PUT /me/password/409 secret account", func(h *harness) {
			s := h.register("Secretive")
			h.want(change(h, s.AccessToken, goodPw, otherPw), http.StatusConflict, "NOT_APPLICABLE")
		})
		h.run("PUT /me/password/401 no bearer", func(h *harness) {
			r := h.do("PUT", "/api/me/password", map[string]any{"current_password": goodPw, "new_password": otherPw})
			h.want(r, http.StatusUnauthorized, "UNAUTHENTICATED")
		})
	})
}

func TestDeleteMePassword(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.passwords(nil)
		h.run("DELETE /me/204 with the password", func(h *harness) {
			a := h.registerPassword(map[string]any{"email": "leaving@example.com", "password": goodPw})
			other := h.wantSignIn(a.Email, goodPw)
			h.want(h.do("DELETE", "/api/me", map[string]any{"password": goodPw}, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
			h.wantAccess(other.AccessToken, false)
			h.want(h.signInPw(a.Email, goodPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			if n := h.countUsers(a.Email); n != 0 {
				h.t.Errorf("%d accounts left, want none", n)
			}
		})
		for _, c := range []struct {
			name string
			body map[string]any
		}{
			{"wrong password", map[string]any{"password": wrongPw}},
			{"no password", map[string]any{}},
			{"a secret instead of the password", map[string]any{"secret": goodPw}},
		} {
			h.run("DELETE /me/401 "+c.name, func(h *harness) {
				email := "staying." + strings.ReplaceAll(c.name, " ", "") + "@example.com"
				a := h.registerPassword(map[string]any{"email": email, "password": goodPw})
				h.want(h.do("DELETE", "/api/me", c.body, bearer(a.AccessToken)), http.StatusUnauthorized, "INVALID_CREDENTIALS")
				h.wantAccess(a.AccessToken, true)
				if n := h.countUsers(a.Email); n != 1 {
					h.t.Errorf("%d accounts, want 1", n)
				}
			})
		}
		h.run("GET /me/secret/409 password account", func(h *harness) {
			a := h.registerPassword(map[string]any{"email": "nosecret@example.com", "password": goodPw})
			h.want(h.do("GET", "/api/me/secret", nil, bearer(a.AccessToken)), http.StatusConflict, "NOT_APPLICABLE")
		})
	})
}

func TestPasswordLimits(t *testing.T) {
	eachDB(t, func(h *harness) {
		const n = 3 // LoginMaxFailures
		// limited is a stack with fresh in-memory limits. Tests that do
		// not wait for the window to end use a long one, so that a slow
		// run cannot see it end early.
		limited := func(h *harness, window time.Duration, register int, trusted ...*net.IPNet) *harness {
			return h.passwords(func(c *auth.Config) { c.Limits = memoryLimits(n, window, register) }, trusted...)
		}
		h.run("POST /auth/429 after N failures, even with the right password", func(h *harness) {
			h = limited(h, time.Minute, 0)
			a := h.registerPassword(map[string]any{"email": "limited@example.com", "password": goodPw})
			for range n {
				h.want(h.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			}
			h.wantRateLimited(h.signInPw(a.Email, wrongPw), time.Minute)
			h.wantRateLimited(h.signInPw(a.Email, goodPw), time.Minute)
			h.wantRateLimited(h.signInPw("LIMITED@example.com", goodPw), time.Minute)
			b := h.registerPassword(map[string]any{"email": "unlimited@example.com", "password": goodPw})
			h.wantSignIn(b.Email, goodPw)
		})
		h.run("POST /auth/429 unknown identifiers behave the same", func(h *harness) {
			h = limited(h, time.Minute, 0)
			// Two accounts: an account has one counter whichever identifier
			// is used, so one account per pair.
			h.registerPassword(map[string]any{"email": "known@example.com", "password": goodPw})
			h.registerPassword(map[string]any{"email": "other@example.com", "password": goodPw, "username": "known_one"})
			for _, pair := range [][2]string{{"known@example.com", "unknown@example.com"}, {"known_one", "unknown_one"}} {
				var known, unknown []response
				for i := range n + 2 {
					pw := wrongPw
					if i == n+1 {
						pw = goodPw // the right password for the known account
					}
					known = append(known, h.signInPw(pair[0], pw))
					unknown = append(unknown, h.signInPw(pair[1], pw))
				}
				for i := range known {
					k, u := known[i], unknown[i]
					want := http.StatusUnauthorized
					if i >= n {
						want = http.StatusTooManyRequests
					}
					if k.Code != want || u.Code != want || !bytes.Equal(k.Body, u.Body) {
						h.t.Errorf("attempt %d: %s for %s, %s for %s; want both %d, alike", i+1, k, pair[0], u, pair[1], want)
					}
				}
			}
		})
		h.run("POST /auth/429 per client address", func(h *harness) {
			h = limited(h, time.Minute, 0)
			a := h.registerPassword(map[string]any{"email": "victim@example.com", "password": goodPw})
			for i := range 10 * n { // one failure per email: no account key reaches n
				h.want(h.signInPw(fmt.Sprintf("spray%d@example.com", i), wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			}
			h.wantRateLimited(h.signInPw("fresh@example.com", wrongPw), time.Minute)
			h.wantRateLimited(h.signInPw(a.Email, goodPw), time.Minute)
			elsewhere := from("198.51.100.9:5555")
			h.want(h.signInPw("fresh@example.com", wrongPw, elsewhere), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.wantSignIn(a.Email, goodPw, elsewhere)
		})
		h.run("POST /auth/200 the window expires", func(h *harness) {
			const window = time.Second
			h = limited(h, window, 0)
			a := h.registerPassword(map[string]any{"email": "patient@example.com", "password": goodPw})
			for range n {
				h.want(h.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			}
			wait := h.wantRateLimited(h.signInPw(a.Email, goodPw), window)
			time.Sleep(wait)
			// Not a timing assertion: the deadline only stops a broken
			// limiter from hanging the test.
			for deadline := time.Now().Add(wait + 10*time.Second); ; time.Sleep(50 * time.Millisecond) {
				r := h.signInPw(a.Email, goodPw)
				if r.Code == http.StatusOK {
					break
				}
				h.wantRateLimited(r, window)
				if time.Now().After(deadline) {
					h.t.Fatal("still rate limited long after Retry-After")
				}
			}
		})
		h.run("POST /register/429 per client address", func(h *harness) {
			h = limited(h, time.Minute, 2)
			h.registerPassword(map[string]any{"email": "reg1@example.com", "password": goodPw})
			h.registerPassword(map[string]any{"email": "reg2@example.com", "password": goodPw})
			h.wantRateLimited(h.do("POST", "/api/register", map[string]any{"email": "reg3@example.com", "password": goodPw}), time.Hour)
			if c := h.countUsers("reg3@example.com"); c != 0 {
				h.t.Errorf("%d accounts for the refused registration", c)
			}
			r := h.do("POST", "/api/register", map[string]any{"email": "reg3@example.com", "password": goodPw}, from("198.51.100.9:5555"))
			h.want(r, http.StatusCreated, "")
		})
		h.run("POST /register/429 secret accounts count too", func(h *harness) {
			h = limited(h, time.Minute, 2)
			h.register("One")
			h.register("Two")
			h.wantRateLimited(h.do("POST", "/api/register", map[string]any{"name": "Three"}), time.Hour)
		})

		_, tenNet, _ := net.ParseCIDR("10.0.0.0/8")
		viaProxy := []header{from("10.1.2.3:1234"), hdr("X-Forwarded-For", "203.0.113.7")}
		h.run("POST /auth/200 the session's ip is a trusted proxy's X-Forwarded-For", func(h *harness) {
			p := h.passwords(nil, tenNet)
			a := p.registerPassword(map[string]any{"email": "proxied@example.com", "password": goodPw})
			tp := p.wantSignIn(a.Email, goodPw, viaProxy...)
			if ip := deref(p.currentSession(tp.AccessToken).IP); ip != "203.0.113.7" {
				p.t.Errorf("session ip %q, want 203.0.113.7", ip)
			}
		})
		h.run("POST /auth/200 without trusted proxies X-Forwarded-For is ignored", func(h *harness) {
			p := h.passwords(nil)
			a := p.registerPassword(map[string]any{"email": "unproxied@example.com", "password": goodPw})
			tp := p.wantSignIn(a.Email, goodPw, viaProxy...)
			if ip := deref(p.currentSession(tp.AccessToken).IP); ip != "10.1.2.3" {
				p.t.Errorf("session ip %q, want the peer 10.1.2.3", ip)
			}
		})
		h.run("POST /auth/200 an untrusted peer's X-Forwarded-For is ignored", func(h *harness) {
			p := h.passwords(nil, tenNet)
			a := p.registerPassword(map[string]any{"email": "spoofer@example.com", "password": goodPw})
			tp := p.wantSignIn(a.Email, goodPw, from("198.51.100.1:1234"), hdr("X-Forwarded-For", "203.0.113.7"))
			if ip := deref(p.currentSession(tp.AccessToken).IP); ip != "198.51.100.1" {
				p.t.Errorf("session ip %q, want the peer 198.51.100.1", ip)
			}
		})
		h.run("POST /auth/429 behind a trusted proxy, clients are limited apart", func(h *harness) {
			p := limited(h, time.Minute, 0, tenNet)
			proxy := from("10.1.2.3:1234")
			for i := range 10 * n {
				r := p.signInPw(fmt.Sprintf("spray%d@example.com", i), wrongPw, proxy, hdr("X-Forwarded-For", "203.0.113.7"))
				p.want(r, http.StatusUnauthorized, "INVALID_CREDENTIALS")
			}
			p.wantRateLimited(p.signInPw("fresh@example.com", wrongPw, proxy, hdr("X-Forwarded-For", "203.0.113.7")), time.Minute)
			r := p.signInPw("fresh@example.com", wrongPw, proxy, hdr("X-Forwarded-For", "198.51.100.20"))
			p.want(r, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})

		h.run("POST /auth/429 two instances share one counter in Redis", func(h *harness) {
			redis := redisURL(h.t)
			prefix := "test-" + randomHex(8) + "-" // this run's counters only
			instance := func() *harness {
				b, err := ratelimit.Redis(context.Background(), redis)
				if err != nil {
					h.t.Fatalf("ratelimit.Redis: %v", err)
				}
				h.t.Cleanup(func() { _ = b.Close() })
				return h.passwords(func(c *auth.Config) { c.Limits = limitsOn(b, prefix, n, time.Minute, 0) })
			}
			one, two := instance(), instance()
			a := one.registerPassword(map[string]any{"email": "shared@example.com", "password": goodPw})
			for i := range n {
				inst := []*harness{one, two}[i%2]
				inst.want(inst.signInPw(a.Email, wrongPw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			}
			two.wantRateLimited(two.signInPw(a.Email, goodPw), time.Minute)
			one.wantRateLimited(one.signInPw(a.Email, goodPw), time.Minute)
			one.wantRateLimited(one.signInPw(a.Email, wrongPw), time.Minute)
		})
	})
}

func TestHashConcurrency(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("POST /auth/503 a flood with one hashing slot", func(h *harness) {
			p := h.passwords(func(c *auth.Config) {
				c.Hasher = newHasher(h.t, password.DefaultParams, 1, 20*time.Millisecond)
			})
			a := p.registerPassword(map[string]any{"email": "flood@example.com", "password": goodPw})
			if got := p.storedUser(a.Email).PasswordHash; !strings.HasPrefix(got, "$argon2id$v=19$m=19456,t=2,p=1$") {
				p.t.Fatalf("stored %q, want the default parameters", got)
			}

			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base, peak := ms.HeapInuse, ms.HeapInuse
			stop, sampled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(sampled)
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						var ms runtime.MemStats
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapInuse)
					}
				}
			}()

			const flood = 40
			res := make([]response, flood)
			var wg sync.WaitGroup
			for i := range flood {
				wg.Go(func() {
					ident, pw := a.Email, goodPw
					switch i % 4 {
					case 1:
						pw = wrongPw
					case 2:
						ident = fmt.Sprintf("ghost%d@example.com", i)
					}
					res[i] = p.signInPw(ident, pw)
				})
			}
			wg.Wait()
			close(stop)
			<-sampled

			overloaded := 0
			for _, r := range res {
				switch r.Code {
				case http.StatusOK, http.StatusUnauthorized:
				case http.StatusServiceUnavailable:
					overloaded++
					p.want(r, http.StatusServiceUnavailable, "OVERLOADED")
					if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
						p.t.Errorf("503 with Retry-After %q", ra)
					}
				default:
					p.t.Errorf("unexpected answer %s", r)
				}
			}
			if overloaded == 0 {
				p.t.Error("no 503 OVERLOADED with one hashing slot and 40 sign-ins")
			}
			// One argon2id hash with the default parameters holds 19 MiB.
			// 40 hashes at once would need 760 MiB; with one slot, one
			// hash is live at a time, and the Go collector lets garbage
			// (finished hashes) grow the heap to about twice the live
			// heap before it collects. A quarter of the unbounded figure,
			// 190 MiB above the starting heap, leaves a wide margin on
			// both sides.
			const bound = flood * 19 << 20 / 4
			growth := int64(peak) - int64(base)
			p.t.Logf("%d of %d overloaded; heap in use grew by %d MiB at most (bound %d MiB)", overloaded, flood, growth>>20, bound>>20)
			if growth >= bound {
				p.t.Errorf("heap in use grew by %d MiB, want under %d MiB", growth>>20, bound>>20)
			}
		})
	})
}

// BenchmarkSignInPassword signs in by email and password through the
// whole HTTP stack (SQLite, default argon2id parameters, no limits).
func BenchmarkSignInPassword(b *testing.B) {
	hd := benchStack(b)
	body := `{"email":"bench@example.com","password":"` + goodPw + `"}`
	if req, r := benchPost(hd, "/api/register", body); r.Code != http.StatusCreated {
		b.Fatalf("register: %s", r)
	} else if err := checkResponse(req, r); err != nil {
		b.Fatal(err)
	}
	if req, r := benchPost(hd, "/api/auth", body); r.Code != http.StatusOK {
		b.Fatalf("sign-in: %s", r)
	} else if err := checkResponse(req, r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, r := benchPost(hd, "/api/auth", body); r.Code != http.StatusOK {
			b.Fatalf("sign-in: %s", r)
		}
	}
}

// BenchmarkSignInSecret signs in with an account secret through the whole
// HTTP stack (SQLite, no limits).
func BenchmarkSignInSecret(b *testing.B) {
	hd := benchStack(b)
	req, r := benchPost(hd, "/api/register", `{"name":"Bench"}`)
	if r.Code != http.StatusCreated {
		b.Fatalf("register: %s", r)
	}
	if err := checkResponse(req, r); err != nil {
		b.Fatal(err)
	}
	var res registerResult
	if err := json.Unmarshal(r.Body, &res); err != nil {
		b.Fatal(err)
	}
	body := `{"secret":"` + res.Secret + `"}`
	if req, r := benchPost(hd, "/api/auth", body); r.Code != http.StatusOK {
		b.Fatalf("sign-in: %s", r)
	} else if err := checkResponse(req, r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, r := benchPost(hd, "/api/auth", body); r.Code != http.StatusOK {
			b.Fatalf("sign-in: %s", r)
		}
	}
}
