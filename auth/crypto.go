package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

const (
	masterKeySize = 32 // AES-256
	tokenBytes    = 32 // 256-bit opaque tokens
)

// Purposes of sealed values. Each is bound into the ciphertext as
// associated data, so a value sealed for one purpose (or one owner) cannot
// be opened as another.
const (
	purposeAccountSecret    = "account-secret"    // owner: user id
	purposeSigningKey       = "signing-key"       // owner: key id
	purposeRefreshSuccessor = "refresh-successor" // owner: predecessor's hash
)

// Kinds of hashed tokens. The kind is hashed with the token, so a token of
// one kind never matches a stored hash of another.
const (
	kindSecret  = "secret"
	kindRefresh = "refresh"
)

// purposeRecoveryKey is the HKDF info of the key under which recovery
// codes are hashed (HMAC-SHA-256): a key of its own, derived from the
// master key, used for nothing else.
const purposeRecoveryKey = "latchkey recovery-code hmac v1"

// deriveKey derives a 32-byte key for purpose from the master key
// (HKDF-SHA-256, no salt: the master key is uniformly random).
func deriveKey(master []byte, purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, master, nil, purpose, 32)
}

// errSealed is returned when a sealed value does not open: wrong key,
// wrong purpose or owner, or tampered data.
var errSealed = errors.New("sealed value does not open")

// sealer encrypts with AES-256-GCM under the master key.
type sealer struct {
	aead cipher.AEAD
	rand io.Reader
}

func newSealer(key []byte, rand io.Reader) (*sealer, error) {
	if len(key) != masterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes", masterKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, rand: rand}, nil
}

// associatedData binds a sealed value to its purpose and owner. The purpose
// never contains NUL, so the encoding is unambiguous.
func associatedData(purpose, owner string) []byte {
	return []byte(purpose + "\x00" + owner)
}

// seal returns nonce || ciphertext of plaintext for purpose and owner.
func (c *sealer) seal(purpose, owner string, plaintext []byte) ([]byte, error) {
	ns := c.aead.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+c.aead.Overhead())
	if _, err := io.ReadFull(c.rand, out); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return c.aead.Seal(out, out, plaintext, associatedData(purpose, owner)), nil
}

// open reverses seal; it fails unless purpose and owner are those the value
// was sealed with.
func (c *sealer) open(purpose, owner string, sealed []byte) ([]byte, error) {
	ns := c.aead.NonceSize()
	if len(sealed) < ns+c.aead.Overhead() {
		return nil, errSealed
	}
	out, err := c.aead.Open(nil, sealed[:ns], sealed[ns:], associatedData(purpose, owner))
	if err != nil {
		return nil, errSealed
	}
	return out, nil
}

// newToken returns 256 random bits, base64url without padding.
func newToken(rand io.Reader) (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// tokenHash is the stored form of a token: SHA-256 over kind ":" token.
func tokenHash(kind, token string) []byte {
	h := sha256.Sum256([]byte(kind + ":" + token))
	return h[:]
}

// hashEqual compares two hashes in constant time.
func hashEqual(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}
