package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Access tokens: the JWT a session's bearer presents, signed with the
// current key (keys.go), and its check on every request. Sessions and
// their refresh tokens are sessions.go's.

// accessClaims are the claims of an access token.
type accessClaims struct {
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// issueAccessToken signs an access token for the session at now.
func (s *Service) issueAccessToken(userID, sessionID string, now time.Time) (string, error) {
	s.freshSigner(now)
	kid, key := s.keys.signingKey()
	claims := accessClaims{
		SessionID: sessionID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTokenTTL)),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return signed, nil
}

// verifyAccessToken checks an access token's signature and claims. Any
// refusal is ErrUnauthenticated; other errors are failures to load keys.
func (s *Service) verifyAccessToken(ctx context.Context, token string) (*accessClaims, error) {
	if claims := s.cachedClaims(ctx, token); claims != nil {
		return claims, nil
	}
	var (
		loadErr error
		kid     string
		pub     ed25519.PublicKey
	)
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		if kid == "" {
			return nil, errUnknownKey
		}
		var err error
		pub, err = s.publicKey(ctx, kid)
		if err != nil && !errors.Is(err, errUnknownKey) {
			loadErr = err
		}
		return pub, err
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithTimeFunc(s.now),
	)
	var claims accessClaims
	if _, err := p.ParseWithClaims(token, &claims, keyFunc); err != nil {
		if loadErr != nil {
			return nil, loadErr
		}
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if claims.Subject == "" || claims.SessionID == "" {
		return nil, fmt.Errorf("%w: missing sub or sid", ErrUnauthenticated)
	}
	if claims.NotBefore == nil { // ours never have one; cachedClaims checks only exp
		s.verified.put(token, verifiedToken{claims: claims, kid: kid, pub: pub})
	}
	return &claims, nil
}

// Authenticate verifies an access token and, on every call (nothing is
// cached), that its session is still live and belongs to its subject and
// that the account is not disabled, so that revocation, disabling and
// account deletion take effect on the very next request. Session and
// account come in one query; the account's admin flag is read on it, so a
// revoked admin loses access on the next request.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Principal, error) {
	claims, err := s.verifyAccessToken(ctx, accessToken)
	if err != nil {
		return Principal{}, err
	}
	u, err := s.st.UserByLiveSession(ctx, claims.SessionID, s.now())
	if errors.Is(err, ErrNotFound) {
		return Principal{}, ErrUnauthenticated // unknown, revoked or expired session; deleted user
	}
	if err != nil {
		return Principal{}, fmt.Errorf("load session: %w", err)
	}
	if u.ID != claims.Subject || u.Disabled {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{UserID: u.ID, SessionID: claims.SessionID, Admin: u.Admin, User: u}, nil
}
