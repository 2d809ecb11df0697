package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// Two-factor authentication. The TOTP state is on the users row; recovery
// codes and challenges have tables of their own (migration 0003).
//
// Every method that spends a code first updates the user's row with a
// condition that holds only if the code is still unspent, and reads the
// affected-row count: on PostgreSQL the row lock makes concurrent spenders
// wait and then re-check the condition against the winner's committed row;
// on SQLite transactions begin IMMEDIATE, one writer at a time. Taking the
// user's row first is also the order in which deleting a user cascades, so
// the two cannot deadlock.

type recoveryCodeRow struct {
	UserID    string    `gorm:"column:user_id;primaryKey"`
	Hash      []byte    `gorm:"column:hash;primaryKey"`
	CreatedAt timestamp `gorm:"column:created_at;autoCreateTime:false"`
	// Keyed is false for a code stored by an earlier release as its plain
	// SHA-256 (migration 0004), until RekeyRecoveryCodes rewrites it.
	Keyed bool `gorm:"column:keyed"`
}

func (recoveryCodeRow) TableName() string { return "recovery_codes" }

type challengeRow struct {
	Hash         []byte    `gorm:"column:hash;primaryKey"`
	UserID       string    `gorm:"column:user_id"`
	CreatedAt    timestamp `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt    timestamp `gorm:"column:expires_at"`
	AttemptsLeft int       `gorm:"column:attempts_left"`
	UserAgent    string    `gorm:"column:user_agent"`
	IP           string    `gorm:"column:ip"`
}

func (challengeRow) TableName() string { return "two_factor_challenges" }

func toChallengeRow(c *auth.TwoFactorChallenge) challengeRow {
	return challengeRow{
		Hash:         c.Hash,
		UserID:       c.UserID,
		CreatedAt:    ts(c.CreatedAt),
		ExpiresAt:    ts(c.ExpiresAt),
		AttemptsLeft: c.AttemptsLeft,
		UserAgent:    c.UserAgent,
		IP:           c.IP,
	}
}

func (r *challengeRow) toAuth() *auth.TwoFactorChallenge {
	return &auth.TwoFactorChallenge{
		Hash:         r.Hash,
		UserID:       r.UserID,
		CreatedAt:    r.CreatedAt.Time(),
		ExpiresAt:    r.ExpiresAt.Time(),
		AttemptsLeft: r.AttemptsLeft,
		UserAgent:    r.UserAgent,
		IP:           r.IP,
	}
}

// liveChallenge is the condition for a challenge that can be answered at
// the bound time.
const liveChallenge = "attempts_left > 0 AND expires_at > ?"

// SetPendingTwoFactor stores keyEnc as the user's pending TOTP key unless
// two-factor is on: see auth.TwoFactorStore.
func (db *DB) SetPendingTwoFactor(ctx context.Context, userID string, keyEnc []byte, now time.Time) error {
	id, err := parseID(userID)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&userRow{}).
			Where("id = ? AND NOT two_factor_enabled", id).
			Updates(map[string]any{"totp_pending_enc": nullBytes(keyEnc), "updated_at": ts(now)})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return twoFactorState(tx, id, auth.ErrAlreadyEnabled)
		}
		return nil
	})
	return translate("set pending two-factor key", err)
}

// EnableTwoFactor turns two-factor on with the pending key: see
// auth.TwoFactorStore.
func (db *DB) EnableTwoFactor(ctx context.Context, userID string, pendingEnc []byte, step int64, recoveryHashes [][]byte, now time.Time) error {
	id, err := parseID(userID)
	if err != nil {
		return err
	}
	if len(pendingEnc) == 0 {
		return auth.ErrInvalidCode
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		res := tx.Model(&userRow{}).
			Where("id = ? AND NOT two_factor_enabled AND totp_pending_enc = ? AND totp_last_step < ?", id, pendingEnc, step).
			Updates(map[string]any{
				"two_factor_enabled": true,
				"totp_key_enc":       nullBytes(pendingEnc),
				"totp_pending_enc":   nullBytes(nil),
				"totp_last_step":     step,
				"updated_at":         ts(now),
			})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			var row userRow
			if err := tx.Select("two_factor_enabled").Where("id = ?", id).Take(&row).Error; err != nil {
				return err
			}
			if row.TwoFactorEnabled {
				return auth.ErrAlreadyEnabled
			}
			return auth.ErrInvalidCode // the pending key was replaced, or the step used
		}
		if err := p.write(tx); err != nil {
			return err
		}
		return replaceRecoveryCodes(tx, id, recoveryHashes, now)
	})
	return translate("enable two-factor", err)
}

func replaceRecoveryCodes(tx *gorm.DB, userID string, hashes [][]byte, now time.Time) error {
	if err := tx.Where("user_id = ?", userID).Delete(&recoveryCodeRow{}).Error; err != nil {
		return err
	}
	if len(hashes) == 0 {
		return nil
	}
	rows := make([]recoveryCodeRow, len(hashes))
	for i, h := range hashes {
		rows[i] = recoveryCodeRow{UserID: userID, Hash: h, CreatedAt: ts(now), Keyed: true}
	}
	return tx.Create(&rows).Error
}

// DisableTwoFactor spends use and turns two-factor off: see
// auth.TwoFactorStore.
func (db *DB) DisableTwoFactor(ctx context.Context, userID string, use auth.CodeUse, now time.Time) error {
	id, err := parseID(userID)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := spendCode(tx, id, use); err != nil {
			return err
		}
		res := tx.Model(&userRow{}).Where("id = ?", id).Updates(map[string]any{
			"two_factor_enabled": false,
			"totp_key_enc":       nullBytes(nil),
			"totp_pending_enc":   nullBytes(nil),
			"updated_at":         ts(now),
		})
		if res.Error != nil {
			return res.Error
		}
		if err := tx.Where("user_id = ?", id).Delete(&recoveryCodeRow{}).Error; err != nil {
			return err
		}
		if err := p.write(tx); err != nil {
			return err
		}
		return tx.Where("user_id = ?", id).Delete(&challengeRow{}).Error
	})
	return translate("disable two-factor", err)
}

// spendCode spends a TOTP step or a recovery code of a user with
// two-factor on, within tx. It fails with ErrInvalidCode when the step is
// not later than the last used one or the recovery code is not (any more)
// the user's, ErrNotApplicable when two-factor is off, and ErrNotFound for
// no such user.
func spendCode(tx *gorm.DB, userID string, use auth.CodeUse) error {
	q := tx.Model(&userRow{}).Where("id = ? AND two_factor_enabled", userID)
	var res *gorm.DB
	if len(use.RecoveryHash) == 0 {
		res = q.Where("totp_last_step < ?", use.Step).Update("totp_last_step", use.Step)
	} else {
		// A no-op write: it takes the user's row lock (see the file
		// comment) and checks that two-factor is on.
		res = q.Update("totp_last_step", gorm.Expr("totp_last_step"))
	}
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return twoFactorState(tx, userID, auth.ErrInvalidCode)
	}
	if len(use.RecoveryHash) == 0 {
		return nil
	}
	q = tx.Where("user_id = ? AND hash = ? AND keyed", userID, use.RecoveryHash)
	if len(use.LegacyRecoveryHash) > 0 {
		q = tx.Where("user_id = ? AND ((hash = ? AND keyed) OR (hash = ? AND NOT keyed))",
			userID, use.RecoveryHash, use.LegacyRecoveryHash)
	}
	res = q.Delete(&recoveryCodeRow{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrInvalidCode
	}
	return nil
}

// RekeyRecoveryCodes rewrites the legacy (plain SHA-256) recovery codes
// keyed: see auth.TwoFactorStore. Each row is rewritten by a conditional
// UPDATE on its old hash and NOT keyed, so of concurrent callers (two
// instances starting) one rewrites it and the others match nothing.
func (db *DB) RekeyRecoveryCodes(ctx context.Context, rekey func([]byte) []byte) (int, error) {
	var n int
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rows []recoveryCodeRow
		if err := tx.Select("user_id", "hash").Where("NOT keyed").Find(&rows).Error; err != nil {
			return err
		}
		for _, r := range rows {
			res := tx.Model(&recoveryCodeRow{}).Where("user_id = ? AND hash = ? AND NOT keyed", r.UserID, r.Hash).
				Updates(map[string]any{"hash": rekey(r.Hash), "keyed": true})
			if res.Error != nil {
				return res.Error
			}
			n += int(res.RowsAffected)
		}
		return nil
	})
	if err != nil {
		return 0, translate("rekey recovery codes", err)
	}
	return n, nil
}

// twoFactorState explains why a conditional update of the user's row
// matched nothing: ErrNotFound when there is no such user, ErrNotApplicable
// when two-factor is off, and otherwise whenOn.
func twoFactorState(tx *gorm.DB, userID string, whenOn error) error {
	var row userRow
	if err := tx.Select("two_factor_enabled").Where("id = ?", userID).Take(&row).Error; err != nil {
		return err
	}
	if !row.TwoFactorEnabled {
		return auth.ErrNotApplicable
	}
	return whenOn
}

// CreateTwoFactorChallenge stores a challenge and sweeps the user's expired
// and dead ones.
func (db *DB) CreateTwoFactorChallenge(ctx context.Context, c *auth.TwoFactorChallenge) error {
	row := toChallengeRow(c)
	id, err := parseID(c.UserID)
	if err != nil {
		return err
	}
	row.UserID = id
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("user_id = ? AND NOT ("+liveChallenge+")", id, ts(c.CreatedAt)).
			Delete(&challengeRow{}).Error; err != nil {
			return err
		}
		return tx.Create(&row).Error
	})
	return translate("create two-factor challenge", err)
}

// TwoFactorChallenge returns the challenge with this hash, live or not.
func (db *DB) TwoFactorChallenge(ctx context.Context, hash []byte) (*auth.TwoFactorChallenge, error) {
	if len(hash) == 0 {
		return nil, auth.ErrNotFound
	}
	var row challengeRow
	if err := db.gorm.WithContext(ctx).Where("hash = ?", hash).Take(&row).Error; err != nil {
		return nil, translate("two-factor challenge", err)
	}
	return row.toAuth(), nil
}

// FailTwoFactorChallenge takes one attempt from a live challenge; the
// decrement is one conditional statement, so concurrent failures each
// count and none takes the count below zero.
func (db *DB) FailTwoFactorChallenge(ctx context.Context, hash []byte, now time.Time) error {
	if len(hash) == 0 {
		return auth.ErrInvalidToken
	}
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		res := tx.Model(&challengeRow{}).
			Where("hash = ? AND "+liveChallenge, hash, ts(now)).
			Update("attempts_left", gorm.Expr("attempts_left - 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrInvalidToken
		}
		return p.write(tx) // two_factor_failed
	})
	if errors.Is(err, auth.ErrInvalidToken) {
		return err
	}
	return translate("fail two-factor challenge", err)
}

// errChallengeUser is a session that is not the challenge's user's: a bug
// in the caller.
var errChallengeUser = errors.New("the session is not the challenge's user's")

// CompleteTwoFactorChallenge answers a challenge: see auth.TwoFactorStore.
func (db *DB) CompleteTwoFactorChallenge(ctx context.Context, hash []byte, use auth.CodeUse, s *auth.Session, rt *auth.RefreshToken, now time.Time) error {
	if len(hash) == 0 {
		return auth.ErrInvalidToken
	}
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		var ch challengeRow
		if err := tx.Select("user_id").Where("hash = ?", hash).Take(&ch).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return auth.ErrInvalidToken
			}
			return err
		}
		if sid, err := parseID(s.UserID); err != nil || sid != ch.UserID {
			return fmt.Errorf("%w: %s", errChallengeUser, s.UserID)
		}

		switch err := spendCode(tx, ch.UserID, use); {
		case errors.Is(err, auth.ErrNotApplicable), errors.Is(err, auth.ErrNotFound):
			return auth.ErrInvalidToken // two-factor was turned off, or the user deleted
		case err != nil:
			return err
		}

		res := tx.Where("hash = ? AND "+liveChallenge, hash, ts(now)).Delete(&challengeRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrInvalidToken // answered, killed or expired meanwhile
		}
		if err := createSession(tx, s, rt); err != nil {
			return err
		}
		return p.write(tx)
	})
	switch {
	case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrInvalidCode):
		return err
	}
	return translate("complete two-factor challenge", err)
}
