package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// The security event log (migration 0006).

type eventRow struct {
	ID        string    `gorm:"column:id;primaryKey"`
	Type      string    `gorm:"column:type"`
	CreatedAt timestamp `gorm:"column:created_at;autoCreateTime:false"`
	UserID    *string   `gorm:"column:user_id"`
	ActorID   *string   `gorm:"column:actor_id"`
	SessionID *string   `gorm:"column:session_id"`
	IP        string    `gorm:"column:ip"`
	UserAgent string    `gorm:"column:user_agent"`
}

func (eventRow) TableName() string { return "events" }

func (r *eventRow) toAuth() auth.Event {
	return auth.Event{
		ID: r.ID, Type: auth.EventType(r.Type), CreatedAt: r.CreatedAt.Time(),
		UserID: deref(r.UserID), ActorID: deref(r.ActorID), SessionID: deref(r.SessionID),
		IP: r.IP, UserAgent: r.UserAgent,
	}
}

// uuidOrNull is a UUID column value: NULL for "" (or anything not a UUID).
func uuidOrNull(s string) *string {
	id, err := parseID(s)
	if err != nil {
		return nil
	}
	return &id
}

// pendingWrites is what a write records along with its change: the events and
// security notices its context carries. Every write that records events
// takes them first thing in its transaction (takePending) and writes them
// in it (write): they commit or roll back with the change, and a failed
// write leaves none behind on the context for a later write to record.
type pendingWrites struct {
	events []auth.Event
	mails  []*auth.OutboxMail
}

func takePending(ctx context.Context) pendingWrites {
	return pendingWrites{events: auth.TakeEvents(ctx), mails: auth.TakeMails(ctx)}
}

// write inserts the events and queues the notices in tx.
func (p pendingWrites) write(tx *gorm.DB) error {
	if err := insertEvents(tx, p.events); err != nil {
		return err
	}
	return queueMail(tx, nil, p.mails...)
}

// attribute sets the user and session of the events that name neither.
func attribute(evs []auth.Event, userID, sessionID string) []auth.Event {
	for i := range evs {
		if evs[i].UserID == "" && evs[i].SessionID == "" {
			evs[i].UserID, evs[i].SessionID = userID, sessionID
		}
	}
	return evs
}

// insertEvents inserts evs in tx.
func insertEvents(tx *gorm.DB, evs []auth.Event) error {
	if len(evs) == 0 {
		return nil
	}
	rows := make([]eventRow, len(evs))
	for i, e := range evs {
		rows[i] = eventRow{
			ID: e.ID, Type: string(e.Type), CreatedAt: ts(e.CreatedAt),
			UserID: uuidOrNull(e.UserID), ActorID: uuidOrNull(e.ActorID), SessionID: uuidOrNull(e.SessionID),
			IP: e.IP, UserAgent: e.UserAgent,
		}
	}
	return tx.Create(&rows).Error
}

// RecordEvents inserts the context's pending events on their own.
func (db *DB) RecordEvents(ctx context.Context) error {
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p := takePending(ctx)
		return p.write(tx)
	})
	return translate("record events", err)
}

// ListEvents returns up to limit events matching f, newest first, after
// the cursor. The indexes of migration 0006 serve each filter.
func (db *DB) ListEvents(ctx context.Context, f auth.EventFilter, after *auth.Cursor, limit int) ([]auth.Event, error) {
	q := db.gorm.WithContext(ctx).Model(&eventRow{})
	if f.UserID != "" {
		id, err := parseID(f.UserID)
		if err != nil {
			return []auth.Event{}, nil
		}
		q = q.Where("user_id = ?", id)
	}
	if f.Type != "" {
		q = q.Where("type = ?", string(f.Type))
	}
	q = afterCursor(q, after)
	var rows []eventRow
	if err := q.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, translate("list events", err)
	}
	out := make([]auth.Event, len(rows))
	for i := range rows {
		out[i] = rows[i].toAuth()
	}
	return out, nil
}

// afterCursor keeps the rows strictly after c in (created_at DESC, id
// DESC) order.
func afterCursor(q *gorm.DB, c *auth.Cursor) *gorm.DB {
	if c == nil {
		return q
	}
	id, err := parseID(c.ID)
	if err != nil {
		id = c.ID
	}
	at := ts(c.CreatedAt)
	return q.Where("(created_at < ? OR (created_at = ? AND id < ?))", at, at, id)
}

// PruneEvents deletes the events created before before.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	res := db.gorm.WithContext(ctx).Where("created_at < ?", ts(before)).Delete(&eventRow{})
	if res.Error != nil {
		return 0, translate("prune events", res.Error)
	}
	return res.RowsAffected, nil
}
