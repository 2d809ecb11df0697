package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"sync"
)

// maxVerifiedTokens bounds the verified-token cache: about 0.5 KiB each,
// so at most a few MiB. When it is full it starts over.
const maxVerifiedTokens = 8192

// verifiedTokens remembers access tokens whose signature and claims have
// been checked, so that a client sending the same token on every request
// costs one Ed25519 verification per token rather than per request (a
// quarter of the CPU of GET /me). It keeps only what checking again would
// decide again: the whole token is the key, so a token that differs in any
// byte is checked in full; a hit still checks the expiry against the clock
// and that the token's key still verifies; and the session and account
// are read on every request as before, so revocation is not delayed.
type verifiedTokens struct {
	mu      sync.RWMutex
	entries map[string]verifiedToken
}

// verifiedToken is what a full check of a token established.
type verifiedToken struct {
	claims accessClaims
	kid    string
	pub    ed25519.PublicKey
}

func (c *verifiedTokens) get(token string) (verifiedToken, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.entries[token]
	return v, ok
}

func (c *verifiedTokens) put(token string, v verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxVerifiedTokens {
		c.entries = make(map[string]verifiedToken)
	}
	c.entries[token] = v
}

// cachedClaims returns the claims of a token verified before, when its key
// still verifies and it has not expired since (with the parser's leeway);
// otherwise nil, and the caller checks the token in full.
func (s *Service) cachedClaims(ctx context.Context, token string) *accessClaims {
	v, ok := s.verified.get(token)
	if !ok || !s.now().Before(v.claims.ExpiresAt.Add(jwtLeeway)) {
		return nil
	}
	pub, err := s.publicKey(ctx, v.kid)
	if err != nil || !bytes.Equal(pub, v.pub) {
		return nil
	}
	claims := v.claims
	return &claims
}
