package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
)

// slowQuery is the duration above which a statement is logged at warn level.
const slowQuery = 500 * time.Millisecond

// gormLogger routes GORM's own messages and slow statements to slog at warn
// level. Statements are logged with placeholders only: their parameters
// include token hashes and sealed secrets. Failed statements are not logged
// here; their errors are returned to the caller.
type gormLogger struct {
	log  *slog.Logger
	slow time.Duration
}

var (
	_ gormlogger.Interface = gormLogger{}
	_ gorm.ParamsFilter    = gormLogger{}
)

func newGormLogger(l *slog.Logger) gormLogger {
	return gormLogger{log: l.With("component", "store"), slow: slowQuery}
}

// LogMode implements gormlogger.Interface; the level is fixed.
func (l gormLogger) LogMode(gormlogger.LogLevel) gormlogger.Interface { return l }

// Info implements gormlogger.Interface; GORM's info messages are dropped.
func (l gormLogger) Info(context.Context, string, ...any) {}

// Warn implements gormlogger.Interface.
func (l gormLogger) Warn(ctx context.Context, msg string, data ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(msg, data...))
}

// Error implements gormlogger.Interface.
func (l gormLogger) Error(ctx context.Context, msg string, data ...any) {
	l.log.ErrorContext(ctx, fmt.Sprintf(msg, data...))
}

// Trace implements gormlogger.Interface: it reports slow statements.
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), _ error) {
	elapsed := time.Since(begin)
	if elapsed < l.slow {
		return
	}
	stmt, rows := fc()
	l.log.WarnContext(ctx, "slow database statement",
		"duration", elapsed, "rows", rows, "sql", stmt)
}

// ParamsFilter implements gorm.ParamsFilter: it drops every parameter
// so that logged SQL never carries values.
func (l gormLogger) ParamsFilter(_ context.Context, stmt string, _ ...any) (string, []any) {
	return stmt, nil
}
