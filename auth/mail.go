package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey-dev/latchkey/auth/outbox"
)

// Mail: email confirmation, password reset and email change.
//
// Every mail goes through a durable outbox: a row written in the same
// transaction as the token it carries, its private part (the token, the
// recipient's name) sealed under the master key. The worker of package
// auth/outbox sends the rows that are due (through MailQueue), with
// retries and exponential backoff, so that no request ever waits on SMTP
// and an outage or a crash loses nothing.

// TokenKind is the kind of a mailed token. The kind is hashed with the
// token, so a token of one kind never matches a stored hash of another (or
// a refresh token, or an account secret).
type TokenKind string

// Kinds of mailed tokens.
const (
	TokenConfirm     TokenKind = "confirm"      // confirms a new account's address
	TokenReset       TokenKind = "reset"        // sets a new password
	TokenEmailChange TokenKind = "email-change" // confirms (and applies) a new address
)

// MailToken is the stored form of a mailed token: only its hash. A token is
// used up by deleting it; asking for a new one of a kind deletes the user's
// older ones of that kind.
type MailToken struct {
	Hash      []byte
	Kind      TokenKind
	UserID    string
	Email     string // the address it was mailed to (the new one for a change)
	CreatedAt time.Time
	ExpiresAt time.Time
}

// MailKind names a mail, and so its templates.
type MailKind string

// Kinds of mails.
const (
	// MailConfirm asks a new account to confirm its address (a confirm link).
	MailConfirm MailKind = "confirm"
	// MailAlreadyRegistered tells an account's owner that someone tried to
	// register with its address (a reset link, in case it was them).
	MailAlreadyRegistered MailKind = "already-registered"
	// MailPasswordReset carries a reset link.
	MailPasswordReset MailKind = "password-reset"
	// MailPasswordChanged tells that the password was reset.
	MailPasswordChanged MailKind = "password-changed"
	// MailEmailChange asks the new address to confirm a change (a confirm
	// link).
	MailEmailChange MailKind = "email-change"
	// MailEmailChangeNotice tells the old address about a change in
	// progress (NewEmail).
	MailEmailChangeNotice MailKind = "email-change-notice"
	// Security notices (auth/notices.go), with the time, client address
	// and user agent of the change: the password changed by the user, two-factor
	// turned off, a recovery code used. (MailPasswordChanged, for a reset,
	// carries them too.)
	MailPasswordChangeNotice MailKind = "password-change-notice"
	MailTwoFactorDisabled    MailKind = "two-factor-disabled"
	MailRecoveryCodeUsed     MailKind = "recovery-code-used"
)

// Mail is one message for a Mailer to render, in the recipient's locale,
// and send.
type Mail struct {
	ID       string // the outbox id: the same on every attempt (a stable Message-ID)
	Kind     MailKind
	To       string
	Name     string // the recipient's display name
	Locale   string // the recipient's BCP 47 locale
	Token    string // the token of the mail's link; empty for notices
	NewEmail string // MailEmailChangeNotice: the address being confirmed
	// Security notices: when and from where the change was made (IP and
	// UserAgent may be empty), and the recipient's IANA time zone.
	At        time.Time
	Timezone  string
	IP        string
	UserAgent string
}

// Mailer sends mails. Only the outbox worker calls it, never a request. A
// nil error means the mail server took the mail; an error means the mail
// is tried again later.
type Mailer interface {
	Send(ctx context.Context, m Mail) error
}

// OutboxMail is a mail in the outbox. Payload is the sealed private part
// (a mailPayload, sealed for the mail's id); it is dropped once the mail is
// sent or given up.
type OutboxMail struct {
	ID          string
	UserID      string
	Kind        MailKind
	To          string
	Locale      string
	Payload     []byte
	CreatedAt   time.Time
	NextAttempt time.Time // due time; while claimed, the end of the lease
	Attempts    int       // failed attempts so far
	Claim       string    // the current claim, set by ClaimMail
}

// MailRequest is a request for a mail to an address, not yet resolved to
// an account: the request path stores only this, whether or not the
// address has an account, and the outbox worker resolves it. Kind is
// TokenConfirm (resend the confirmation) or TokenReset.
type MailRequest struct {
	ID        string
	Kind      TokenKind
	Email     string // normalised
	CreatedAt time.Time
}

// MailStore is the persistence of mailed tokens and the outbox.
type MailStore interface {
	// QueueMailRequest stores a request for the outbox worker.
	QueueMailRequest(ctx context.Context, r *MailRequest) error
	// MailRequests returns up to limit stored requests, oldest first.
	MailRequests(ctx context.Context, limit int) ([]MailRequest, error)
	// CompleteMailRequest deletes the request id and, in the same
	// transaction, stores t (when not nil) and mails as QueueMail does.
	// ErrNotFound when the request is gone (another worker completed it).
	CompleteMailRequest(ctx context.Context, id string, t *MailToken, mails ...*OutboxMail) error
	// CreatePendingUser inserts a user who must confirm the address first,
	// with no session, together with the confirmation token t and its mail
	// m, in one transaction. Errors as CreateUser.
	CreatePendingUser(ctx context.Context, u *User, t *MailToken, m *OutboxMail) error
	// QueueMail stores t, when not nil, after deleting the user's other
	// tokens of its kind, and inserts mails, in one transaction.
	QueueMail(ctx context.Context, t *MailToken, mails ...*OutboxMail) error
	// MailToken returns the token with this hash, expired or not;
	// ErrNotFound when there is none (never issued, used up or voided).
	MailToken(ctx context.Context, hash []byte) (*MailToken, error)
	// ConfirmEmail uses up t (a TokenConfirm or TokenEmailChange) and, in
	// the same transaction, sets its user's email to t.Email, confirmed,
	// with UpdatedAt now, and deletes the user's other confirm and
	// email-change tokens (and, for a change, its reset tokens, which were
	// mailed to the old address). ErrNotFound when t is no longer stored,
	// has expired at now, or (TokenConfirm) the user's address is no
	// longer t.Email; ErrEmailTaken when another account has the address.
	ConfirmEmail(ctx context.Context, t *MailToken, now time.Time) error
	// ResetPassword uses up the reset token t and, in the same
	// transaction, sets its user's password hash, marks the address
	// confirmed, revokes every live session, deletes the user's other
	// mailed tokens (of every kind) and inserts notice. ErrNotFound as
	// ConfirmEmail.
	ResetPassword(ctx context.Context, t *MailToken, passwordHash string, now time.Time, notice *OutboxMail) error

	// ClaimMail leases up to limit mails due at now (neither sent nor
	// given up, NextAttempt not after now), earliest due first: each gets
	// Claim claim and NextAttempt leaseUntil, so no other caller claims it
	// before then. Concurrent callers never get the same mail.
	ClaimMail(ctx context.Context, claim string, now, leaseUntil time.Time, limit int) ([]OutboxMail, error)
	// MailSent marks a claimed mail sent at now and drops its payload.
	// ErrNotFound when the mail is no longer under this claim.
	MailSent(ctx context.Context, id, claim string, now time.Time) error
	// RetryMail records a failed attempt of a claimed mail: one more
	// attempt, lastError, due again at next, claim released.
	RetryMail(ctx context.Context, id, claim string, next time.Time, lastError string) error
	// AbandonMail gives up a claimed mail at now: one more attempt,
	// lastError, payload dropped, never due again.
	AbandonMail(ctx context.Context, id, claim string, now time.Time, lastError string) error
	// ReleaseMail hands a claimed mail back, due at now, without counting
	// an attempt.
	ReleaseMail(ctx context.Context, id, claim string, now time.Time) error
	// PruneMail deletes the tokens expired at now, the mails sent or
	// given up before doneBefore and the requests made before it.
	PruneMail(ctx context.Context, now, doneBefore time.Time) error
}

// purposeMailPayload seals an outbox mail's payload; owner: the mail's id.
const purposeMailPayload = "mail-payload"

// mailPayload is the sealed part of an outbox mail.
type mailPayload struct {
	Token    string `json:"token,omitempty"`
	Name     string `json:"name,omitempty"`
	NewEmail string `json:"new_email,omitempty"`
	// Security notices (auth/notices.go).
	At        time.Time `json:"at,omitzero"`
	Timezone  string    `json:"tz,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"ua,omitempty"`
}

// tokenMail issues a token of kind for u, valid for its kind's lifetime
// from now, and makes the mail of kind mk to the address to that carries
// it: the stored token and its outbox mail, for the caller to queue in one
// transaction.
func (s *Service) tokenMail(kind TokenKind, mk MailKind, u *User, to string, now time.Time) (*MailToken, *OutboxMail, error) {
	token, err := newToken(s.rand)
	if err != nil {
		return nil, nil, err
	}
	ttl := s.cfg.ConfirmTokenTTL // TokenConfirm, TokenEmailChange
	if kind == TokenReset {
		ttl = s.cfg.ResetTokenTTL
	}
	t := &MailToken{
		Hash:      tokenHash(string(kind), token),
		Kind:      kind,
		UserID:    u.ID,
		Email:     to,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
	}
	m, err := s.newMail(mk, u, to, mailPayload{Token: token}, now)
	if err != nil {
		return nil, nil, err
	}
	return t, m, nil
}

// newMail makes an outbox mail of kind to the address to, for u, due now;
// p (with u's name added) is sealed into it.
func (s *Service) newMail(kind MailKind, u *User, to string, p mailPayload, now time.Time) (*OutboxMail, error) {
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	p.Name = u.Name
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	sealed, err := s.sealer.seal(purposeMailPayload, id, plain)
	if err != nil {
		return nil, err
	}
	return &OutboxMail{
		ID:          id,
		UserID:      u.ID,
		Kind:        kind,
		To:          to,
		Locale:      u.Locale,
		Payload:     sealed,
		CreatedAt:   now,
		NextAttempt: now,
	}, nil
}

// registerPending ends RegisterPassword when confirmation is required: the
// new account u is stored unconfirmed, without a session, with a
// confirmation mail. When the address already has an account, nothing is
// stored and its owner is mailed instead, so that the answer is the same.
// A taken username is ErrUsernameTaken either way.
func (s *Service) registerPending(ctx context.Context, u *User, now time.Time) error {
	owner, err := s.st.UserByEmail(ctx, *u.Email)
	if err == nil {
		return s.alreadyRegistered(ctx, owner, u.Username, now)
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("find user: %w", err)
	}
	t, m, err := s.tokenMail(TokenConfirm, MailConfirm, u, *u.Email, now)
	if err != nil {
		return err
	}
	ctx, err = s.withEvent(ctx, EventAccountCreated, u.ID, "")
	if err != nil {
		return err
	}
	err = s.st.CreatePendingUser(ctx, u, t, m)
	switch {
	case errors.Is(err, ErrEmailTaken): // registered meanwhile
		owner, err := s.st.UserByEmail(ctx, *u.Email)
		if err != nil {
			return fmt.Errorf("find user: %w", err)
		}
		return s.alreadyRegistered(ctx, owner, u.Username, now)
	case errors.Is(err, ErrUsernameTaken):
		return err
	case err != nil:
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// alreadyRegistered answers a registration with owner's address: the
// owner gets a notice with a reset link (in case they forgot they had an
// account), within the per-address mail limit; over it, nothing is sent
// and the answer does not say so.
func (s *Service) alreadyRegistered(ctx context.Context, owner *User, username *string, now time.Time) error {
	if username != nil {
		_, err := s.st.UserByUsername(ctx, *username)
		if err == nil {
			return ErrUsernameTaken
		}
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("find user: %w", err)
		}
	}
	if owner.AccountType != AccountPassword || owner.Disabled || owner.Email == nil {
		return nil
	}
	err := s.guard.mailTo(ctx, *owner.Email)
	if errors.Is(err, ErrRateLimited) {
		return nil // silently: the answer must not differ from a new address's
	}
	if err != nil {
		return err
	}
	t, m, err := s.tokenMail(TokenReset, MailAlreadyRegistered, owner, *owner.Email, now)
	if err != nil {
		return err
	}
	return s.st.QueueMail(ctx, t, m)
}

// ResendConfirmation mails a new confirmation link to the unconfirmed
// password account with this address, voiding the earlier ones. It says
// nothing about whether there is one: only an invalid address or a rate
// limit is an error.
func (s *Service) ResendConfirmation(ctx context.Context, email string, meta ClientMeta) error {
	return s.requestMail(ctx, email, meta, TokenConfirm)
}

// RequestPasswordReset mails a reset link to the password account with
// this address, confirmed or not, voiding the earlier ones. Like
// ResendConfirmation it never says whether there is one.
func (s *Service) RequestPasswordReset(ctx context.Context, email string, meta ClientMeta) error {
	return s.requestMail(ctx, email, meta, TokenReset)
}

// requestMail counts a request for a mail of kind tk to this address
// against the mail limits and stores it for the outbox worker, which
// resolves it (resolveMailRequest). The request path does the same work,
// one insert, whether or not the address has an account, so that neither
// the answer nor its timing tells.
func (s *Service) requestMail(ctx context.Context, email string, meta ClientMeta, tk TokenKind) error {
	email, err := mailAddress("email", email)
	if err != nil {
		return err
	}
	if err := s.guard.mailRequest(ctx, email, meta); err != nil {
		return err
	}
	id, err := s.newID()
	if err != nil {
		return err
	}
	if err := s.st.QueueMailRequest(ctx, &MailRequest{ID: id, Kind: tk, Email: email, CreatedAt: s.now()}); err != nil {
		return fmt.Errorf("queue mail request: %w", err)
	}
	return nil
}

// resolveMailRequest turns a stored request into its mail: a new token of
// its kind for the enabled password account with the address (for a
// confirmation, only while unconfirmed), voiding the earlier ones, and
// the mail carrying it; or nothing when there is no such account. Either
// way the request is deleted, in the transaction that queues the mail.
func (s *Service) resolveMailRequest(ctx context.Context, r *MailRequest) error {
	u, err := s.st.UserByEmail(ctx, r.Email)
	if errors.Is(err, ErrNotFound) {
		return s.st.CompleteMailRequest(ctx, r.ID, nil)
	}
	if err != nil {
		return fmt.Errorf("find user: %w", err)
	}
	var mk MailKind
	switch {
	case u.AccountType != AccountPassword || u.Disabled:
	case r.Kind == TokenConfirm && !u.EmailConfirmed:
		mk = MailConfirm
	case r.Kind == TokenReset:
		mk = MailPasswordReset
	}
	if mk == "" { // no such account, or an unknown kind: drop the request
		return s.st.CompleteMailRequest(ctx, r.ID, nil)
	}
	t, m, err := s.tokenMail(r.Kind, mk, u, r.Email, s.now())
	if err != nil {
		return err
	}
	return s.st.CompleteMailRequest(ctx, r.ID, t, m)
}

// ResetPasswordInput is a new password set with a reset token.
type ResetPasswordInput struct {
	Token        string
	Password     string
	PasswordConf *string
}

// ResetPassword sets a new password with a reset token. On success every
// session of the account is revoked, its other mailed tokens (reset,
// confirmation, pending email change) are voided, its address counts as
// confirmed, and a notice is mailed. A password that
// breaks the rules is refused before the token is used, so the same link
// works for another try.
func (s *Service) ResetPassword(ctx context.Context, in ResetPasswordInput) error {
	t, u, err := s.mailToken(ctx, TokenReset, in.Token)
	if err != nil {
		return err
	}
	if !passwordsMatch(in.Password, in.PasswordConf) {
		return Invalid("password_conf", "does not match the password")
	}
	hash, err := s.hashNewPassword(ctx, "password", in.Password, deref(u.Email), deref(u.Username))
	if err != nil {
		return err
	}
	now := s.now()
	notice, err := s.newMail(MailPasswordChanged, u, t.Email, noticePayload(ctx, u, now), now)
	if err != nil {
		return err
	}
	if ctx, err = s.withEvent(ctx, EventPasswordReset, u.ID, ""); err != nil {
		return err
	}
	err = s.st.ResetPassword(ctx, t, hash, now, notice)
	if errors.Is(err, ErrNotFound) {
		return ErrInvalidToken // used meanwhile
	}
	return err
}

// ConfirmEmail confirms an address with a token from a confirmation or an
// email-change mail (applying the change), then signs the user in as
// SignIn does: tokens, or a two-factor challenge.
func (s *Service) ConfirmEmail(ctx context.Context, token string, meta ClientMeta) (*AuthResult, error) {
	t, u, err := s.mailToken(ctx, TokenConfirm, token)
	if errors.Is(err, ErrInvalidToken) {
		t, u, err = s.mailToken(ctx, TokenEmailChange, token)
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, ErrAccountDisabled
	}
	if t.Kind == TokenEmailChange {
		if ctx, err = s.withEvent(ctx, EventEmailChanged, u.ID, ""); err != nil {
			return nil, err
		}
	}
	err = s.st.ConfirmEmail(ctx, t, s.now())
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, ErrInvalidToken
	case errors.Is(err, ErrEmailTaken):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("confirm email: %w", err)
	}
	u.Email, u.EmailConfirmed = &t.Email, true
	return s.completeSignIn(ctx, u, meta)
}

// mailToken finds the live token of kind with this plaintext and its
// user; ErrInvalidToken when there is none, it has expired, or (for a
// confirmation or reset) the user's address has changed since it was
// mailed.
func (s *Service) mailToken(ctx context.Context, kind TokenKind, token string) (*MailToken, *User, error) {
	if token == "" {
		return nil, nil, ErrInvalidToken
	}
	hash := tokenHash(string(kind), token)
	t, err := s.st.MailToken(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrInvalidToken
	}
	if err != nil {
		return nil, nil, fmt.Errorf("find token: %w", err)
	}
	if t.Kind != kind || !hashEqual(t.Hash, hash) || !s.now().Before(t.ExpiresAt) {
		return nil, nil, ErrInvalidToken
	}
	u, err := s.st.UserByID(ctx, t.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrInvalidToken
	}
	if err != nil {
		return nil, nil, fmt.Errorf("find user: %w", err)
	}
	if u.AccountType != AccountPassword || (kind != TokenEmailChange && deref(u.Email) != t.Email) {
		return nil, nil, ErrInvalidToken
	}
	return t, u, nil
}

// ChangeEmail starts a change of the signed-in user's address to email,
// after checking the password: a confirmation link goes to the new
// address and a notice to the old one. The change applies when the link
// is used (ConfirmEmail).
func (s *Service) ChangeEmail(ctx context.Context, p Principal, email, pw string, meta ClientMeta) error {
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	if u.AccountType != AccountPassword {
		return ErrNotApplicable
	}
	email, err = mailAddress("email", email)
	if err != nil {
		return err
	}
	if err := s.reauthenticate(ctx, u, pw, meta); err != nil {
		return err
	}
	if email == deref(u.Email) {
		return Invalid("email", "is already the address of this account")
	}
	// Counted before the look-up, so that the answer cannot be used to
	// probe many addresses.
	if err := s.guard.mailRequest(ctx, email, meta); err != nil {
		return err
	}
	_, err = s.st.UserByEmail(ctx, email)
	if err == nil {
		return ErrEmailTaken
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("find user: %w", err)
	}
	now := s.now()
	t, confirm, err := s.tokenMail(TokenEmailChange, MailEmailChange, u, email, now)
	if err != nil {
		return err
	}
	notice, err := s.newMail(MailEmailChangeNotice, u, deref(u.Email), mailPayload{NewEmail: email}, now)
	if err != nil {
		return err
	}
	if ctx, err = s.withEvent(ctx, EventEmailChangeRequested, u.ID, p.SessionID); err != nil {
		return err
	}
	return s.st.QueueMail(ctx, t, confirm, notice)
}

// MailQueue is the outbox as its worker (package auth/outbox) sees it: the
// store's leases, the requests resolved by the rules above, and the mails
// opened and handed to a Mailer.
type MailQueue struct {
	s *Service
	m Mailer
}

var _ outbox.Queue = (*MailQueue)(nil)

// MailQueue returns the outbox queue whose mails m sends; run it with
// outbox.New.
func (s *Service) MailQueue(m Mailer) *MailQueue {
	return &MailQueue{s: s, m: m}
}

// Now is the service's clock.
func (q *MailQueue) Now() time.Time { return q.s.now() }

// Requests returns up to limit stored mail requests, each resolved by
// resolveMailRequest.
func (q *MailQueue) Requests(ctx context.Context, limit int) ([]outbox.Request, error) {
	reqs, err := q.s.st.MailRequests(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]outbox.Request, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		out[i] = outbox.Request{ID: r.ID, Resolve: func(ctx context.Context) error {
			if err := q.s.resolveMailRequest(ctx, r); !errors.Is(err, ErrNotFound) {
				return err
			}
			return nil // another worker completed it
		}}
	}
	return out, nil
}

// Claim leases due mails under a new claim; each one's Send opens it and
// hands it to the Mailer.
func (q *MailQueue) Claim(ctx context.Context, now, leaseUntil time.Time, limit int) ([]outbox.Delivery, error) {
	claim, err := q.s.newID()
	if err != nil {
		return nil, err
	}
	mails, err := q.s.st.ClaimMail(ctx, claim, now, leaseUntil, limit)
	if err != nil {
		return nil, err
	}
	out := make([]outbox.Delivery, len(mails))
	for i := range mails {
		m := &mails[i]
		out[i] = outbox.Delivery{ID: m.ID, Claim: m.Claim, Kind: string(m.Kind), CreatedAt: m.CreatedAt, Attempts: m.Attempts,
			Send: func(ctx context.Context) error {
				mail, err := q.s.openMail(m)
				if err != nil {
					return fmt.Errorf("%w: %w", outbox.ErrUndeliverable, err)
				}
				return q.m.Send(ctx, mail)
			}}
	}
	return out, nil
}

// Sent marks a claimed mail sent.
func (q *MailQueue) Sent(ctx context.Context, d *outbox.Delivery, now time.Time) error {
	return leaseLost(q.s.st.MailSent(ctx, d.ID, d.Claim, now))
}

// Retry records a failed attempt of a claimed mail.
func (q *MailQueue) Retry(ctx context.Context, d *outbox.Delivery, next time.Time, lastError string) error {
	return q.s.st.RetryMail(ctx, d.ID, d.Claim, next, lastError)
}

// Abandon gives up a claimed mail.
func (q *MailQueue) Abandon(ctx context.Context, d *outbox.Delivery, now time.Time, lastError string) error {
	return q.s.st.AbandonMail(ctx, d.ID, d.Claim, now, lastError)
}

// Release hands a claimed mail back.
func (q *MailQueue) Release(ctx context.Context, d *outbox.Delivery, now time.Time) error {
	return leaseLost(q.s.st.ReleaseMail(ctx, d.ID, d.Claim, now))
}

// PruneMail deletes expired tokens and old mails and requests.
func (q *MailQueue) PruneMail(ctx context.Context, now, doneBefore time.Time) error {
	return q.s.st.PruneMail(ctx, now, doneBefore)
}

// PruneEvents deletes the security events older than retention.
func (q *MailQueue) PruneEvents(ctx context.Context, retention time.Duration) error {
	_, err := q.s.PruneEvents(ctx, retention)
	return err
}

// leaseLost is the store's ErrNotFound for a mail no longer under its
// claim, in the worker's words.
func leaseLost(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", outbox.ErrLeaseLost, err)
	}
	return err
}

// openMail unseals an outbox mail into a Mail.
func (s *Service) openMail(m *OutboxMail) (Mail, error) {
	plain, err := s.sealer.open(purposeMailPayload, m.ID, m.Payload)
	if err != nil {
		return Mail{}, fmt.Errorf("open payload: %w", err)
	}
	var p mailPayload
	if err := json.Unmarshal(plain, &p); err != nil {
		return Mail{}, fmt.Errorf("decode payload: %w", err)
	}
	return Mail{ID: m.ID, Kind: m.Kind, To: m.To, Name: p.Name, Locale: m.Locale, Token: p.Token, NewEmail: p.NewEmail,
		At: p.At, Timezone: p.Timezone, IP: p.IP, UserAgent: p.UserAgent}, nil
}
