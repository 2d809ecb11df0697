package auth

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// What the tests read or arrange beneath the Store API: through a Store
// method where one exists, else in SQL on the test store's SQLite
// database (the schema of store/migrations/sqlite).

// count returns the number of rows of a table, optionally narrowed:
// count(t, "users"), count(t, "recovery_codes WHERE user_id = ?", id).
func (s *testStore) count(t testing.TB, from string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM "+from, args...).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", from, err)
	}
	return n
}

// exec runs one statement that changes rows, to arrange a state no Store
// method makes.
func (s *testStore) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	res, err := s.db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		t.Fatalf("%s: changed %d rows (%v)", query, n, err)
	}
}

// sqliteTime is t as the store writes times on SQLite (fixed-width UTC
// text, store/columns.go), for exec.
func sqliteTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// parseTime reads a time column; nil for NULL.
func parseTime(t testing.TB, s sql.NullString) *time.Time {
	t.Helper()
	if !s.Valid {
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		t.Fatalf("time column: %v", err)
	}
	return &v
}

// testUserID is a user ID for createUser: the store takes only UUIDs.
const testUserID = "00000000-0000-4000-8000-000000000001"

// createUser inserts a user without a session.
func (s *testStore) createUser(t testing.TB, u User) {
	t.Helper()
	if err := s.CreateUser(context.Background(), &u, nil, nil); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
}

// session returns a stored session, live or not.
func (s *testStore) session(t testing.TB, id string) Session {
	t.Helper()
	sess, err := s.SessionByID(context.Background(), id)
	if err != nil {
		t.Fatalf("SessionByID(%s): %v", id, err)
	}
	return *sess
}

// query runs a query and calls scan for each row.
func (s *testStore) query(t testing.TB, scan func(*sql.Rows) error, query string, args ...any) {
	t.Helper()
	rows, err := s.db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// storedMail is an outbox mail with the state the store keeps beside it.
type storedMail struct {
	OutboxMail
	LastError string
	SentAt    *time.Time
	FailedAt  *time.Time
}

// mails returns the outbox, oldest first.
func (s *testStore) mails(t testing.TB) []storedMail {
	t.Helper()
	var out []storedMail
	s.query(t, func(r *sql.Rows) error {
		var m storedMail
		var created, next, sent, failed sql.NullString
		if err := r.Scan(&m.ID, &m.UserID, &m.Kind, &m.To, &m.Locale, &m.Payload, &created, &next,
			&m.Attempts, &m.Claim, &m.LastError, &sent, &failed); err != nil {
			return err
		}
		m.CreatedAt, m.NextAttempt = *parseTime(t, created), *parseTime(t, next)
		m.SentAt, m.FailedAt = parseTime(t, sent), parseTime(t, failed)
		out = append(out, m)
		return nil
	}, `SELECT id, user_id, kind, recipient, locale, payload, created_at, next_attempt_at,
		attempts, COALESCE(claim_id, ''), COALESCE(last_error, ''), sent_at, failed_at
		FROM mail_outbox ORDER BY created_at, id`)
	return out
}

// tokens returns the user's stored mail tokens.
func (s *testStore) tokens(t testing.TB, userID string) []MailToken {
	t.Helper()
	var out []MailToken
	for _, h := range s.blobs(t, "SELECT hash FROM mail_tokens WHERE user_id = ? ORDER BY created_at", userID) {
		tok, err := s.MailToken(context.Background(), h)
		if err != nil {
			t.Fatalf("MailToken: %v", err)
		}
		out = append(out, *tok)
	}
	return out
}

// events returns the security log in the order it was written (ListEvents
// orders events of one instant by their random IDs).
func (s *testStore) events(t testing.TB) []Event {
	t.Helper()
	var out []Event
	s.query(t, func(r *sql.Rows) error {
		var e Event
		var at sql.NullString
		if err := r.Scan(&e.ID, &e.Type, &at, &e.UserID, &e.ActorID, &e.SessionID, &e.IP, &e.UserAgent); err != nil {
			return err
		}
		e.CreatedAt = *parseTime(t, at)
		out = append(out, e)
		return nil
	}, `SELECT id, type, created_at, COALESCE(user_id, ''), COALESCE(actor_id, ''),
		COALESCE(session_id, ''), ip, user_agent FROM events ORDER BY rowid`)
	return out
}

// blobs returns the single binary column a query selects.
func (s *testStore) blobs(t testing.TB, query string, args ...any) [][]byte {
	t.Helper()
	var out [][]byte
	s.query(t, func(r *sql.Rows) error {
		var b []byte
		err := r.Scan(&b)
		out = append(out, b)
		return err
	}, query, args...)
	return out
}
