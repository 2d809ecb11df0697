package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"

	"github.com/latchkey-dev/latchkey/auth"
)

// Faults: an error that says the database cannot be reached (a dropped or
// refused connection, a server shutting down or failing over, SQLite busy
// beyond its timeout) is wrapped under auth.ErrUnavailable, which the edge
// answers with 503 UNAVAILABLE and Retry-After instead of 500. The pool
// heals by itself: database/sql discards a connection pgx knows is closed
// (ResetSession answers driver.ErrBadConn) and dials a new one.

// unavailable wraps err under auth.ErrUnavailable when it is a fault of
// the connection rather than of the statement.
func unavailable(err error) error {
	if err == nil || errors.Is(err, auth.ErrUnavailable) || !isFault(err) {
		return err
	}
	return fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
}

// isFault reports whether err means the database could not be reached or
// dropped the connection. A cancelled request is not a fault.
func isFault(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err) {
		return true
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		// Class 08: connection exception; 57P01-03: admin or crash
		// shutdown, cannot connect now (pg_terminate_backend, a restart,
		// a failover); 53300: too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	if sqErr, ok := errors.AsType[*gosqlite.Error](err); ok {
		code := sqErr.Code() & 0xff   // the primary result code
		return code == 5 || code == 6 // SQLITE_BUSY, SQLITE_LOCKED
	}
	// pgconn's "conn closed" (an unexported type): the connection died
	// under an earlier statement.
	return strings.Contains(err.Error(), "conn closed")
}

// postgresDialector is gorm's PostgreSQL dialector with faults translated
// to auth.ErrUnavailable on every statement.
type postgresDialector struct {
	postgres.Dialector
	pool *healer
}

// Translate implements gorm.ErrorTranslator.
func (d postgresDialector) Translate(err error) error {
	if isFault(err) {
		d.pool.drain()
		return unavailable(err)
	}
	return d.Dialector.Translate(err)
}

// healer empties the pool's idle connections after a fault: when the
// server dropped one connection (a restart, a failover), it dropped the
// others too, and pgx notices only when each is next used. Without them
// the next statement (the retried read) dials a fresh connection.
type healer struct {
	mu       sync.Mutex
	db       *sql.DB
	maxIdle  int
	draining bool
}

func (h *healer) drain() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db == nil || h.draining {
		return
	}
	h.draining = true
	h.db.SetMaxIdleConns(0) // closes the idle connections now
	h.db.SetMaxIdleConns(h.maxIdle)
	h.draining = false
}
