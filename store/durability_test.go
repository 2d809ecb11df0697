package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/latchkey-dev/latchkey/store"
)

// TestSQLiteFilesArePrivate: the database, its WAL and its shared-memory
// file are created 0600 even under a permissive umask.
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o000) // the most permissive: modes must not rely on it
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "latchkey.db")
	db, err := store.Open(context.Background(), "sqlite:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(name), perm)
		}
	}
}

// TestSQLiteDurabilityPragmas: every connection syncs each commit
// (synchronous=FULL) and overwrites deleted content (secure_delete).
func TestSQLiteDurabilityPragmas(t *testing.T) {
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for pragma, want := range map[string]int{"synchronous": 2, "secure_delete": 1, "foreign_keys": 1} {
		var got int
		if err := db.Scan(ctx, &got, "PRAGMA "+pragma); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %d, want %d", pragma, got, want)
		}
	}
}

// BenchmarkSQLiteDurability measures one committed write and one delete
// (a session's life) under the old settings and the durable ones:
//
//	go test ./store -run '^$' -bench SQLiteDurability -benchtime 2s
func BenchmarkSQLiteDurability(b *testing.B) {
	for _, c := range []struct {
		name   string
		oldnew []string
	}{
		{"NORMAL", []string{"synchronous(FULL)", "synchronous(NORMAL)", "&_pragma=secure_delete(on)", ""}},
		{"FULL", []string{"&_pragma=secure_delete(on)", ""}},
		{"FULL+secure_delete", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			restore := store.WithSQLitePragmas(c.oldnew...)
			db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "db"), nil)
			restore()
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			var n int
			if err := db.Scan(ctx, &n, "CREATE TABLE bench (id INTEGER PRIMARY KEY, email TEXT, pad BLOB)"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if err := db.Scan(ctx, &n, "INSERT INTO bench (id, email, pad) VALUES (?, ?, zeroblob(512))", i, fmt.Sprintf("user%d@example.com", i)); err != nil {
					b.Fatal(err)
				}
				if err := db.Scan(ctx, &n, "DELETE FROM bench WHERE id = ?", i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
