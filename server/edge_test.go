package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/server"
)

// withServer is a copy of h whose stacks are built with tweak applied to
// the server.Config.
func (h *harness) withServer(tweak func(*server.Config)) *harness {
	c := *h
	c.serverTweak = tweak
	c.h = c.stack(nil)
	return &c
}

// TestPublicOperationsIgnoreAuthorization: a client that sends its
// (possibly stale) bearer, or a proxy's Basic credentials, on every call
// can still register, sign in, refresh and use the mail operations; only
// operations that take a bearer look at the header.
func TestPublicOperationsIgnoreAuthorization(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		stale := h.signIn(a)
		h.want(h.do("POST", "/api/auth/logout", nil, bearer(stale.AccessToken)), http.StatusNoContent, "")
		h.wantAccess(stale.AccessToken, false)
		for name, hd := range map[string]header{
			"valid bearer":   bearer(a.AccessToken),
			"stale bearer":   bearer(stale.AccessToken),
			"garbage bearer": bearer("not-a-jwt"),
			"basic":          hdr("Authorization", "Basic dXNlcjpwYXNz"),
		} {
			h.run(name, func(h *harness) {
				h.want(h.do("POST", "/api/register", map[string]any{"name": "Bob"}, hd), http.StatusCreated, "")
				s := h.signIn(a, hd)
				h.want(h.refresh(s.RefreshToken), http.StatusOK, "")
				r := h.do("POST", "/api/auth/refresh", map[string]any{"refresh_token": h.signIn(a).RefreshToken}, hd)
				h.want(r, http.StatusOK, "")
				h.want(h.do("POST", "/api/auth/confirm", map[string]any{"token": "nope"}, hd), http.StatusBadRequest, "INVALID_TOKEN")
				h.want(h.do("POST", "/api/auth/password/reset-request", map[string]any{"email": "x@example.com"}, hd), http.StatusAccepted, "")
				h.want(h.do("POST", "/api/auth/confirm/resend", map[string]any{"email": "x@example.com"}, hd), http.StatusAccepted, "")
				h.want(h.do("POST", "/api/auth/password/reset", map[string]any{"token": "nope", "password": "a fine new password"}, hd), http.StatusBadRequest, "INVALID_TOKEN")
				h.want(h.do("POST", "/api/auth/two-factor", map[string]any{"two_factor_token": "nope", "code": "123456"}, hd), http.StatusBadRequest, "INVALID_TOKEN")
			})
		}
		h.run("bearer operations still refuse a bad header", func(h *harness) {
			h.want(h.do("GET", "/api/me", nil, hdr("Authorization", "Basic dXNlcjpwYXNz")), http.StatusUnauthorized, "UNAUTHENTICATED")
			h.want(h.do("GET", "/api/me", nil, bearer(stale.AccessToken)), http.StatusUnauthorized, "UNAUTHENTICATED")
		})
		h.run("logout takes either, and a presented bearer must be good", func(h *harness) {
			s := h.signIn(a)
			r := h.do("POST", "/api/auth/logout", map[string]any{"refresh_token": s.RefreshToken}, bearer(stale.AccessToken))
			h.want(r, http.StatusUnauthorized, "UNAUTHENTICATED")
			h.wantAccess(s.AccessToken, true)
			h.want(h.do("POST", "/api/auth/logout", map[string]any{"refresh_token": s.RefreshToken}), http.StatusNoContent, "")
			h.wantAccess(s.AccessToken, false)
		})
	})
}

// TestMethodNotAllowedCarriesAllow: 405 answers name the methods of the
// path, under /api as at the root.
func TestMethodNotAllowedCarriesAllow(t *testing.T) {
	eachDB(t, func(h *harness) {
		for _, c := range []struct{ method, path, want, not string }{
			{"PUT", "/api/register", "POST", "GET"},
			{"POST", "/api/me/secret", "GET", "POST"},
			{"PUT", "/api/me/avatar", "DELETE", "PUT"},
			{"OPTIONS", "/api/auth", "POST", "GET"},
			{"POST", "/healthz", "GET", "POST"},
		} {
			r := h.do(c.method, c.path, nil)
			h.want(r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
			allow := strings.Split(strings.ReplaceAll(r.Header.Get("Allow"), " ", ""), ",")
			if !slices.Contains(allow, c.want) || slices.Contains(allow, c.not) {
				t.Errorf("%s %s: Allow %q, want %s and not %s", c.method, c.path, r.Header.Get("Allow"), c.want, c.not)
			}
		}
	})
}

// TestFormFieldsFromBodyOnly: a credential in the URL is never used, and
// fields the operation does not know are refused wherever they are.
func TestFormFieldsFromBodyOnly(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.passwords(nil)
		pw := h.registerPassword(map[string]any{"email": "ada@example.com", "password": "correct horse battery"})
		form := func(v ...string) url.Values {
			out := url.Values{}
			for i := 0; i < len(v); i += 2 {
				out.Set(v[i], v[i+1])
			}
			return out
		}
		for _, c := range []struct {
			name, path string
			body       any
			field, msg string
		}{
			{"password only in the query", "/api/auth?password=" + url.QueryEscape(pw.Password), form("email", pw.Email), "password", "belongs in the request body"},
			{"JSON body, password in the query", "/api/auth?password=" + url.QueryEscape(pw.Password), map[string]any{"email": pw.Email}, "password", "belongs in the request body"},
			{"everything in the query", "/api/auth?email=ada%40example.com&password=" + url.QueryEscape(pw.Password), form(), "email", "belongs in the request body"},
			{"both places", "/api/auth?password=wrong", form("email", pw.Email, "password", pw.Password), "password", "belongs in the request body"},
			{"secret in the query", "/api/register?name=Eve", form("name", "Eve"), "name", "belongs in the request body"},
			{"unknown query field", "/api/auth?debug=1", form("email", pw.Email, "password", pw.Password), "debug", "is not a known query parameter"},
		} {
			h.run(c.name, func(h *harness) {
				r := h.do("POST", c.path, c.body)
				h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
				e := h.apiErr(r)
				if !slices.ContainsFunc(e.Details, func(d fieldError) bool { return d.Field == c.field && strings.Contains(d.Message, c.msg) }) {
					t.Errorf("details %+v, want %s: …%s…", e.Details, c.field, c.msg)
				}
			})
		}
		h.run("a form with the credentials in the body signs in", func(h *harness) {
			h.want(h.do("POST", "/api/auth", form("email", pw.Email, "password", pw.Password)), http.StatusOK, "")
		})
		h.run("an operation without a body ignores an unknown query parameter", func(h *harness) {
			h.want(h.do("GET", "/api/me?_=1", nil, bearer(pw.AccessToken)), http.StatusOK, "")
		})
		h.run("unknown form field", func(h *harness) {
			r := h.do("POST", "/api/auth", form("email", pw.Email, "password", pw.Password, "admin", "true"))
			h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
		})
	})
}

// TestMediaTypesCaseInsensitive: RFC 9110 media types ignore case; a
// logout body sent as Application/JSON is read, and the session dies.
func TestMediaTypesCaseInsensitive(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		r := h.do("POST", "/api/auth/logout", []byte(`{"refresh_token":"`+a.RefreshToken+`"}`), hdr("Content-Type", "Application/JSON"))
		h.want(r, http.StatusNoContent, "")
		h.wantAccess(a.AccessToken, false)
		h.want(h.refresh(a.RefreshToken), http.StatusUnauthorized, "")

		r = h.do("POST", "/api/register", []byte("name=Bob"), hdr("Content-Type", "APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8"))
		h.want(r, http.StatusCreated, "")
		var res registerResult
		h.decode(r, &res)
		if res.User.Name != "Bob" {
			t.Errorf("name %q, want Bob", res.User.Name)
		}
		b := h.register("Cy")
		r = h.do("POST", "/api/me/avatar", pngBytes(t), bearer(b.AccessToken), hdr("Content-Type", "Image/PNG"))
		h.want(r, http.StatusNoContent, "")
	})
}

// TestMessagesSayTheRule: validation messages say the rule in words:
// no regular expressions, no Go parse errors, no field name twice.
func TestMessagesSayTheRule(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.passwords(nil)
		a := h.register("Ada")
		ab := bearer(a.AccessToken)
		for _, c := range []struct {
			name, method, path string
			body               any
			hd                 []header
			status             int
			field, want        string
		}{
			{"username pattern", "POST", "/api/register", map[string]any{"email": "a@example.com", "password": "long enough pw", "username": "a b"}, nil, 400, "username", "must be 3 to 30 letters"},
			{"email format", "POST", "/api/register", map[string]any{"email": "nope", "password": "long enough pw"}, nil, 400, "email", "must be a valid email address"},
			{"locale pattern", "POST", "/api/register", map[string]any{"name": "x", "locale": "!!"}, nil, 400, "locale", "language tag"},
			{"empty name", "POST", "/api/register", map[string]any{"name": ""}, nil, 400, "name", "must be 1 to 64 characters"},
			{"wrong type", "POST", "/api/register", map[string]any{"name": 12}, nil, 400, "name", "must be a string"},
			{"a float where a string goes", "PATCH", "/api/me", map[string]any{"name": 1.5}, []header{ab}, 400, "name", "must be a string"},
			{"enum", "POST", "/api/auth/logout", map[string]any{"scope": "nope"}, []header{ab}, 400, "scope", "must be current, others or all"},
			{"uuid path parameter", "DELETE", "/api/me/sessions/not-a-uuid", nil, []header{ab}, 400, "id", "must be a UUID"},
			{"impossible date", "PATCH", "/api/me", map[string]any{"birth_date": "2020-13-01"}, []header{ab}, 400, "birth_date", "must be a real date written YYYY-MM-DD"},
			{"not a date", "PATCH", "/api/me", map[string]any{"birth_date": "yesterday"}, []header{ab}, 400, "birth_date", "must be a real date"},
			{"broken JSON", "POST", "/api/register", []byte(`{"name":`), []header{hdr("Content-Type", "application/json")}, 400, "body", "is not valid JSON"},
			{"huge number", "POST", "/api/register", []byte(`{"name":1e999}`), []header{hdr("Content-Type", "application/json")}, 400, "", ""},
			{"two credentials", "POST", "/api/auth", map[string]any{"secret": "x", "email": "a@example.com", "password": "long enough pw"}, nil, 400, "secret", "is not a field of a password account by email"},
			{"email and username", "POST", "/api/auth", map[string]any{"email": "a@example.com", "username": "ada", "password": "long enough pw"}, nil, 400, "username", "is not a field of a password account by email"},
			{"weak password", "POST", "/api/register", map[string]any{"email": "b@example.com", "password": "short"}, nil, 400, "password", "must be 8 to 128 characters"},
		} {
			h.run(c.name, func(h *harness) {
				r := h.do(c.method, c.path, c.body, c.hd...)
				if r.Code != c.status {
					t.Fatalf("status %d, want %d: %s", r.Code, c.status, r.Body)
				}
				e := h.apiErr(r)
				for _, bad := range []string{"^", "$", `\`, "unmarshal", "json.Number", "float64", "*uuid", "parsing time", "regular expression", "doesn't match", "2006"} {
					if strings.Contains(e.Message, bad) {
						t.Errorf("message %q contains %q", e.Message, bad)
					}
				}
				for _, d := range e.Details {
					if strings.HasPrefix(d.Message, d.Field) || strings.Contains(d.Message, d.Field+":") {
						t.Errorf("detail %+v repeats the field name", d)
					}
				}
				if c.field != "" && !slices.ContainsFunc(e.Details, func(d fieldError) bool { return d.Field == c.field && strings.Contains(d.Message, c.want) }) {
					t.Errorf("details %+v, want %s: …%s…", e.Details, c.field, c.want)
				}
			})
		}
	})
}

// TestUnsupportedMediaTypeSaysWhat: a 415 names the media types the
// operation takes, and a JSON body under another type gets a hint.
func TestUnsupportedMediaTypeSaysWhat(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		for _, c := range []struct {
			name, path, contentType string
			body                    []byte
			hd                      []header
			want                    []string
		}{
			{"XML to a JSON and form route", "/api/register", "text/xml", []byte("<name>x</name>"), nil, []string{"application/json", "application/x-www-form-urlencoded"}},
			{"JSON sent as a form (curl -d)", "/api/register", "application/x-www-form-urlencoded", []byte(`{"name":"x"}`), nil, []string{"looks like JSON", "Content-Type: application/json"}},
			{"JSON as text/plain (fetch)", "/api/auth/refresh", "text/plain;charset=UTF-8", []byte(`{"refresh_token":"x"}`), nil, []string{"looks like JSON", "Content-Type: application/json"}},
			{"JSON with no Content-Type", "/api/auth", "", []byte(` {"secret":"x"}`), nil, []string{"no Content-Type", "application/json"}},
			{"form to a JSON-only route", "/api/me/two-factor/confirm", "application/x-www-form-urlencoded", []byte("code=123456"), []header{bearer(a.AccessToken)}, []string{"takes application/json"}},
		} {
			h.run(c.name, func(h *harness) {
				hd := append([]header{hdr("Content-Type", c.contentType)}, c.hd...)
				r := h.do("POST", c.path, c.body, hd...)
				h.want(r, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
				msg := h.apiErr(r).Message
				for _, w := range c.want {
					if !strings.Contains(msg, w) {
						t.Errorf("message %q lacks %q", msg, w)
					}
				}
				if strings.Contains(msg, "PNG") {
					t.Errorf("message %q talks of images", msg)
				}
			})
		}
	})
}

// TestRequestIDKeptOnlyWhenShort: a client's X-Request-Id reaches logs
// and the response only when it is at most 64 of [A-Za-z0-9._-].
func TestRequestIDKeptOnlyWhenShort(t *testing.T) {
	eachDB(t, func(h *harness) {
		good := "req-1234_abc.DEF"
		if got := h.do("GET", "/healthz", nil, hdr("X-Request-Id", good)).Header.Get("X-Request-Id"); got != good {
			t.Errorf("X-Request-Id %q, want %q kept", got, good)
		}
		for name, id := range map[string]string{
			"20 KB":         strings.Repeat("a", 20<<10),
			"65 chars":      strings.Repeat("b", 65),
			"spaces":        "two words",
			"log injection": "x\",\"level\":\"ERROR",
			"unicode":       "ид",
		} {
			got := h.do("GET", "/api/me", nil, hdr("X-Request-Id", id)).Header.Get("X-Request-Id")
			if got == id || got == "" || len(got) > 64 {
				t.Errorf("%s: X-Request-Id %.80q, want a fresh id", name, got)
			}
		}
	})
}

// TestSecurityHeaders: nosniff everywhere; personal answers are not
// stored by caches; the avatar is revalidated by its ETag.
func TestSecurityHeaders(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		ab := bearer(a.AccessToken)
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/me"}, {"GET", "/api/nowhere"}, {"GET", "/healthz"}, {"GET", "/docs/"},
			{"GET", "/openapi.yaml"}, {"PUT", "/api/me"}, {"GET", "/nowhere"},
		} {
			if got := h.do(c.method, c.path, nil, ab).Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("%s %s: X-Content-Type-Options %q", c.method, c.path, got)
			}
		}
		for _, p := range []string{"/api/me", "/api/me/secret", "/api/me/sessions"} {
			r := h.do("GET", p, nil, ab)
			h.want(r, http.StatusOK, "")
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("GET %s: Cache-Control %q, want no-store", p, got)
			}
		}
		h.want(h.do("POST", "/api/me/avatar", pngBytes(t), ab, hdr("Content-Type", "image/png")), http.StatusNoContent, "")
		r := h.do("GET", "/api/me/avatar", nil, ab)
		h.want(r, http.StatusOK, "")
		if got := r.Header.Get("Cache-Control"); got != "private, no-cache" {
			t.Errorf("GET /me/avatar: Cache-Control %q, want private, no-cache", got)
		}
		r = h.do("GET", "/api/me/avatar", nil, ab, hdr("If-None-Match", r.Header.Get("ETag")))
		h.want(r, http.StatusNotModified, "")
		if got := r.Header.Get("Cache-Control"); got != "private, no-cache" {
			t.Errorf("304 /me/avatar: Cache-Control %q, want private, no-cache", got)
		}
		r = h.do("GET", "/docs/", nil)
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("/docs: CSP %q, X-Frame-Options %q", csp, r.Header.Get("X-Frame-Options"))
		}
	})
}

const appOrigin = "https://app.example.com"

// TestCORS: listed origins get preflights and Access-Control-Allow-Origin
// on every answer, errors included, never credentials; others get nothing.
func TestCORS(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada")
		hc := h.withServer(func(c *server.Config) { c.CORSOrigins = []string{appOrigin, "http://localhost:5173"} })
		origin := hdr("Origin", appOrigin)
		wantCORS := func(h *harness, r response, allowed bool) {
			h.t.Helper()
			acao := r.Header.Get("Access-Control-Allow-Origin")
			if allowed && acao != appOrigin || !allowed && acao != "" {
				h.t.Errorf("%d: Access-Control-Allow-Origin %q (allowed %v)", r.Code, acao, allowed)
			}
			if !slices.Contains(r.Header.Values("Vary"), "Origin") {
				h.t.Errorf("%d: Vary %q lacks Origin", r.Code, r.Header.Values("Vary"))
			}
			if r.Header.Get("Access-Control-Allow-Credentials") != "" {
				h.t.Errorf("%d: credentials allowed", r.Code)
			}
			if allowed && r.Header.Get("Access-Control-Request-Method") == "" && r.Code != http.StatusNoContent {
				exp := r.Header.Get("Access-Control-Expose-Headers")
				for _, w := range []string{"Retry-After", "ETag", "X-Request-Id"} {
					if !strings.Contains(exp, w) {
						h.t.Errorf("%d: Access-Control-Expose-Headers %q lacks %s", r.Code, exp, w)
					}
				}
			}
		}
		hc.run("preflight", func(h *harness) {
			r := h.do("OPTIONS", "/api/me", nil, origin, hdr("Access-Control-Request-Method", "PATCH"),
				hdr("Access-Control-Request-Headers", "authorization,content-type,if-none-match"))
			h.want(r, http.StatusNoContent, "")
			wantCORS(h, r, true)
			methods := r.Header.Get("Access-Control-Allow-Methods")
			for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
				if !strings.Contains(methods, m) {
					t.Errorf("Access-Control-Allow-Methods %q lacks %s", methods, m)
				}
			}
			allowed := strings.ToLower(r.Header.Get("Access-Control-Allow-Headers"))
			for _, hd := range []string{"authorization", "content-type", "if-none-match"} {
				if !strings.Contains(allowed, hd) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, hd)
				}
			}
		})
		hc.run("every answer to a listed origin", func(h *harness) {
			wantCORS(h, h.do("GET", "/api/me", nil, origin, bearer(a.AccessToken)), true)
			wantCORS(h, h.do("GET", "/api/me", nil, origin), true)                                  // 401
			wantCORS(h, h.do("GET", "/api/nowhere", nil, origin), true)                             // 404
			wantCORS(h, h.do("PUT", "/api/register", nil, origin), true)                            // 405
			wantCORS(h, h.do("POST", "/api/register", map[string]any{"name": ""}, origin), true)    // 400
			wantCORS(h, h.do("GET", "/.well-known/jwks.json", nil, origin), true)                   // root
			wantCORS(h, h.do("POST", "/api/auth", map[string]any{"secret": "wrong"}, origin), true) // 401
		})
		hc.run("429", func(h *harness) {
			lim := h.passwords(func(c *auth.Config) { c.Limits = memoryLimits(1, time.Minute, 0) })
			lim.registerPassword(map[string]any{"email": "ada@example.com", "password": "correct horse battery"})
			lim.want(lim.signInPw("ada@example.com", "wrong password!", origin), http.StatusUnauthorized, "")
			r := lim.signInPw("ada@example.com", "wrong password!", origin)
			lim.wantRateLimited(r, time.Minute)
			wantCORS(lim, r, true)
		})
		hc.run("an unlisted origin gets no CORS", func(h *harness) {
			evil := hdr("Origin", "https://evil.example.com")
			wantCORS(h, h.do("GET", "/api/me", nil, evil, bearer(a.AccessToken)), false)
			r := h.do("OPTIONS", "/api/me", nil, evil, hdr("Access-Control-Request-Method", "GET"))
			h.want(r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
			wantCORS(h, r, false)
			wantCORS(h, h.do("GET", "/api/me", nil, hdr("Origin", appOrigin+".evil.com")), false)
		})
		h.run("unset: no CORS headers at all", func(h *harness) {
			r := h.do("GET", "/api/me", nil, origin, bearer(a.AccessToken))
			for k := range r.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("header %s without LATCHKEY_CORS_ORIGINS", k)
				}
			}
			h.want(h.do("OPTIONS", "/api/me", nil, origin, hdr("Access-Control-Request-Method", "GET")), http.StatusMethodNotAllowed, "")
		})
		h.run("*", func(h *harness) {
			hs := h.withServer(func(c *server.Config) { c.CORSOrigins = []string{"*"} })
			r := hs.do("GET", "/api/me", nil, hdr("Origin", "https://anyone.example"))
			if r.Header.Get("Access-Control-Allow-Origin") != "*" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("ACAO %q", r.Header.Get("Access-Control-Allow-Origin"))
			}
		})
	})
}

func TestParseCORSOrigins(t *testing.T) {
	for _, ok := range []string{"", "*", "https://app.example.com", "https://a.example.com, http://localhost:5173"} {
		if _, err := server.ParseCORSOrigins(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"app.example.com", "https://app.example.com/", "https://*.example.com", "*, https://a.example.com",
		"ftp://a.example.com", "https://App.example.com", "https://a.example.com/path", "https://user@a.example.com", "null"} {
		if _, err := server.ParseCORSOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
