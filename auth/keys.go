package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

const (
	// jwtLeeway is the clock skew tolerated on exp.
	jwtLeeway = 5 * time.Second
	// keyReloadInterval bounds how often an unknown kid may send the
	// service back to the store for keys.
	keyReloadInterval = 30 * time.Second
	// signerCheckInterval is how often signing looks in the store for a
	// newer current key (a rotation on another instance): every instance
	// signs with a new key within this interval, without a restart.
	signerCheckInterval = 30 * time.Second
)

// JWK is an Ed25519 public key in JSON Web Key form (RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// verifyKey is a public key of the ring.
type verifyKey struct {
	pub       ed25519.PublicKey
	retiredAt *time.Time
}

// keyRing holds the signing keys in memory. mu guards the keys; loadMu
// serialises loads from the store and guards lastLoad.
type keyRing struct {
	mu       sync.RWMutex
	signerID string
	signer   ed25519.PrivateKey
	verify   map[string]verifyKey

	loadMu   sync.Mutex
	lastLoad time.Time
	// checked is when the signer was last checked against the store
	// (guarded by mu).
	checked time.Time
}

// signingKey returns the key that signs new access tokens.
func (r *keyRing) signingKey() (string, ed25519.PrivateKey) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.signerID, r.signer
}

func (r *keyRing) lookup(kid string) (verifyKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.verify[kid]
	return k, ok
}

// initKeys loads the stored keys and creates one when none can sign.
func (s *Service) initKeys(ctx context.Context) error {
	s.keys.loadMu.Lock()
	defer s.keys.loadMu.Unlock()
	keys, err := s.st.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if currentKey(keys) == nil {
		k, err := s.createSigningKey(ctx)
		if err != nil {
			return err
		}
		keys = append([]SigningKey{*k}, keys...)
	}
	return s.installKeys(keys)
}

// reloadKeys reloads the ring from the store unless that was done less
// than keyReloadInterval ago. It reports whether it reloaded.
func (s *Service) reloadKeys(ctx context.Context) (bool, error) {
	s.keys.loadMu.Lock()
	defer s.keys.loadMu.Unlock()
	now := s.now()
	if !s.keys.lastLoad.IsZero() && now.Sub(s.keys.lastLoad) < keyReloadInterval {
		return false, nil
	}
	s.keys.lastLoad = now
	keys, err := s.st.SigningKeys(ctx)
	if err != nil {
		return false, fmt.Errorf("reload signing keys: %w", err)
	}
	return true, s.installKeys(keys)
}

// installKeys replaces the ring's keys with keys (newest first). The
// newest unretired key signs; when there is none the signer is kept.
// Callers hold loadMu.
func (s *Service) installKeys(keys []SigningKey) error {
	verify := make(map[string]verifyKey, len(keys))
	for _, k := range keys {
		if len(k.Public) != ed25519.PublicKeySize {
			return fmt.Errorf("signing key %s: bad public key size %d", k.ID, len(k.Public))
		}
		verify[k.ID] = verifyKey{pub: ed25519.PublicKey(k.Public), retiredAt: k.RetiredAt}
	}
	var signer ed25519.PrivateKey
	cur := currentKey(keys)
	if cur != nil {
		seed, err := s.sealer.open(purposeSigningKey, cur.ID, cur.PrivateEnc)
		if err != nil {
			return fmt.Errorf("signing key %s: %w (is the master key right?)", cur.ID, err)
		}
		if len(seed) != ed25519.SeedSize {
			return fmt.Errorf("signing key %s: bad seed size", cur.ID)
		}
		signer = ed25519.NewKeyFromSeed(seed)
		if !bytes.Equal(signer.Public().(ed25519.PublicKey), cur.Public) {
			return fmt.Errorf("signing key %s: private and public halves differ", cur.ID)
		}
	}
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	s.keys.checked = s.now()
	s.keys.verify = verify
	if signer != nil {
		s.keys.signerID, s.keys.signer = cur.ID, signer
	}
	return nil
}

// currentKey returns the newest key that is not retired, or nil.
func currentKey(keys []SigningKey) *SigningKey {
	var cur *SigningKey
	for i := range keys {
		k := &keys[i]
		if k.RetiredAt == nil && (cur == nil || k.CreatedAt.After(cur.CreatedAt)) {
			cur = k
		}
	}
	return cur
}

// createSigningKey generates an Ed25519 key, seals its seed and stores it.
func (s *Service) createSigningKey(ctx context.Context) (*SigningKey, error) {
	k, err := s.newSigningKey()
	if err != nil {
		return nil, err
	}
	if err := s.st.CreateSigningKey(ctx, k); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	return k, nil
}

// newSigningKey generates an Ed25519 key and seals its seed.
func (s *Service) newSigningKey() (*SigningKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(s.rand, seed); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	kid := thumbprint(pub)
	enc, err := s.sealer.seal(purposeSigningKey, kid, seed)
	if err != nil {
		return nil, err
	}
	return &SigningKey{ID: kid, PrivateEnc: enc, Public: pub, CreatedAt: s.now()}, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key,
// used as its kid.
func thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// keyVerifies reports whether a key retired at retiredAt (nil: current)
// may still verify tokens at now: until every token it signed has
// expired.
func (s *Service) keyVerifies(retiredAt *time.Time, now time.Time) bool {
	return retiredAt == nil || now.Before(s.verifiesUntil(*retiredAt))
}

// verifiesUntil is when a key retired at retiredAt stops verifying: the
// access token lifetime and the exp leeway after the last token it can
// have signed, which another instance may issue up to signerCheckInterval
// after the retirement (until it notices).
func (s *Service) verifiesUntil(retiredAt time.Time) time.Time {
	return retiredAt.Add(signerCheckInterval + s.cfg.AccessTokenTTL + jwtLeeway)
}

// freshSigner reloads the keys when the signer was last checked against
// the store more than signerCheckInterval ago, so that a key rotated on
// another instance (or by `latchkey keys rotate`) signs here too. A
// failed check keeps the current signer and is tried again next time.
func (s *Service) freshSigner(now time.Time) {
	s.keys.mu.RLock()
	due := now.Sub(s.keys.checked) >= signerCheckInterval
	s.keys.mu.RUnlock()
	if !due || !s.keys.loadMu.TryLock() {
		return // fresh, or another request is reloading
	}
	defer s.keys.loadMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if keys, err := s.st.SigningKeys(ctx); err == nil {
		_ = s.installKeys(keys) // sets checked; on failure the signer stays
	}
}

// RotateSigningKey makes a new signing key current and retires the others
// (they keep verifying until their tokens have expired). This instance
// signs with it at once; the others within signerCheckInterval.
func (s *Service) RotateSigningKey(ctx context.Context) (*SigningKey, error) {
	k, err := s.newSigningKey()
	if err != nil {
		return nil, err
	}
	if err := s.st.CreateSigningKeyRetiring(ctx, k, s.now()); err != nil {
		return nil, fmt.Errorf("rotate signing key: %w", err)
	}
	s.keys.loadMu.Lock()
	defer s.keys.loadMu.Unlock()
	keys, err := s.st.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("reload signing keys: %w", err)
	}
	return k, s.installKeys(keys)
}

// KeyStatus describes a stored signing key for `latchkey keys list`.
type KeyStatus struct {
	ID        string
	CreatedAt time.Time
	RetiredAt *time.Time
	// Current: it signs new tokens. VerifiesUntil: when a retired key
	// leaves the JWKS (nil for the current one).
	Current       bool
	VerifiesUntil *time.Time
}

// SigningKeyStatus lists the stored signing keys, newest first.
func (s *Service) SigningKeyStatus(ctx context.Context) ([]KeyStatus, error) {
	keys, err := s.st.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	cur := currentKey(keys)
	out := make([]KeyStatus, len(keys))
	for i, k := range keys {
		out[i] = KeyStatus{ID: k.ID, CreatedAt: k.CreatedAt, RetiredAt: k.RetiredAt, Current: cur != nil && cur.ID == k.ID}
		if k.RetiredAt != nil {
			until := s.verifiesUntil(*k.RetiredAt)
			out[i].VerifiesUntil = &until
		}
	}
	return out, nil
}

// errUnknownKey is the reason a token naming no usable key is refused.
var errUnknownKey = errors.New("unknown signing key")

// publicKey returns the key that verifies tokens with this kid, going back
// to the store (rate-limited) when the kid is unknown, since another
// instance may have created it.
func (s *Service) publicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	k, ok := s.keys.lookup(kid)
	if !ok {
		reloaded, err := s.reloadKeys(ctx)
		if err != nil {
			return nil, err
		}
		if reloaded {
			k, ok = s.keys.lookup(kid)
		}
	}
	if !ok || !s.keyVerifies(k.retiredAt, s.now()) {
		return nil, errUnknownKey
	}
	return k.pub, nil
}

// JWKS returns the public keys that verify access tokens: the current ones
// and those retired too recently for their tokens to have expired.
func (s *Service) JWKS(ctx context.Context) ([]JWK, error) {
	keys, err := s.st.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	now := s.now()
	out := make([]JWK, 0, len(keys))
	for _, k := range keys {
		if !s.keyVerifies(k.RetiredAt, now) {
			continue
		}
		out = append(out, JWK{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.ID,
			Use: "sig",
			Alg: "EdDSA",
		})
	}
	return out, nil
}
