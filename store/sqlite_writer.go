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
	// jobs hands a group commit's leader the jobs waiting beside it
	// (inGroup).
	jobs chan *groupJob
}

var (
	_ gorm.ConnPool         = (*serialPool)(nil)
	_ gorm.ConnPoolBeginner = (*serialPool)(nil)
	_ gorm.GetDBConnector   = (*serialPool)(nil)
)

func newSerialPool(db *sql.DB) *serialPool {
	return &serialPool{DB: db, w: make(serialWriter, 1), jobs: make(chan *groupJob)}
}

// GetDBConn implements gorm.GetDBConnector (gorm.DB.DB).
func (p *serialPool) GetDBConn() (*sql.DB, error) { return p.DB, nil }

// BeginTx starts a transaction; unless read-only, it waits its turn first
// and holds it until Commit or Rollback.
func (p *serialPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
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

// Group commit. A write transaction on its own holds the writer's turn for
// its statements and then for its commit, whose fsync (synchronous=FULL)
// is much of the turn; under load the hot path's writers (refresh-token
// rotations) would queue one fsync each. inGroup runs such a transaction
// as one job of a group instead: whoever gets the turn leads, takes every
// job waiting at that moment, runs each in a savepoint of one transaction
// and commits once. Each job sees the jobs before it as if they had
// committed one after another; a job that fails is rolled back to its
// savepoint alone; no job is answered before the commit, and if the
// commit fails every job of the group gets its error. Nothing waits to
// fill a group: a leader takes only who is already queued, so a lone
// writer commits at once.

// maxGroup bounds the jobs in one group commit.
const maxGroup = 64

// txFunc is a transaction's body: its statements run on tx, with ctx.
type txFunc func(ctx context.Context, tx txStmts) error

// txStmts runs statements in a transaction (*sql.Tx).
type txStmts interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type groupJob struct {
	ctx  context.Context
	fn   txFunc
	done chan error
}

// inGroup runs fn in a group commit. While it waits, it either gets the
// turn (and leads) or is taken by the leader, whichever comes first; a
// job taken is answered after its group's commit, whatever its context
// does since (the leader skips a job whose context has ended).
func (p *serialPool) inGroup(ctx context.Context, fn txFunc) error {
	j := &groupJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	timer := time.NewTimer(sqliteWriteWait)
	defer timer.Stop()
	select {
	case p.w <- struct{}{}:
	case p.jobs <- j:
		return <-j.done
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("%w: %w", auth.ErrUnavailable, errWriteQueue)
	}
	defer func() { <-p.w }()
	group := []*groupJob{j}
take:
	for len(group) < maxGroup {
		select {
		case o := <-p.jobs:
			group = append(group, o)
		default:
			break take
		}
	}
	// The group's statements run to the end whatever the leader's
	// context does: an interrupted statement would roll back the others'
	// work too.
	p.commitGroup(context.WithoutCancel(ctx), group)
	return <-j.done
}

// errGroupPanicked answers the jobs of a group whose run panicked.
var errGroupPanicked = errors.New("store: SQLite group commit: a job panicked")

// commitGroup runs a group's jobs in one transaction and answers each.
func (p *serialPool) commitGroup(ctx context.Context, group []*groupJob) {
	var tx *sql.Tx
	defer func() {
		// A job that panics takes the leader's goroutine with it; the
		// transaction must not stay open (it would hold SQLite's lock)
		// nor the others wait forever.
		if r := recover(); r != nil {
			if tx != nil {
				_ = tx.Rollback()
			}
			for _, j := range group {
				j.done <- errGroupPanicked
			}
			panic(r)
		}
	}()
	errs := make([]error, len(group))
	err := func() (err error) {
		if tx, err = p.DB.BeginTx(ctx, nil); err != nil {
			return err
		}
		for i, j := range group {
			if errs[i] = j.ctx.Err(); errs[i] != nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, "SAVEPOINT job"); err != nil {
				_ = tx.Rollback()
				return err
			}
			if errs[i] = j.fn(context.WithoutCancel(j.ctx), tx); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO job"); err != nil {
					// The job's fault took the transaction with it.
					_ = tx.Rollback()
					return errs[i]
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE job"); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		return tx.Commit()
	}()
	for i, j := range group {
		if err != nil {
			errs[i] = err
		}
		j.done <- errs[i]
	}
}
