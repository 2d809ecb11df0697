package store

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the schema migrations, one directory per dialect, named
// NNNN_description.sql. A migration is never edited once released: a change
// is a new file, in both directories.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migration is one versioned schema change.
type migration struct {
	version int64
	name    string // file name
	sql     string
}

// Migrate brings the schema up to date. Each pending migration runs in its
// own transaction together with its row in schema_migrations, so a failed
// migration leaves no trace and running Migrate again is a no-op. Several
// instances may migrate at once: on PostgreSQL they take turns under an
// advisory lock (per schema); on SQLite each transaction holds the write
// lock from its start and re-checks whether its migration is still pending.
//
// Then it brings stored addresses to auth.NormalizeEmail's form (IDNA and
// NFC, release 0004 on), which SQL cannot compute: see normalizeEmails.
func (db *DB) Migrate(ctx context.Context) error {
	if err := db.migrate(ctx, migrationFS, path.Join("migrations", db.dialect)); err != nil {
		return err
	}
	return db.normalizeEmails(ctx)
}

func (db *DB) migrate(ctx context.Context, fsys fs.FS, dir string) error {
	migrations, err := loadMigrations(fsys, dir)
	if err != nil {
		return err
	}

	// One connection for the whole run: a PostgreSQL advisory lock belongs
	// to the session that took it.
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()

	if db.dialect == DialectPostgres {
		unlock, err := pgAdvisoryLock(ctx, conn)
		if err != nil {
			return err
		}
		defer unlock()
	}

	if _, err := conn.ExecContext(ctx, db.schemaMigrationsDDL()); err != nil {
		return fmt.Errorf("store: migrate: create schema_migrations: %w", err)
	}
	for _, m := range migrations {
		applied, err := db.applyMigration(ctx, conn, m)
		if err != nil {
			return err
		}
		if applied {
			db.logger.InfoContext(ctx, "applied database migration", "version", m.version, "name", m.name)
		}
	}

	var latest sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&latest); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if known := migrations[len(migrations)-1].version; latest.Int64 > known {
		db.logger.WarnContext(ctx, "database schema is newer than this build",
			"database_version", latest.Int64, "known_version", known)
	}
	return nil
}

// pgAdvisoryLock takes the migration lock of the connection's current
// schema, waiting for another instance to finish, and returns its release.
func pgAdvisoryLock(ctx context.Context, conn *sql.Conn) (func(), error) {
	const key = "hashtext('latchkey.migrate.' || coalesce(current_schema(), ''))"
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+key+")"); err != nil {
		return nil, fmt.Errorf("store: migrate: take advisory lock: %w", err)
	}
	return func() {
		// Release even when ctx is done; should that fail, the lock goes
		// with the session when the connection closes.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock("+key+")"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // close, do not pool
		}
	}, nil
}

// applyMigration runs m unless it is already recorded, in one transaction.
func (db *DB) applyMigration(ctx context.Context, conn *sql.Conn, m migration) (applied bool, err error) {
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE on SQLite
	if err != nil {
		return false, fmt.Errorf("store: migrate %s: begin: %w", m.name, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	var n int
	if err := tx.QueryRowContext(ctx,
		"SELECT count(*) FROM schema_migrations WHERE version = "+db.placeholder(1), m.version,
	).Scan(&n); err != nil {
		return false, fmt.Errorf("store: migrate %s: %w", m.name, err)
	}
	if n > 0 {
		return false, tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("store: migrate %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO schema_migrations (version, name) VALUES ("+db.placeholder(1)+", "+db.placeholder(2)+")",
		m.version, m.name,
	); err != nil {
		return false, fmt.Errorf("store: migrate %s: record: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: migrate %s: commit: %w", m.name, err)
	}
	return true, nil
}

func (db *DB) schemaMigrationsDDL() string {
	if db.dialect == DialectPostgres {
		return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    bigint      PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`
	}
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT`
}

// placeholder returns the n-th (1-based) bind parameter in raw SQL.
func (db *DB) placeholder(n int) string {
	if db.dialect == DialectPostgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// loadMigrations reads dir's NNNN_name.sql files in version order.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s: name must be NNNN_description.sql", name)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", name, err)
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("store: no migrations in %s", dir)
	}
	slices.SortFunc(out, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("store: migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}
