package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/latchkey-dev/latchkey/auth/password"
)

// RegisterPasswordInput is a new password account. Optional fields are nil
// or empty when not given.
type RegisterPasswordInput struct {
	Email        string
	Password     string
	PasswordConf *string
	Name         *string
	Username     *string
	Bio          *string
	Locale       string // BCP 47; "en" when empty
	Timezone     string // IANA; "UTC" when empty
}

// RegisterPassword creates a password account and signs it in. When email
// confirmation is required it returns no user and no tokens instead: the
// account is stored unconfirmed with a confirmation mail queued or, when
// the address already has an account, nothing is stored and its owner is
// mailed, so that the two cannot be told apart.
func (s *Service) RegisterPassword(ctx context.Context, in RegisterPasswordInput, meta ClientMeta) (*User, *Tokens, error) {
	if !s.cfg.RegistrationOpen {
		return nil, nil, ErrRegistrationDisabled
	}
	if err := s.guard.registration(ctx, meta); err != nil {
		return nil, nil, err
	}
	var v validator
	email := v.email("email", in.Email)
	var username *string
	if in.Username != nil {
		username = v.username("username", *in.Username)
	}
	name := defaultName(email, username)
	if in.Name != nil {
		name = v.name("name", *in.Name)
	}
	var bio *string
	if in.Bio != nil {
		bio = v.text("bio", *in.Bio, maxBio, true)
	}
	locale, timezone := "en", "UTC"
	if in.Locale != "" {
		locale = v.locale("locale", in.Locale)
	}
	if in.Timezone != "" {
		timezone = v.timezone("timezone", in.Timezone)
	}
	if !passwordsMatch(in.Password, in.PasswordConf) {
		v.add("password_conf", "does not match the password")
	}
	if err := v.err(); err != nil {
		return nil, nil, err
	}
	hash, err := s.hashNewPassword(ctx, "password", in.Password, email, deref(username))
	if err != nil {
		return nil, nil, err
	}

	now := s.now()
	id, err := s.newID()
	if err != nil {
		return nil, nil, err
	}
	u := &User{
		ID:           id,
		AccountType:  AccountPassword,
		Name:         name,
		Username:     username,
		Email:        &email,
		Bio:          bio,
		Locale:       locale,
		Timezone:     timezone,
		CreatedAt:    now,
		UpdatedAt:    now,
		PasswordHash: hash,
	}
	if s.cfg.EmailConfirmationRequired {
		return nil, nil, s.registerPending(ctx, u, now)
	}
	sess, rt, refresh, err := s.newSession(id, meta, now)
	if err != nil {
		return nil, nil, err
	}
	if ctx, err = s.withEvent(ctx, EventAccountCreated, id, sess.ID); err != nil {
		return nil, nil, err
	}
	if err := s.st.CreateUser(ctx, u, sess, rt); err != nil {
		if errors.Is(err, ErrEmailTaken) || errors.Is(err, ErrUsernameTaken) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("create user: %w", err)
	}
	tokens, err := s.tokens(id, sess.ID, refresh, sess.ExpiresAt, now)
	if err != nil {
		return nil, nil, err
	}
	return u, tokens, nil
}

// defaultName is a password account's display name when none is given:
// the username, else the email's local part (cut to the name limit).
func defaultName(email string, username *string) string {
	name := deref(username)
	if name == "" {
		name, _, _ = strings.Cut(email, "@")
	}
	if utf8.RuneCountInString(name) > maxName {
		name = string([]rune(name)[:maxName])
	}
	return name
}

// signInPassword is SignIn's path for an email or username with a
// password. Unknown identifiers cost the same look-up and hash as wrong
// passwords and get the same answer. The attempt is counted before the
// password is verified and given back when it is right, so parallel
// guesses cannot pass the limits together; the limits apply even to a
// right password. With ErrInvalidCredentials it returns the account the
// identifier names, if any, for the log.
func (s *Service) signInPassword(ctx context.Context, c Credentials, meta ClientMeta) (*User, error) {
	email, _ := NormalizeEmail(c.Email)
	var (
		u   *User
		err error
	)
	if c.Email != "" {
		u, err = s.st.UserByEmail(ctx, email)
	} else {
		u, err = s.st.UserByUsername(ctx, c.Username)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("find user: %w", err)
	}
	res, err := s.guard.passwordSignIn(ctx, c, email, u, meta)
	if err != nil {
		return nil, err
	}
	pw := password.Normalize(c.Password)
	if u == nil || u.AccountType != AccountPassword {
		if err := s.hasher.VerifyDummy(ctx, pw); err != nil {
			res.refund(ctx) // nothing was verified
			return nil, hashError(err)
		}
		return u, ErrInvalidCredentials
	}
	ok, err := s.verifyPassword(ctx, u, pw)
	if err != nil {
		res.refund(ctx)
		return nil, err
	}
	if !ok {
		return u, ErrInvalidCredentials
	}
	res.refund(ctx)
	return u, nil
}

// verifyPassword checks pw against u's hash and, when it is right but was
// made with other parameters (or is bcrypt), stores a new hash.
func (s *Service) verifyPassword(ctx context.Context, u *User, pw string) (bool, error) {
	ok, rehash, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		if errors.Is(err, password.ErrMalformed) {
			return false, fmt.Errorf("user %s: %w", u.ID, err)
		}
		return false, hashError(err)
	}
	if ok && rehash {
		hash, err := s.hashPassword(ctx, pw)
		if errors.Is(err, ErrOverloaded) {
			return true, nil // upgrade on a quieter sign-in
		}
		if err != nil {
			return false, err
		}
		// Only if the hash is still the one just checked: a reset or a
		// change committed meanwhile must not be undone.
		err = s.st.UpgradePasswordHash(ctx, u.ID, u.PasswordHash, hash, s.now())
		switch {
		case err == nil:
			u.PasswordHash = hash
		case !errors.Is(err, ErrNotFound):
			return false, fmt.Errorf("upgrade password hash: %w", err)
		}
	}
	return ok, nil
}

// ChangePassword re-checks the current password, applies the password
// rules to the new one, stores it, revokes every other session and voids
// pending email changes and reset links.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next string, meta ClientMeta) error {
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	if u.AccountType != AccountPassword {
		return ErrNotApplicable
	}
	if err := s.reauthenticate(ctx, u, current, meta); err != nil {
		return err
	}
	hash, err := s.hashNewPassword(ctx, "new_password", next, deref(u.Email), deref(u.Username))
	if err != nil {
		return err
	}
	if ctx, err = s.withEvent(ctx, EventPasswordChanged, u.ID, p.SessionID); err != nil {
		return err
	}
	if ctx, err = s.withNotice(ctx, MailPasswordChangeNotice, u); err != nil {
		return err
	}
	// Only if the password is still the one just checked: a reset (or
	// another change) committed meanwhile wins, and this one is refused.
	err = s.st.ChangePassword(ctx, u.ID, u.PasswordVersion, hash, p.SessionID, s.now())
	if errors.Is(err, ErrNotFound) {
		return ErrInvalidCredentials
	}
	return err
}

// reauthenticate checks a signed-in user's password. The check counts
// toward the account's and the client address's sign-in limits like a
// sign-in, so a stolen access token cannot be used to guess the password
// faster than sign-in allows.
func (s *Service) reauthenticate(ctx context.Context, u *User, pw string, meta ClientMeta) error {
	res, err := s.guard.accountSignIn(ctx, u, meta)
	if err != nil {
		return err
	}
	ok, err := s.verifyPassword(ctx, u, password.Normalize(pw))
	if err != nil {
		res.refund(ctx)
		return err
	}
	if !ok {
		_ = s.record(ctx, EventSignInFailed, u.ID, "") // a password guessed with a live token
		return ErrInvalidCredentials
	}
	res.refund(ctx)
	return nil
}

// hashNewPassword is every path that sets a password: it normalises pw,
// applies the password rules against the account's email and username (a
// failure names field) and hashes it.
func (s *Service) hashNewPassword(ctx context.Context, field, pw, email, username string) (string, error) {
	pw = password.Normalize(pw)
	if err := checkPassword(field, pw, email, username); err != nil {
		return "", err
	}
	return s.hashPassword(ctx, pw)
}

// passwordsMatch reports whether a password confirmation, when given,
// is the password (both normalised).
func passwordsMatch(pw string, conf *string) bool {
	return conf == nil || password.Normalize(*conf) == password.Normalize(pw)
}

func (s *Service) hashPassword(ctx context.Context, pw string) (string, error) {
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return "", hashError(err)
	}
	return hash, nil
}

// hashError maps a hasher that has no free slot to 503 OVERLOADED.
func hashError(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return fmt.Errorf("%w: %w", ErrOverloaded, err)
	}
	return err
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
