package auth

import (
	"context"
	"time"
)

// Security notices: a password change, a password reset, turning
// two-factor off and using a recovery code each mail the account's
// address, in its language, saying when and from which address and user
// agent. A notice is queued in the transaction of the change (it travels
// on the context with the change's events), so there is never a change
// without its notice or a notice of a change that did not happen.

// noticePayload is the private part of a security notice to u: the time
// of the change and the client from ctx.
func noticePayload(ctx context.Context, u *User, now time.Time) mailPayload {
	meta := ClientMetaFrom(ctx)
	return mailPayload{At: now, Timezone: u.Timezone, IP: cleanIP(meta.IP), UserAgent: cleanUserAgent(meta.UserAgent)}
}

// withNotice returns ctx carrying a security notice of kind to u, when u
// has an address to mail it to.
func (s *Service) withNotice(ctx context.Context, kind MailKind, u *User) (context.Context, error) {
	if u.Email == nil || *u.Email == "" {
		return ctx, nil // a secret account has no address
	}
	now := s.now()
	m, err := s.newMail(kind, u, *u.Email, noticePayload(ctx, u, now), now)
	if err != nil {
		return ctx, err
	}
	return withMails(ctx, m), nil
}
