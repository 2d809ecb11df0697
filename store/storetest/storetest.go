// Package storetest provides databases for tests: a fresh SQLite file
// always, and a fresh PostgreSQL schema when LATCHKEY_TEST_POSTGRES_URL
// names a database.
//
// Many test packages may share one PostgreSQL database at the same time;
// each target gets a schema of its own (selected with the search_path URL
// parameter) that is dropped when the test ends. When
// LATCHKEY_TEST_REQUIRE_POSTGRES=1 a missing LATCHKEY_TEST_POSTGRES_URL fails
// the test instead of silently testing SQLite only.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey-dev/latchkey/store"
)

// Environment variables read by Targets.
const (
	EnvPostgresURL     = "LATCHKEY_TEST_POSTGRES_URL"
	EnvRequirePostgres = "LATCHKEY_TEST_REQUIRE_POSTGRES"
)

// poolMaxConns caps each test database's PostgreSQL pool, so that test
// packages running side by side stay well below the server's
// max_connections.
const poolMaxConns = 8

// Target is one database to test against.
type Target struct {
	Name string // "sqlite" or "postgres"; used as the subtest name
	DSN  string // for store.Open; may be opened several times
}

// Targets returns the databases to run a test on: a fresh SQLite file in
// t.TempDir() and, when LATCHKEY_TEST_POSTGRES_URL is set, a fresh schema in
// that PostgreSQL database, dropped in t.Cleanup. The databases are empty:
// open them with store.Open (or Open) and migrate.
func Targets(t testing.TB) []Target {
	t.Helper()
	targets := []Target{{
		Name: store.DialectSQLite,
		DSN:  "sqlite:" + filepath.Join(t.TempDir(), "latchkey.db"),
	}}
	base := os.Getenv(EnvPostgresURL)
	if base == "" {
		if os.Getenv(EnvRequirePostgres) == "1" {
			t.Fatalf("storetest: %s=1 but %s is not set", EnvRequirePostgres, EnvPostgresURL)
		}
		return targets
	}
	return append(targets, Target{Name: store.DialectPostgres, DSN: postgresSchema(t, base)})
}

// postgresSchema creates a schema with a random name in the database at
// base, schedules its removal, and returns a DSN whose connections use it.
func postgresSchema(t testing.TB, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storetest: %s must be a postgres:// URL", EnvPostgresURL)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "latchkey_test_" + hex.EncodeToString(b[:])

	if err := exec(base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(base, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})

	q := u.Query()
	q.Set("search_path", schema) // pgx sends unknown parameters to the server as settings
	q.Set("pool_max_conns", strconv.Itoa(poolMaxConns))
	u.RawQuery = q.Encode()
	return u.String()
}

// exec runs one statement on its own short-lived connection.
func exec(dsn, stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// Open opens and migrates the database at dsn and closes it when the test
// ends.
func Open(t testing.TB, dsn string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("storetest: open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storetest: close: %v", err)
		}
	})
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return db
}

// OpenSQLite returns a fresh, migrated SQLite database in t.TempDir(),
// closed when the test ends: Open on a new SQLite file, but the file is a
// copy of one migrated once per test binary, so a test package that opens
// a database per test does not run the migrations each time.
func OpenSQLite(t testing.TB) *store.DB {
	t.Helper()
	sqliteTemplate.once.Do(func() { sqliteTemplate.data, sqliteTemplate.err = migratedSQLite() })
	if sqliteTemplate.err != nil {
		t.Fatalf("storetest: template database: %v", sqliteTemplate.err)
	}
	path := filepath.Join(t.TempDir(), "latchkey.db")
	if err := os.WriteFile(path, sqliteTemplate.data, 0o600); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return Open(t, "sqlite:"+path) // Migrate finds nothing to do
}

// sqliteTemplate is the file of a migrated SQLite database (OpenSQLite).
var sqliteTemplate struct {
	once sync.Once
	data []byte
	err  error
}

// migratedSQLite migrates a new SQLite database and returns its file.
func migratedSQLite() ([]byte, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "latchkey-storetest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "latchkey.db")
	db, err := store.Open(ctx, "sqlite:"+path, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := db.Close(); err != nil { // the last connection checkpoints the WAL into the file
		return nil, err
	}
	return os.ReadFile(path)
}

// Each runs fn in a subtest per target (named after it) with that
// database opened and migrated; it is closed when the subtest ends.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, target := range Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			fn(t, Open(t, target.DSN))
		})
	}
}
