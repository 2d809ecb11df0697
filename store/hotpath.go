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
	// RotateRefreshToken: slideSession, retireToken and insertToken on
	// SQLite; rotate on PostgreSQL.
	slideSession, retireToken, insertToken string
	rotate                                 string
}

// The refresh-token rotation's conditions, written once for both dialects.
const (
	// tokensSession: the session of the token with this hash (bound
	// first), if the session is live and its account not disabled.
	tokensSession = "id = (SELECT session_id FROM refresh_tokens WHERE hash = ?) AND " + liveSession +
		" AND EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND NOT users.disabled)"
	// retire: the token with this hash, if it is current and unexpired.
	retire = "UPDATE refresh_tokens SET rotated_at = ?, successor_enc = ? WHERE hash = ? AND rotated_at IS NULL AND expires_at > ?"
	// slide moves a session's last use and expiry.
	slide = "UPDATE sessions SET last_used = ?, expires_at = ? WHERE "
	// successor: the new token's columns (not rotated).
	successor = "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) "
)

func statementsFor(dialect string) statements {
	token := strings.Join(tokenFields, ", ")
	st := statements{
		liveUser: numbered(dialect, "SELECT "+strings.Join(userFields, ", ")+" FROM users WHERE id = "+
			"(SELECT user_id FROM sessions WHERE id = ? AND "+liveSession+") LIMIT 1"),
	}
	if dialect != DialectPostgres {
		// SQLite: a transaction of three, which holds the one writer's
		// turn throughout (SQLite has no UPDATE in WITH). A step that does
		// not apply rolls the others back.
		st.slideSession = slide + tokensSession + " RETURNING id, user_id"
		st.retireToken = retire + " RETURNING " + token
		st.insertToken = successor + "VALUES (?, ?, ?, ?)"
		return st
	}
	// PostgreSQL: the same as one statement, one round trip instead of
	// five. It locks the session first (l), waiting for a concurrent
	// rotation's commit and then re-checking the session against it;
	// retires the token (t), re-checked the same way, so of concurrent
	// calls one applies; and only then slides the session (s) and inserts
	// the successor, so a call that does not apply changes nothing.
	// Session before token is the order in which deleting a user
	// cascades, so the two cannot deadlock.
	st.rotate = numbered(dialect, "WITH l AS (SELECT id FROM sessions WHERE "+tokensSession+" FOR NO KEY UPDATE), "+
		"t AS ("+retire+" AND session_id = (SELECT id FROM l) RETURNING "+token+"), "+
		"s AS ("+slide+"id = (SELECT session_id FROM t) RETURNING id, user_id), "+
		"i AS ("+successor+"SELECT ?::bytea, s.id, ?::timestamptz, ?::timestamptz FROM s) "+
		"SELECT s.user_id, t.* FROM s, t")
	return st
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
