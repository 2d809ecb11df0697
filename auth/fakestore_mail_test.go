package auth

import (
	"context"
	"slices"
	"strings"
	"time"
)

// The fake store's MailStore: mailed tokens and the outbox, in memory.

// fakeOutbox is an outbox mail with the state the store keeps beside it.
type fakeOutbox struct {
	OutboxMail
	LastError string
	SentAt    *time.Time
	FailedAt  *time.Time
}

func (f *fakeStore) CreatePendingUser(_ context.Context, u *User, t *MailToken, m *OutboxMail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[u.ID]; ok {
		return ErrConflict
	}
	if err := f.checkUnique(u); err != nil {
		return err
	}
	f.users[u.ID] = *u
	f.queueMail(t, m)
	return nil
}

func (f *fakeStore) QueueMail(_ context.Context, t *MailToken, mails ...*OutboxMail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t != nil {
		if _, ok := f.users[t.UserID]; !ok {
			return ErrNotFound
		}
	}
	f.queueMail(t, mails...)
	return nil
}

// queueMail is QueueMail with mu held.
func (f *fakeStore) queueMail(t *MailToken, mails ...*OutboxMail) {
	if t != nil {
		f.deleteTokens(t.UserID, t.Kind)
		f.mailTokens[string(t.Hash)] = *t
	}
	for _, m := range mails {
		f.outbox[m.ID] = fakeOutbox{OutboxMail: *m}
	}
}

// deleteTokens deletes the user's tokens of the kinds given; mu held.
func (f *fakeStore) deleteTokens(userID string, kinds ...TokenKind) {
	for h, t := range f.mailTokens {
		if t.UserID == userID && slices.Contains(kinds, t.Kind) {
			delete(f.mailTokens, h)
		}
	}
}

func (f *fakeStore) MailToken(_ context.Context, hash []byte) (*MailToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.mailTokens[string(hash)]
	if !ok {
		return nil, ErrNotFound
	}
	return &t, nil
}

// useToken deletes t if it is stored and live at now; mu held.
func (f *fakeStore) useToken(t *MailToken, now time.Time) bool {
	s, ok := f.mailTokens[string(t.Hash)]
	if !ok || s.Kind != t.Kind || s.UserID != t.UserID || !now.Before(s.ExpiresAt) {
		return false
	}
	delete(f.mailTokens, string(t.Hash))
	return true
}

func (f *fakeStore) ConfirmEmail(_ context.Context, t *MailToken, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[t.UserID]
	if !ok {
		return ErrNotFound
	}
	void := []TokenKind{TokenConfirm, TokenEmailChange}
	switch t.Kind {
	case TokenConfirm:
		if u.Email == nil || !strings.EqualFold(*u.Email, t.Email) {
			return ErrNotFound
		}
	case TokenEmailChange:
		void = append(void, TokenReset)
	default:
		return ErrNotFound
	}
	n := u
	n.Email, n.EmailConfirmed, n.UpdatedAt = new(t.Email), true, now
	if err := f.checkUnique(&n); err != nil {
		return err
	}
	if !f.useToken(t, now) {
		return ErrNotFound
	}
	f.users[u.ID] = n
	f.deleteTokens(u.ID, void...)
	return nil
}

func (f *fakeStore) ResetPassword(_ context.Context, t *MailToken, passwordHash string, now time.Time, notice *OutboxMail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[t.UserID]
	if t.Kind != TokenReset || !ok || u.Email == nil || !strings.EqualFold(*u.Email, t.Email) {
		return ErrNotFound
	}
	if !f.useToken(t, now) {
		return ErrNotFound
	}
	u.PasswordHash, u.EmailConfirmed, u.UpdatedAt = passwordHash, true, now
	u.PasswordVersion++
	f.users[u.ID] = u
	for _, s := range f.sessions {
		if s.UserID == u.ID && s.Live(now) {
			f.revoke(s, now)
		}
	}
	f.deleteTokens(u.ID, TokenReset, TokenConfirm, TokenEmailChange)
	if notice != nil {
		f.outbox[notice.ID] = fakeOutbox{OutboxMail: *notice}
	}
	return nil
}

func (f *fakeStore) ClaimMail(_ context.Context, claim string, now, leaseUntil time.Time, limit int) ([]OutboxMail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var due []OutboxMail
	for _, m := range f.outbox {
		if m.pending() && !m.NextAttempt.After(now) {
			due = append(due, m.OutboxMail)
		}
	}
	slices.SortFunc(due, func(a, b OutboxMail) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(due) > limit {
		due = due[:limit]
	}
	for i := range due {
		due[i].Claim, due[i].NextAttempt = claim, leaseUntil
		m := f.outbox[due[i].ID]
		m.OutboxMail = due[i]
		f.outbox[m.ID] = m
	}
	return due, nil
}

func (m *fakeOutbox) pending() bool { return m.SentAt == nil && m.FailedAt == nil }

// updateClaimed applies change to the pending mail id under claim.
func (f *fakeStore) updateClaimed(id, claim string, change func(*fakeOutbox)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.outbox[id]
	if !ok || !m.pending() || m.Claim != claim {
		return ErrNotFound
	}
	change(&m)
	m.Claim = ""
	f.outbox[id] = m
	return nil
}

func (f *fakeStore) MailSent(_ context.Context, id, claim string, now time.Time) error {
	return f.updateClaimed(id, claim, func(m *fakeOutbox) {
		m.SentAt, m.Payload = &now, nil
	})
}

func (f *fakeStore) RetryMail(_ context.Context, id, claim string, next time.Time, lastError string) error {
	return f.updateClaimed(id, claim, func(m *fakeOutbox) {
		m.Attempts++
		m.NextAttempt, m.LastError = next, lastError
	})
}

func (f *fakeStore) AbandonMail(_ context.Context, id, claim string, now time.Time, lastError string) error {
	return f.updateClaimed(id, claim, func(m *fakeOutbox) {
		m.Attempts++
		m.FailedAt, m.LastError, m.Payload = &now, lastError, nil
	})
}

func (f *fakeStore) ReleaseMail(_ context.Context, id, claim string, now time.Time) error {
	return f.updateClaimed(id, claim, func(m *fakeOutbox) { m.NextAttempt = now })
}

func (f *fakeStore) PruneMail(_ context.Context, now, doneBefore time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for h, t := range f.mailTokens {
		if !now.Before(t.ExpiresAt) {
			delete(f.mailTokens, h)
		}
	}
	for id, m := range f.outbox {
		if (m.SentAt != nil && m.SentAt.Before(doneBefore)) || (m.FailedAt != nil && m.FailedAt.Before(doneBefore)) {
			delete(f.outbox, id)
		}
	}
	f.requests = slices.DeleteFunc(f.requests, func(r MailRequest) bool { return r.CreatedAt.Before(doneBefore) })
	return nil
}

// mails returns the outbox, oldest first (test helper).
func (f *fakeStore) mails() []fakeOutbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeOutbox
	for _, m := range f.outbox {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b fakeOutbox) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// tokens returns the stored mail tokens of a user (test helper).
func (f *fakeStore) tokens(userID string) []MailToken {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []MailToken
	for _, t := range f.mailTokens {
		if t.UserID == userID {
			out = append(out, t)
		}
	}
	return out
}

func (f *fakeStore) QueueMailRequest(_ context.Context, r *MailRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, *r)
	return nil
}

func (f *fakeStore) MailRequests(_ context.Context, limit int) ([]MailRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests[:min(limit, len(f.requests))]), nil
}

func (f *fakeStore) CompleteMailRequest(_ context.Context, id string, t *MailToken, mails ...*OutboxMail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.requests, func(r MailRequest) bool { return r.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	f.requests = slices.Delete(f.requests, i, i+1)
	f.queueMail(t, mails...)
	return nil
}
