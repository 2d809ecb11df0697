package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/auth/totp"
)

// Two-factor authentication: TOTP keys enrolled through the authenticator
// app, recovery codes, and the challenge step of a sign-in.

const (
	// twoFactorIssuer names the service in authenticator apps.
	twoFactorIssuer = "Latchkey"
	// maxCodeFailures is how many wrong codes a challenge survives: the
	// last of them kills it. It holds whatever the rate limits say.
	maxCodeFailures = 5
	// recoveryCodeCount is how many recovery codes an enrolment hands out.
	recoveryCodeCount = 10
	// recoveryCodeLen is the length of a recovery code in characters of
	// recoveryAlphabet (5 bits each: 50 bits), shown as two halves.
	recoveryCodeLen = 10
	// recoveryAlphabet is Crockford's base32, lower case: no i, l, o or u,
	// so that what is read off paper types back unambiguously.
	recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
)

// Sealing purpose and token kinds of two-factor data (see crypto.go).
const (
	purposeTOTPKey = "totp-key"   // owner: user id; pending and enabled keys alike
	kindTwoFactor  = "two-factor" // challenge tokens
	kindRecovery   = "recovery"   // recovery codes, hashed with their user's id
)

// TwoFactorStore is the persistence of two-factor authentication. The TOTP
// state itself lives on the User (TOTPKeyEnc, TOTPPendingEnc, TOTPLastStep,
// TwoFactorEnabled) and changes only through these methods. Methods that
// spend a code do so atomically with what the code pays for, so that of
// concurrent calls spending one code at most one succeeds.
type TwoFactorStore interface {
	// SetPendingTwoFactor stores keyEnc as the user's pending TOTP key,
	// replacing any pending one, and sets UpdatedAt to now.
	// ErrAlreadyEnabled when two-factor is on; ErrNotFound for no such
	// user.
	SetPendingTwoFactor(ctx context.Context, userID string, keyEnc []byte, now time.Time) error
	// EnableTwoFactor turns two-factor on with the pending key, in one
	// transaction: only if the pending key is still pendingEnc and step is
	// later than the last used step, it makes the pending key the key,
	// records step as the last used step, and replaces the user's recovery
	// codes with recoveryHashes. ErrAlreadyEnabled when two-factor is on;
	// ErrInvalidCode when the pending key was replaced or the step is used;
	// ErrNotFound for no such user.
	EnableTwoFactor(ctx context.Context, userID string, pendingEnc []byte, step int64, recoveryHashes [][]byte, now time.Time) error
	// DisableTwoFactor spends use and, in the same transaction, turns
	// two-factor off, deleting the key, any pending key, the recovery codes
	// and the user's challenges. ErrInvalidCode when the step is not later
	// than the last used one or the recovery code is not the user's (any
	// more); ErrNotApplicable when two-factor is off; ErrNotFound for no
	// such user.
	DisableTwoFactor(ctx context.Context, userID string, use CodeUse, now time.Time) error

	// CreateTwoFactorChallenge stores a challenge, and drops the user's
	// expired and dead ones.
	CreateTwoFactorChallenge(ctx context.Context, c *TwoFactorChallenge) error
	// TwoFactorChallenge returns the challenge with this hash, live or not;
	// ErrNotFound when there is none (unknown or completed).
	TwoFactorChallenge(ctx context.Context, hash []byte) (*TwoFactorChallenge, error)
	// FailTwoFactorChallenge takes one attempt from a challenge that is
	// live at now. ErrInvalidToken when it is not (or no longer) live.
	FailTwoFactorChallenge(ctx context.Context, hash []byte, now time.Time) error
	// CompleteTwoFactorChallenge answers a challenge, in one transaction:
	// it spends use for the challenge's user (as DisableTwoFactor does),
	// consumes the challenge if it is live at now, and creates s (which
	// must be the challenge's user's) with its first refresh token rt.
	// ErrInvalidCode when use cannot be spent; ErrInvalidToken when the
	// challenge is unknown, expired, dead or already consumed, or
	// two-factor is off. Of concurrent calls, at most one succeeds for one
	// challenge, and at most one for one step or recovery code of a user.
	CompleteTwoFactorChallenge(ctx context.Context, hash []byte, use CodeUse, s *Session, rt *RefreshToken, now time.Time) error
	// RekeyRecoveryCodes rewrites every recovery code still stored as its
	// plain SHA-256 (legacy) as rekey(that hash), marked keyed, and
	// returns how many it rewrote. Concurrent calls rewrite each code once.
	RekeyRecoveryCodes(ctx context.Context, rekey func(legacy []byte) []byte) (int, error)
}

// CodeUse is a second factor being spent: a TOTP time step, or (when
// RecoveryHash is set) a recovery code.
type CodeUse struct {
	// Step is the matched TOTP time step; it must be later than the
	// user's TOTPLastStep and becomes it.
	Step int64
	// RecoveryHash is the keyed hash of a recovery code of the user,
	// deleted when spent. LegacyRecoveryHash is the same code's plain
	// SHA-256, as releases before keyed hashing stored it: it matches
	// only a code still stored that way (not yet rewritten).
	RecoveryHash       []byte
	LegacyRecoveryHash []byte
}

// TwoFactorChallenge is the pending second step of a sign-in whose first
// factor was right. Only its token's hash is stored.
type TwoFactorChallenge struct {
	Hash      []byte
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	// AttemptsLeft is how many more wrong codes the challenge survives;
	// at zero it is dead.
	AttemptsLeft int
	// UserAgent and IP are those of the first factor, for the session the
	// challenge starts.
	UserAgent string
	IP        string
}

// Live reports whether the challenge can still be answered at now.
func (c *TwoFactorChallenge) Live(now time.Time) bool {
	return c.AttemptsLeft > 0 && now.Before(c.ExpiresAt)
}

// TwoFactorCredentials re-authenticate a two-factor enrolment: the password
// of a password account or the secret of a secret account.
type TwoFactorCredentials struct {
	Password string
	Secret   string
}

// TwoFactorEnrollment is a new pending TOTP key in the forms an
// authenticator app takes.
type TwoFactorEnrollment struct {
	// Secret is the key in base32 without padding, for manual entry.
	Secret string
	// URL is the otpauth:// key URI.
	URL string
	// QRCode is a PNG of a QR code of URL.
	QRCode []byte
}

// EnrollTwoFactor creates a new TOTP key for the user, after checking the
// account's credential again, and keeps it (sealed) as pending until
// ConfirmTwoFactor; enrolling again first replaces it. ErrAlreadyEnabled
// when two-factor is on.
func (s *Service) EnrollTwoFactor(ctx context.Context, userID string, c TwoFactorCredentials, meta ClientMeta) (*TwoFactorEnrollment, error) {
	u, err := s.st.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	if err := s.recheckCredential(ctx, u, c, meta); err != nil {
		return nil, err
	}
	if u.TwoFactorEnabled {
		return nil, ErrAlreadyEnabled
	}
	key, err := totp.NewKey(s.rand)
	if err != nil {
		return nil, err
	}
	url := totp.URL(twoFactorIssuer, accountLabel(u), key)
	qr, err := totp.QRCode(url)
	if err != nil {
		return nil, err
	}
	enc, err := s.sealer.seal(purposeTOTPKey, u.ID, key)
	if err != nil {
		return nil, err
	}
	if err := s.st.SetPendingTwoFactor(ctx, u.ID, enc, s.now()); err != nil {
		if errors.Is(err, ErrAlreadyEnabled) || errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("store pending two-factor key: %w", err)
	}
	return &TwoFactorEnrollment{Secret: totp.EncodeKey(key), URL: url, QRCode: qr}, nil
}

// recheckCredential checks the credential of a signed-in user's account
// kind; a missing one is a ValidationError, a wrong one
// ErrInvalidCredentials and a sign-in failure.
func (s *Service) recheckCredential(ctx context.Context, u *User, c TwoFactorCredentials, meta ClientMeta) error {
	if u.AccountType == AccountPassword {
		switch {
		case c.Secret != "":
			return Invalid("secret", "is for secret accounts: give this account's password instead")
		case c.Password == "":
			return Invalid("password", "is required for a password account")
		}
		return s.reauthenticate(ctx, u, c.Password, meta)
	}
	switch {
	case c.Password != "":
		return Invalid("password", "is for password accounts: give this account's secret instead")
	case c.Secret == "":
		return Invalid("secret", "is required for a secret account")
	}
	res, err := s.guard.accountSignIn(ctx, u, meta)
	if err != nil {
		return err
	}
	if !hashEqual(u.SecretHash, tokenHash(kindSecret, c.Secret)) {
		return ErrInvalidCredentials
	}
	res.refund(ctx)
	return nil
}

// accountLabel names the account in authenticator apps: its email, else its
// username, else its name.
func accountLabel(u *User) string {
	switch {
	case u.Email != nil:
		return *u.Email
	case u.Username != nil:
		return *u.Username
	}
	return u.Name
}

// ConfirmTwoFactor turns two-factor on with the pending key, given a code
// of that key, and returns the recovery codes (shown this once; only their
// hashes are kept). The code's time step counts as used. ErrAlreadyEnabled
// when two-factor is on; ErrNotApplicable when nothing is pending;
// ErrInvalidCode for a wrong code.
func (s *Service) ConfirmTwoFactor(ctx context.Context, userID, code string, meta ClientMeta) ([]string, error) {
	u, err := s.st.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	switch {
	case u.TwoFactorEnabled:
		return nil, ErrAlreadyEnabled
	case len(u.TOTPPendingEnc) == 0:
		return nil, ErrNotApplicable
	}
	res, err := s.guard.accountSignIn(ctx, u, meta)
	if err != nil {
		return nil, err
	}
	key, err := s.sealer.open(purposeTOTPKey, u.ID, u.TOTPPendingEnc)
	if err != nil {
		return nil, fmt.Errorf("open pending two-factor key: %w", err)
	}
	now := s.now()
	step, ok := totp.Match(key, compactCode(code), now, u.TOTPLastStep)
	if !ok {
		return nil, ErrInvalidCode
	}
	res.refund(ctx)
	codes, hashes, err := s.newRecoveryCodes(u.ID)
	if err != nil {
		return nil, err
	}
	if ctx, err = s.withEvent(ctx, EventTwoFactorEnabled, u.ID, ""); err != nil {
		return nil, err
	}
	if err := s.st.EnableTwoFactor(ctx, u.ID, u.TOTPPendingEnc, step, hashes, now); err != nil {
		if errors.Is(err, ErrAlreadyEnabled) || errors.Is(err, ErrInvalidCode) || errors.Is(err, ErrNotFound) {
			return nil, err // a concurrent confirmation or enrolment won
		}
		return nil, fmt.Errorf("enable two-factor: %w", err)
	}
	return codes, nil
}

// DisableTwoFactor turns two-factor off, given a TOTP code or an unused
// recovery code, and deletes the key and recovery codes. ErrNotApplicable
// when two-factor is off; ErrInvalidCode for a wrong code.
func (s *Service) DisableTwoFactor(ctx context.Context, userID, code string, meta ClientMeta) error {
	u, err := s.st.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	if !u.TwoFactorEnabled {
		return ErrNotApplicable
	}
	res, err := s.guard.accountSignIn(ctx, u, meta)
	if err != nil {
		return err
	}
	now := s.now()
	use, ok, err := s.codeUse(u, code, now)
	if err != nil {
		return err
	}
	if !ok {
		_ = s.record(ctx, EventTwoFactorFailed, u.ID, "")
		return ErrInvalidCode
	}
	if ctx, err = s.codeEvents(ctx, u, "", use, EventTwoFactorDisabled); err != nil {
		return err
	}
	if ctx, err = s.withNotice(ctx, MailTwoFactorDisabled, u); err != nil {
		return err
	}
	err = s.st.DisableTwoFactor(ctx, u.ID, use, now)
	switch {
	case err == nil:
		res.refund(ctx)
		return nil
	case errors.Is(err, ErrInvalidCode):
		return ErrInvalidCode
	case errors.Is(err, ErrNotApplicable), errors.Is(err, ErrNotFound):
		return err
	}
	return fmt.Errorf("disable two-factor: %w", err)
}

// twoFactorChallenge answers a right first factor of an account with
// two-factor on: a challenge to complete at /auth/two-factor.
func (s *Service) twoFactorChallenge(ctx context.Context, u *User, meta ClientMeta) (*AuthResult, error) {
	token, err := newToken(s.rand)
	if err != nil {
		return nil, err
	}
	now := s.now()
	c := &TwoFactorChallenge{
		Hash:         tokenHash(kindTwoFactor, token),
		UserID:       u.ID,
		CreatedAt:    now,
		ExpiresAt:    now.Add(s.cfg.TwoFactorTTL),
		AttemptsLeft: maxCodeFailures,
		UserAgent:    cleanUserAgent(meta.UserAgent),
		IP:           cleanIP(meta.IP),
	}
	if err := s.st.CreateTwoFactorChallenge(ctx, c); err != nil {
		return nil, fmt.Errorf("create two-factor challenge: %w", err)
	}
	return &AuthResult{TwoFactorToken: token, TwoFactorExpiresIn: max(int(s.cfg.TwoFactorTTL/time.Second), 1)}, nil
}

// SignInTwoFactor answers a challenge with a TOTP code or an unused
// recovery code and starts the session the first factor asked for. A
// challenge is single use; the wrong code that uses up its attempts
// kills it. Wrong codes count toward the sign-in limits of the account
// and of the client address. ErrInvalidToken for an unknown, expired, dead
// or used challenge; ErrInvalidCode for a wrong code.
func (s *Service) SignInTwoFactor(ctx context.Context, token, code string, meta ClientMeta) (*AuthResult, error) {
	now := s.now()
	hash := tokenHash(kindTwoFactor, token)
	c, err := s.st.TwoFactorChallenge(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("find two-factor challenge: %w", err)
	}
	if !c.Live(now) {
		return nil, ErrInvalidToken
	}
	u, err := s.st.UserByID(ctx, c.UserID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidToken // deleted meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	switch {
	case !u.TwoFactorEnabled:
		return nil, ErrInvalidToken // turned off meanwhile: sign in again
	case u.Disabled:
		return nil, ErrAccountDisabled
	}
	res, err := s.guard.accountSignIn(ctx, u, meta)
	if err != nil {
		return nil, err
	}

	use, ok, err := s.codeUse(u, code, now)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.challengeFailure(ctx, u.ID, hash, now)
	}
	sess, rt, refresh, err := s.newSession(u.ID, ClientMeta{UserAgent: c.UserAgent, IP: c.IP}, now)
	if err != nil {
		return nil, err
	}
	if ctx, err = s.codeEvents(ctx, u, sess.ID, use, EventSignIn); err != nil {
		return nil, err
	}
	err = s.st.CompleteTwoFactorChallenge(ctx, hash, use, sess, rt, now)
	switch {
	case errors.Is(err, ErrInvalidCode):
		return nil, s.challengeFailure(ctx, u.ID, hash, now)
	case errors.Is(err, ErrInvalidToken):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("complete two-factor challenge: %w", err)
	}
	res.refund(ctx)
	tokens, err := s.tokens(u.ID, sess.ID, refresh, sess.ExpiresAt, now)
	if err != nil {
		return nil, err
	}
	return &AuthResult{Tokens: tokens}, nil
}

// challengeFailure records a wrong code on a challenge (the sign-in limits
// counted it before the code was checked), with a two_factor_failed event
// of the user. It returns ErrInvalidCode, or ErrInvalidToken when the
// challenge died meanwhile (a concurrent answer consumed or killed it).
func (s *Service) challengeFailure(ctx context.Context, userID string, hash []byte, now time.Time) error {
	// Its attempts bound guessing even when the rate limits are off or fail.
	ctx, err := s.withEvent(ctx, EventTwoFactorFailed, userID, "")
	if err != nil {
		return err
	}
	failErr := s.st.FailTwoFactorChallenge(ctx, hash, now)
	if failErr != nil && !errors.Is(failErr, ErrInvalidToken) {
		return fmt.Errorf("count a wrong two-factor code: %w", failErr)
	}
	if failErr != nil {
		return ErrInvalidToken
	}
	return ErrInvalidCode
}

// codeUse reads a submitted code: a TOTP code of the user's key (matched
// at now, later than the last used step) or the shape of a recovery code
// (whether it is the user's is for the store to say). ok is false when it
// is neither.
func (s *Service) codeUse(u *User, code string, now time.Time) (use CodeUse, ok bool, err error) {
	code = compactCode(code)
	if totp.IsCode(code) {
		key, err := s.sealer.open(purposeTOTPKey, u.ID, u.TOTPKeyEnc)
		if err != nil {
			return CodeUse{}, false, fmt.Errorf("open two-factor key: %w", err)
		}
		step, ok := totp.Match(key, code, now, u.TOTPLastStep)
		return CodeUse{Step: step}, ok, nil
	}
	rc, ok := normalizeRecoveryCode(code)
	if !ok {
		return CodeUse{}, false, nil
	}
	legacy := legacyRecoveryHash(u.ID, rc)
	return CodeUse{RecoveryHash: s.rekeyRecovery(legacy), LegacyRecoveryHash: legacy}, true, nil
}

// compactCode removes the spaces people type into codes ("492 039").
func compactCode(code string) string {
	return strings.Join(strings.Fields(code), "")
}

// newRecoveryCodes returns recoveryCodeCount fresh recovery codes
// ("xxxxx-xxxxx") and their hashes for the user.
func (s *Service) newRecoveryCodes(userID string) ([]string, [][]byte, error) {
	codes := make([]string, recoveryCodeCount)
	hashes := make([][]byte, recoveryCodeCount)
	buf := make([]byte, recoveryCodeLen)
	for i := range codes {
		if _, err := io.ReadFull(s.rand, buf); err != nil {
			return nil, nil, fmt.Errorf("recovery code: %w", err)
		}
		var b strings.Builder
		for j, c := range buf {
			if j == recoveryCodeLen/2 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[c%32]) // 256 is a multiple of 32: uniform
		}
		codes[i] = b.String()
		plain, _ := normalizeRecoveryCode(codes[i])
		hashes[i] = s.rekeyRecovery(legacyRecoveryHash(userID, plain))
	}
	return codes, hashes, nil
}

// normalizeRecoveryCode returns a recovery code as it is hashed: lower case,
// without separators, with the letters Crockford's base32 reads as digits
// (o, i, l) replaced by them. ok is false when s cannot be a recovery code.
func normalizeRecoveryCode(s string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch r {
		case '-', ' ':
			continue
		case 'o':
			r = '0'
		case 'i', 'l':
			r = '1'
		}
		if r > 0x7f || !strings.ContainsRune(recoveryAlphabet, r) {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != recoveryCodeLen {
		return "", false
	}
	return b.String(), true
}

// legacyRecoveryHash is the SHA-256 of a normalised recovery code, bound
// to its user so that equal codes of two users never share a hash. It was
// the stored form before keyed hashing; now it is what the key is applied
// to, so that stored legacy codes can be rewritten without knowing them.
func legacyRecoveryHash(userID, code string) []byte {
	return tokenHash(kindRecovery, userID+":"+code)
}

// rekeyRecovery is the stored form of a recovery code: HMAC-SHA-256 of
// its legacy hash under the recovery key, derived from the master key. A
// code has only 50 bits, which a stolen database's plain hashes would
// give up to brute force; without the master key these cannot be tested.
func (s *Service) rekeyRecovery(legacy []byte) []byte {
	m := hmac.New(sha256.New, s.recoveryKey)
	m.Write(legacy)
	return m.Sum(nil)
}
