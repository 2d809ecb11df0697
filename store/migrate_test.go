package store_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

func openRaw(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func embeddedVersions(t *testing.T, dialect string) []string {
	t.Helper()
	names, err := store.LoadMigrations(store.MigrationFS, "migrations/"+dialect)
	noErr(t, "LoadMigrations", err)
	return names
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "mig@example.com", "")
		noErr(t, "Migrate (second)", db.Migrate(ctx))
		noErr(t, "Migrate (third)", db.Migrate(ctx))
		want := int64(len(embeddedVersions(t, db.Dialect())))
		if n := countRows(t, db, "schema_migrations", ""); n != want {
			t.Errorf("schema_migrations has %d rows, want %d", n, want)
		}
		if n := countRows(t, db, "schema_migrations", "version = 1 AND name = ?", "0001_init.sql"); n != 1 {
			t.Errorf("0001_init.sql recorded %d times, want 1", n)
		}
		_, err := db.UserByID(ctx, u.ID)
		noErr(t, "data survives a re-run", err)
	})
}

func TestMigrateConcurrently(t *testing.T) {
	for _, target := range storetest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			const n = 6
			dbs := make([]*store.DB, n)
			for i := range dbs {
				dbs[i] = openRaw(t, target.DSN)
			}
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, db := range dbs {
				wg.Go(func() {
					<-start
					errs[i] = db.Migrate(context.Background())
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("instance %d: Migrate: %v", i, err)
				}
			}
			want := int64(len(embeddedVersions(t, dbs[0].Dialect())))
			if got := countRows(t, dbs[0], "schema_migrations", ""); got != want {
				t.Errorf("schema_migrations has %d rows, want %d", got, want)
			}
			// The schema works.
			mustCreateUser(t, dbs[n-1], "after@example.com", "")
		})
	}
}

func TestMigrationRunner(t *testing.T) {
	for _, target := range storetest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			ctx := context.Background()
			db := openRaw(t, target.DSN)
			fsys := fstest.MapFS{
				"m/0001_a.sql": {Data: []byte("CREATE TABLE a (id INTEGER PRIMARY KEY);\nINSERT INTO a (id) VALUES (1);")},
			}
			noErr(t, "migrate 0001", db.MigrateFS(ctx, fsys, "m"))

			fsys["m/0002_b.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE b (id INTEGER PRIMARY KEY); INSERT INTO a (id) VALUES (2);")}
			noErr(t, "migrate 0001+0002", db.MigrateFS(ctx, fsys, "m"))
			// 0001 did not run again (it would have failed: a exists).
			if n := countRows(t, db, "a", ""); n != 2 {
				t.Fatalf("table a has %d rows, want 2", n)
			}

			// A failing migration leaves nothing behind and stops the run.
			fsys["m/0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (id INTEGER PRIMARY KEY); INSERT INTO a (id) VALUES (3); THIS IS NOT SQL;")}
			fsys["m/0004_d.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE d (id INTEGER PRIMARY KEY);")}
			err := db.MigrateFS(ctx, fsys, "m")
			if err == nil || !strings.Contains(err.Error(), "0003_c.sql") {
				t.Fatalf("failing migration: err = %v, want one naming 0003_c.sql", err)
			}
			if n := countRows(t, db, "a", ""); n != 2 {
				t.Errorf("table a has %d rows after a failed migration, want 2", n)
			}
			if n := countRows(t, db, "schema_migrations", "version >= 3"); n != 0 {
				t.Errorf("%d migrations recorded past the failure", n)
			}
			var tables int64
			noErr(t, "count tables", db.Scan(ctx, &tables, tableCountQuery(db), "c"))
			if tables != 0 {
				t.Error("table c of the failed migration exists")
			}

			fsys["m/0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (id INTEGER PRIMARY KEY);")}
			noErr(t, "migrate after the fix", db.MigrateFS(ctx, fsys, "m"))
			if n := countRows(t, db, "schema_migrations", ""); n != 4 {
				t.Errorf("schema_migrations has %d rows, want 4", n)
			}
		})
	}
}

func tableCountQuery(db *store.DB) string {
	if db.Dialect() == store.DialectPostgres {
		return "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
	}
	return "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
}

func TestLoadMigrations(t *testing.T) {
	sqlite := embeddedVersions(t, store.DialectSQLite)
	postgres := embeddedVersions(t, store.DialectPostgres)
	if !slices.Equal(sqlite, postgres) {
		t.Errorf("the dialects' migrations differ:\n sqlite   %v\n postgres %v", sqlite, postgres)
	}
	if len(sqlite) == 0 || sqlite[0] != "0001_init.sql" {
		t.Errorf("first migration = %v, want 0001_init.sql", sqlite)
	}

	names, err := store.LoadMigrations(fstest.MapFS{
		"m/0010_j.sql":  {Data: []byte("x")},
		"m/0002_b.sql":  {Data: []byte("x")},
		"m/README.md":   {Data: []byte("x")},
		"m/0001_a.sql":  {Data: []byte("x")},
		"m/sub/0003.sq": {Data: []byte("x")},
	}, "m")
	noErr(t, "LoadMigrations", err)
	if want := []string{"0001_a.sql", "0002_b.sql", "0010_j.sql"}; !slices.Equal(names, want) {
		t.Errorf("order = %v, want %v", names, want)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"no number":      {"m/init.sql": {}},
		"zero":           {"m/0000_zero.sql": {}},
		"shared version": {"m/0001_a.sql": {}, "m/01_b.sql": {}},
		"empty":          {"m/README.md": {}},
	} {
		if _, err := store.LoadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: LoadMigrations succeeded", name)
		}
	}
}
