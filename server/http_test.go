package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
)

// TestContractChecker proves that checkResponse fails answers the
// contract does not allow.
func TestContractChecker(t *testing.T) {
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	validErr := []byte(`{"code":"UNAUTHENTICATED","message":"authentication is required"}`)
	cases := []struct {
		name, method, path string
		r                  response
	}{
		{"undocumented status", "GET", "/api/me", response{http.StatusTeapot, jsonHeader, validErr}},
		{"undocumented field", "GET", "/api/me/secret",
			response{200, http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}, []byte(`{"secret":"x","extra":1}`)}},
		{"missing required header", "GET", "/api/me/secret", response{200, jsonHeader, []byte(`{"secret":"x"}`)}},
		{"unknown error code", "GET", "/api/me", response{401, jsonHeader, []byte(`{"code":"NOPE","message":"m"}`)}},
		{"undocumented content type", "GET", "/api/me", response{401, http.Header{"Content-Type": {"text/plain"}}, validErr}},
		{"304 without ETag", "GET", "/api/me/avatar", response{304, http.Header{}, nil}},
		{"unknown route not 404", "GET", "/api/nowhere", response{200, jsonHeader, []byte(`{}`)}},
		{"unknown route, not the Error schema", "GET", "/api/nowhere", response{404, jsonHeader, []byte(`{"error":"x"}`)}},
		{"root error, not JSON", "GET", "/nowhere", response{404, http.Header{"Content-Type": {"text/plain"}}, []byte("404 page not found")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.path, nil)
			if err := checkResponse(req, c.r); err == nil {
				t.Error("checkResponse accepted it")
			}
		})
	}
	t.Run("a valid answer passes", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/api/me", nil)
		if err := checkResponse(req, response{401, jsonHeader, validErr}); err != nil {
			t.Errorf("checkResponse: %v", err)
		}
	})
}

func TestRegister(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("POST /register/201 secret account", func(h *harness) {
			r := h.do("POST", "/api/register", map[string]any{"name": "Ada"})
			h.want(r, http.StatusCreated, "")
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			var res registerResult
			h.decode(r, &res)
			u := res.User
			if u.AccountType != "secret" || u.Name != "Ada" || u.Email != nil || u.EmailConfirmed ||
				u.Locale != "en" || u.Timezone != "UTC" || u.HasAvatar || u.Username != nil {
				h.t.Errorf("user = %+v", u)
			}
			if raw, err := base64.RawURLEncoding.DecodeString(res.Secret); err != nil || len(raw) != 32 {
				h.t.Errorf("secret %q is not 256 bits of base64url: %v", res.Secret, err)
			}
			tp := res.Tokens
			if tp.TokenType != "Bearer" || tp.ExpiresIn != 900 || tp.RefreshExpiresIn != 30*24*3600 || tp.RefreshToken == "" {
				h.t.Errorf("tokens = %+v", tp)
			}
			if got := h.me(tp.AccessToken); got.ID != u.ID {
				h.t.Errorf("GET /me with the new token: id %s, want %s", got.ID, u.ID)
			}
		})
		h.run("POST /register/201 form", func(h *harness) {
			r := h.do("POST", "/api/register", url.Values{"name": {"Ada & Co"}})
			h.want(r, http.StatusCreated, "")
			var res registerResult
			h.decode(r, &res)
			if res.User.Name != "Ada & Co" || res.Secret == "" {
				h.t.Errorf("result = %+v", res)
			}
		})
		for _, c := range []struct {
			name    string
			body    map[string]any
			headers []header
			want    string
		}{
			{"locale from body", map[string]any{"name": "A", "locale": "de-AT"}, []header{hdr("Accept-Language", "fr")}, "de-AT"},
			{"locale from Accept-Language", map[string]any{"name": "A"}, []header{hdr("Accept-Language", "fr-CH,fr;q=0.9")}, "fr-CH"},
			{"locale default", map[string]any{"name": "A"}, nil, "en"},
		} {
			h.run("POST /register/201 "+c.name, func(h *harness) {
				r := h.do("POST", "/api/register", c.body, c.headers...)
				h.want(r, http.StatusCreated, "")
				var res registerResult
				h.decode(r, &res)
				if res.User.Locale != c.want {
					h.t.Errorf("locale %q, want %q", res.User.Locale, c.want)
				}
			})
		}
		for _, c := range []struct {
			name  string
			body  any
			field string
		}{
			{"missing name", map[string]any{}, "name"},
			{"empty name", map[string]any{"name": ""}, "name"},
			{"blank name", map[string]any{"name": "   "}, "name"},
			{"65-character name", map[string]any{"name": strings.Repeat("é", 65)}, "name"},
			{"unknown JSON field", map[string]any{"name": "A", "nickname": "x"}, "nickname"},
			{"unknown form field", url.Values{"name": {"A"}, "nickname": {"x"}}, "nickname"},
			{"wrong type", map[string]any{"name": 42}, "name"},
			{"password-account field", map[string]any{"name": "A", "bio": "hi"}, "bio"},
			{"malformed JSON", []byte(`{"name":`), ""},
		} {
			h.run("POST /register/400 "+c.name, func(h *harness) {
				r := h.do("POST", "/api/register", c.body, hdr("Content-Type", contentTypeOf(c.body)))
				h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
				if c.field == "" {
					return
				}
				e := h.apiErr(r)
				if !slices.ContainsFunc(e.Details, func(d fieldError) bool { return d.Field == c.field }) {
					h.t.Errorf("details %+v do not name %q", e.Details, c.field)
				}
			})
		}
		h.run("POST /register/415 text/plain", func(h *harness) {
			r := h.do("POST", "/api/register", []byte("name=Ada"), hdr("Content-Type", "text/plain"))
			h.want(r, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
		})
		h.run("POST /register/413 over 64 KiB", func(h *harness) {
			big, _ := json.Marshal(map[string]any{"name": strings.Repeat("a", 65<<10)})
			r := h.do("POST", "/api/register", big, hdr("Content-Type", "application/json"))
			h.want(r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			r = h.do("POST", "/api/register", bytes.NewReader(big), hdr("Content-Type", "application/json"))
			h.want(r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
		})
		h.run("POST /register/403 registration closed", func(h *harness) {
			closed := h.variant(func(c *auth.Config) { c.RegistrationOpen = false })
			r := closed.do("POST", "/api/register", map[string]any{"name": "Ada"})
			h.want(r, http.StatusForbidden, "REGISTRATION_DISABLED")
		})
	})
}

// contentTypeOf is the Content-Type do would send for body.
func contentTypeOf(body any) string {
	if _, ok := body.(url.Values); ok {
		return "application/x-www-form-urlencoded"
	}
	return "application/json"
}

func TestSignIn(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		for _, c := range []struct {
			name string
			body any
		}{
			{"JSON", map[string]any{"secret": a.Secret}},
			{"form", url.Values{"secret": {a.Secret}}},
		} {
			h.run("POST /auth/200 "+c.name, func(h *harness) {
				ua := "Mozilla/5.0 (" + c.name + ")"
				r := h.do("POST", "/api/auth", c.body, hdr("User-Agent", ua))
				h.want(r, http.StatusOK, "")
				if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
					h.t.Errorf("Cache-Control %q, want no-store", cc)
				}
				var res authResult
				h.decode(r, &res)
				if res.TwoFactorRequired || res.AccessToken == "" || res.RefreshToken == "" || res.SessionID == a.SessionID {
					h.t.Fatalf("result = %+v", res)
				}
				var cur *session
				for _, s := range h.sessions(res.AccessToken) {
					if s.Current {
						cur = &s
					}
				}
				if cur == nil || cur.ID != res.SessionID {
					h.t.Fatalf("no current session %s in the list", res.SessionID)
				}
				if cur.UserAgent == nil || *cur.UserAgent != ua || cur.IP == nil || *cur.IP != clientIP {
					h.t.Errorf("session user_agent %v, ip %v; want %q, %q", cur.UserAgent, cur.IP, ua, clientIP)
				}
			})
		}
		h.run("POST /auth/401 wrong secret", func(h *harness) {
			wrong := make([]byte, 32)
			_, _ = rand.Read(wrong)
			r := h.do("POST", "/api/auth", map[string]any{"secret": base64.RawURLEncoding.EncodeToString(wrong)})
			h.want(r, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})
		h.run("POST /auth/401 refresh token as secret", func(h *harness) {
			r := h.do("POST", "/api/auth", map[string]any{"secret": a.RefreshToken})
			h.want(r, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})
		h.run("POST /auth/400 no credential", func(h *harness) {
			h.want(h.do("POST", "/api/auth", map[string]any{}), http.StatusBadRequest, "INVALID_REQUEST")
		})
	})
}

// wantOneSuccessor checks that every one of results, concurrent refreshes
// of one token, is 200 with the same successor, and that it rotates in turn.
func wantOneSuccessor(h *harness, of string, results []response) {
	h.t.Helper()
	successors := map[string]bool{}
	for i, r := range results {
		if r.Code != http.StatusOK {
			h.t.Errorf("refresh %d%s: %s", i, of, r)
			continue
		}
		var tp tokenPair
		h.decode(r, &tp)
		successors[tp.RefreshToken] = true
	}
	if len(successors) != 1 {
		h.t.Fatalf("%d different successors%s, want 1", len(successors), of)
	}
	for s := range successors {
		h.want(h.refresh(s), http.StatusOK, "")
	}
}

func TestRefresh(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("POST /auth/refresh/200 rotation", func(h *harness) {
			a := h.register("Ada")
			r := h.refresh(a.RefreshToken)
			h.want(r, http.StatusOK, "")
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				h.t.Errorf("Cache-Control %q, want no-store", cc)
			}
			var next tokenPair
			h.decode(r, &next)
			if next.RefreshToken == a.RefreshToken || next.SessionID != a.SessionID || next.TokenType != "Bearer" {
				h.t.Fatalf("refreshed = %+v", next)
			}
			h.wantAccess(next.AccessToken, true)
			// The successor rotates in turn.
			r = h.refresh(next.RefreshToken)
			h.want(r, http.StatusOK, "")
		})
		h.run("POST /auth/refresh/200 retry within the grace", func(h *harness) {
			a := h.register("Ada")
			var first, again tokenPair
			h.decode(h.refresh(a.RefreshToken), &first)
			h.clock.advance(5 * time.Second)
			r := h.refresh(a.RefreshToken)
			h.want(r, http.StatusOK, "")
			h.decode(r, &again)
			if again.RefreshToken != first.RefreshToken || again.SessionID != first.SessionID {
				h.t.Errorf("retry gave successor %q, want %q", again.RefreshToken, first.RefreshToken)
			}
			h.wantAccess(again.AccessToken, true)
		})
		h.run("POST /auth/refresh/401 reuse after the grace", func(h *harness) {
			a := h.register("Ada")
			var next tokenPair
			h.decode(h.refresh(a.RefreshToken), &next)
			h.wantAccess(next.AccessToken, true)
			h.clock.advance(11 * time.Second)
			h.want(h.refresh(a.RefreshToken), http.StatusUnauthorized, "REFRESH_TOKEN_REUSED")
			h.wantAccess(next.AccessToken, false)
			h.wantAccess(a.AccessToken, false)
			h.want(h.refresh(next.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("POST /auth/refresh/200 concurrent refreshes agree", func(h *harness) {
			a := h.register("Ada")
			const n = 10
			results := make([]response, n)
			var start, wg sync.WaitGroup
			start.Add(1)
			for i := range n {
				wg.Go(func() {
					start.Wait()
					results[i] = h.refresh(a.RefreshToken)
				})
			}
			start.Done()
			wg.Wait()
			wantOneSuccessor(h, "", results)
		})
		h.run("POST /auth/refresh concurrent refreshes of two sessions racing a logout of one", func(h *harness) {
			// 20 refreshes of each session at once (on SQLite they commit
			// in groups, mixing both sessions), while one session logs out.
			a, b := h.register("Ada"), h.register("Bob")
			const n = 20
			ra, rb := make([]response, n), make([]response, n)
			var start, wg sync.WaitGroup
			start.Add(1)
			for i := range n {
				wg.Go(func() { start.Wait(); ra[i] = h.refresh(a.RefreshToken) })
				wg.Go(func() { start.Wait(); rb[i] = h.refresh(b.RefreshToken) })
			}
			var out response
			wg.Go(func() { start.Wait(); out = h.do("POST", "/api/auth/logout", nil, bearer(a.AccessToken)) })
			start.Done()
			wg.Wait()
			h.want(out, http.StatusNoContent, "")
			// Whatever a refresh of the logged-out session got before the
			// logout committed is dead now.
			for i, r := range ra {
				if r.Code == http.StatusUnauthorized {
					continue
				}
				h.want(r, http.StatusOK, "")
				var tp tokenPair
				h.decode(r, &tp)
				h.wantAccess(tp.AccessToken, false)
				if got := h.refresh(tp.RefreshToken); got.Code != http.StatusUnauthorized {
					h.t.Errorf("refresh %d: its successor after the logout: %s", i, got)
				}
			}
			// The other session rotated once, and every call agrees.
			wantOneSuccessor(h, " of the other session", rb)
		})
		h.run("POST /auth/refresh/401 unknown token", func(h *harness) {
			h.want(h.refresh("no-such-refresh-token"), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("POST /auth/refresh/400 missing token", func(h *harness) {
			h.want(h.do("POST", "/api/auth/refresh", map[string]any{}), http.StatusBadRequest, "INVALID_REQUEST")
		})
	})
}

func TestLogout(t *testing.T) {
	eachDB(t, func(h *harness) {
		logout := func(h *harness, access string, body any) response {
			h.t.Helper()
			return h.do("POST", "/api/auth/logout", body, bearer(access))
		}
		h.run("POST /auth/logout/204 current", func(h *harness) {
			a := h.register("Ada")
			b := h.signIn(a)
			h.want(logout(h, a.AccessToken, map[string]any{"scope": "current"}), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false) // on the very next request
			h.wantAccess(b.AccessToken, true)
			h.want(h.refresh(a.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("POST /auth/logout/204 default scope without body", func(h *harness) {
			a := h.register("Ada")
			h.want(logout(h, a.AccessToken, nil), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
		})
		h.run("POST /auth/logout/204 others", func(h *harness) {
			a := h.register("Ada")
			b, c := h.signIn(a), h.signIn(a)
			h.want(logout(h, a.AccessToken, map[string]any{"scope": "others"}), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, true)
			h.wantAccess(b.AccessToken, false)
			h.wantAccess(c.AccessToken, false)
			if s := h.sessions(a.AccessToken); len(s) != 1 || s[0].ID != a.SessionID {
				h.t.Errorf("sessions after logout others: %+v", s)
			}
		})
		h.run("POST /auth/logout/204 all", func(h *harness) {
			a := h.register("Ada")
			b := h.signIn(a)
			other := h.register("Bob")
			h.want(logout(h, a.AccessToken, map[string]any{"scope": "all"}), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
			h.wantAccess(b.AccessToken, false)
			h.wantAccess(other.AccessToken, true)
		})
		h.run("POST /auth/logout/400 unknown scope", func(h *harness) {
			a := h.register("Ada")
			h.want(logout(h, a.AccessToken, map[string]any{"scope": "everything"}), http.StatusBadRequest, "INVALID_REQUEST")
			h.wantAccess(a.AccessToken, true)
		})
		h.run("POST /auth/logout/204 by refresh token", func(h *harness) {
			a := h.register("Ada")
			r := h.do("POST", "/api/auth/logout", map[string]any{"refresh_token": a.RefreshToken})
			h.want(r, http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
			h.want(h.refresh(a.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("POST /auth/logout/204 by refresh token in a form", func(h *harness) {
			a := h.register("Ada")
			h.want(h.do("POST", "/api/auth/logout", url.Values{"refresh_token": {a.RefreshToken}}), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
		})
		h.run("POST /auth/logout/204 unknown refresh token", func(h *harness) {
			h.want(h.do("POST", "/api/auth/logout", map[string]any{"refresh_token": "unknown"}), http.StatusNoContent, "")
		})
		h.run("POST /auth/logout/401 no bearer and no token", func(h *harness) {
			h.want(h.do("POST", "/api/auth/logout", map[string]any{}), http.StatusUnauthorized, "UNAUTHENTICATED")
			h.want(h.do("POST", "/api/auth/logout", nil), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("POST /auth/logout/401 revoked bearer", func(h *harness) {
			a := h.register("Ada")
			h.want(logout(h, a.AccessToken, nil), http.StatusNoContent, "")
			h.want(logout(h, a.AccessToken, nil), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("POST /auth/logout/401 bad bearer with a refresh token", func(h *harness) {
			a := h.register("Ada")
			r := h.do("POST", "/api/auth/logout", map[string]any{"refresh_token": a.RefreshToken}, bearer("garbage"))
			h.want(r, http.StatusUnauthorized, "UNAUTHENTICATED")
			h.wantAccess(a.AccessToken, true)
		})
	})
}

func TestMe(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("GET /me/200", func(h *harness) {
			a := h.register("Ada")
			u := h.me(a.AccessToken)
			if u.ID != a.ID || u.Name != "Ada" || u.AccountType != "secret" {
				h.t.Errorf("user = %+v", u)
			}
		})
		for _, c := range []struct {
			name    string
			headers []header
		}{
			{"without token", nil},
			{"malformed token", []header{bearer("not.a.jwt")}},
			{"empty bearer", []header{hdr("Authorization", "Bearer ")}},
			{"Basic scheme", []header{hdr("Authorization", "Basic dXNlcjpwYXNz")}},
		} {
			h.run("GET /me/401 "+c.name, func(h *harness) {
				r := h.do("GET", "/api/me", nil, c.headers...)
				h.want(r, http.StatusUnauthorized, "UNAUTHENTICATED")
			})
		}
		h.run("GET /me/401 token of another key", func(h *harness) {
			// A token signed by another deployment (another database).
			other := &harness{t: h.t, dsn: "sqlite:" + h.t.TempDir() + "/other.db", key: h.key, clock: h.clock}
			other.start(nil)
			foreign := other.register("Eve")
			h.want(h.do("GET", "/api/me", nil, bearer(foreign.AccessToken)), http.StatusUnauthorized, "UNAUTHENTICATED")
		})

		h.run("PATCH /me/200 set and clear", func(h *harness) {
			a := h.register("Ada")
			r := h.do("PATCH", "/api/me", map[string]any{
				"name": "Ada Lovelace", "username": "ada_l", "bio": "Poetical scientist.", "location": "London",
				"birth_date": "1985-12-10", "locale": "en-GB", "timezone": "Europe/London",
			}, bearer(a.AccessToken))
			h.want(r, http.StatusOK, "")
			var u user
			h.decode(r, &u)
			if u.Name != "Ada Lovelace" || deref(u.Username) != "ada_l" || deref(u.Bio) != "Poetical scientist." ||
				deref(u.Location) != "London" || deref(u.BirthDate) != "1985-12-10" || u.Locale != "en-GB" || u.Timezone != "Europe/London" {
				h.t.Errorf("after PATCH: %+v", u)
			}
			if got := h.me(a.AccessToken); !reflect.DeepEqual(got, u) {
				h.t.Errorf("GET /me = %+v, want %+v", got, u)
			}
			r = h.do("PATCH", "/api/me", map[string]any{"username": nil, "bio": nil, "location": nil, "birth_date": nil},
				bearer(a.AccessToken))
			h.want(r, http.StatusOK, "")
			h.decode(r, &u)
			if u.Username != nil || u.Bio != nil || u.Location != nil || u.BirthDate != nil || u.Name != "Ada Lovelace" || u.Timezone != "Europe/London" {
				h.t.Errorf("after clearing: %+v", u)
			}
			if got := h.me(a.AccessToken); !reflect.DeepEqual(got, u) {
				h.t.Errorf("GET /me = %+v, want %+v", got, u)
			}
		})
		a := h.register("Ada")
		for _, c := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"bad timezone", map[string]any{"timezone": "Mars/Olympus_Mons"}, "timezone"},
			{"bad locale", map[string]any{"locale": "not a locale"}, "locale"},
			{"unknown locale", map[string]any{"locale": "xx-xxxxxxxx-yy"}, "locale"},
			{"impossible birth date", map[string]any{"birth_date": "2001-02-30"}, "birth_date"},
			{"future birth date", map[string]any{"birth_date": "2999-01-01"}, "birth_date"},
			{"long bio", map[string]any{"bio": strings.Repeat("b", 501)}, "bio"},
			{"bad username", map[string]any{"username": "a b"}, "username"},
			{"short username", map[string]any{"username": "ab"}, "username"},
			{"empty name", map[string]any{"name": ""}, "name"},
			{"null name", map[string]any{"name": nil}, "name"},
			{"unknown field", map[string]any{"email": "ada@example.com"}, "email"},
		} {
			h.run("PATCH /me/400 "+c.name, func(h *harness) {
				r := h.do("PATCH", "/api/me", c.body, bearer(a.AccessToken))
				h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
				e := h.apiErr(r)
				if len(e.Details) == 0 || !strings.HasPrefix(e.Details[0].Field, c.field) {
					h.t.Errorf("details %+v, want field %q", e.Details, c.field)
				}
			})
		}
		h.run("PATCH /me/409 username taken regardless of case", func(h *harness) {
			x, y := h.register("X"), h.register("Y")
			h.want(h.do("PATCH", "/api/me", map[string]any{"username": "Taken_Name"}, bearer(x.AccessToken)), http.StatusOK, "")
			h.want(h.do("PATCH", "/api/me", map[string]any{"username": "taken_name"}, bearer(y.AccessToken)), http.StatusConflict, "USERNAME_TAKEN")
			if got := h.me(y.AccessToken); got.Username != nil {
				h.t.Errorf("username set anyway: %q", *got.Username)
			}
			// The owner may change its case.
			h.want(h.do("PATCH", "/api/me", map[string]any{"username": "TAKEN_name"}, bearer(x.AccessToken)), http.StatusOK, "")
		})
		h.run("PATCH /me/401", func(h *harness) {
			h.want(h.do("PATCH", "/api/me", map[string]any{"name": "X"}), http.StatusUnauthorized, "UNAUTHENTICATED")
		})

		h.run("DELETE /me/401 wrong secret", func(h *harness) {
			a := h.register("Ada")
			h.want(h.do("DELETE", "/api/me", map[string]any{"secret": "wrong"}, bearer(a.AccessToken)), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.want(h.do("DELETE", "/api/me", map[string]any{}, bearer(a.AccessToken)), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.wantAccess(a.AccessToken, true)
		})
		h.run("DELETE /me/204", func(h *harness) {
			a := h.register("Ada")
			b := h.signIn(a)
			h.want(h.do("POST", "/api/me/avatar", pngBytes(h.t), bearer(a.AccessToken), hdr("Content-Type", "image/png")), http.StatusNoContent, "")
			h.want(h.do("DELETE", "/api/me", map[string]any{"secret": a.Secret}, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
			h.wantAccess(b.AccessToken, false)
			h.want(h.do("POST", "/api/auth", map[string]any{"secret": a.Secret}), http.StatusUnauthorized, "INVALID_CREDENTIALS")
			h.want(h.refresh(b.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
	})
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestSecret(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("GET /me/secret/200", func(h *harness) {
			a := h.register("Ada")
			r := h.do("GET", "/api/me/secret", nil, bearer(a.AccessToken))
			h.want(r, http.StatusOK, "")
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				h.t.Errorf("Cache-Control %q, want no-store", cc)
			}
			var s struct {
				Secret string `json:"secret"`
			}
			h.decode(r, &s)
			if s.Secret != a.Secret {
				h.t.Errorf("secret %q, want the registration's %q", s.Secret, a.Secret)
			}
		})
		h.run("GET /me/secret/401", func(h *harness) {
			h.want(h.do("GET", "/api/me/secret", nil), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
	})
}

func TestSessions(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("GET /me/sessions/200 newest first", func(h *harness) {
			a := h.register("Ada")
			h.clock.advance(time.Second)
			b := h.signIn(a)
			h.clock.advance(time.Second)
			c := h.signIn(a)
			list := h.sessions(b.AccessToken)
			var ids []string
			for _, s := range list {
				ids = append(ids, s.ID)
				if s.Current != (s.ID == b.SessionID) {
					h.t.Errorf("session %s: current = %v", s.ID, s.Current)
				}
			}
			if want := []string{c.SessionID, b.SessionID, a.SessionID}; !slices.Equal(ids, want) {
				h.t.Errorf("sessions %v, want %v", ids, want)
			}
		})
		h.run("GET /me/sessions/401", func(h *harness) {
			h.want(h.do("GET", "/api/me/sessions", nil), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("DELETE /me/sessions/{id}/204 another own session", func(h *harness) {
			a := h.register("Ada")
			b := h.signIn(a)
			h.want(h.do("DELETE", "/api/me/sessions/"+b.SessionID, nil, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.wantAccess(b.AccessToken, false)
			h.wantAccess(a.AccessToken, true)
			h.want(h.refresh(b.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
			// Already ended: no longer a live session.
			h.want(h.do("DELETE", "/api/me/sessions/"+b.SessionID, nil, bearer(a.AccessToken)), http.StatusNotFound, "NOT_FOUND")
		})
		h.run("DELETE /me/sessions/{id}/404 unknown", func(h *harness) {
			a := h.register("Ada")
			h.want(h.do("DELETE", "/api/me/sessions/"+uuid.NewString(), nil, bearer(a.AccessToken)), http.StatusNotFound, "NOT_FOUND")
		})
		h.run("DELETE /me/sessions/{id}/404 another user's", func(h *harness) {
			a, b := h.register("Ada"), h.register("Bob")
			h.want(h.do("DELETE", "/api/me/sessions/"+b.SessionID, nil, bearer(a.AccessToken)), http.StatusNotFound, "NOT_FOUND")
			h.wantAccess(b.AccessToken, true)
		})
		h.run("DELETE /me/sessions/{id}/400 not a UUID", func(h *harness) {
			a := h.register("Ada")
			h.want(h.do("DELETE", "/api/me/sessions/not-a-uuid", nil, bearer(a.AccessToken)), http.StatusBadRequest, "INVALID_REQUEST")
		})
		h.run("DELETE /me/sessions/{id}/204 own current is a logout", func(h *harness) {
			a := h.register("Ada")
			h.want(h.do("DELETE", "/api/me/sessions/"+a.SessionID, nil, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
			h.want(h.refresh(a.RefreshToken), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
	})
}

func TestAvatar(t *testing.T) {
	eachDB(t, func(h *harness) {
		upload := func(h *harness, a account, body []byte, contentType string) response {
			h.t.Helper()
			return h.do("POST", "/api/me/avatar", body, bearer(a.AccessToken), hdr("Content-Type", contentType))
		}
		get := func(h *harness, a account, headers ...header) response {
			h.t.Helper()
			return h.do("GET", "/api/me/avatar", nil, append(headers, bearer(a.AccessToken))...)
		}
		for _, c := range []struct {
			name, contentType, served string
			data                      func(testing.TB) []byte
		}{
			{"raw PNG", "image/png", "image/png", pngBytes},
			{"raw JPEG", "image/jpeg", "image/jpeg", jpegBytes},
			{"raw GIF", "image/gif", "image/png", gifBytes},
			{"PNG labelled JPEG", "image/jpeg", "image/png", pngBytes},
			{"multipart JPEG", "multipart", "image/jpeg", jpegBytes},
		} {
			h.run("POST /me/avatar/204 "+c.name, func(h *harness) {
				a := h.register("Ada")
				data := c.data(h.t)
				var r response
				if c.contentType == "multipart" {
					body, ct := multipartFile(h.t, "file", data)
					r = upload(h, a, body, ct[1])
				} else {
					r = upload(h, a, data, c.contentType)
				}
				h.want(r, http.StatusNoContent, "")
				r = get(h, a)
				h.want(r, http.StatusOK, "")
				if ct := r.Header.Get("Content-Type"); ct != c.served {
					h.t.Errorf("Content-Type %q, want %q", ct, c.served)
				}
				etag := r.Header.Get("ETag")
				if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
					h.t.Errorf("ETag %q is not a quoted string", etag)
				}
				if c.served == "image/png" {
					if _, err := png.Decode(bytes.NewReader(r.Body)); err != nil {
						h.t.Errorf("served PNG does not decode: %v", err)
					}
				}
				if !h.me(a.AccessToken).HasAvatar {
					h.t.Error("has_avatar is false")
				}
				r = get(h, a, hdr("If-None-Match", etag))
				h.want(r, http.StatusNotModified, "")
				if r.Header.Get("ETag") != etag || len(r.Body) != 0 {
					h.t.Errorf("304 with ETag %q and %d bytes", r.Header.Get("ETag"), len(r.Body))
				}
				h.want(get(h, a, hdr("If-None-Match", `"other", W/`+etag)), http.StatusNotModified, "")
				h.want(get(h, a, hdr("If-None-Match", `"other"`)), http.StatusOK, "")
			})
		}
		h.run("POST /me/avatar/204 replaces the avatar", func(h *harness) {
			a := h.register("Ada")
			h.want(upload(h, a, pngBytes(h.t), "image/png"), http.StatusNoContent, "")
			first := get(h, a).Header.Get("ETag")
			h.want(upload(h, a, jpegBytes(h.t), "image/jpeg"), http.StatusNoContent, "")
			r := get(h, a)
			if r.Header.Get("ETag") == first || r.Header.Get("Content-Type") != "image/jpeg" {
				h.t.Errorf("after a new upload: ETag %q (was %q), Content-Type %q", r.Header.Get("ETag"), first, r.Header.Get("Content-Type"))
			}
		})
		h.run("POST /me/avatar/204 EXIF stripped", func(h *harness) {
			const marker = "SECRET-EXIF-MARKER"
			a := h.register("Ada")
			data := jpegWithExif(h.t, marker)
			if !bytes.Contains(data, []byte(marker)) {
				h.t.Fatal("test image lacks the marker")
			}
			h.want(upload(h, a, data, "image/jpeg"), http.StatusNoContent, "")
			r := get(h, a)
			h.want(r, http.StatusOK, "")
			if bytes.Contains(r.Body, []byte(marker)) {
				h.t.Error("the served avatar still contains the EXIF data")
			}
			if r.Header.Get("Content-Type") != "image/jpeg" {
				h.t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
			}
		})
		h.run("POST /me/avatar/204 PNG text chunk stripped", func(h *harness) {
			const marker = "SECRET-PNG-MARKER"
			a := h.register("Ada")
			data := pngWithText(h.t, "Comment", marker)
			h.want(upload(h, a, data, "image/png"), http.StatusNoContent, "")
			r := get(h, a)
			h.want(r, http.StatusOK, "")
			if bytes.Contains(r.Body, []byte(marker)) || bytes.Equal(r.Body, data) {
				h.t.Error("the served avatar still contains the text chunk")
			}
		})
		h.run("POST /me/avatar/204 GIF with an HTML tail", func(h *harness) {
			a := h.register("Ada")
			data := append(gifBytes(h.t), "<html><script>alert(document.cookie)</script></html>"...)
			h.want(upload(h, a, data, "image/gif"), http.StatusNoContent, "")
			r := get(h, a)
			if r.Header.Get("Content-Type") != "image/png" || bytes.Contains(r.Body, []byte("<script")) {
				h.t.Errorf("served %q with the HTML tail: %v", r.Header.Get("Content-Type"), bytes.Contains(r.Body, []byte("<script")))
			}
		})
		h.run("POST /me/avatar/400 decompression bomb", func(h *harness) {
			a := h.register("Ada")
			bomb := pngBomb(100000, 100000)
			if len(bomb) != 45 {
				h.t.Fatalf("bomb is %d bytes", len(bomb))
			}
			h.want(upload(h, a, bomb, "image/png"), http.StatusBadRequest, "INVALID_REQUEST")
			h.want(upload(h, a, pngBomb(4097, 1), "image/png"), http.StatusBadRequest, "INVALID_REQUEST")
			if h.me(a.AccessToken).HasAvatar {
				h.t.Error("has_avatar after a refused upload")
			}
		})
		h.run("POST /me/avatar/400 undecodable", func(h *harness) {
			a := h.register("Ada")
			truncated := pngBytes(h.t)[:40]
			h.want(upload(h, a, truncated, "image/png"), http.StatusBadRequest, "INVALID_REQUEST")
		})
		h.run("POST /me/avatar/400 multipart without file", func(h *harness) {
			a := h.register("Ada")
			body, ct := multipartFile(h.t, "picture", pngBytes(h.t))
			h.want(upload(h, a, body, ct[1]), http.StatusBadRequest, "INVALID_REQUEST")
		})
		over := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, avatarMax+1-8)...)
		h.run("POST /me/avatar/413 raw 1 MiB + 1", func(h *harness) {
			a := h.register("Ada")
			h.want(upload(h, a, over, "image/png"), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
		})
		h.run("POST /me/avatar/413 multipart 1 MiB + 1", func(h *harness) {
			a := h.register("Ada")
			body, ct := multipartFile(h.t, "file", over)
			h.want(upload(h, a, body, ct[1]), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
		})
		h.run("POST /me/avatar/413 streamed far beyond the limit", func(h *harness) {
			a := h.register("Ada")
			body := bytes.NewReader(make([]byte, 4*avatarMax))
			r := h.do("POST", "/api/me/avatar", body, bearer(a.AccessToken), hdr("Content-Type", "image/png"))
			h.want(r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
			if body.Len() < 2*avatarMax {
				h.t.Errorf("the server read %d bytes of a refused body", 4*avatarMax-body.Len())
			}
		})
		h.run("POST /me/avatar/413 exactly 1 MiB is not too large", func(h *harness) {
			a := h.register("Ada")
			exact := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, avatarMax-8)...)
			h.want(upload(h, a, exact, "image/png"), http.StatusBadRequest, "INVALID_REQUEST")
		})
		for _, c := range []struct{ name, data string }{
			{"HTML as image/png", "<!DOCTYPE html><html><body>hi</body></html>"},
			{"text as image/png", "just some text"},
		} {
			h.run("POST /me/avatar/415 "+c.name, func(h *harness) {
				a := h.register("Ada")
				h.want(upload(h, a, []byte(c.data), "image/png"), http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
			})
		}
		h.run("POST /me/avatar/415 multipart HTML", func(h *harness) {
			a := h.register("Ada")
			body, ct := multipartFile(h.t, "file", []byte("<html></html>"))
			h.want(upload(h, a, body, ct[1]), http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
		})
		h.run("POST /me/avatar/415 text/html content type", func(h *harness) {
			a := h.register("Ada")
			h.want(upload(h, a, pngBytes(h.t), "text/html"), http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
		})
		h.run("POST /me/avatar/401", func(h *harness) {
			r := h.do("POST", "/api/me/avatar", pngBytes(h.t), hdr("Content-Type", "image/png"))
			h.want(r, http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("DELETE /me/avatar/204", func(h *harness) {
			a := h.register("Ada")
			h.want(upload(h, a, pngBytes(h.t), "image/png"), http.StatusNoContent, "")
			h.want(h.do("DELETE", "/api/me/avatar", nil, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.want(get(h, a), http.StatusNotFound, "NOT_FOUND")
			if h.me(a.AccessToken).HasAvatar {
				h.t.Error("has_avatar after DELETE")
			}
			h.want(h.do("DELETE", "/api/me/avatar", nil, bearer(a.AccessToken)), http.StatusNoContent, "")
		})
		h.run("GET /me/avatar/404 none", func(h *harness) {
			a := h.register("Ada")
			h.want(get(h, a), http.StatusNotFound, "NOT_FOUND")
		})
	})
}

func TestErrors(t *testing.T) {
	eachDB(t, func(h *harness) {
		for _, c := range []struct {
			method, path string
			status       int
			code         string
		}{
			{"GET", "/api/nowhere", http.StatusNotFound, "NOT_FOUND"},
			{"GET", "/api", http.StatusNotFound, "NOT_FOUND"},
			{"GET", "/nowhere", http.StatusNotFound, "NOT_FOUND"},
			{"DELETE", "/api/register", http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"},
			{"PUT", "/api/me", http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"},
			{"POST", "/healthz", http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"},
		} {
			h.run(c.method+" "+c.path+"/"+http.StatusText(c.status), func(h *harness) {
				r := h.do(c.method, c.path, nil)
				h.want(r, c.status, c.code)
				if err := checkErrorBody(mustContract(h.t).doc, r); err != nil {
					h.t.Error(err)
				}
			})
		}
		h.run("GET /me/401 carries WWW-Authenticate", func(h *harness) {
			r := h.do("GET", "/api/me", nil)
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				h.t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	})
}

func mustContract(t testing.TB) *contractDoc {
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRestart checks that a new process on the same database and master
// key keeps everyone signed in.
func TestRestart(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		h.want(h.do("POST", "/api/me/avatar", jpegBytes(h.t), bearer(a.AccessToken), hdr("Content-Type", "image/jpeg")), http.StatusNoContent, "")
		before := h.do("GET", "/api/me/avatar", nil, bearer(a.AccessToken))

		h.restart()
		h.wantAccess(a.AccessToken, true)
		if s := h.sessions(a.AccessToken); len(s) != 1 || s[0].ID != a.SessionID || !s[0].Current {
			h.t.Errorf("sessions after restart: %+v", s)
		}
		after := h.do("GET", "/api/me/avatar", nil, bearer(a.AccessToken))
		h.want(after, http.StatusOK, "")
		if !bytes.Equal(after.Body, before.Body) || after.Header.Get("ETag") != before.Header.Get("ETag") {
			h.t.Error("the avatar changed across the restart")
		}
		r := h.refresh(a.RefreshToken)
		h.want(r, http.StatusOK, "")
		var next tokenPair
		h.decode(r, &next)
		h.wantAccess(next.AccessToken, true)
		h.signIn(a)
	})
}

func TestRootEndpoints(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("GET /healthz/200", func(h *harness) {
			h.want(h.do("GET", "/healthz", nil), http.StatusOK, "")
		})
		h.run("GET /readyz/200", func(h *harness) {
			h.want(h.do("GET", "/readyz", nil), http.StatusOK, "")
		})
		h.run("HEAD /healthz/200 and /readyz/200", func(h *harness) {
			h.want(h.do("HEAD", "/healthz", nil), http.StatusOK, "")
			h.want(h.do("HEAD", "/readyz", nil), http.StatusOK, "")
			// Through a real server, as a load balancer calls it: no body.
			srv := httptest.NewServer(h.h)
			defer srv.Close()
			for _, path := range []string{"/healthz", "/readyz"} {
				res, err := http.Head(srv.URL + path)
				if err != nil {
					h.t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || len(body) != 0 {
					h.t.Errorf("HEAD %s: %d with %d bytes of body", path, res.StatusCode, len(body))
				}
			}
		})
		h.run("GET /metrics/200", func(h *harness) {
			h.do("GET", "/api/me", nil)
			r := h.do("GET", "/metrics", nil)
			h.want(r, http.StatusOK, "")
			if !bytes.Contains(r.Body, []byte("latchkey_http_requests_total")) {
				h.t.Error("no latchkey_http_requests_total in /metrics")
			}
			if !bytes.Contains(r.Body, []byte(`route="/api/me"`)) {
				h.t.Error(`no route="/api/me" series in /metrics`)
			}
		})
		h.run("GET /.well-known/jwks.json/200", func(h *harness) {
			a := h.register("Ada")
			r := h.do("GET", "/.well-known/jwks.json", nil)
			h.want(r, http.StatusOK, "")
			var jwks struct {
				Keys []map[string]any `json:"keys"`
			}
			h.decode(r, &jwks)
			jh := jwtHeader(h.t, a.AccessToken)
			if jh["alg"] != "EdDSA" {
				h.t.Errorf("JWT alg %v, want EdDSA", jh["alg"])
			}
			found := false
			for _, k := range jwks.Keys {
				if k["kid"] == jh["kid"] {
					found = true
					if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["x"] == nil || k["d"] != nil {
						h.t.Errorf("key %v", k)
					}
				}
			}
			if !found {
				h.t.Errorf("kid %v not among %v", jh["kid"], jwks.Keys)
			}
		})
		h.run("GET /openapi.yaml/200", func(h *harness) {
			r := h.do("GET", "/openapi.yaml", nil)
			h.want(r, http.StatusOK, "")
			if !bytes.Equal(r.Body, latchkey.OpenAPIYAML) {
				h.t.Error("/openapi.yaml is not openapi.yaml")
			}
		})
		h.run("GET /docs/200", func(h *harness) {
			r := h.do("GET", "/docs/", nil)
			h.want(r, http.StatusOK, "")
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !bytes.Contains(r.Body, []byte("/openapi.yaml")) {
				h.t.Errorf("/docs/: %s, %.200s", r.Header.Get("Content-Type"), r.Body)
			}
			r = h.do("GET", "/docs", nil)
			if r.Code/100 != 3 || r.Header.Get("Location") != "/docs/" {
				h.t.Errorf("/docs: %d to %q", r.Code, r.Header.Get("Location"))
			}
		})
		h.run("GET /readyz/503 database closed", func(h *harness) {
			if err := h.db.Close(); err != nil {
				h.t.Fatal(err)
			}
			h.want(h.do("GET", "/readyz", nil), http.StatusServiceUnavailable, "UNAVAILABLE")
			if r := h.do("HEAD", "/readyz", nil); r.Code != http.StatusServiceUnavailable {
				h.t.Errorf("HEAD /readyz with the database closed: %d", r.Code)
			}
			h.want(h.do("GET", "/healthz", nil), http.StatusOK, "")
			// The API answers 500 or 503, within the contract, and says
			// nothing internal.
			r := h.do("POST", "/api/register", map[string]any{"name": "Ada"})
			if r.Code != http.StatusInternalServerError && r.Code != http.StatusServiceUnavailable {
				h.t.Errorf("register with the database closed: %s", r)
			}
			if bytes.Contains(bytes.ToLower(r.Body), []byte("sql")) {
				h.t.Errorf("the error reveals internals: %s", r.Body)
			}
		})
	})
}
