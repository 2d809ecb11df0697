package auth

import (
	"context"
	"time"
)

// Store is the persistence the domain needs. It is implemented by package
// store on GORM (SQLite and PostgreSQL). Every method that changes more than
// one row does so in one transaction. Methods return ErrNotFound for a
// missing row, ErrEmailTaken / ErrUsernameTaken for uniqueness violations on
// those columns, and wrap anything else.
//
// All times are passed in UTC, truncated to the microsecond.
type Store interface {
	TwoFactorStore // auth/twofactor.go
	MailStore      // auth/mail.go
	AdminStore     // auth/admin.go

	// Ping checks the database answers (readiness).
	Ping(ctx context.Context) error

	// CreateUser inserts a user together with its first session and that
	// session's first refresh token (registration signs the user in). If s
	// is nil only the user is inserted.
	CreateUser(ctx context.Context, u *User, s *Session, rt *RefreshToken) error
	// UserByID returns the user with that id.
	UserByID(ctx context.Context, id string) (*User, error)
	// UserBySecretHash finds a secret account by the SHA-256 of its secret.
	UserBySecretHash(ctx context.Context, hash []byte) (*User, error)
	// UserByEmail finds a user by email, case-insensitively.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UserByUsername finds a user by username, case-insensitively.
	UserByUsername(ctx context.Context, username string) (*User, error)
	// Writes own their columns: no method saves back a whole user read
	// earlier, so a concurrent change (a reset, a rehash, an admin's
	// flag) is never undone.
	//
	// UpdateProfile writes the profile fields p sets (name, username,
	// bio, location, birth date, locale, timezone) and UpdatedAt = now,
	// nothing else, and returns the user as stored after. ErrNotFound for
	// no such user; ErrUsernameTaken.
	UpdateProfile(ctx context.Context, userID string, p UserPatch, now time.Time) (*User, error)
	// UpgradePasswordHash replaces the password hash old by next (the
	// same password, new parameters) only if the stored hash is still
	// old; ErrNotFound otherwise (the password changed meanwhile).
	UpgradePasswordHash(ctx context.Context, userID, old, next string, now time.Time) error
	// ChangePassword sets the password hash, only if the password is
	// still at version (then version+1), and in the same transaction
	// revokes every live session of the user except exceptID (which may
	// be empty) and deletes the user's email-change and reset tokens.
	// ErrNotFound when the user is gone or the password changed since.
	ChangePassword(ctx context.Context, userID string, version int64, hash, exceptID string, now time.Time) error
	// DeleteUser removes the user and, in the same transaction, its
	// sessions, refresh tokens and avatar.
	DeleteUser(ctx context.Context, id string) error

	// CreateSession inserts a session and its first refresh token.
	CreateSession(ctx context.Context, s *Session, rt *RefreshToken) error
	// SessionByID returns a session, live or not.
	SessionByID(ctx context.Context, id string) (*Session, error)
	// UserByLiveSession returns the user of the session with this id when
	// that session is live at now (not revoked, not expired), in one
	// query; ErrNotFound otherwise.
	UserByLiveSession(ctx context.Context, sessionID string, now time.Time) (*User, error)
	// ListSessions returns the user's live sessions at now (not revoked, not
	// expired), newest first, at most limit.
	ListSessions(ctx context.Context, userID string, now time.Time, limit int) ([]Session, error)
	// RevokeSession revokes one live session of the user; ErrNotFound when
	// the user has no such live session.
	RevokeSession(ctx context.Context, userID, sessionID string, now time.Time) error
	// RevokeUserSessions revokes every live session of the user except
	// exceptID (which may be empty).
	RevokeUserSessions(ctx context.Context, userID, exceptID string, now time.Time) error
	// EndAllSessions revokes every live session of the user and, in the
	// same transaction, deletes the user's email-change tokens.
	EndAllSessions(ctx context.Context, userID string, now time.Time) error
	// RevokeSessionByRefreshHash revokes the session that the refresh token
	// with this hash belongs to (rotated or not). ErrNotFound when no token
	// has that hash. The context's events that name no user and no session
	// are recorded as about that session and its user.
	RevokeSessionByRefreshHash(ctx context.Context, hash []byte, now time.Time) error

	// RotateRefreshToken retires the refresh token with this hash in favour
	// of next, atomically: only if the token is not yet rotated, not
	// expired at now, its session is live and its account not disabled. Then, in the same
	// transaction, it marks the token rotated at now with successorEnc,
	// inserts next (whose SessionID the store sets to the old token's), and sets the session's LastUsed to now and ExpiresAt to
	// next.ExpiresAt; it returns the old token (with UserID, its session's
	// user) and rotated=true. Otherwise
	// it changes nothing and returns the token as stored and rotated=false,
	// so the caller can tell a retry within the grace from reuse. Of many
	// concurrent calls with one hash, exactly one rotates. ErrNotFound when
	// no token has that hash.
	RotateRefreshToken(ctx context.Context, hash []byte, next *RefreshToken, successorEnc []byte, now time.Time) (old *RefreshToken, rotated bool, err error)

	// SigningKeys returns every stored signing key, newest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// CreateSigningKey stores a new signing key.
	CreateSigningKey(ctx context.Context, k *SigningKey) error

	// PutAvatar creates or replaces the user's avatar and sets HasAvatar.
	PutAvatar(ctx context.Context, a *Avatar) error
	// AvatarByUserID returns the user's avatar; ErrNotFound when none.
	AvatarByUserID(ctx context.Context, userID string) (*Avatar, error)
	// DeleteAvatar removes the user's avatar, if any, and clears HasAvatar.
	DeleteAvatar(ctx context.Context, userID string) error
}
