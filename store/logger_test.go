package store

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoggerOmitsParameters runs a real query through a logger that
// reports every statement as slow, and checks that the statement is logged
// without its parameters.
func TestLoggerOmitsParameters(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "log.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	db.gorm.Logger = gormLogger{log: slog.New(slog.NewTextHandler(&buf, nil)), slow: time.Nanosecond}
	if _, err := db.UserByEmail(ctx, "very-secret-parameter@example.com"); err == nil {
		t.Fatal("found a user in an empty database")
	}
	out := buf.String()
	if !strings.Contains(out, "slow database statement") || !strings.Contains(out, "lower(email)") {
		t.Fatalf("statement not logged: %q", out)
	}
	if strings.Contains(out, "very-secret-parameter") {
		t.Fatalf("log carries a parameter: %q", out)
	}
	if !strings.Contains(out, "level=WARN") {
		t.Errorf("slow statement not logged at warn level: %q", out)
	}
}
