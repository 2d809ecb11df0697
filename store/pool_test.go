package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// totalStats adds up the statistics of every pool of db.
func totalStats(db *store.DB) sql.DBStats {
	var t sql.DBStats
	for _, p := range db.Pools() {
		s := p.Stats()
		t.MaxOpenConnections += s.MaxOpenConnections
		t.OpenConnections += s.OpenConnections
		t.MaxIdleClosed += s.MaxIdleClosed
		t.MaxIdleTimeClosed += s.MaxIdleTimeClosed
		t.MaxLifetimeClosed += s.MaxLifetimeClosed
	}
	return t
}

// TestPoolKeepsItsConnections: under concurrent load no larger than the
// pool, connections are reused, never closed for being idle and reopened.
// With the old settings (5 idle of 20 on PostgreSQL; database/sql's
// default of 2 idle on SQLite) 8 workers doing 50 rounds each close
// connections that exceed the idle limit (MaxIdleClosed 3–6 in every run
// seen, on both databases).
func TestPoolKeepsItsConnections(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := passwordUser("pool@example.com", "")
		if err := db.CreateUser(ctx, u, nil, nil); err != nil {
			t.Fatal(err)
		}
		const workers, rounds = 8, 50 // storetest caps PostgreSQL at 8
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					if _, err := db.UserByID(ctx, u.ID); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		s := totalStats(db)
		if s.MaxIdleClosed != 0 || s.MaxLifetimeClosed != 0 || s.MaxIdleTimeClosed != 0 {
			t.Errorf("connections were closed and reopened under load: %+v", s)
		}
		if s.OpenConnections > workers {
			t.Errorf("%d connections open for %d workers", s.OpenConnections, workers)
		}
	})
}

func TestWithMaxConns(t *testing.T) {
	dsn := storetest.Targets(t)[0].DSN // SQLite
	db, err := store.Open(context.Background(), dsn, nil, store.WithMaxConns(3))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Pools()["main"].Stats().MaxOpenConnections; got != 3 {
		t.Errorf("pool allows %d connections, want 3", got)
	}
}

func TestCreateUsers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		users := make([]auth.User, 1201) // three batches
		for i := range users {
			users[i] = *passwordUser(fmt.Sprintf("bulk-%d@example.com", i), "")
		}
		if err := db.CreateUsers(ctx, users); err != nil {
			t.Fatal(err)
		}
		got, err := db.UserByEmail(ctx, "bulk-1200@example.com")
		if err != nil || got.ID != users[1200].ID {
			t.Fatalf("UserByEmail after CreateUsers: %v, %v", got, err)
		}

		// A taken email fails the whole call: nothing of it is inserted.
		again := []auth.User{*passwordUser("fresh@example.com", ""), *passwordUser("bulk-7@example.com", "")}
		if err := db.CreateUsers(ctx, again); !errors.Is(err, auth.ErrEmailTaken) {
			t.Fatalf("CreateUsers with a taken email: %v, want ErrEmailTaken", err)
		}
		if _, err := db.UserByEmail(ctx, "fresh@example.com"); !errors.Is(err, auth.ErrNotFound) {
			t.Fatalf("a user of the failed call was inserted: %v", err)
		}
	})
}
