package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey-dev/latchkey/auth/password"
)

// DefaultAudience is the access tokens' aud claim when Config.Audience is
// empty.
const DefaultAudience = "latchkey"

// Config is what the Service needs from the process configuration.
type Config struct {
	// Issuer is the iss claim of access tokens (the public URL).
	Issuer string
	// Audience is the aud claim of access tokens (DefaultAudience).
	// Every field is required unless it says otherwise: start from
	// DefaultConfig; NewService refuses zero values rather than guess.
	Audience string
	// AccessTokenTTL is the lifetime of an access token.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of a refresh token and of its
	// session, sliding with each rotation.
	RefreshTokenTTL time.Duration
	// RefreshReuseGrace is how long a just-rotated refresh token still
	// answers with the same successor (zero: not at all).
	RefreshReuseGrace time.Duration
	// RegistrationOpen allows new accounts.
	RegistrationOpen bool
	// MasterKey is the 32-byte AES-256 key that seals what must be read
	// back (account secrets, signing keys, refresh successors).
	MasterKey []byte
	// TwoFactorTTL is the lifetime of a two-factor challenge (DefaultTwoFactorTTL).
	TwoFactorTTL time.Duration
	// EmailConfirmationRequired makes new password accounts confirm their
	// address before they can sign in.
	EmailConfirmationRequired bool
	// ConfirmTokenTTL is the lifetime of email confirmation and email
	// change links (DefaultConfirmTokenTTL); ResetTokenTTL of password reset links
	// (DefaultResetTokenTTL).
	ConfirmTokenTTL time.Duration
	ResetTokenTTL   time.Duration
	// Hasher hashes passwords; nil means password.DefaultParams with two
	// hashes per CPU at once and a 2 s wait for a slot.
	Hasher *password.Hasher
	// Limits are the rate limits; their nil members do not limit.
	Limits Limits
	// AvatarDecodeBudget is the memory, in bytes, that avatar decodes may
	// use at once, each estimated from its image's header
	// (DefaultAvatarDecodeBudget); AvatarDecodeWait is how long an
	// upload waits for room before ErrOverloaded (DefaultAvatarDecodeWait).
	AvatarDecodeBudget int64
	AvatarDecodeWait   time.Duration
}

func (c *Config) validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	if c.TwoFactorTTL <= 0 || c.ConfirmTokenTTL <= 0 || c.ResetTokenTTL <= 0 {
		errs = append(errs, errors.New("two-factor, confirm and reset token TTLs must be positive"))
	}
	if c.AccessTokenTTL <= 0 {
		errs = append(errs, errors.New("access token TTL must be positive"))
	}
	if c.RefreshTokenTTL <= 0 {
		errs = append(errs, errors.New("refresh token TTL must be positive"))
	}
	if c.RefreshReuseGrace < 0 {
		errs = append(errs, errors.New("refresh reuse grace must not be negative"))
	}
	if c.AvatarDecodeBudget <= 0 || c.AvatarDecodeWait <= 0 {
		errs = append(errs, errors.New("avatar decode budget and wait must be positive"))
	}
	if len(c.MasterKey) != masterKeySize {
		errs = append(errs, fmt.Errorf("master key must be %d bytes, got %d", masterKeySize, len(c.MasterKey)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("auth config: %w", err)
	}
	return nil
}

// Option changes how a Service is built; tests use them to fix time and
// randomness.
type Option func(*Service)

// WithClock sets the source of the current time (time.Now by default).
func WithClock(now func() time.Time) Option {
	return func(s *Service) { s.clock = now }
}

// WithRand sets the source of randomness (crypto/rand by default) used for
// ids, tokens, nonces and keys.
func WithRand(r io.Reader) Option {
	return func(s *Service) { s.rand = r }
}

// Service applies the rules of accounts, sessions and tokens. It is safe
// for concurrent use.
type Service struct {
	st     Store
	cfg    Config
	clock  func() time.Time
	rand   io.Reader
	sealer *sealer
	// recoveryKey hashes recovery codes (HMAC), derived from the master key.
	recoveryKey []byte
	keys        keyRing
	hasher      *password.Hasher
	guard       guard
	// imageBudget bounds the memory of the avatar images decoded at once.
	imageBudget *decodeBudget
	// verified caches access tokens already checked (verified.go).
	verified verifiedTokens
}

// NewService validates cfg, prepares the master-key cipher and loads the
// signing keys from st, creating and storing one when none is usable.
func NewService(ctx context.Context, st Store, cfg Config, opts ...Option) (*Service, error) {
	if st == nil {
		return nil, errors.New("auth: nil store")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Service{st: st, cfg: cfg, clock: time.Now, rand: rand.Reader, hasher: cfg.Hasher, guard: guard{cfg.Limits},
		imageBudget: newDecodeBudget(cfg.AvatarDecodeBudget)}
	if s.hasher == nil {
		h, err := password.NewHasher(password.DefaultParams, password.DefaultConcurrency(), password.DefaultMaxWait)
		if err != nil {
			return nil, err
		}
		s.hasher = h
	}
	for _, opt := range opts {
		opt(s)
	}
	var err error
	if s.sealer, err = newSealer(cfg.MasterKey, s.rand); err != nil {
		return nil, err
	}
	if s.recoveryKey, err = deriveKey(cfg.MasterKey, purposeRecoveryKey); err != nil {
		return nil, err
	}
	s.cfg.MasterKey = nil // the cipher holds it; do not keep a second copy
	if err := s.initKeys(ctx); err != nil {
		return nil, err
	}
	// Recovery codes stored by earlier releases as plain SHA-256 are
	// rewritten keyed, so that the database no longer holds them in a
	// form open to brute force.
	if _, err := st.RekeyRecoveryCodes(ctx, s.rekeyRecovery); err != nil {
		return nil, fmt.Errorf("rekey recovery codes: %w", err)
	}
	return s, nil
}

// now is the current time in UTC, truncated to the microsecond (what the
// databases keep).
func (s *Service) now() time.Time {
	return s.clock().UTC().Truncate(time.Microsecond)
}

// newID returns a random (version 4) UUID string.
func (s *Service) newID() (string, error) {
	id, err := uuid.NewRandomFromReader(s.rand)
	if err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return id.String(), nil
}

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error {
	return s.st.Ping(ctx)
}
