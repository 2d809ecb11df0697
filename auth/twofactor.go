package auth

import "context"

// TwoFactorStore is the persistence of two-factor authentication.
type TwoFactorStore interface{}

// twoFactorChallenge answers a right first factor of an account with
// two-factor on: a challenge to complete at /auth/two-factor.
func (s *Service) twoFactorChallenge(ctx context.Context, u *User, meta ClientMeta) (*AuthResult, error) {
	return nil, ErrNotImplemented
}
