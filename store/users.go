package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// CreateUser inserts u and, when s is not nil, s and rt (when not nil) in
// one transaction.
func (db *DB) CreateUser(ctx context.Context, u *auth.User, s *auth.Session, rt *auth.RefreshToken) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		row := toUserRow(u)
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if s != nil {
			if err := createSession(tx, s, rt); err != nil {
				return err
			}
		}
		return p.write(tx)
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

// Writes own their columns: each method below sets only the columns its
// operation changes, so a concurrent request's change is never put back
// (no whole-row save of a user read earlier exists).

// UpdateProfile writes the profile fields p sets, and UpdatedAt, and
// returns the user as stored after, in one transaction.
func (db *DB) UpdateProfile(ctx context.Context, userID string, p auth.UserPatch, now time.Time) (*auth.User, error) {
	id, err := parseID(userID)
	if err != nil {
		return nil, err
	}
	values := map[string]any{"updated_at": ts(now)}
	if p.Name != nil {
		values["name"] = *p.Name
	}
	if p.Locale != nil {
		values["locale"] = *p.Locale
	}
	if p.Timezone != nil {
		values["timezone"] = *p.Timezone
	}
	for col, f := range map[string]auth.Field[string]{
		"username": p.Username, "bio": p.Bio, "location": p.Location, "birth_date": p.BirthDate,
	} {
		if f.Set {
			values[col] = f.Value
		}
	}
	var row userRow
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&userRow{}).Where("id = ?", id).Updates(values)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		return tx.Where("id = ?", id).Take(&row).Error
	})
	if err != nil {
		return nil, translate("update profile", err)
	}
	return row.toAuth(), nil
}

// UpgradePasswordHash replaces the user's password hash old by next (the
// same password under new parameters) only if it is still old; see
// auth.Store.
func (db *DB) UpgradePasswordHash(ctx context.Context, userID, old, next string, now time.Time) error {
	id, err := parseID(userID)
	if err != nil {
		return err
	}
	res := db.gorm.WithContext(ctx).Model(&userRow{}).
		Where("id = ? AND password_hash = ?", id, old).
		Updates(map[string]any{"password_hash": next, "updated_at": ts(now)})
	if res.Error != nil {
		return translate("upgrade password hash", res.Error)
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}

// ChangePassword sets a new password hash if the password is still at
// version, revokes every live session of the user but exceptID and voids
// the user's pending email changes and reset links, in one transaction;
// see auth.Store.
func (db *DB) ChangePassword(ctx context.Context, userID string, version int64, hash, exceptID string, now time.Time) error {
	id, err := parseID(userID)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		res := tx.Model(&userRow{}).Where("id = ? AND password_version = ?", id, version).
			Updates(map[string]any{
				"password_hash":    hash,
				"password_version": gorm.Expr("password_version + 1"),
				"updated_at":       ts(now),
			})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		if err := revokeUserSessions(tx, id, exceptID, now); err != nil {
			return err
		}
		if err := p.write(tx); err != nil {
			return err
		}
		// A pending change of address may be an intruder's; a reset link
		// would replace the password just chosen.
		return deleteMailTokens(tx, id, auth.TokenEmailChange, auth.TokenReset)
	})
	return translate("change password", err)
}

// EndAllSessions revokes every live session of the user and voids the
// user's pending email changes, in one transaction (logout with scope
// all).
func (db *DB) EndAllSessions(ctx context.Context, userID string, now time.Time) error {
	id, err := parseID(userID)
	if err != nil {
		return nil // no such user, so nothing to end
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := revokeUserSessions(tx, id, "", now); err != nil {
			return err
		}
		if err := p.write(tx); err != nil {
			return err
		}
		return deleteMailTokens(tx, id, auth.TokenEmailChange)
	})
	return translate("end all sessions", err)
}

// DeleteUser removes the user; its sessions, refresh tokens and avatar go
// with it (ON DELETE CASCADE), and its events, in one transaction that
// also writes the context's events (account_deleted).
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	id, err := parseID(id)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return deleteUser(tx, id, takePending(ctx))
	})
	return translate("delete user", err)
}

// normalizeEmails rewrites every stored address that is not in
// auth.NormalizeEmail's form (written by a release before IDNA and NFC
// normalisation: a Unicode or NFD domain), together with the address of
// its user's pending mailed tokens, so that look-ups by the normal form
// find it. Only addresses with a character outside printable ASCII can
// differ, so only those are read; running it again is a no-op. An address
// whose normal form another account already has is left as it is and
// logged: the two accounts were one mailbox, and an operator must decide.
func (db *DB) normalizeEmails(ctx context.Context) error {
	nonASCII := "email GLOB '*[^ -~]*'"
	if db.dialect == DialectPostgres {
		nonASCII = "email ~ '[^ -~]'"
	}
	var rows []userRow
	if err := db.gorm.WithContext(ctx).Select("id", "email").Where(nonASCII).Find(&rows).Error; err != nil {
		return translate("normalize emails", err)
	}
	for _, r := range rows {
		old := deref(r.Email)
		email, ok := auth.NormalizeEmail(old)
		if !ok || email == old {
			continue
		}
		err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Model(&userRow{}).Where("id = ? AND email = ?", r.ID, old).Update("email", email).Error; err != nil {
				return err
			}
			return tx.Model(&mailTokenRow{}).Where("user_id = ? AND email = ?", r.ID, old).Update("email", email).Error
		})
		switch err := translate("normalize email", err); {
		case errors.Is(err, auth.ErrEmailTaken):
			db.logger.WarnContext(ctx, "an account's address cannot be normalised: another account has its normal form",
				"user_id", r.ID)
		case err != nil:
			return err
		default:
			db.logger.InfoContext(ctx, "normalised an account's address (IDNA, NFC)", "user_id", r.ID)
		}
	}
	return nil
}
