package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// adminUserRow is a user with what admins see besides (migration 0006).
type adminUserRow struct {
	User         userRow    `gorm:"embedded"`
	LastSignInAt *timestamp `gorm:"column:last_sign_in_at"`
	LiveSessions int        `gorm:"column:live_sessions"`
}

func (r *adminUserRow) toAuth() auth.AdminUser {
	return auth.AdminUser{User: *r.User.toAuth(), LastSignInAt: timePtr(r.LastSignInAt), LiveSessions: r.LiveSessions}
}

// adminUsers selects users with their live session count at now.
func (db *DB) adminUsers(ctx context.Context, now time.Time) *gorm.DB {
	return db.gorm.WithContext(ctx).Table("users").Select(
		"users.*, (SELECT count(*) FROM sessions WHERE sessions.user_id = users.id AND sessions."+liveSession+") AS live_sessions",
		ts(now))
}

// likeEscaper escapes the LIKE wildcards of a search term (with \ as the
// ESCAPE character).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// ListUsers returns accounts newest first, matching q, after the cursor.
// The search is a substring match, not indexed: fine for an admin screen.
func (db *DB) ListUsers(ctx context.Context, q string, after *auth.Cursor, now time.Time, limit int) ([]auth.AdminUser, error) {
	g := db.adminUsers(ctx, now)
	if q != "" {
		pat := "%" + likeEscaper.Replace(strings.ToLower(q)) + "%"
		g = g.Where(`(lower(coalesce(email, '')) LIKE ? ESCAPE '\' OR lower(coalesce(username, '')) LIKE ? ESCAPE '\' OR lower(name) LIKE ? ESCAPE '\')`, pat, pat, pat)
	}
	g = afterCursor(g, after)
	var rows []adminUserRow
	if err := g.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate("list users", err)
	}
	out := make([]auth.AdminUser, len(rows))
	for i := range rows {
		out[i] = rows[i].toAuth()
	}
	return out, nil
}

// AdminUserByID returns one account with its live session count.
func (db *DB) AdminUserByID(ctx context.Context, id string, now time.Time) (*auth.AdminUser, error) {
	id, err := parseID(id)
	if err != nil {
		return nil, err
	}
	var row adminUserRow
	if err := db.adminUsers(ctx, now).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, translate("admin user by id", err)
	}
	u := row.toAuth()
	return &u, nil
}

// lockAdmins serialises the transactions that can change who is an
// enabled admin. On SQLite every write transaction already holds the
// write lock from BEGIN (IMMEDIATE); on PostgreSQL a transaction-scoped
// advisory lock (per schema) makes them take turns, so two admins
// demoting each other cannot both see the other still in place.
func (db *DB) lockAdmins(tx *gorm.DB) error {
	if db.dialect != DialectPostgres {
		return nil
	}
	return tx.Exec("SELECT pg_advisory_xact_lock(hashtext('latchkey.admins.' || coalesce(current_schema(), '')))").Error
}

// enabledAdmins counts the enabled admins as tx sees them.
func enabledAdmins(tx *gorm.DB) (int64, error) {
	var n int64
	err := tx.Model(&userRow{}).Where("admin = ? AND disabled = ?", true, false).Count(&n).Error
	return n, err
}

// SetUserFlags applies an admin change in one serialised transaction; see
// auth.AdminStore.
func (db *DB) SetUserFlags(ctx context.Context, id string, ch auth.FlagChange, now time.Time, events func(before auth.User) ([]auth.Event, error)) (*auth.User, error) {
	id, err := parseID(id)
	if err != nil {
		return nil, err
	}
	var after *auth.User
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := db.lockAdmins(tx); err != nil {
			return err
		}
		var row userRow
		if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		before := row.toAuth()
		evs, err := events(*before)
		if err != nil {
			return err
		}
		set := map[string]any{}
		if ch.Disabled != nil {
			set["disabled"] = *ch.Disabled
		}
		if ch.Admin != nil {
			set["admin"] = *ch.Admin
		}
		if ch.EmailConfirmed != nil {
			set["email_confirmed"] = *ch.EmailConfirmed
		}
		if len(set) == 0 {
			after = before
			return nil
		}
		set["updated_at"] = ts(now)
		if err := tx.Model(&userRow{}).Where("id = ?", id).Updates(set).Error; err != nil {
			return err
		}
		if ch.Disabled != nil && *ch.Disabled {
			if err := revokeUserSessions(tx, id, "", now); err != nil {
				return err
			}
		}
		if before.Admin && !before.Disabled {
			n, err := enabledAdmins(tx)
			if err != nil {
				return err
			}
			if n == 0 {
				return auth.ErrLastAdmin
			}
		}
		p.events = append(p.events, evs...)
		if err := p.write(tx); err != nil {
			return err
		}
		if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		after = row.toAuth()
		return nil
	})
	if err != nil {
		return nil, passDomain("set user flags", err)
	}
	return after, nil
}

// passDomain returns the domain errors a transaction's callback raised as
// they are, and translates the rest.
func passDomain(op string, err error) error {
	for _, e := range []error{auth.ErrLastAdmin, auth.ErrNotApplicable, auth.ErrNotFound} {
		if errors.Is(err, e) {
			return e
		}
	}
	return translate(op, err)
}

// AdminDeleteUser deletes an account as DeleteUser does, refusing the
// last enabled admin.
func (db *DB) AdminDeleteUser(ctx context.Context, id string) error {
	id, err := parseID(id)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := db.lockAdmins(tx); err != nil {
			return err
		}
		var row userRow
		if err := tx.Select("admin", "disabled").Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		if err := deleteUser(tx, id, p); err != nil {
			return err
		}
		if row.Admin && !row.Disabled {
			n, err := enabledAdmins(tx)
			if err != nil {
				return err
			}
			if n == 0 {
				return auth.ErrLastAdmin
			}
		}
		return nil
	})
	return passDomain("delete user", err)
}

// deleteUser deletes the account (its sessions, tokens and avatar go with
// it: ON DELETE CASCADE) and its events, then writes p (the
// account_deleted event), in tx.
func deleteUser(tx *gorm.DB, id string, p pendingWrites) error {
	if err := tx.Where("user_id = ?", id).Delete(&eventRow{}).Error; err != nil {
		return err
	}
	res := tx.Where("id = ?", id).Delete(&userRow{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return p.write(tx)
}

// CreateSigningKeyRetiring stores k and retires every other current key,
// in one transaction: from then on k is the only key that signs.
func (db *DB) CreateSigningKeyRetiring(ctx context.Context, k *auth.SigningKey, now time.Time) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&signingKeyRow{}).Where("retired_at IS NULL").Update("retired_at", ts(now)).Error; err != nil {
			return err
		}
		row := toSigningKeyRow(k)
		return tx.Create(&row).Error
	})
	return translate("rotate signing key", err)
}
