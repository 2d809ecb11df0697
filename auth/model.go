// Package auth is Latchkey's domain: accounts, credentials, sessions, token
// rotation and the rules around them. It knows nothing of HTTP or SQL: it
// talks to persistence through the Store interface it defines.
package auth

import "time"

// AccountType tells how an account proves who it is.
type AccountType string

const (
	// AccountSecret is a name-only account whose credential is a random
	// secret handed out by the server.
	AccountSecret AccountType = "secret"
	// AccountPassword is an email (and optional username) plus password.
	AccountPassword AccountType = "password"
)

// User is an account. Credential fields are never sent to clients.
type User struct {
	ID               string
	AccountType      AccountType
	Name             string
	Username         *string // case preserved; unique case-insensitively
	Email            *string // normalised (lower case); unique
	EmailConfirmed   bool
	Bio              *string
	Locale           string // BCP 47
	Timezone         string // IANA
	Location         *string
	BirthDate        *string // YYYY-MM-DD
	HasAvatar        bool    // maintained by the store with the avatar
	TwoFactorEnabled bool
	Admin            bool
	Disabled         bool
	CreatedAt        time.Time
	UpdatedAt        time.Time

	// SecretHash is the SHA-256 of a secret account's secret (unique, for
	// look-up); SecretEnc is the same secret sealed under the master key so
	// that GET /me/secret can show it again.
	SecretHash []byte
	SecretEnc  []byte
	// PasswordHash is the PHC string of a password account's password.
	PasswordHash string
	// PasswordVersion counts the changes of the password (a change or a
	// reset; a rehash of the same password does not count). A password
	// change applies only to the version whose password it checked.
	PasswordVersion int64

	// TOTPKeyEnc is the TOTP key of two-factor authentication, sealed under
	// the master key; set while TwoFactorEnabled. TOTPPendingEnc is a key
	// enrolled but not confirmed yet. TOTPLastStep is the last time step
	// whose code was accepted (0: none); no step up to it is accepted again.
	// The two-factor store methods maintain these three and
	// TwoFactorEnabled together; no other method writes them.
	TOTPKeyEnc     []byte
	TOTPPendingEnc []byte
	TOTPLastStep   int64
}

// Session is one signed-in device: the family of refresh tokens descended
// from one sign-in. Access tokens name it (sid) and die with it.
type Session struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	LastUsed  time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
	UserAgent string // empty when unknown
	IP        string // empty when unknown
}

// Live reports whether the session can still be used at now.
func (s *Session) Live(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// RefreshToken is the stored form of an opaque refresh token: only its
// SHA-256 is kept. When it is rotated, the successor's plaintext is kept
// sealed (SuccessorEnc) so that a retry within the reuse grace receives the
// same successor.
type RefreshToken struct {
	Hash         []byte
	SessionID    string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	RotatedAt    *time.Time
	SuccessorEnc []byte
	// UserID is the user of the token's session. Not a column: set on the
	// token RotateRefreshToken returns when it rotated, so that refresh
	// needs no further query.
	UserID string
}

// SigningKey is an Ed25519 key that signs access tokens. The private half is
// sealed under the master key; every instance shares the keys through the
// database.
type SigningKey struct {
	ID         string // the JWT kid
	PrivateEnc []byte // sealed ed25519 seed
	Public     []byte // ed25519 public key
	CreatedAt  time.Time
	RetiredAt  *time.Time // no longer signs; still verifies until tokens expire
}

// Avatar is a user's picture, as re-encoded by the server.
type Avatar struct {
	UserID      string
	ContentType string // image/png or image/jpeg
	Data        []byte
	ETag        string
	UpdatedAt   time.Time
}
