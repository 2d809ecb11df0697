package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOneOfBodies: SignInRequest and RegisterRequest are a oneOf in the
// spec (exactly one credential; one of two kinds of account). The
// validator enforces it, and a failure names the fields of the branch the
// body comes closest to, then lists the branches, in JSON and in forms.
func TestOneOfBodies(t *testing.T) {
	eachDB(t, func(h *harness) {
		for _, c := range []struct {
			name, path string
			body       any
			// field → message (a prefix of it; "" where the wording is the
			// validator's, as for any other body)
			want map[string]string
		}{
			{"sign-in: nothing", "/api/auth", map[string]any{}, map[string]string{"secret": ""}},
			{"sign-in: email without password", "/api/auth", map[string]any{"email": "ada@example.com"}, map[string]string{"password": ""}},
			{"sign-in: username without password (form)", "/api/auth", url.Values{"username": {"ada"}}, map[string]string{"password": ""}},
			{"sign-in: secret and password", "/api/auth", map[string]any{"secret": "s", "password": "p"}, map[string]string{"password": "is not a field of a secret account"}},
			{"sign-in: two credentials", "/api/auth", map[string]any{"secret": "s", "email": "ada@example.com", "password": "p"},
				map[string]string{"secret": "is not a field of a password account by email"}},
			{"sign-in: email and username", "/api/auth", url.Values{"email": {"ada@example.com"}, "username": {"ada"}, "password": {"p"}},
				map[string]string{"username": "is not a field of a password account by email"}},
			{"sign-in: unknown member", "/api/auth", map[string]any{"secret": "s", "token": "t"}, map[string]string{"token": "is not a known field"}},
			{"sign-in: bad email", "/api/auth", map[string]any{"email": "ada.example.com", "password": "p"}, map[string]string{"email": ""}},
			{"register: nothing", "/api/register", map[string]any{}, map[string]string{"name": ""}},
			{"register: secret account with a bio", "/api/register", map[string]any{"name": "A", "bio": "hi"}, map[string]string{"bio": "is not a field of a secret account"}},
			{"register: password without email (form)", "/api/register", url.Values{"name": {"A"}, "password": {"a long passphrase"}}, map[string]string{"email": ""}},
		} {
			h.run("POST "+c.path+"/400 "+c.name, func(h *harness) {
				r := h.do("POST", c.path, c.body)
				h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
				e := h.apiErr(r)
				got := map[string]string{}
				for _, d := range e.Details {
					got[d.Field] = d.Message
				}
				if len(got) != len(c.want) {
					h.t.Errorf("details %+v, want fields %v", e.Details, c.want)
				}
				for f, msg := range c.want {
					if m, ok := got[f]; !ok || !strings.HasPrefix(m, msg) {
						h.t.Errorf("details %+v, want %s: %q", e.Details, f, msg)
					}
				}
				if !strings.Contains(e.Message, "send one of: a secret account (") || strings.Contains(e.Message, "oneOf") {
					h.t.Errorf("message %q does not list the kinds of body in words", e.Message)
				}
			})
		}
		h.run("POST /auth/200 every branch, JSON and form", func(h *harness) {
			a := h.register("Ada")
			h.want(h.do("POST", "/api/auth", map[string]any{"secret": a.Secret}), http.StatusOK, "")
			h.want(h.do("POST", "/api/auth", url.Values{"secret": {a.Secret}}), http.StatusOK, "")
			pw := "a long and unusual passphrase"
			h.want(h.do("POST", "/api/register", url.Values{"email": {"lin@example.com"}, "username": {"lin"}, "password": {pw}}), http.StatusCreated, "")
			h.want(h.do("POST", "/api/auth", map[string]any{"email": "LIN@example.com", "password": pw}), http.StatusOK, "")
			h.want(h.do("POST", "/api/auth", url.Values{"username": {"lin"}, "password": {pw}}), http.StatusOK, "")
			h.want(h.do("POST", "/api/auth", map[string]any{"username": "lin", "password": "wrong password"}), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})
	})
}
