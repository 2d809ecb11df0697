package auth

import (
	"context"
	"database/sql"
	"sync"
	"testing"
)

// testStore is the real store, package store on a fresh SQLite database
// with the real migrations (OpenSQLiteStore), with the two things a test
// cannot get from a database: a Ping failure on demand and a count of
// SigningKeys calls. Every other method is the database's own, so the
// tests check the service against the store it runs on. What the tests
// read or arrange beneath the Store API is in inspect_test.go.
type testStore struct {
	Store
	db *sql.DB // the same database, for inspect_test.go

	mu       sync.Mutex
	keyLoads int   // SigningKeys calls
	pingErr  error // when set, Ping returns it
}

func newTestStore(t testing.TB) *testStore {
	t.Helper()
	st, db := OpenSQLiteStore(t)
	return &testStore{Store: st, db: db}
}

func (s *testStore) Ping(ctx context.Context) error {
	if s.pingErr != nil {
		return s.pingErr
	}
	return s.Store.Ping(ctx)
}

func (s *testStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	s.mu.Lock()
	s.keyLoads++
	s.mu.Unlock()
	return s.Store.SigningKeys(ctx)
}
