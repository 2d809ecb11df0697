package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/latchkey-dev/latchkey/auth/password"
)

// maxEmail is the longest email address accepted, in bytes (RFC 5321).
const maxEmail = 254

// Limits are the rate limits the service applies; a nil Limiter does not
// limit.
type Limits struct {
	LoginAccount Limiter // failed sign-ins per account (accountKey) or unknown identifier
	LoginClient  Limiter // failed sign-ins per client address
	Register     Limiter // registrations per client address
	MailAddress  Limiter // mails requested per email address
	MailClient   Limiter // mails requested per client address
	AvatarUpload Limiter // avatar uploads per account
}

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
	if err := s.countRegistration(ctx, meta); err != nil {
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
	pw := password.Normalize(in.Password)
	if in.PasswordConf != nil && password.Normalize(*in.PasswordConf) != pw {
		v.add("password_conf", "does not match the password")
	}
	if err := v.err(); err != nil {
		return nil, nil, err
	}
	if err := checkPassword("password", pw, email, deref(username)); err != nil {
		return nil, nil, err
	}
	hash, err := s.hashPassword(ctx, pw)
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
// right password.
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
	res, err := s.reserveSignIn(ctx, signInKey(c, email, u), meta)
	if err != nil {
		return nil, err
	}
	pw := password.Normalize(c.Password)
	if u == nil || u.AccountType != AccountPassword {
		if err := s.hasher.VerifyDummy(ctx, pw); err != nil {
			res.refund(ctx) // nothing was verified
			return nil, hashError(err)
		}
		return nil, ErrInvalidCredentials
	}
	ok, err := s.verifyPassword(ctx, u, pw)
	if err != nil {
		res.refund(ctx)
		return nil, err
	}
	if !ok {
		return nil, ErrInvalidCredentials
	}
	res.refund(ctx)
	return u, nil
}

// signInKey is the sign-in limits' key of an identifier: its account's
// (accountKey) when it names one, so an email and a username of one
// account share one counter; else the normalised identifier (email is
// c.Email normalised).
func signInKey(c Credentials, email string, u *User) string {
	switch {
	case u != nil:
		return accountKey(u)
	case c.Email != "":
		return "email:" + email
	}
	return "username:" + strings.ToLower(c.Username)
}

// accountKey is the key under which the sign-in limits count the failures
// of an existing account, whichever identifier or credential was used.
func accountKey(u *User) string {
	return "user:" + u.ID
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
	pw := password.Normalize(next)
	if err := checkPassword("new_password", pw, deref(u.Email), deref(u.Username)); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, pw)
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
	res, err := s.reserveSignIn(ctx, accountKey(u), meta)
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

// checkPassword applies the password rules; a failure is 400 WEAK_PASSWORD
// naming the rule.
func checkPassword(field, pw, email, username string) error {
	err := password.Check(pw, email, username)
	var weak *password.Weakness
	if errors.As(err, &weak) {
		return &ValidationError{Kind: ErrWeakPassword, Fields: []FieldError{{Field: field, Message: weak.Message}}}
	}
	return err
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

// reserveSignIn counts one failed sign-in against the account key and the
// client address before a credential is verified (either may be empty: not
// counted): refused with a *RateLimitError when either has used up its
// failures. Refund the reservation when the credential proves right (or
// was not verified).
func (s *Service) reserveSignIn(ctx context.Context, key string, meta ClientMeta) (reservation, error) {
	var cs []counter
	if key != "" {
		cs = append(cs, counter{s.cfg.Limits.LoginAccount, key})
	}
	if meta.IP != "" {
		cs = append(cs, counter{s.cfg.Limits.LoginClient, clientKey(meta)})
	}
	return reserve(ctx, cs...)
}

// countRegistration limits registrations per client address.
func (s *Service) countRegistration(ctx context.Context, meta ClientMeta) error {
	if meta.IP == "" {
		return nil
	}
	return take(ctx, counter{s.cfg.Limits.Register, clientKey(meta)})
}

// NormalizeEmail is the one form in which an address is stored, compared
// and looked up: trimmed; NFC; the local part lower case; the domain
// mapped by IDNA (UTS #46, lookup profile) to its ASCII form, so that the
// Unicode, Punycode and NFD spellings of one mailbox are one address
// ("x@exämple.com" → "x@xn--exmple-cua.com"). ok is false when s is not
// an address whose domain IDNA accepts; the string returned is then still
// the best normal form (trimmed, NFC, lower case), for look-ups that must
// answer "no such account" rather than "invalid".
func NormalizeEmail(s string) (email string, ok bool) {
	s = norm.NFC.String(strings.TrimSpace(s))
	local, domain, found := strings.Cut(s, "@")
	lower := norm.NFC.String(strings.ToLower(s))
	if !found || local == "" || domain == "" || strings.Contains(domain, "@") {
		return lower, false
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || ascii == "" || strings.HasPrefix(ascii, ".") || strings.HasSuffix(ascii, ".") ||
		strings.Contains(ascii, "..") || !strings.Contains(ascii, ".") {
		return lower, false
	}
	return norm.NFC.String(strings.ToLower(local)) + "@" + strings.ToLower(ascii), true
}

// email checks an email address and returns it normalised (NormalizeEmail).
func (v *validator) email(field, s string) string {
	email, ok := NormalizeEmail(s)
	switch {
	case strings.TrimSpace(s) == "":
		v.add(field, "is required")
	case !ok || len(email) > maxEmail || strings.ContainsFunc(email, unicode.IsSpace) || hasControl(email, false):
		v.add(field, "must be a valid email address")
	}
	return email
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
