package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// The two statements of the hot paths run on database/sql directly,
// written out once per dialect: the check of every authenticated request
// (UserByLiveSession) and the refresh-token rotation (RotateRefreshToken).
// Building them through gorm and scanning through gorm's reflection cost
// about a fifth of the CPU of GET /me. Their column lists come from the
// row types' gorm tags, so the two cannot disagree.

// columnsOf lists, in the field order of the row type T, the column of each
// field.
func columnsOf[T any]() []string {
	t := reflect.TypeFor[T]()
	cols := make([]string, t.NumField())
	for i := range cols {
		for part := range strings.SplitSeq(t.Field(i).Tag.Get("gorm"), ";") {
			if name, ok := strings.CutPrefix(part, "column:"); ok {
				cols[i] = name
			}
		}
		if cols[i] == "" {
			panic("store: " + t.Name() + " field " + t.Field(i).Name + " has no column tag")
		}
	}
	return cols
}

var (
	userFields  = columnsOf[userRow]()
	tokenFields = columnsOf[refreshTokenRow]()
)

// fields returns pointers to the fields of the row that row points to, in
// columnsOf's order, for Scan.
func fields(row any) []any {
	v := reflect.ValueOf(row).Elem()
	out := make([]any, v.NumField())
	for i := range out {
		out[i] = v.Field(i).Addr().Interface()
	}
	return out
}

// binds returns the values of row's fields, in columnsOf's order, as a
// statement binds them on dialect (as their GormValue methods do for gorm).
func binds(dialect string, row any) []any {
	v := reflect.ValueOf(row)
	out := make([]any, v.NumField())
	for i := range out {
		switch f := v.Field(i).Interface().(type) {
		case timestamp:
			out[i] = f.bind(dialect)
		case *timestamp:
			if f != nil {
				out[i] = f.bind(dialect)
			}
		case nullBytes:
			out[i] = f.arg()
		default:
			out[i] = f
		}
	}
	return out
}

// numbered writes a statement's ? placeholders as dialect wants them:
// $1, $2, … on PostgreSQL. (The statements here have no ? in literals.)
func numbered(dialect, q string) string {
	if dialect != DialectPostgres {
		return q
	}
	var b strings.Builder
	n := 0
	for {
		i := strings.IndexByte(q, '?')
		if i < 0 {
			b.WriteString(q)
			return b.String()
		}
		n++
		b.WriteString(q[:i])
		b.WriteString("$" + strconv.Itoa(n))
		q = q[i+1:]
	}
}

// statements are the hot paths' statements on one dialect, built at Open.
type statements struct {
	// liveUser: UserByLiveSession.
	liveUser string
	// slideSession, retireToken, insertToken: RotateRefreshToken.
	slideSession, retireToken, insertToken string
}

func statementsFor(dialect string) statements {
	return statements{
		liveUser: numbered(dialect, "SELECT "+strings.Join(userFields, ", ")+" FROM users WHERE id = "+
			"(SELECT user_id FROM sessions WHERE id = ? AND "+liveSession+") LIMIT 1"),
		// The session of the token with this hash, if it is live and its
		// account not disabled.
		slideSession: numbered(dialect, "UPDATE sessions SET last_used = ?, expires_at = ? "+
			"WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = ?) AND "+liveSession+
			" AND EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND NOT users.disabled)"+
			" RETURNING id, user_id"),
		// The token, if it is current and unexpired.
		retireToken: numbered(dialect, "UPDATE refresh_tokens SET rotated_at = ?, successor_enc = ? "+
			"WHERE hash = ? AND rotated_at IS NULL AND expires_at > ? RETURNING "+strings.Join(tokenFields, ", ")),
		insertToken: numbered(dialect, "INSERT INTO refresh_tokens ("+strings.Join(tokenFields, ", ")+") VALUES (?"+
			strings.Repeat(", ?", len(tokenFields)-1)+")"),
	}
}

// sqlError passes an error of a statement run on database/sql through the
// dialect's translator, as gorm does for its own statements (so that
// faults become auth.ErrUnavailable), then through translate.
func (db *DB) sqlError(op string, err error) error {
	if t, ok := db.gorm.Dialector.(gorm.ErrorTranslator); ok {
		err = t.Translate(err)
	}
	return translate(op, err)
}

// inWriteTx runs fn in a read-write transaction on database/sql and
// commits it. On SQLite the transaction is one job of a group commit
// among this process's writers (sqlite_writer.go).
func (db *DB) inWriteTx(ctx context.Context, fn txFunc) error {
	if p, ok := db.gorm.ConnPool.(*serialPool); ok {
		return p.inGroup(ctx, fn)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
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
	err = db.sql.QueryRowContext(ctx, db.stmts.liveUser, sessionID, ts(now).bind(db.dialect)).Scan(fields(&row)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, auth.ErrNotFound
	}
	if err != nil {
		return nil, db.sqlError("user by live session", err)
	}
	return row.toAuth(), nil
}
