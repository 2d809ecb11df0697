package store

import (
	"context"
	"io/fs"
)

// Test hooks for the external test package.

// MigrateFS runs the migration runner on another set of migrations.
func (db *DB) MigrateFS(ctx context.Context, fsys fs.FS, dir string) error {
	return db.migrate(ctx, fsys, dir)
}

// LoadMigrations exposes loadMigrations, returning the file names.
func LoadMigrations(fsys fs.FS, dir string) ([]string, error) {
	ms, err := loadMigrations(fsys, dir)
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.name
	}
	return names, err
}

// MigrationFS is the embedded migrations.
var MigrationFS = migrationFS

// Scan runs a raw query (with ? placeholders) and scans its single row.
func (db *DB) Scan(ctx context.Context, dest any, query string, args ...any) error {
	return db.gorm.WithContext(ctx).Raw(query, args...).Scan(dest).Error
}

// HoldSQLiteWriter takes the SQLite writer queue's turn (sqlite_writer.go)
// until release runs; ok is false when db has no queue.
func (db *DB) HoldSQLiteWriter(ctx context.Context) (release func(), ok bool, err error) {
	p, ok := db.gorm.ConnPool.(*serialPool)
	if !ok {
		return nil, false, nil
	}
	release, err = p.w.acquire(ctx)
	return release, true, err
}

// TxStmts is txStmts, for InSQLiteGroup's callers.
type TxStmts = txStmts

// InSQLiteGroup runs fn as a job of the SQLite writers' group commit
// (inGroup); ok is false when db has no writer queue.
func (db *DB) InSQLiteGroup(ctx context.Context, fn func(ctx context.Context, tx TxStmts) error) (ok bool, err error) {
	p, ok := db.gorm.ConnPool.(*serialPool)
	if !ok {
		return false, nil
	}
	return true, p.inGroup(ctx, fn)
}
