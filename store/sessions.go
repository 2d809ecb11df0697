package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// liveSession is the condition for a session that is neither revoked nor
// expired at the bound time.
const liveSession = "revoked_at IS NULL AND expires_at > ?"

// CreateSession inserts a session and, when rt is not nil, its first
// refresh token, in one transaction.
func (db *DB) CreateSession(ctx context.Context, s *auth.Session, rt *auth.RefreshToken) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := createSession(tx, s, rt); err != nil {
			return err
		}
		return p.write(tx)
	})
	return translate("create session", err)
}

func createSession(tx *gorm.DB, s *auth.Session, rt *auth.RefreshToken) error {
	row := toSessionRow(s)
	if err := tx.Create(&row).Error; err != nil {
		return err
	}
	// A session starts with a sign-in (or a registration): the admin
	// listing shows when (migration 0006).
	if err := tx.Model(&userRow{}).Where("id = ?", row.UserID).Update("last_sign_in_at", row.CreatedAt).Error; err != nil {
		return err
	}
	if rt == nil {
		return nil
	}
	tok := toRefreshTokenRow(rt)
	return tx.Create(&tok).Error
}

// SessionByID returns a session, live or not.
func (db *DB) SessionByID(ctx context.Context, id string) (*auth.Session, error) {
	id, err := parseID(id)
	if err != nil {
		return nil, err
	}
	var row sessionRow
	if err := db.gorm.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, translate("session by id", err)
	}
	s := row.toAuth()
	return &s, nil
}

// ListSessions returns the user's live sessions at now, newest first, at
// most limit (no limit when limit <= 0).
func (db *DB) ListSessions(ctx context.Context, userID string, now time.Time, limit int) ([]auth.Session, error) {
	userID, err := parseID(userID)
	if err != nil {
		return []auth.Session{}, nil
	}
	q := db.gorm.WithContext(ctx).
		Where("user_id = ? AND "+liveSession, userID, ts(now)).
		Order("created_at DESC, id DESC")
	if limit > 0 {
		q = q.Limit(limit)
	}
	var rows []sessionRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, translate("list sessions", err)
	}
	out := make([]auth.Session, len(rows))
	for i := range rows {
		out[i] = rows[i].toAuth()
	}
	return out, nil
}

// RevokeSession revokes one live session of the user; ErrNotFound when the
// user has no such live session.
func (db *DB) RevokeSession(ctx context.Context, userID, sessionID string, now time.Time) error {
	userID, err := parseID(userID)
	if err != nil {
		return err
	}
	sessionID, err = parseID(sessionID)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		res := tx.Model(&sessionRow{}).
			Where("id = ? AND user_id = ? AND "+liveSession, sessionID, userID, ts(now)).
			Update("revoked_at", ts(now))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		return p.write(tx)
	})
	return translate("revoke session", err)
}

// RevokeUserSessions revokes every live session of the user except exceptID
// (which may be empty).
// The context's events are written in the same transaction.
func (db *DB) RevokeUserSessions(ctx context.Context, userID, exceptID string, now time.Time) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := revokeUserSessions(tx, userID, exceptID, now); err != nil {
			return err
		}
		return p.write(tx)
	})
	return translate("revoke user sessions", err)
}

func revokeUserSessions(g *gorm.DB, userID, exceptID string, now time.Time) error {
	userID, err := parseID(userID)
	if err != nil {
		return nil // no such user, so no sessions
	}
	q := g.Model(&sessionRow{}).
		Where("user_id = ? AND "+liveSession, userID, ts(now))
	if except, err := parseID(exceptID); err == nil {
		q = q.Where("id <> ?", except)
	}
	// (An exceptID that is not a UUID matches no session: revoke them all.)
	if err := q.Update("revoked_at", ts(now)).Error; err != nil {
		return translate("revoke user sessions", err)
	}
	return nil
}

// RevokeSessionByRefreshHash revokes the session the refresh token with
// this hash belongs to, rotated or not. A session already revoked keeps its
// first revocation time. ErrNotFound when no token has that hash.
func (db *DB) RevokeSessionByRefreshHash(ctx context.Context, hash []byte, now time.Time) error {
	if len(hash) == 0 {
		return auth.ErrNotFound
	}
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		var tok refreshTokenRow
		if err := tx.Select("session_id").Where("hash = ?", hash).Take(&tok).Error; err != nil {
			return err
		}
		if err := tx.Model(&sessionRow{}).
			Where("id = ? AND revoked_at IS NULL", tok.SessionID).
			Update("revoked_at", ts(now)).Error; err != nil {
			return err
		}
		// The caller knows only the token: its events are about the
		// token's session and that session's user.
		var sess sessionRow
		if err := tx.Select("id", "user_id").Where("id = ?", tok.SessionID).Take(&sess).Error; err != nil {
			return err
		}
		p.events = attribute(p.events, sess.UserID, sess.ID)
		return p.write(tx)
	})
	return translate("revoke session by refresh token", err)
}

// errNotRotated rolls back a rotation that turned out not to apply.
var errNotRotated = errors.New("not rotated")

// RotateRefreshToken retires the refresh token with this hash in favour of
// next, atomically: see auth.Store. next is inserted in the old token's
// session (next.SessionID, when set, must name it). On rotation the old
// token is returned as now stored, with RotatedAt and SuccessorEnc set.
//
// The rotation runs on database/sql (statements in hotpath.go): the
// session slides if it is live and its account not disabled, the token is
// retired if it is current and unexpired, the successor is inserted. The
// decision is made by conditional statements whose RETURNING rows say
// whether they applied, so of concurrent calls exactly one rotates: on
// PostgreSQL the row locks serialise them and the losers re-check the
// condition against the winner's committed rows; on SQLite one writer
// runs at a time (a group commit: sqlite_writer.go).
func (db *DB) RotateRefreshToken(ctx context.Context, hash []byte, next *auth.RefreshToken, successorEnc []byte, now time.Time) (*auth.RefreshToken, bool, error) {
	if len(hash) == 0 {
		return nil, false, auth.ErrNotFound
	}
	if next.SessionID != "" {
		// A token's session never changes, so this holds at the rotation.
		cur, err := db.refreshToken(ctx, hash)
		if err != nil {
			return nil, false, err
		}
		if cur.SessionID != next.SessionID {
			return nil, false, fmt.Errorf("rotate refresh token: next token belongs to session %s, not the old token's", next.SessionID)
		}
	}
	stored, owner, err := db.rotate(ctx, hash, next, successorEnc, now)
	switch {
	case err == nil:
		old := stored.toAuth()
		old.UserID = owner
		return old, true, nil
	case errors.Is(err, errNotRotated):
		// Nothing changed: report the token as it now stands (a concurrent
		// winner's RotatedAt and SuccessorEnc included).
		cur, err := db.refreshToken(ctx, hash)
		if err != nil {
			return nil, false, err
		}
		return cur.toAuth(), false, nil
	default:
		return nil, false, db.sqlError("rotate refresh token", err)
	}
}

// refreshToken reads the refresh token with this hash as it stands.
func (db *DB) refreshToken(ctx context.Context, hash []byte) (refreshTokenRow, error) {
	var cur refreshTokenRow
	err := db.gorm.WithContext(ctx).Where("hash = ?", hash).Take(&cur).Error
	return cur, translate("rotate refresh token", err)
}

// rotate is RotateRefreshToken's statements: the old token as now stored
// and its session's user, or errNotRotated.
func (db *DB) rotate(ctx context.Context, hash []byte, next *auth.RefreshToken, successorEnc []byte, now time.Time) (stored refreshTokenRow, owner string, err error) {
	at, expires := ts(now).bind(db.dialect), ts(next.ExpiresAt).bind(db.dialect)
	if db.dialect == DialectPostgres {
		err = db.sql.QueryRowContext(ctx, db.stmts.rotate, hash, at, at, nullBytes(successorEnc).arg(), hash, at,
			at, expires, next.Hash, ts(next.CreatedAt).bind(db.dialect), expires).Scan(append([]any{&owner}, fields(&stored)...)...)
		if errors.Is(err, sql.ErrNoRows) {
			err = errNotRotated
		}
		return stored, owner, err
	}
	// SQLite: one job of a group commit among this process's writers
	// (sqlite_writer.go; every SQLite DB has the pool, see Open).
	err = db.gorm.ConnPool.(*serialPool).inGroup(ctx, func(ctx context.Context, tx txStmts) error {
		var sessionID string
		err := tx.QueryRowContext(ctx, db.stmts.slideSession, at, expires, hash, at).Scan(&sessionID, &owner)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotRotated // no such token, or its session is dead or its account disabled
		}
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, db.stmts.retireToken, at, nullBytes(successorEnc).arg(), hash, at).Scan(fields(&stored)...)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotRotated // rotated already, or expired
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, db.stmts.insertToken, next.Hash, sessionID, ts(next.CreatedAt).bind(db.dialect), expires)
		return err
	})
	return stored, owner, err
}
