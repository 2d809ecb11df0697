package server_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/mail/mailtest"
	"github.com/latchkey-dev/latchkey/server"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// mailRows counts the rows a mail request may write: tokens, outbox mails
// and stored requests.
func (h *harness) mailRows() int {
	h.t.Helper()
	db := h.rawDB()
	defer db.Close()
	total := 0
	for _, table := range []string{"mail_tokens", "mail_outbox", "mail_requests"} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			// mail_requests does not exist before it was introduced.
			continue
		}
		total += n
	}
	return total
}

// TestMailRequestParity: POST /auth/password/reset-request and
// /auth/confirm/resend do the same work on the request path whether or
// not the address has an account (so their timing does not tell): each
// writes the same rows. The account is found, and mailed, by the outbox
// worker, with every rule as before.
func TestMailRequestParity(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		m.confirmed(adaEmail)
		m.accepted(m.do("POST", "/api/register", map[string]any{"email": "pending@example.com", "password": adaPassword}), "PENDING_CONFIRMATION")
		m.flush()

		for _, tc := range []struct{ path, known, unknown string }{
			{"/api/auth/password/reset-request", adaEmail, "nobody@example.com"},
			{"/api/auth/confirm/resend", "pending@example.com", "nobody@example.com"},
		} {
			written := func(email string) int {
				m.t.Helper()
				before := m.mailRows()
				m.accepted(m.do("POST", tc.path, map[string]any{"email": email}), "ACCEPTED")
				return m.mailRows() - before
			}
			known, unknown := written(tc.known), written(tc.unknown)
			if known != unknown {
				m.t.Errorf("%s writes %d rows for an account and %d for an unknown address on the request path", tc.path, known, unknown)
			}
			msgs := m.flush()
			if len(msgs) != 1 || msgs[0].To[0] != tc.known {
				m.t.Errorf("%s: delivered %s, want one mail to %s", tc.path, describe(msgs), tc.known)
			}
		}
		// The rules hold in the worker: a confirmed account gets no
		// confirmation, a disabled one nothing; the latest reset link
		// voids the earlier one.
		m.accepted(m.do("POST", "/api/auth/confirm/resend", map[string]any{"email": adaEmail}), "ACCEPTED")
		m.noMail()
		first := m.requestReset(adaEmail)
		second := m.requestReset(adaEmail)
		m.want(m.reset(first.Token(), newPassword), http.StatusBadRequest, "INVALID_TOKEN")
		m.want(m.reset(second.Token(), newPassword), http.StatusNoContent, "")
		m.flush()
		m.execSQL("UPDATE users SET disabled = true WHERE email = $1", adaEmail)
		m.accepted(m.do("POST", "/api/auth/password/reset-request", map[string]any{"email": adaEmail}), "ACCEPTED")
		m.noMail()
	})
}

// BenchmarkMailRequestParity measures POST /auth/password/reset-request
// and /auth/confirm/resend for an address with an account and one without,
// interleaved, through the production stack (rate limits off, no outbox
// worker), and reports both medians side by side (existing-µs,
// unknown-µs) per database.
func BenchmarkMailRequestParity(b *testing.B) {
	for _, target := range storetest.Targets(b) {
		b.Run(target.Name, func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, target.DSN, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			if err := db.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			cfg := testAuthConfig(key)
			cfg.Issuer, cfg.RefreshReuseGrace = publicURL, 0
			cfg.EmailConfirmationRequired = true
			cfg.Hasher = newHasher(b, cheapParams, 4, time.Second)
			svc, err := auth.NewService(ctx, db, cfg)
			if err != nil {
				b.Fatal(err)
			}
			e, err := server.New(svc, server.Config{AvatarMaxBytes: avatarMax, Spec: latchkey.OpenAPIYAML, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			if _, r := benchPost(e, "/api/register", `{"email":"`+adaEmail+`","password":"`+adaPassword+`"}`); r.Code != http.StatusAccepted {
				b.Fatalf("register: %s", r)
			}
			for _, path := range []string{"/api/auth/password/reset-request", "/api/auth/confirm/resend"} {
				b.Run(path[len("/api/auth/"):], func(b *testing.B) {
					var known, unknown []time.Duration
					i := 0
					for b.Loop() {
						email := adaEmail
						if i%2 == 1 {
							email = fmt.Sprintf("nobody%d@example.com", i)
						}
						start := time.Now()
						_, r := benchPost(e, path, `{"email":"`+email+`"}`)
						d := time.Since(start)
						if r.Code != http.StatusAccepted {
							b.Fatalf("%s: %s", path, r)
						}
						if i%2 == 0 {
							known = append(known, d)
						} else {
							unknown = append(unknown, d)
						}
						i++
					}
					b.ReportMetric(median(known).Seconds()*1e6, "existing-µs")
					b.ReportMetric(median(unknown).Seconds()*1e6, "unknown-µs")
				})
			}
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}
