package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/latchkey-dev/latchkey/store"
)

// TestMeSeesEveryChangeOnTheNextRequest: GET /me answers with the account
// its own authentication loaded (one query for session and user), and
// nothing is cached across requests: a profile change, a revoked session,
// a disabled account and a deleted account all show on the very next
// request.
func TestMeSeesEveryChangeOnTheNextRequest(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("profile change", func(h *harness) {
			a := h.register("Ada")
			h.me(a.AccessToken)
			h.want(h.do("PATCH", "/api/me", map[string]any{"name": "Ada L."}, bearer(a.AccessToken)), http.StatusOK, "")
			if u := h.me(a.AccessToken); u.Name != "Ada L." {
				h.t.Errorf("GET /me after PATCH: name %q", u.Name)
			}
		})
		h.run("logout", func(h *harness) {
			a := h.register("Ada")
			h.me(a.AccessToken)
			h.want(h.do("POST", "/api/auth/logout", map[string]any{}, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.wantAccess(a.AccessToken, false)
		})
		h.run("session revoked from another session", func(h *harness) {
			a := h.register("Ada")
			b := h.signIn(a)
			h.me(b.AccessToken)
			h.want(h.do("DELETE", "/api/me/sessions/"+b.SessionID, nil, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.wantAccess(b.AccessToken, false)
			h.wantAccess(a.AccessToken, true)
		})
		h.run("disabled account", func(h *harness) {
			a := h.register("Ada")
			h.me(a.AccessToken)
			// Only the flag changes (as an administrator's switch would,
			// whether or not it also revokes the sessions).
			q := "UPDATE users SET disabled = ? WHERE id = ?"
			if h.db.Dialect() == store.DialectPostgres {
				q = "UPDATE users SET disabled = $1 WHERE id = $2"
			}
			if _, err := h.db.Pools()["main"].ExecContext(context.Background(), q, true, a.ID); err != nil {
				h.t.Fatal(err)
			}
			h.wantAccess(a.AccessToken, false)
		})
		h.run("deleted account", func(h *harness) {
			a := h.register("Ada")
			b := h.signIn(a)
			h.me(b.AccessToken)
			h.want(h.do("DELETE", "/api/me", map[string]any{"secret": a.Secret}, bearer(a.AccessToken)), http.StatusNoContent, "")
			h.wantAccess(b.AccessToken, false)
		})
	})
}
