package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

func mailToken(t *testing.T, kind auth.TokenKind, u *auth.User, email string, ttl time.Duration) *auth.MailToken {
	return &auth.MailToken{Hash: randomHash(t), Kind: kind, UserID: u.ID, Email: email, CreatedAt: base, ExpiresAt: base.Add(ttl)}
}

func outboxMail(u *auth.User, kind auth.MailKind, due time.Time) *auth.OutboxMail {
	return &auth.OutboxMail{
		ID: uuid.NewString(), UserID: u.ID, Kind: kind, To: *u.Email, Locale: u.Locale,
		Payload: []byte("sealed"), CreatedAt: base, NextAttempt: due,
	}
}

func tokenCount(t *testing.T, db *store.DB, userID string, kind auth.TokenKind) int64 {
	t.Helper()
	return countRows(t, db, "mail_tokens", "user_id = ? AND kind = ?", userID, string(kind))
}

func TestCreatePendingUser(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := passwordUser("ada@example.com", "ada")
		tok := mailToken(t, auth.TokenConfirm, u, "ada@example.com", 24*time.Hour)
		m := outboxMail(u, auth.MailConfirm, base)
		noErr(t, "CreatePendingUser", db.CreatePendingUser(ctx, u, tok, m))
		got, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		equalUsers(t, got, u)
		if n := countRows(t, db, "sessions", "user_id = ?", u.ID); n != 0 {
			t.Errorf("%d sessions, want 0", n)
		}
		stored, err := db.MailToken(ctx, tok.Hash)
		noErr(t, "MailToken", err)
		if !bytes.Equal(stored.Hash, tok.Hash) || stored.Kind != tok.Kind || stored.UserID != u.ID ||
			stored.Email != tok.Email || !stored.CreatedAt.Equal(base) || !stored.ExpiresAt.Equal(tok.ExpiresAt) {
			t.Errorf("token = %+v, want %+v", stored, tok)
		}

		// A taken address or username stores nothing at all.
		for _, dup := range []*auth.User{passwordUser("ADA@example.com", "other"), passwordUser("other@example.com", "ADA")} {
			tok := mailToken(t, auth.TokenConfirm, dup, *dup.Email, time.Hour)
			err := db.CreatePendingUser(ctx, dup, tok, outboxMail(dup, auth.MailConfirm, base))
			if !errors.Is(err, auth.ErrEmailTaken) && !errors.Is(err, auth.ErrUsernameTaken) {
				t.Fatalf("duplicate: err = %v", err)
			}
			_, err = db.MailToken(ctx, tok.Hash)
			wantErr(t, "token of a refused user", err, auth.ErrNotFound)
		}
		if n := countRows(t, db, "mail_outbox", ""); n != 1 {
			t.Errorf("%d outbox rows, want 1", n)
		}
		_, err = db.MailToken(ctx, randomHash(t))
		wantErr(t, "unknown token", err, auth.ErrNotFound)
		_, err = db.MailToken(ctx, nil)
		wantErr(t, "no hash", err, auth.ErrNotFound)
	})
}

func TestQueueMailVoidsOlderTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "ada@example.com", "")
		other, _, _ := mustCreateUser(t, db, "bob@example.com", "")
		r1 := mailToken(t, auth.TokenReset, u, "ada@example.com", time.Hour)
		c1 := mailToken(t, auth.TokenConfirm, u, "ada@example.com", time.Hour)
		ob := mailToken(t, auth.TokenReset, other, "bob@example.com", time.Hour)
		for _, tok := range []*auth.MailToken{r1, c1, ob} {
			noErr(t, "QueueMail", db.QueueMail(ctx, tok))
		}
		r2 := mailToken(t, auth.TokenReset, u, "ada@example.com", time.Hour)
		m1, m2 := outboxMail(u, auth.MailPasswordReset, base), outboxMail(u, auth.MailEmailChangeNotice, base)
		noErr(t, "QueueMail", db.QueueMail(ctx, r2, m1, m2))
		_, err := db.MailToken(ctx, r1.Hash)
		wantErr(t, "older reset token", err, auth.ErrNotFound)
		for _, tok := range []*auth.MailToken{r2, c1, ob} {
			_, err := db.MailToken(ctx, tok.Hash)
			noErr(t, "token kept", err)
		}
		if n := countRows(t, db, "mail_outbox", "user_id = ?", u.ID); n != 2 {
			t.Errorf("%d outbox rows, want 2", n)
		}
		// All or nothing: a mail with a taken id leaves the token unstored.
		r3 := mailToken(t, auth.TokenReset, u, "ada@example.com", time.Hour)
		if err := db.QueueMail(ctx, r3, outboxMail(u, auth.MailPasswordReset, base), m1); err == nil {
			t.Fatal("QueueMail with a duplicate mail id succeeded")
		}
		_, err = db.MailToken(ctx, r3.Hash)
		wantErr(t, "token of a failed queue", err, auth.ErrNotFound)
		_, err = db.MailToken(ctx, r2.Hash)
		noErr(t, "token voided by a failed queue", err)
	})
}

func TestConfirmEmail(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := passwordUser("ada@example.com", "")
		c := mailToken(t, auth.TokenConfirm, u, "ada@example.com", time.Hour)
		noErr(t, "CreatePendingUser", db.CreatePendingUser(ctx, u, c, outboxMail(u, auth.MailConfirm, base)))

		wantErr(t, "expired", db.ConfirmEmail(ctx, c, at(time.Hour)), auth.ErrNotFound)
		noErr(t, "ConfirmEmail", db.ConfirmEmail(ctx, c, at(time.Hour-time.Microsecond)))
		got, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		if !got.EmailConfirmed || !got.UpdatedAt.Equal(at(time.Hour-time.Microsecond)) {
			t.Errorf("user = %+v", got)
		}
		wantErr(t, "reused", db.ConfirmEmail(ctx, c, at(time.Minute)), auth.ErrNotFound)

		// A confirmation for an address the user no longer has.
		stale := mailToken(t, auth.TokenConfirm, u, "old@example.com", time.Hour)
		noErr(t, "QueueMail", db.QueueMail(ctx, stale))
		wantErr(t, "stale address", db.ConfirmEmail(ctx, stale, at(time.Minute)), auth.ErrNotFound)
		_, err = db.MailToken(ctx, stale.Hash)
		noErr(t, "a refused confirmation keeps its token", err)

		// An address change: taken meanwhile, then free.
		reset := mailToken(t, auth.TokenReset, u, "ada@example.com", time.Hour)
		noErr(t, "QueueMail", db.QueueMail(ctx, reset))
		change := mailToken(t, auth.TokenEmailChange, u, "ada@new.example", time.Hour)
		noErr(t, "QueueMail", db.QueueMail(ctx, change))
		taker, _, _ := mustCreateUser(t, db, "ADA@new.example", "")
		wantErr(t, "taken", db.ConfirmEmail(ctx, change, at(time.Minute)), auth.ErrEmailTaken)
		_, err = db.MailToken(ctx, change.Hash)
		noErr(t, "a refused change keeps its token", err)
		noErr(t, "DeleteUser", db.DeleteUser(ctx, taker.ID))
		noErr(t, "ConfirmEmail change", db.ConfirmEmail(ctx, change, at(time.Minute)))
		got, err = db.UserByEmail(ctx, "ada@new.example")
		noErr(t, "UserByEmail new", err)
		if got.ID != u.ID || !got.EmailConfirmed {
			t.Errorf("user = %+v", got)
		}
		for _, k := range []auth.TokenKind{auth.TokenConfirm, auth.TokenEmailChange, auth.TokenReset} {
			if n := tokenCount(t, db, u.ID, k); n != 0 {
				t.Errorf("%d %s tokens left after the change", n, k)
			}
		}
	})
}

func TestResetPasswordStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, s1, _ := mustCreateUser(t, db, "ada@example.com", "")
		s2 := newSession(u.ID, base, at(time.Hour))
		noErr(t, "CreateSession", db.CreateSession(ctx, s2, newToken(t, s2.ID, base, s2.ExpiresAt)))
		other, os, _ := mustCreateUser(t, db, "bob@example.com", "")
		r := mailToken(t, auth.TokenReset, u, "ada@example.com", time.Hour)
		noErr(t, "QueueMail", db.QueueMail(ctx, r))
		noErr(t, "QueueMail", db.QueueMail(ctx, mailToken(t, auth.TokenConfirm, u, "ada@example.com", time.Hour)))
		noErr(t, "QueueMail", db.QueueMail(ctx, mailToken(t, auth.TokenEmailChange, u, "ada@new.example", time.Hour)))
		noErr(t, "QueueMail", db.QueueMail(ctx, mailToken(t, auth.TokenReset, other, "bob@example.com", time.Hour)))
		notice := outboxMail(u, auth.MailPasswordChanged, at(time.Minute))

		asConfirm := *r
		asConfirm.Kind = auth.TokenConfirm
		wantErr(t, "wrong kind", db.ResetPassword(ctx, &asConfirm, "$new", at(time.Minute), notice), auth.ErrNotFound)
		wantErr(t, "expired", db.ResetPassword(ctx, r, "$new", at(time.Hour), notice), auth.ErrNotFound)
		noErr(t, "ResetPassword", db.ResetPassword(ctx, r, "$new", at(time.Minute), notice))

		got, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		if got.PasswordHash != "$new" || !got.EmailConfirmed || !got.UpdatedAt.Equal(at(time.Minute)) {
			t.Errorf("user = %+v", got)
		}
		if live, _ := db.ListSessions(ctx, u.ID, at(time.Minute), 0); len(live) != 0 {
			t.Errorf("sessions left: %v (s1 %s)", sessionIDs(live), s1.ID)
		}
		if live, _ := db.ListSessions(ctx, os.UserID, at(time.Minute), 0); len(live) != 1 {
			t.Error("another user's session was revoked")
		}
		if n := countRows(t, db, "mail_tokens", "user_id = ?", u.ID); n != 0 {
			t.Errorf("%d of the user's mailed tokens survived the reset", n)
		}
		if n := countRows(t, db, "mail_tokens", "user_id = ?", other.ID); n != 1 {
			t.Error("another user's token was voided")
		}
		if n := countRows(t, db, "mail_outbox", "id = ? AND kind = ?", notice.ID, "password-changed"); n != 1 {
			t.Error("no notice queued")
		}
		wantErr(t, "reused", db.ResetPassword(ctx, r, "$other", at(time.Minute), outboxMail(u, auth.MailPasswordChanged, base)), auth.ErrNotFound)
	})
}

func TestMailCascades(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "ada@example.com", "")
		noErr(t, "QueueMail", db.QueueMail(ctx, mailToken(t, auth.TokenReset, u, "ada@example.com", time.Hour),
			outboxMail(u, auth.MailPasswordReset, base)))
		noErr(t, "DeleteUser", db.DeleteUser(ctx, u.ID))
		if n := countRows(t, db, "mail_tokens", "") + countRows(t, db, "mail_outbox", ""); n != 0 {
			t.Errorf("%d mail rows left after deleting the user", n)
		}
	})
}

func TestOutboxLifecycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "ada@example.com", "")
		late := outboxMail(u, auth.MailPasswordReset, at(time.Hour))
		first := outboxMail(u, auth.MailConfirm, at(-time.Minute))
		second := outboxMail(u, auth.MailPasswordChanged, base)
		noErr(t, "QueueMail", db.QueueMail(ctx, nil, late, second, first))

		got, err := db.ClaimMail(ctx, "c1", base, at(5*time.Minute), 10)
		noErr(t, "ClaimMail", err)
		if ids := outboxIDs(got); !slices.Equal(ids, []string{first.ID, second.ID}) {
			t.Fatalf("claimed %v, want the two due mails, earliest first", ids)
		}
		m := got[0]
		if m.Claim != "c1" || !m.NextAttempt.Equal(at(5*time.Minute)) || m.Kind != auth.MailConfirm ||
			m.To != "ada@example.com" || m.Locale != u.Locale || string(m.Payload) != "sealed" ||
			!m.CreatedAt.Equal(base) || m.Attempts != 0 || m.UserID != u.ID {
			t.Errorf("claimed mail = %+v", m)
		}
		again, err := db.ClaimMail(ctx, "c2", at(time.Minute), at(6*time.Minute), 10)
		noErr(t, "ClaimMail", err)
		if len(again) != 0 {
			t.Fatalf("claimed %v again under a live lease", outboxIDs(again))
		}

		wantErr(t, "sent under another claim", db.MailSent(ctx, first.ID, "c2", at(time.Minute)), auth.ErrNotFound)
		noErr(t, "MailSent", db.MailSent(ctx, first.ID, "c1", at(time.Minute)))
		wantErr(t, "sent twice", db.MailSent(ctx, first.ID, "c1", at(time.Minute)), auth.ErrNotFound)
		if n := countRows(t, db, "mail_outbox", "id = ? AND payload IS NULL AND sent_at IS NOT NULL AND claim_id IS NULL", first.ID); n != 1 {
			t.Error("a sent mail keeps its payload or claim")
		}

		noErr(t, "RetryMail", db.RetryMail(ctx, second.ID, "c1", at(2*time.Minute), "421 busy"))
		got, err = db.ClaimMail(ctx, "c3", at(2*time.Minute-time.Microsecond), at(9*time.Minute), 10)
		noErr(t, "ClaimMail", err)
		if len(got) != 0 {
			t.Fatalf("claimed %v before it was due", outboxIDs(got))
		}
		got, err = db.ClaimMail(ctx, "c3", at(2*time.Minute), at(9*time.Minute), 10)
		noErr(t, "ClaimMail", err)
		if len(got) != 1 || got[0].ID != second.ID || got[0].Attempts != 1 {
			t.Fatalf("claimed %+v, want the retried mail with 1 attempt", got)
		}
		noErr(t, "ReleaseMail", db.ReleaseMail(ctx, second.ID, "c3", at(3*time.Minute)))
		got, err = db.ClaimMail(ctx, "c4", at(3*time.Minute), at(9*time.Minute), 10)
		noErr(t, "ClaimMail", err)
		if len(got) != 1 || got[0].Attempts != 1 {
			t.Fatalf("after release: %+v", got)
		}
		noErr(t, "AbandonMail", db.AbandonMail(ctx, second.ID, "c4", at(4*time.Minute), "550 no such user"))
		if n := countRows(t, db, "mail_outbox", "id = ? AND payload IS NULL AND failed_at IS NOT NULL AND attempts = 2 AND last_error = ?",
			second.ID, "550 no such user"); n != 1 {
			t.Error("the given-up mail is not recorded as such")
		}
		got, err = db.ClaimMail(ctx, "c5", at(2*time.Hour), at(3*time.Hour), 10)
		noErr(t, "ClaimMail", err)
		if ids := outboxIDs(got); !slices.Equal(ids, []string{late.ID}) {
			t.Fatalf("claimed %v, want only the late mail", ids)
		}
		wantErr(t, "unknown id", db.MailSent(ctx, "not-a-uuid", "c5", base), auth.ErrNotFound)

		// Prune: finished mails before the cut-off and expired tokens go.
		tok := mailToken(t, auth.TokenReset, u, "ada@example.com", time.Hour)
		noErr(t, "QueueMail", db.QueueMail(ctx, tok))
		noErr(t, "PruneMail", db.PruneMail(ctx, at(time.Hour-time.Microsecond), at(2*time.Minute)))
		if n := countRows(t, db, "mail_outbox", ""); n != 2 {
			t.Errorf("%d outbox rows after the first prune, want 2", n)
		}
		_, err = db.MailToken(ctx, tok.Hash)
		noErr(t, "unexpired token", err)
		noErr(t, "PruneMail", db.PruneMail(ctx, at(time.Hour), at(time.Hour)))
		if n := countRows(t, db, "mail_outbox", ""); n != 1 {
			t.Errorf("%d outbox rows after the second prune, want 1 (the pending one)", n)
		}
		_, err = db.MailToken(ctx, tok.Hash)
		wantErr(t, "expired token", err, auth.ErrNotFound)
	})
}

// TestClaimMailConcurrent: claimers racing over one outbox never get the
// same mail, and between them get every due mail.
func TestClaimMailConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "ada@example.com", "")
		const mails, claimers, batch = 60, 8, 3
		want := make([]string, mails)
		for i := range mails {
			m := outboxMail(u, auth.MailPasswordReset, at(time.Duration(i)*time.Millisecond))
			noErr(t, "QueueMail", db.QueueMail(ctx, nil, m))
			want[i] = m.ID
		}
		var (
			mu  sync.Mutex
			got = map[string]string{} // mail id → claim
			wg  sync.WaitGroup
		)
		start := make(chan struct{})
		for c := range claimers {
			claim := fmt.Sprintf("claimer-%d", c)
			wg.Go(func() {
				<-start
				for {
					ms, err := db.ClaimMail(ctx, claim, at(time.Minute), at(time.Hour), batch)
					if err != nil {
						t.Errorf("%s: %v", claim, err)
						return
					}
					if len(ms) == 0 {
						return
					}
					mu.Lock()
					for _, m := range ms {
						if prev, dup := got[m.ID]; dup {
							t.Errorf("mail %s claimed by %s and %s", m.ID, prev, claim)
						}
						got[m.ID] = claim
					}
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		if len(got) != mails {
			t.Errorf("%d mails claimed, want %d", len(got), mails)
		}
		for _, id := range want {
			if _, ok := got[id]; !ok {
				t.Errorf("mail %s never claimed", id)
			}
		}
	})
}

func outboxIDs(ms []auth.OutboxMail) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}
