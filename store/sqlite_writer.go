package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// SQLite has one writer at a time. Left to itself, a connection that finds
// the database locked polls (busy_timeout) with growing sleeps, so under
// steady write traffic one request can lose every race for seconds and
// fail with SQLITE_BUSY; synchronous=FULL makes each commit hold the lock
// for an fsync, which makes that likely. serialWriter queues this
// process's writers in order instead (a channel's waiters are served
// first in, first out): a write transaction, or a writing statement
// outside one, takes the queue's token first, so SQLite's own lock is
// never contended from inside the process. Reads do not queue (WAL lets
// them run beside the writer).

// sqliteWriteWait is how long a writer waits for its turn before the
// request is answered 503 UNAVAILABLE.
const sqliteWriteWait = 10 * time.Second

var errWriteQueue = errors.New("store: SQLite write queue: waited too long")

// serialWriter is the token one writer holds at a time.
type serialWriter chan struct{}

func (w serialWriter) acquire(ctx context.Context) (func(), error) {
	timer := time.NewTimer(sqliteWriteWait)
	defer timer.Stop()
	select {
	case w <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-w }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, errWriteQueue)
	}
}

// serialPool is the gorm connection pool of a SQLite database: the
// *sql.DB, with writers queued by a serialWriter.
type serialPool struct {
	*sql.DB
	w serialWriter
}

var (
	_ gorm.ConnPool         = (*serialPool)(nil)
	_ gorm.ConnPoolBeginner = (*serialPool)(nil)
	_ gorm.GetDBConnector   = (*serialPool)(nil)
)

func newSerialPool(db *sql.DB) *serialPool {
	return &serialPool{DB: db, w: make(serialWriter, 1)}
}

// GetDBConn implements gorm.GetDBConnector (gorm.DB.DB).
func (p *serialPool) GetDBConn() (*sql.DB, error) { return p.DB, nil }

// BeginTx starts a transaction; unless read-only, it waits its turn first
// and holds it until Commit or Rollback.
func (p *serialPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.begin(ctx, opts)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// begin is BeginTx for callers on database/sql (beginWrite).
func (p *serialPool) begin(ctx context.Context, opts *sql.TxOptions) (*serialTx, error) {
	if opts != nil && opts.ReadOnly {
		tx, err := p.DB.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		return &serialTx{Tx: tx, release: func() {}}, nil
	}
	release, err := p.w.acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		release()
		return nil, err
	}
	return &serialTx{Tx: tx, release: release}, nil
}

// ExecContext runs a statement, waiting its turn when it writes.
func (p *serialPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if isWrite(query) {
		release, err := p.w.acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	return p.DB.ExecContext(ctx, query, args...)
}

// QueryContext runs a query (INSERT … RETURNING writes), waiting its turn
// when it writes.
func (p *serialPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if isWrite(query) {
		release, err := p.w.acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	return p.DB.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a one-row query, waiting its turn when it writes.
// (A failed wait shows as the row's error: sql.Row has no other way.)
func (p *serialPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if isWrite(query) {
		release, err := p.w.acquire(ctx)
		if err != nil {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return p.DB.QueryRowContext(ctx, query, args...) // answers ctx's error
		}
		defer release()
	}
	return p.DB.QueryRowContext(ctx, query, args...)
}

// serialTx is a transaction holding (unless read-only) the writer's turn.
type serialTx struct {
	*sql.Tx
	release func()
}

var _ gorm.TxCommitter = (*serialTx)(nil)

func (t *serialTx) Commit() error {
	defer t.release()
	return t.Tx.Commit()
}

func (t *serialTx) Rollback() error {
	defer t.release()
	return t.Tx.Rollback()
}

// isWrite reports whether a statement changes the database, by its first
// keyword.
func isWrite(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	end := strings.IndexAny(q, " \t\r\n(")
	if end < 0 {
		end = len(q)
	}
	switch strings.ToUpper(q[:end]) {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER":
		return true
	}
	return false
}
