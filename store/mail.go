package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey-dev/latchkey/auth"
)

// Mailed tokens and the outbox (migration 0002).

type mailTokenRow struct {
	Hash      []byte    `gorm:"column:hash;primaryKey"`
	Kind      string    `gorm:"column:kind"`
	UserID    string    `gorm:"column:user_id"`
	Email     string    `gorm:"column:email"`
	CreatedAt timestamp `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt timestamp `gorm:"column:expires_at"`
}

func (mailTokenRow) TableName() string { return "mail_tokens" }

type outboxRow struct {
	ID            string     `gorm:"column:id;primaryKey"`
	UserID        string     `gorm:"column:user_id"`
	Kind          string     `gorm:"column:kind"`
	Recipient     string     `gorm:"column:recipient"`
	Locale        string     `gorm:"column:locale"`
	Payload       nullBytes  `gorm:"column:payload"`
	CreatedAt     timestamp  `gorm:"column:created_at;autoCreateTime:false"`
	NextAttemptAt timestamp  `gorm:"column:next_attempt_at"`
	Attempts      int        `gorm:"column:attempts"`
	ClaimID       *string    `gorm:"column:claim_id"`
	LastError     *string    `gorm:"column:last_error"`
	SentAt        *timestamp `gorm:"column:sent_at"`
	FailedAt      *timestamp `gorm:"column:failed_at"`
}

func (outboxRow) TableName() string { return "mail_outbox" }

// mailRequestRow is a request for a mail not yet resolved to an account
// (migration 0004).
type mailRequestRow struct {
	ID        string    `gorm:"column:id;primaryKey"`
	Kind      string    `gorm:"column:kind"`
	Email     string    `gorm:"column:email"`
	CreatedAt timestamp `gorm:"column:created_at;autoCreateTime:false"`
}

func (mailRequestRow) TableName() string { return "mail_requests" }

// QueueMailRequest stores a mail request: one insert, whatever the
// address.
func (db *DB) QueueMailRequest(ctx context.Context, r *auth.MailRequest) error {
	row := mailRequestRow{ID: r.ID, Kind: string(r.Kind), Email: r.Email, CreatedAt: ts(r.CreatedAt)}
	return translate("queue mail request", db.gorm.WithContext(ctx).Create(&row).Error)
}

// MailRequests returns up to limit stored requests, oldest first.
func (db *DB) MailRequests(ctx context.Context, limit int) ([]auth.MailRequest, error) {
	if limit <= 0 {
		return nil, nil
	}
	var rows []mailRequestRow
	if err := db.gorm.WithContext(ctx).Order("created_at, id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate("mail requests", err)
	}
	out := make([]auth.MailRequest, len(rows))
	for i, r := range rows {
		out[i] = auth.MailRequest{ID: r.ID, Kind: auth.TokenKind(r.Kind), Email: r.Email, CreatedAt: r.CreatedAt.Time()}
	}
	return out, nil
}

// CompleteMailRequest deletes the request and queues what it resolved
// to, in one transaction; of concurrent completions of one request, one
// commits and the others get ErrNotFound.
func (db *DB) CompleteMailRequest(ctx context.Context, id string, t *auth.MailToken, mails ...*auth.OutboxMail) error {
	id, err := parseID(id)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&mailRequestRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		return queueMail(tx, t, mails...)
	})
	return translate("complete mail request", err)
}

func toMailTokenRow(t *auth.MailToken) mailTokenRow {
	return mailTokenRow{
		Hash:      t.Hash,
		Kind:      string(t.Kind),
		UserID:    t.UserID,
		Email:     t.Email,
		CreatedAt: ts(t.CreatedAt),
		ExpiresAt: ts(t.ExpiresAt),
	}
}

func (r *mailTokenRow) toAuth() *auth.MailToken {
	return &auth.MailToken{
		Hash:      r.Hash,
		Kind:      auth.TokenKind(r.Kind),
		UserID:    r.UserID,
		Email:     r.Email,
		CreatedAt: r.CreatedAt.Time(),
		ExpiresAt: r.ExpiresAt.Time(),
	}
}

func toOutboxRow(m *auth.OutboxMail) outboxRow {
	return outboxRow{
		ID:            m.ID,
		UserID:        m.UserID,
		Kind:          string(m.Kind),
		Recipient:     m.To,
		Locale:        m.Locale,
		Payload:       nullBytes(m.Payload),
		CreatedAt:     ts(m.CreatedAt),
		NextAttemptAt: ts(m.NextAttempt),
		Attempts:      m.Attempts,
	}
}

func (r *outboxRow) toAuth() auth.OutboxMail {
	return auth.OutboxMail{
		ID:          r.ID,
		UserID:      r.UserID,
		Kind:        auth.MailKind(r.Kind),
		To:          r.Recipient,
		Locale:      r.Locale,
		Payload:     []byte(r.Payload),
		CreatedAt:   r.CreatedAt.Time(),
		NextAttempt: r.NextAttemptAt.Time(),
		Attempts:    r.Attempts,
		Claim:       deref(r.ClaimID),
	}
}

// CreatePendingUser inserts u (without a session), its confirmation token
// and the mail carrying it, in one transaction.
func (db *DB) CreatePendingUser(ctx context.Context, u *auth.User, t *auth.MailToken, m *auth.OutboxMail) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		row := toUserRow(u)
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if err := queueMail(tx, t, m); err != nil {
			return err
		}
		return p.write(tx)
	})
	return translate("create pending user", err)
}

// QueueMail stores t, when not nil, in place of the user's other tokens of
// its kind, and inserts mails, in one transaction.
func (db *DB) QueueMail(ctx context.Context, t *auth.MailToken, mails ...*auth.OutboxMail) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := queueMail(tx, t, mails...); err != nil {
			return err
		}
		return p.write(tx)
	})
	return translate("queue mail", err)
}

func queueMail(tx *gorm.DB, t *auth.MailToken, mails ...*auth.OutboxMail) error {
	if t != nil {
		if err := deleteMailTokens(tx, t.UserID, t.Kind); err != nil {
			return err
		}
		row := toMailTokenRow(t)
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
	}
	for _, m := range mails {
		row := toOutboxRow(m)
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
	}
	return nil
}

// deleteMailTokens deletes the user's tokens of the kinds given.
func deleteMailTokens(tx *gorm.DB, userID string, kinds ...auth.TokenKind) error {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return tx.Where("user_id = ? AND kind IN ?", userID, names).Delete(&mailTokenRow{}).Error
}

// MailToken returns the token with this hash, expired or not.
func (db *DB) MailToken(ctx context.Context, hash []byte) (*auth.MailToken, error) {
	if len(hash) == 0 {
		return nil, auth.ErrNotFound
	}
	var row mailTokenRow
	if err := db.gorm.WithContext(ctx).Where("hash = ?", hash).Take(&row).Error; err != nil {
		return nil, translate("mail token", err)
	}
	return row.toAuth(), nil
}

// useMailToken deletes t if it is still stored and live at now: the one
// way a token is used, so of concurrent uses exactly one succeeds.
func useMailToken(tx *gorm.DB, t *auth.MailToken, now time.Time) error {
	res := tx.Where("hash = ? AND kind = ? AND user_id = ? AND expires_at > ?", t.Hash, string(t.Kind), t.UserID, ts(now)).
		Delete(&mailTokenRow{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}

// ConfirmEmail uses up t and confirms (for a change: sets) its user's
// address, in one transaction; see auth.MailStore.
func (db *DB) ConfirmEmail(ctx context.Context, t *auth.MailToken, now time.Time) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := useMailToken(tx, t, now); err != nil {
			return err
		}
		q := tx.Model(&userRow{}).Where("id = ?", t.UserID)
		void := []auth.TokenKind{auth.TokenConfirm, auth.TokenEmailChange}
		switch t.Kind {
		case auth.TokenConfirm:
			q = q.Where("lower(email) = lower(?)", t.Email)
		case auth.TokenEmailChange:
			void = append(void, auth.TokenReset)
		default:
			return auth.ErrNotFound
		}
		res := q.Updates(map[string]any{"email": t.Email, "email_confirmed": true, "updated_at": ts(now)})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		if err := p.write(tx); err != nil {
			return err
		}
		return deleteMailTokens(tx, t.UserID, void...)
	})
	return translate("confirm email", err)
}

// ResetPassword uses up the reset token t, sets the password, confirms the
// address, revokes every session, voids the user's other mailed tokens and
// queues notice, in one transaction.
func (db *DB) ResetPassword(ctx context.Context, t *auth.MailToken, passwordHash string, now time.Time, notice *auth.OutboxMail) error {
	if t.Kind != auth.TokenReset {
		return auth.ErrNotFound
	}
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		if err := useMailToken(tx, t, now); err != nil {
			return err
		}
		res := tx.Model(&userRow{}).
			Where("id = ? AND lower(email) = lower(?)", t.UserID, t.Email).
			Updates(map[string]any{
				"password_hash": passwordHash, "password_version": gorm.Expr("password_version + 1"),
				"email_confirmed": true, "updated_at": ts(now),
			})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return auth.ErrNotFound
		}
		if err := revokeUserSessions(tx, t.UserID, "", now); err != nil {
			return err
		}
		if err := p.write(tx); err != nil {
			return err
		}
		// Every outstanding link dies with the old password: one may be in
		// the hands of whoever made the reset necessary.
		if err := deleteMailTokens(tx, t.UserID, auth.TokenReset, auth.TokenConfirm, auth.TokenEmailChange); err != nil {
			return err
		}
		if notice == nil {
			return nil
		}
		row := toOutboxRow(notice)
		return tx.Create(&row).Error
	})
	return translate("reset password", err)
}

// pending is the condition for an outbox mail still to be sent.
const pending = "sent_at IS NULL AND failed_at IS NULL"

// ClaimMail leases up to limit due mails to claim until leaseUntil. On
// PostgreSQL the due rows are selected FOR UPDATE SKIP LOCKED, so
// concurrent claimers pass over each other's rows instead of waiting; on
// SQLite every write transaction holds the database's write lock from its
// start (BEGIN IMMEDIATE), so claims run one after the other.
func (db *DB) ClaimMail(ctx context.Context, claim string, now, leaseUntil time.Time, limit int) ([]auth.OutboxMail, error) {
	if limit <= 0 {
		return nil, nil
	}
	var rows []outboxRow
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		q := tx.Where(pending+" AND next_attempt_at <= ?", ts(now)).
			Order("next_attempt_at, id").Limit(limit)
		if db.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
		}
		if err := q.Find(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		ids := make([]string, len(rows))
		for i := range rows {
			ids[i] = rows[i].ID
		}
		res := tx.Model(&outboxRow{}).Where("id IN ?", ids).
			Updates(map[string]any{"claim_id": claim, "next_attempt_at": ts(leaseUntil)})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != int64(len(rows)) {
			return errors.New("claimed rows changed under the claim")
		}
		for i := range rows {
			rows[i].ClaimID, rows[i].NextAttemptAt = &claim, ts(leaseUntil)
		}
		return nil
	})
	if err != nil {
		return nil, translate("claim mail", err)
	}
	out := make([]auth.OutboxMail, len(rows))
	for i := range rows {
		out[i] = rows[i].toAuth()
	}
	return out, nil
}

// updateClaimed applies values to the pending mail id under claim;
// ErrNotFound when there is none.
func (db *DB) updateClaimed(ctx context.Context, op, id, claim string, values map[string]any) error {
	id, err := parseID(id)
	if err != nil {
		return err
	}
	res := db.gorm.WithContext(ctx).Model(&outboxRow{}).
		Where("id = ? AND claim_id = ? AND "+pending, id, claim).
		Updates(values)
	if res.Error != nil {
		return translate(op, res.Error)
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}

// MailSent marks a claimed mail sent and drops its payload.
func (db *DB) MailSent(ctx context.Context, id, claim string, now time.Time) error {
	return db.updateClaimed(ctx, "mail sent", id, claim, map[string]any{
		"sent_at": ts(now), "payload": nullBytes(nil), "claim_id": nil,
	})
}

// RetryMail records a failed attempt; the mail is due again at next.
func (db *DB) RetryMail(ctx context.Context, id, claim string, next time.Time, lastError string) error {
	return db.updateClaimed(ctx, "retry mail", id, claim, map[string]any{
		"attempts": gorm.Expr("attempts + 1"), "last_error": lastError,
		"next_attempt_at": ts(next), "claim_id": nil,
	})
}

// AbandonMail gives a claimed mail up and drops its payload.
func (db *DB) AbandonMail(ctx context.Context, id, claim string, now time.Time, lastError string) error {
	return db.updateClaimed(ctx, "abandon mail", id, claim, map[string]any{
		"attempts": gorm.Expr("attempts + 1"), "last_error": lastError,
		"failed_at": ts(now), "payload": nullBytes(nil), "claim_id": nil,
	})
}

// ReleaseMail hands a claimed mail back, due at now.
func (db *DB) ReleaseMail(ctx context.Context, id, claim string, now time.Time) error {
	return db.updateClaimed(ctx, "release mail", id, claim, map[string]any{
		"next_attempt_at": ts(now), "claim_id": nil,
	})
}

// PruneMail deletes expired tokens, mails finished before doneBefore and
// requests made before it (never resolved).
func (db *DB) PruneMail(ctx context.Context, now, doneBefore time.Time) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("expires_at <= ?", ts(now)).Delete(&mailTokenRow{}).Error; err != nil {
			return err
		}
		if err := tx.Where("created_at < ?", ts(doneBefore)).Delete(&mailRequestRow{}).Error; err != nil {
			return err
		}
		return tx.Where("sent_at < ? OR failed_at < ?", ts(doneBefore), ts(doneBefore)).Delete(&outboxRow{}).Error
	})
	return translate("prune mail", err)
}
