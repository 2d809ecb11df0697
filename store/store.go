// Package store implements auth.Store on GORM for SQLite and PostgreSQL.
//
// Row types are private to the package and converted explicitly to and from
// the auth types; database errors are translated into auth sentinels. The
// schema is created by versioned SQL migrations, one set per dialect (see
// Migrate), never by AutoMigrate.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// Dialect names returned by (*DB).Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Pool defaults. DefaultMaxConns is the size of the connection pool
// (WithMaxConns; on PostgreSQL the DSN parameter pool_max_conns, as pgxpool
// spells it, overrides both; Open strips it before connecting). Every
// connection may stay idle: a pool that keeps fewer idle than open closes
// and reopens connections under load (on PostgreSQL each a TCP and
// authentication round trip). A PostgreSQL connection is replaced after
// pgConnMaxLifetime, or after pgConnMaxIdleTime unused.
const (
	DefaultMaxConns   = 20
	pgConnMaxLifetime = 30 * time.Minute
	pgConnMaxIdleTime = 5 * time.Minute
)

// Option tunes Open.
type Option func(*openOptions)

type openOptions struct {
	maxConns int
}

// WithMaxConns sets the size of the connection pool. n < 1 keeps
// DefaultMaxConns. (On SQLite, writers take turns in the process whatever
// the size: see sqlite_writer.go.)
func WithMaxConns(n int) Option {
	return func(o *openOptions) {
		if n >= 1 {
			o.maxConns = n
		}
	}
}

// sqlitePragmas are applied to every SQLite connection. busy_timeout comes
// first so that the others wait for a lock rather than fail. _txlock=immediate
// makes every read-write transaction BEGIN IMMEDIATE: it takes the write lock
// up front (waiting up to busy_timeout), so a transaction that reads and then
// writes cannot fail with SQLITE_BUSY when another writer got there first.
// (The driver ignores _txlock when _time_format is given: never add that.)
//
// synchronous=FULL syncs the WAL at every commit, so a committed revocation
// or password change survives a power loss (NORMAL may lose the last
// commits); secure_delete=on overwrites deleted content, so a deleted
// account's email does not linger in free pages. BenchmarkSQLiteDurability
// measures what they cost.
var sqlitePragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
	"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_pragma=secure_delete(on)&_txlock=immediate"

// DB is the GORM-backed implementation of auth.Store.
type DB struct {
	gorm    *gorm.DB
	sql     *sql.DB
	dialect string
	logger  *slog.Logger
	// stmts are the hot paths' statements (hotpath.go).
	stmts statements
}

var _ auth.Store = (*DB)(nil)

// Open connects to the database named by dsn and checks that it answers.
//
// A dsn starting with postgres:// or postgresql:// opens PostgreSQL (pgx);
// sqlite:PATH opens the SQLite file at PATH with the pure-Go driver, in WAL
// mode with foreign keys on (the parent directory must exist). Open does not
// migrate: call Migrate. logger receives the database layer's warnings (slow
// queries, without their parameters); nil discards them.
func Open(ctx context.Context, dsn string, logger *slog.Logger, opts ...Option) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := openOptions{maxConns: DefaultMaxConns}
	for _, opt := range opts {
		opt(&o)
	}
	var (
		dialector gorm.Dialector
		dialect   string
		maxConns  = o.maxConns
		memory    bool
		pool      *healer // PostgreSQL only
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		pgDSN, n, err := parsePostgresDSN(dsn)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			maxConns = n
		}
		dialect = DialectPostgres
		pool = &healer{}
		dialector = postgresDialector{Dialector: *postgres.New(postgres.Config{DSN: pgDSN}).(*postgres.Dialector), pool: pool}
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" || strings.HasPrefix(path, "?") {
			return nil, errors.New("store: sqlite DSN has no path (want sqlite:PATH)")
		}
		memory = strings.HasPrefix(path, ":memory:") || strings.Contains(path, "mode=memory")
		if !memory {
			if err := createPrivate(path, logger); err != nil {
				return nil, err
			}
		}
		dialect = DialectSQLite
		dialector = sqliteDialector{sqlite.Dialector{DSN: sqliteDSN(path)}}
	default:
		// The DSN itself is not echoed: it may hold a password.
		return nil, errors.New("store: unsupported database DSN (want postgres://…, postgresql://… or sqlite:PATH)")
	}

	gdb, err := gorm.Open(dialector, &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: true, // multi-row changes use explicit transactions
		DisableAutomaticPing:   true, // Ping below honours ctx
		Logger:                 newGormLogger(logger),
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dialect, err)
	}
	switch {
	case dialect == DialectPostgres:
		sqlDB.SetMaxOpenConns(maxConns)
		sqlDB.SetMaxIdleConns(maxConns)
		sqlDB.SetConnMaxLifetime(pgConnMaxLifetime)
		sqlDB.SetConnMaxIdleTime(pgConnMaxIdleTime)
		pool.mu.Lock()
		pool.db, pool.maxIdle = sqlDB, maxConns
		pool.mu.Unlock()
	case memory:
		// Every connection to :memory: is a database of its own.
		sqlDB.SetMaxOpenConns(1)
	default:
		// database/sql keeps 2 idle by default: a burst of readers would
		// close and reopen connections.
		sqlDB.SetMaxOpenConns(maxConns)
		sqlDB.SetMaxIdleConns(maxConns)
	}
	if dialect == DialectSQLite && !memory {
		pool := newSerialPool(sqlDB) // see sqlite_writer.go
		gdb.ConnPool, gdb.Statement.ConnPool = pool, pool
	}

	db := &DB{gorm: gdb, sql: sqlDB, dialect: dialect, logger: logger, stmts: statementsFor(dialect)}
	if err := db.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	return db, nil
}

// Pools returns the connection pools by name, for their statistics: one,
// "main".
func (db *DB) Pools() map[string]*sql.DB {
	return map[string]*sql.DB{"main": db.sql}
}

// parsePostgresDSN strips Latchkey's own pool_max_conns parameter from a
// PostgreSQL URL (pgx would send it to the server, which rejects it) and
// returns it.
func parsePostgresDSN(dsn string) (string, int, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Error quotes the URL, password included: say less.
		return "", 0, errors.New("store: malformed PostgreSQL URL")
	}
	q := u.Query()
	v := q.Get("pool_max_conns")
	if v == "" {
		return dsn, 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("store: pool_max_conns %q: want a positive integer", v)
	}
	q.Del("pool_max_conns")
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

// createPrivate creates the SQLite database file readable by its owner
// only (0600 whatever the umask), before SQLite opens it: SQLite gives the
// WAL and shared-memory files the mode of the database file. An existing
// file keeps its mode, with a warning when others may read it.
func createPrivate(dsnPath string, logger *slog.Logger) error {
	path, _, _ := strings.Cut(strings.TrimPrefix(dsnPath, "file:"), "?")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			logger.Warn("the SQLite database can be read by other users: chmod 600 it (and its -wal and -shm files)",
				"path", path, "mode", fmt.Sprintf("%04o", info.Mode().Perm()))
		}
		return nil
	case err != nil:
		return fmt.Errorf("store: creating the SQLite database: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("store: creating the SQLite database: %w", err)
	}
	return nil
}

// sqliteDSN adds the connection pragmas to a SQLite path, keeping any
// parameters the path already carries.
func sqliteDSN(path string) string {
	if strings.Contains(path, "?") {
		return path + "&" + sqlitePragmas
	}
	return path + "?" + sqlitePragmas
}

// Close closes the connection pool.
func (db *DB) Close() error {
	return db.sql.Close()
}

// Dialect returns "sqlite" or "postgres".
func (db *DB) Dialect() string {
	return db.dialect
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		if ctx.Err() == nil { // a failed ping means unreachable, whatever the error says
			return fmt.Errorf("store: ping: %w: %w", auth.ErrUnavailable, err)
		}
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// sqliteDialector is glebarez's dialector with an error translator that
// keeps the driver error (and so the name of the violated index) wrapped
// under the gorm sentinel; the original one returns the bare sentinel.
type sqliteDialector struct {
	sqlite.Dialector
}

// Translate implements gorm.ErrorTranslator.
func (d sqliteDialector) Translate(err error) error {
	if isFault(err) {
		return unavailable(err)
	}
	t := d.Dialector.Translate(err)
	if errors.Is(t, gorm.ErrDuplicatedKey) || errors.Is(t, gorm.ErrForeignKeyViolated) {
		return fmt.Errorf("%w: %w", t, err)
	}
	return err
}
