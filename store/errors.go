package store

import (
	"errors"
	"fmt"
	"strings"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// Names of the unique indexes whose violations mean something to the
// domain (see the migrations).
const (
	indexUserEmail    = "users_email_lower_key"
	indexUserUsername = "users_username_lower_key"
)

// translate turns a database error into an auth sentinel where one applies
// and otherwise wraps it with the operation's name.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound), errors.Is(err, auth.ErrNotFound):
		return auth.ErrNotFound
	case errors.Is(err, gorm.ErrDuplicatedKey):
		switch violatedIndex(err) {
		case indexUserEmail:
			return auth.ErrEmailTaken
		case indexUserUsername:
			return auth.ErrUsernameTaken
		}
		return fmt.Errorf("store: %s: %w", op, auth.ErrConflict)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		// The row referred to (a user, a session) does not exist.
		return fmt.Errorf("store: %s: referenced row missing: %w", op, auth.ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// violatedIndex names the unique index or constraint behind a duplicate-key
// error, or returns "" when the error does not say.
func violatedIndex(err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.ConstraintName
	}
	if sqErr, ok := errors.AsType[*gosqlite.Error](err); ok {
		// "UNIQUE constraint failed: index 'users_email_lower_key'" for an
		// expression index; "... failed: users.id" for a column.
		msg := sqErr.Error()
		for _, name := range []string{indexUserEmail, indexUserUsername} {
			if strings.Contains(msg, "'"+name+"'") {
				return name
			}
		}
	}
	return ""
}

// parseID returns the canonical form of a UUID id; an id that is not a UUID
// names no row.
func parseID(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", auth.ErrNotFound
	}
	return u.String(), nil
}
