package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// CreateUser inserts u and, when s is not nil, s and rt (when not nil) in
// one transaction.
func (db *DB) CreateUser(ctx context.Context, u *auth.User, s *auth.Session, rt *auth.RefreshToken) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row := toUserRow(u)
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if s == nil {
			return nil
		}
		return createSession(tx, s, rt)
	})
	return translate("create user", err)
}

// UserByID returns the user with that id.
func (db *DB) UserByID(ctx context.Context, id string) (*auth.User, error) {
	id, err := parseID(id)
	if err != nil {
		return nil, err
	}
	return db.findUser(ctx, "user by id", "id = ?", id)
}

// UserBySecretHash finds a secret account by the SHA-256 of its secret.
func (db *DB) UserBySecretHash(ctx context.Context, hash []byte) (*auth.User, error) {
	if len(hash) == 0 {
		return nil, auth.ErrNotFound
	}
	return db.findUser(ctx, "user by secret", "secret_hash = ?", hash)
}

// UserByEmail finds a user by email, case-insensitively.
func (db *DB) UserByEmail(ctx context.Context, email string) (*auth.User, error) {
	// lower(email) is what the unique index covers, so the index serves it.
	return db.findUser(ctx, "user by email", "lower(email) = lower(?)", email)
}

// UserByUsername finds a user by username, case-insensitively.
func (db *DB) UserByUsername(ctx context.Context, username string) (*auth.User, error) {
	return db.findUser(ctx, "user by username", "lower(username) = lower(?)", username)
}

func (db *DB) findUser(ctx context.Context, op, cond string, arg any) (*auth.User, error) {
	var row userRow
	if err := db.gorm.WithContext(ctx).Where(cond, arg).Take(&row).Error; err != nil {
		return nil, translate(op, err)
	}
	return row.toAuth(), nil
}

// UpdateUser writes every profile and credential field of u (not HasAvatar,
// not CreatedAt) and UpdatedAt. A zero u.UpdatedAt is set to the current
// time first.
func (db *DB) UpdateUser(ctx context.Context, u *auth.User) error {
	return updateUser(db.gorm.WithContext(ctx), u)
}

// UpdateCredentials writes u as UpdateUser does and revokes every live
// session of the user but exceptID, in one transaction: a new password and
// the end of the old sessions happen together or not at all.
func (db *DB) UpdateCredentials(ctx context.Context, u *auth.User, exceptID string, now time.Time) error {
	return db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := updateUser(tx, u); err != nil {
			return err
		}
		return revokeUserSessions(tx, u.ID, exceptID, now)
	})
}

func updateUser(g *gorm.DB, u *auth.User) error {
	id, err := parseID(u.ID)
	if err != nil {
		return err
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
	}
	r := toUserRow(u)
	res := g.Model(&userRow{}).Where("id = ?", id).Updates(map[string]any{
		"account_type":    r.AccountType,
		"name":            r.Name,
		"username":        r.Username,
		"email":           r.Email,
		"email_confirmed": r.EmailConfirmed,
		"bio":             r.Bio,
		"locale":          r.Locale,
		"timezone":        r.Timezone,
		"location":        r.Location,
		"birth_date":      r.BirthDate,
		"admin":           r.Admin,
		"disabled":        r.Disabled,
		"secret_hash":     r.SecretHash,
		"secret_enc":      r.SecretEnc,
		"password_hash":   r.PasswordHash,
		"updated_at":      r.UpdatedAt,
	})
	if res.Error != nil {
		return translate("update user", res.Error)
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}

// DeleteUser removes the user; its sessions, refresh tokens and avatar go
// with it in the same statement (ON DELETE CASCADE).
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	id, err := parseID(id)
	if err != nil {
		return err
	}
	res := db.gorm.WithContext(ctx).Where("id = ?", id).Delete(&userRow{})
	if res.Error != nil {
		return translate("delete user", res.Error)
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}
