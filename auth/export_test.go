package auth

import (
	"database/sql"
	"testing"
)

// OpenSQLiteStore returns the real store on a fresh, migrated SQLite
// database, and that database's connection pool for the tests to count and
// edit rows. Package auth cannot import store (store imports auth), so
// sqlite_link_test.go, in the external package auth_test of the same test
// binary, sets it in an init function before any test runs.
var OpenSQLiteStore func(t testing.TB) (Store, *sql.DB)
