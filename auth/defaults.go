package auth

import "time"

// The defaults of Config, in one place: cmd/latchkey's settings table
// takes its flag defaults from them and the test harnesses start from
// DefaultConfig, so the help output, the README and the tests agree with
// the code.
const (
	DefaultAccessTokenTTL    = 15 * time.Minute
	DefaultRefreshTokenTTL   = 720 * time.Hour
	DefaultRefreshReuseGrace = 10 * time.Second
	DefaultTwoFactorTTL      = 5 * time.Minute
	DefaultConfirmTokenTTL   = 24 * time.Hour
	DefaultResetTokenTTL     = time.Hour
	// DefaultAvatarDecodeWait is how long an avatar upload waits for room
	// in the decode budget before it is answered ErrOverloaded.
	DefaultAvatarDecodeWait = 2 * time.Second
)

// DefaultConfig is Config with every default set; Issuer and MasterKey,
// which have none, are left for the caller, and registration is open.
func DefaultConfig() Config {
	return Config{
		Audience:           DefaultAudience,
		AccessTokenTTL:     DefaultAccessTokenTTL,
		RefreshTokenTTL:    DefaultRefreshTokenTTL,
		RefreshReuseGrace:  DefaultRefreshReuseGrace,
		RegistrationOpen:   true,
		TwoFactorTTL:       DefaultTwoFactorTTL,
		ConfirmTokenTTL:    DefaultConfirmTokenTTL,
		ResetTokenTTL:      DefaultResetTokenTTL,
		AvatarDecodeBudget: DefaultAvatarDecodeBudget,
		AvatarDecodeWait:   DefaultAvatarDecodeWait,
	}
}

// LinkTTLs are the lifetimes of confirmation (and email change) links and
// of password reset links, as this Service issues them: the mailer states
// them from here, so they are configured once.
func (s *Service) LinkTTLs() (confirm, reset time.Duration) {
	return s.cfg.ConfirmTokenTTL, s.cfg.ResetTokenTTL
}
