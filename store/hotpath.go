package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// The check of every authenticated request (UserByLiveSession) is one
// statement written out once per dialect and run on database/sql directly:
// building it through gorm and scanning through gorm's reflection cost
// about a fifth of the CPU of GET /me. The columns come from userRow's gorm
// tags, so the two cannot disagree.

// userFields lists, in userRow's field order, the column of each field.
var userFields = func() []string {
	t := reflect.TypeFor[userRow]()
	cols := make([]string, t.NumField())
	for i := range cols {
		for part := range strings.SplitSeq(t.Field(i).Tag.Get("gorm"), ";") {
			if name, ok := strings.CutPrefix(part, "column:"); ok {
				cols[i] = name
			}
		}
		if cols[i] == "" {
			panic("store: userRow field " + t.Field(i).Name + " has no column tag")
		}
	}
	return cols
}()

// dest returns pointers to r's fields, in userFields' order, for Scan.
func (r *userRow) dest() []any {
	v := reflect.ValueOf(r).Elem()
	out := make([]any, v.NumField())
	for i := range out {
		out[i] = v.Field(i).Addr().Interface()
	}
	return out
}

// liveUserQuery is UserByLiveSession's statement on dialect.
func liveUserQuery(dialect string) string {
	q := "SELECT " + strings.Join(userFields, ", ") + " FROM users WHERE id = " +
		"(SELECT user_id FROM sessions WHERE id = ? AND " + liveSession + ") LIMIT 1"
	if dialect == DialectPostgres {
		q = strings.Replace(q, "?", "$1", 1)
		q = strings.Replace(q, "?", "$2", 1)
	}
	return q
}

// UserByLiveSession returns the user of the session with this id if that
// session is live at now, in one query (the check of every authenticated
// request); ErrNotFound otherwise.
func (db *DB) UserByLiveSession(ctx context.Context, sessionID string, now time.Time) (*auth.User, error) {
	sessionID, err := parseID(sessionID)
	if err != nil {
		return nil, err
	}
	var row userRow
	err = db.sql.QueryRowContext(ctx, db.liveUser, sessionID, ts(now).bind(db.dialect)).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, auth.ErrNotFound
	}
	if err != nil {
		// The dialect's translator marks faults (auth.ErrUnavailable)
		// as it does for every gorm statement.
		if t, ok := db.gorm.Dialector.(gorm.ErrorTranslator); ok {
			err = t.Translate(err)
		}
		return nil, translate("user by live session", err)
	}
	return row.toAuth(), nil
}
