package storetest_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// fatalRecorder is a testing.TB whose Fatal stops only the calling
// goroutine and is recorded.
type fatalRecorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *fatalRecorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func runTargets(t *testing.T) (targets []storetest.Target, fatal string) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		targets = storetest.Targets(rec)
	}()
	<-done
	return targets, rec.fatal
}

func TestTargetsRequirePostgres(t *testing.T) {
	t.Setenv(storetest.EnvPostgresURL, "")
	t.Setenv(storetest.EnvRequirePostgres, "1")
	if _, fatal := runTargets(t); fatal == "" {
		t.Fatal("Targets without a PostgreSQL URL but with it required did not fail")
	}

	t.Setenv(storetest.EnvRequirePostgres, "")
	targets, fatal := runTargets(t)
	if fatal != "" {
		t.Fatalf("Targets failed: %s", fatal)
	}
	if len(targets) != 1 || targets[0].Name != store.DialectSQLite {
		t.Fatalf("Targets = %v, want SQLite alone", targets)
	}
}

// TestTargetsIsolated checks that each target is a database of its own that
// can be opened more than once, and on PostgreSQL that the schema named in
// the DSN is the one in use.
func TestTargetsIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := storetest.Targets(t), storetest.Targets(t)
	if os.Getenv(storetest.EnvPostgresURL) != "" && len(a) != 2 {
		t.Fatalf("Targets = %v, want SQLite and PostgreSQL", a)
	}
	for i := range a {
		t.Run(a[i].Name, func(t *testing.T) {
			if a[i].DSN == b[i].DSN {
				t.Fatalf("two calls gave the same DSN %s", a[i].DSN)
			}
			db1 := storetest.Open(t, a[i].DSN)
			if err := db1.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db1.CreateSigningKey(ctx, &auth.SigningKey{ID: "k", PrivateEnc: []byte("p"), Public: []byte("q"), CreatedAt: time.Now().UTC()}); err != nil {
				t.Fatal(err)
			}
			db2 := storetest.Open(t, a[i].DSN) // reopened: sees the data
			if keys, err := db2.SigningKeys(ctx); err != nil || len(keys) != 1 {
				t.Fatalf("reopened: SigningKeys = %v, %v; want 1 key", keys, err)
			}
			other := storetest.Open(t, b[i].DSN) // another target: empty
			if keys, err := other.SigningKeys(ctx); err != nil || len(keys) != 0 {
				t.Fatalf("other target: SigningKeys = %v, %v; want none", keys, err)
			}
			if a[i].Name == store.DialectPostgres {
				checkSchema(t, a[i].DSN)
			}
		})
	}
}

// checkSchema checks that connections made with dsn use the schema it
// names, and that the migrations created their tables there.
func checkSchema(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := q.Get("search_path")
	q.Del("pool_max_conns") // store.Open's own parameter
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var schema string
	var n int
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != want || want == "" {
		t.Fatalf("current_schema() = %q, want %q", schema, want)
	}
	err = conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'users'", want).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("users tables in schema %s: %d, %v; want 1", want, n, err)
	}
}

// TestOpenSQLite checks that OpenSQLite gives a database migrated as far
// as a new file that Open migrates, and a database of its own each call.
func TestOpenSQLite(t *testing.T) {
	ctx := context.Background()
	migrations := func(db *store.DB) string {
		var names string
		err := db.Pools()["main"].QueryRowContext(ctx,
			"SELECT group_concat(name, ',') FROM (SELECT name FROM schema_migrations ORDER BY version)").Scan(&names)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	fresh := storetest.Open(t, storetest.Targets(t)[0].DSN)
	a, b := storetest.OpenSQLite(t), storetest.OpenSQLite(t)
	if got, want := migrations(a), migrations(fresh); got != want || want == "" {
		t.Errorf("OpenSQLite migrations = %q, want %q", got, want)
	}
	if err := a.CreateSigningKey(ctx, &auth.SigningKey{ID: "k", PrivateEnc: []byte("p"), Public: []byte("q"), CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if keys, err := b.SigningKeys(ctx); err != nil || len(keys) != 0 {
		t.Errorf("another OpenSQLite database: SigningKeys = %v, %v; want none", keys, err)
	}
}
