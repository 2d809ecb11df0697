package auth_test

import (
	"database/sql"
	"testing"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

func init() {
	auth.OpenSQLiteStore = func(t testing.TB) (auth.Store, *sql.DB) {
		t.Helper()
		db := storetest.OpenSQLite(t)
		return db, db.Pools()["main"]
	}
}
