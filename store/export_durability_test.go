package store

import "strings"

// WithSQLitePragmas opens SQLite databases with the given replacements in
// the connection pragmas (old, new, …) until the returned function runs:
// for the benchmark that compares durability settings. Not for parallel
// tests.
func WithSQLitePragmas(oldnew ...string) (restore func()) {
	saved := sqlitePragmas
	sqlitePragmas = strings.NewReplacer(oldnew...).Replace(saved)
	return func() { sqlitePragmas = saved }
}
