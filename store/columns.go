package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// sqliteTimeLayout is how times are stored on SQLite: UTC, fixed width,
// always six fractional digits. Equal widths make text order equal time
// order, so SQL comparisons (expires_at > ?) and ORDER BY are correct; the
// driver's own format trims trailing zeros and would not guarantee that.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// timestamp is a time column: timestamptz on PostgreSQL, fixed-width UTC
// text on SQLite. Always pass times to queries as timestamps, never as
// time.Time, so that SQLite compares like with like.
type timestamp time.Time

// ts converts t to a timestamp in UTC, truncated to the microsecond (the
// precision of both databases).
func ts(t time.Time) timestamp {
	return timestamp(t.UTC().Truncate(time.Microsecond))
}

// tsPtr is ts for optional times.
func tsPtr(t *time.Time) *timestamp {
	if t == nil {
		return nil
	}
	v := ts(*t)
	return &v
}

// Time returns the time in UTC.
func (t timestamp) Time() time.Time {
	return time.Time(t).UTC()
}

// timePtr is Time for optional times.
func timePtr(t *timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.Time()
	return &v
}

// GormValue implements gorm.Valuer: the bind value depends on the dialect.
func (t timestamp) GormValue(_ context.Context, db *gorm.DB) clause.Expr {
	return clause.Expr{SQL: "?", Vars: []any{t.bind(db.Dialector.Name())}}
}

// bind is the value a statement binds for t on dialect: fixed-width text
// on SQLite, the time itself on PostgreSQL.
func (t timestamp) bind(dialect string) any {
	v := time.Time(t).UTC().Truncate(time.Microsecond)
	if dialect == DialectSQLite {
		return v.Format(sqliteTimeLayout)
	}
	return v
}

// Scan implements sql.Scanner.
func (t *timestamp) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*t = timestamp(v.UTC())
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	default:
		return fmt.Errorf("store: cannot scan %T into a timestamp", src)
	}
}

func (t *timestamp) parse(s string) error {
	v, err := time.Parse(sqliteTimeLayout, s)
	if err != nil {
		// Tolerate other RFC 3339 forms (a value written by hand).
		if v, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("store: bad timestamp %q: %w", s, err)
		}
	}
	*t = timestamp(v.UTC())
	return nil
}

// nullBytes is an optional binary column: empty is stored as NULL on both
// dialects. (The SQLite driver binds a nil []byte as an empty blob, which
// is not NULL and would collide in a unique index.)
type nullBytes []byte

// GormValue implements gorm.Valuer.
func (b nullBytes) GormValue(context.Context, *gorm.DB) clause.Expr {
	v := b.arg()
	if v == nil {
		return clause.Expr{SQL: "NULL"}
	}
	return clause.Expr{SQL: "?", Vars: []any{v}}
}

// arg is the value a statement on database/sql binds for b: NULL (nil)
// when empty.
func (b nullBytes) arg() any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

// Scan implements sql.Scanner.
func (b *nullBytes) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*b = nil
	case []byte:
		*b = bytes.Clone(v)
	case string:
		*b = []byte(v)
	default:
		return fmt.Errorf("store: cannot scan %T into bytes", src)
	}
	return nil
}
