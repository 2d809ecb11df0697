package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/outbox"
	"github.com/latchkey-dev/latchkey/mail/mailtest"
	"github.com/latchkey-dev/latchkey/server"
)

// TestEvents: one event per action, in order, with the account, the
// acting admin, the client address and agent; never a secret; listings
// for the user and for admins with filters and pages; account deletion;
// pruning.
func TestEvents(t *testing.T) {
	eachDB(t, func(h *harness) {
		pw := h.passwords(nil)
		admin := h.newAdmin("Root")
		step := func() { h.clock.advance(time.Millisecond) } // distinct times: a total order
		const (
			email    = "log@example.com"
			password = "first secret horse"
			next     = "second secret horse"
			unknown  = "nobody-here@example.com"
			agent    = "EventAgent/2.0"
		)
		ua := hdr("User-Agent", agent)
		acct := pw.registerPassword(map[string]any{"email": email, "password": password})
		step()
		tp := pw.wantSignIn(email, password, ua, from("198.51.100.9:5555"))
		step()
		pw.want(pw.signInPw(email, "wrong password!"), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		step()
		pw.want(pw.signInPw(unknown, "whatever pass"), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		step()
		pw.want(pw.do("DELETE", "/api/me/sessions/"+acct.SessionID, nil, bearer(tp.AccessToken)), http.StatusNoContent, "")
		step()
		pw.want(pw.do("PUT", "/api/me/password", map[string]any{"current_password": password, "new_password": next}, bearer(tp.AccessToken)), http.StatusNoContent, "")
		step()
		pw.want(pw.do("POST", "/api/auth/logout", map[string]any{}, bearer(tp.AccessToken)), http.StatusNoContent, "")
		step()
		pw.want(h.patchUser(admin, acct.ID, map[string]any{"disabled": true}), http.StatusOK, "")
		step()
		pw.want(h.patchUser(admin, acct.ID, map[string]any{"disabled": false}), http.StatusOK, "")
		step()
		tp = pw.wantSignIn(email, next)

		h.run("the user's own log", func(h *harness) {
			r := pw.do("GET", "/api/me/events", nil, bearer(tp.AccessToken))
			h.want(r, http.StatusOK, "")
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				h.t.Errorf("Cache-Control = %q", cc)
			}
			evs := pw.events(tp.AccessToken, "/api/me/events?limit=2")
			want := []string{"sign_in", "account_enabled", "account_disabled", "logout", "password_changed",
				"session_revoked", "sign_in_failed", "sign_in", "account_created"}
			if got := eventTypes(evs); !slices.Equal(got, want) {
				h.t.Fatalf("events %v\nwant   %v", got, want)
			}
			for i, e := range evs {
				if e.UserID == nil || *e.UserID != acct.ID {
					h.t.Errorf("%s: user_id %v", e.Type, e.UserID)
				}
				if i > 0 && !e.CreatedAt.Before(evs[i-1].CreatedAt) {
					h.t.Errorf("%s: not newest first", e.Type)
				}
				wantActor := e.Type == "account_disabled" || e.Type == "account_enabled"
				if (e.ActorID != nil) != wantActor || (wantActor && *e.ActorID != admin.ID) {
					h.t.Errorf("%s: actor_id %v", e.Type, e.ActorID)
				}
			}
			signIn := evs[7]
			if signIn.IP == nil || *signIn.IP != "198.51.100.9" || signIn.UserAgent == nil || *signIn.UserAgent != agent ||
				signIn.SessionID == nil || *signIn.SessionID == acct.SessionID {
				h.t.Errorf("sign_in event = %+v", signIn)
			}
			if e := evs[5]; e.SessionID == nil || *e.SessionID != acct.SessionID || *e.IP != clientIP || *e.UserAgent != clientAgent {
				h.t.Errorf("session_revoked event = %+v", e)
			}
			h.want(h.do("GET", "/api/me/events", nil), http.StatusUnauthorized, "UNAUTHENTICATED")
			h.want(h.do("GET", "/api/me/events?limit=101", nil, bearer(tp.AccessToken)), http.StatusBadRequest, "INVALID_REQUEST")
		})
		h.run("admins: filters, and nothing secret anywhere", func(h *harness) {
			all := h.events(admin.AccessToken, "/api/admin/events?limit=100")
			var anonymous []event
			for _, e := range all {
				if e.Type == "sign_in_failed" && e.UserID == nil {
					anonymous = append(anonymous, e)
				}
			}
			if len(anonymous) != 1 || anonymous[0].IP == nil || *anonymous[0].IP != clientIP {
				h.t.Errorf("failed sign-ins without an account: %+v", anonymous)
			}
			r := h.do("GET", "/api/admin/events?limit=100", nil, bearer(admin.AccessToken))
			for _, secret := range []string{password, next, unknown, "nobody-here", "wrong password", acct.RefreshToken, tp.RefreshToken, tp.AccessToken, admin.Secret} {
				if strings.Contains(string(r.Body), secret) {
					h.t.Errorf("the log holds %q", secret)
				}
			}
			byUser := h.events(admin.AccessToken, "/api/admin/events?user_id="+acct.ID)
			if len(byUser) != 9 {
				h.t.Errorf("user_id filter: %v", eventTypes(byUser))
			}
			failed := h.events(admin.AccessToken, "/api/admin/events?type=sign_in_failed")
			if len(failed) != 2 {
				h.t.Errorf("type filter: %d events", len(failed))
			}
			h.want(h.do("GET", "/api/admin/events?type=nope", nil, bearer(admin.AccessToken)), http.StatusBadRequest, "INVALID_REQUEST")
			h.want(h.do("GET", "/api/admin/events?user_id=nope", nil, bearer(admin.AccessToken)), http.StatusBadRequest, "INVALID_REQUEST")
		})
		h.run("deleting an account leaves one account_deleted event", func(h *harness) {
			h.want(h.do("DELETE", "/api/admin/users/"+acct.ID, nil, bearer(admin.AccessToken)), http.StatusNoContent, "")
			left := h.events(admin.AccessToken, "/api/admin/events?user_id="+acct.ID)
			if len(left) != 1 || left[0].Type != "account_deleted" || left[0].ActorID == nil || *left[0].ActorID != admin.ID {
				h.t.Fatalf("after deletion: %+v", left)
			}
			h.want(h.do("GET", "/api/admin/users/"+acct.ID, nil, bearer(admin.AccessToken)), http.StatusNotFound, "NOT_FOUND")

			// Deleting one's own account: the same, without an actor.
			self := h.register("Leaving")
			h.want(h.do("DELETE", "/api/me", map[string]any{"secret": self.Secret}, bearer(self.AccessToken)), http.StatusNoContent, "")
			left = h.events(admin.AccessToken, "/api/admin/events?user_id="+self.ID)
			if len(left) != 1 || left[0].Type != "account_deleted" || left[0].ActorID != nil {
				h.t.Fatalf("after DELETE /me: %+v", left)
			}
		})
		h.run("pruned after the retention", func(h *harness) {
			svc, _ := h.build(nil)
			h.clock.advance(outbox.DefaultEventRetention + time.Hour)
			fresh := h.signIn(admin) // a new event, kept
			n, err := svc.PruneEvents(context.Background(), outbox.DefaultEventRetention)
			if err != nil || n < 5 {
				h.t.Fatalf("pruned %d, %v", n, err)
			}
			left := h.events(fresh.AccessToken, "/api/admin/events?limit=100")
			if len(left) != 1 || left[0].Type != "sign_in" {
				h.t.Fatalf("after pruning: %v", eventTypes(left))
			}
		})
	})
}

// TestNoSecretInLogs: the log lines of a session's worth of requests (with
// debug on) and the security log hold no password, secret or token.
func TestNoSecretInLogs(t *testing.T) {
	eachDB(t, func(h *harness) {
		var logs bytes.Buffer
		cfg := testAuthConfig(h.key)
		cfg.RefreshTokenTTL, cfg.RefreshReuseGrace = time.Hour, 0
		cfg.Hasher = newHasher(h.t, cheapParams, 4, time.Second)
		svc, err := auth.NewService(context.Background(), h.db, cfg, auth.WithClock(h.clock.Now))
		if err != nil {
			h.t.Fatal(err)
		}
		e, err := server.New(svc, server.Config{
			Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Spec:   latchkey.OpenAPIYAML, AvatarMaxBytes: avatarMax,
		})
		if err != nil {
			h.t.Fatal(err)
		}
		c := *h
		c.h = e
		const email, password, wrong = "logs@example.com", "a quiet log staple", "not the log staple"
		acct := c.registerPassword(map[string]any{"email": email, "password": password})
		c.want(c.signInPw(email, wrong), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		c.want(c.signInPw("ghost@example.com", password), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		tp := c.wantSignIn(email, password)
		c.grant(acct.ID, true)
		c.want(c.do("GET", "/api/admin/events?limit=100", nil, bearer(tp.AccessToken)), http.StatusOK, "")
		r := c.do("GET", "/api/admin/events?limit=100", nil, bearer(tp.AccessToken))
		c.want(c.refresh(tp.RefreshToken), http.StatusOK, "")
		c.want(c.refresh(tp.RefreshToken+"x"), http.StatusUnauthorized, "UNAUTHENTICATED")
		c.want(c.do("PUT", "/api/me/password", map[string]any{"current_password": wrong, "new_password": wrong + "!"}, bearer(acct.AccessToken)), http.StatusUnauthorized, "INVALID_CREDENTIALS")
		if logs.Len() == 0 {
			h.t.Fatal("nothing was logged: the test would prove nothing")
		}
		// The wrong sign-in and the wrong re-check of PUT /me/password.
		failed, err := h.db.ListEvents(context.Background(), auth.EventFilter{UserID: acct.ID, Type: auth.EventSignInFailed}, nil, 10)
		if err != nil || len(failed) != 2 {
			h.t.Errorf("sign_in_failed events of the account: %+v, %v", failed, err)
		}
		for _, secret := range []string{password, wrong, "ghost@example.com", tp.AccessToken, tp.RefreshToken, acct.RefreshToken} {
			if strings.Contains(logs.String(), secret) {
				h.t.Errorf("a log line holds %q", secret)
			}
			if strings.Contains(string(r.Body), secret) {
				h.t.Errorf("the security log holds %q", secret)
			}
		}
	})
}

// TestEventsPrunedByTheWorker: the background worker (the outbox) deletes
// the events older than the retention on its hourly pass, and no others.
func TestEventsPrunedByTheWorker(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		m.outbox = newWorker(h.t, m.svc, m.mailer, func(c *outbox.Config) { c.EventRetention, c.SendTimeout = 48*time.Hour, 5*time.Second })
		admin := m.newAdmin("Root")
		m.flush() // the first pass prunes nothing yet
		h.clock.advance(47 * time.Hour)
		kept := m.signIn(admin)
		h.clock.advance(2 * time.Hour) // the first events are 49 h old, the sign-in 2 h
		m.flush()
		left, err := h.db.ListEvents(context.Background(), auth.EventFilter{}, nil, 100)
		if err != nil || len(left) != 1 || left[0].Type != auth.EventSignIn || left[0].SessionID != kept.SessionID {
			h.t.Fatalf("after the worker's pass: %+v, %v", left, err)
		}
	})
}
