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
