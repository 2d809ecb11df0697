package auth

import (
	"context"
	"errors"
	"fmt"
)

// RegisterSecretInput is a new name-only account.
type RegisterSecretInput struct {
	Name   string
	Locale string // BCP 47; "en" when empty
}

// Credentials are a first factor: a secret, or an email or username with
// a password.
type Credentials struct {
	Secret   string
	Email    string
	Username string
	Password string
}

// DeleteCredentials re-authenticate an account deletion: the secret of a
// secret account or the password of a password account.
type DeleteCredentials struct {
	Secret   string
	Password string
}

// RegisterSecret creates a secret account and signs it in. It returns the
// user, the account secret (shown once here, and by Secret) and tokens.
func (s *Service) RegisterSecret(ctx context.Context, in RegisterSecretInput, meta ClientMeta) (*User, string, *Tokens, error) {
	if !s.cfg.RegistrationOpen {
		return nil, "", nil, ErrRegistrationDisabled
	}
	if err := s.guard.registration(ctx, meta); err != nil {
		return nil, "", nil, err
	}
	var v validator
	name := v.name("name", in.Name)
	locale := "en"
	if in.Locale != "" {
		locale = v.locale("locale", in.Locale)
	}
	if err := v.err(); err != nil {
		return nil, "", nil, err
	}

	now := s.now()
	id, err := s.newID()
	if err != nil {
		return nil, "", nil, err
	}
	secret, err := newToken(s.rand)
	if err != nil {
		return nil, "", nil, err
	}
	secretEnc, err := s.sealer.seal(purposeAccountSecret, id, []byte(secret))
	if err != nil {
		return nil, "", nil, err
	}
	u := &User{
		ID:          id,
		AccountType: AccountSecret,
		Name:        name,
		Locale:      locale,
		Timezone:    "UTC",
		CreatedAt:   now,
		UpdatedAt:   now,
		SecretHash:  tokenHash(kindSecret, secret),
		SecretEnc:   secretEnc,
	}
	sess, rt, refresh, err := s.newSession(id, meta, now)
	if err != nil {
		return nil, "", nil, err
	}
	if ctx, err = s.withEvent(ctx, EventAccountCreated, id, sess.ID); err != nil {
		return nil, "", nil, err
	}
	if err := s.st.CreateUser(ctx, u, sess, rt); err != nil {
		return nil, "", nil, fmt.Errorf("create user: %w", err)
	}
	tokens, err := s.tokens(id, sess.ID, refresh, sess.ExpiresAt, now)
	if err != nil {
		return nil, "", nil, err
	}
	return u, secret, tokens, nil
}

// SignIn checks a first factor and starts a session. Failures count
// toward the sign-in limits, which refuse even a right credential once
// used up.
func (s *Service) SignIn(ctx context.Context, c Credentials, meta ClientMeta) (*AuthResult, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var (
		u   *User
		err error
	)
	if c.Secret != "" {
		u, err = s.signInSecret(ctx, c.Secret, meta)
	} else {
		u, err = s.signInPassword(ctx, c, meta)
	}
	if errors.Is(err, ErrInvalidCredentials) {
		s.signInFailed(ctx, u)
	}
	if err != nil {
		return nil, err
	}
	return s.completeSignIn(ctx, u, meta)
}

// completeSignIn finishes a sign-in whose first factor was right (also
// after an email confirmation): a disabled account or an unconfirmed
// address is refused, an account with two-factor on gets a challenge, and
// any other starts a session.
func (s *Service) completeSignIn(ctx context.Context, u *User, meta ClientMeta) (*AuthResult, error) {
	switch {
	case u.Disabled:
		return nil, ErrAccountDisabled
	case s.cfg.EmailConfirmationRequired && u.AccountType == AccountPassword && !u.EmailConfirmed:
		return nil, ErrEmailNotConfirmed
	case u.TwoFactorEnabled:
		return s.twoFactorChallenge(ctx, u, meta)
	}
	tokens, err := s.startSession(ctx, u.ID, meta)
	if err != nil {
		return nil, err
	}
	return &AuthResult{Tokens: tokens}, nil
}

// signInSecret finds the account of a secret. A secret has no identifier
// apart from itself, so only the client address is limited.
func (s *Service) signInSecret(ctx context.Context, secret string, meta ClientMeta) (*User, error) {
	res, err := s.guard.secretSignIn(ctx, meta)
	if err != nil {
		return nil, err
	}
	u, err := s.userBySecret(ctx, secret)
	if !errors.Is(err, ErrInvalidCredentials) {
		res.refund(ctx)
	}
	return u, err
}

// validate checks that exactly one kind of credential is given.
func (c *Credentials) validate() error {
	password := c.Email != "" || c.Username != "" || c.Password != ""
	switch {
	case c.Secret != "" && password:
		return Invalid("secret", "cannot be combined with an email, username or password")
	case c.Secret != "":
		return nil
	case !password:
		return Invalid("secret", "is required, unless an email or username and a password are given")
	case c.Email != "" && c.Username != "":
		return Invalid("username", "cannot be combined with an email: give one of them")
	case c.Email == "" && c.Username == "":
		return Invalid("email", "is required with a password (or give a username instead)")
	case c.Password == "":
		return Invalid("password", "is required")
	}
	return nil
}

// userBySecret finds the secret account a secret belongs to, or fails with
// ErrInvalidCredentials.
func (s *Service) userBySecret(ctx context.Context, secret string) (*User, error) {
	hash := tokenHash(kindSecret, secret)
	u, err := s.st.UserBySecretHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	if u.AccountType != AccountSecret || !hashEqual(u.SecretHash, hash) {
		return nil, ErrInvalidCredentials
	}
	return u, nil
}

// DeleteMe deletes the account with its sessions, tokens and avatar,
// after checking its credential again.
func (s *Service) DeleteMe(ctx context.Context, userID string, c DeleteCredentials, meta ClientMeta) error {
	u, err := s.st.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	switch u.AccountType {
	case AccountSecret:
		if c.Secret == "" {
			return ErrInvalidCredentials
		}
		// The same limited re-check as every other credential re-check:
		// a stolen access token does not buy unlimited guesses.
		if err := s.recheckCredential(ctx, u, TwoFactorCredentials{Secret: c.Secret}, meta); err != nil {
			return err
		}
	default:
		if err := s.reauthenticate(ctx, u, c.Password, meta); err != nil {
			return err
		}
	}
	ctx, err = s.withEvent(ctx, EventAccountDeleted, userID, "")
	if err != nil {
		return err
	}
	return s.st.DeleteUser(ctx, userID)
}

// Secret returns a secret account's secret; ErrNotApplicable for other
// accounts.
func (s *Service) Secret(ctx context.Context, userID string) (string, error) {
	u, err := s.st.UserByID(ctx, userID)
	if err != nil {
		return "", err
	}
	if u.AccountType != AccountSecret {
		return "", ErrNotApplicable
	}
	secret, err := s.sealer.open(purposeAccountSecret, u.ID, u.SecretEnc)
	if err != nil {
		return "", fmt.Errorf("open account secret: %w", err)
	}
	return string(secret), nil
}
