package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
)

// The operator's subcommands on the configured database:
//
//	latchkey admin grant|revoke <email|username|id> [flags]
//	latchkey keys rotate|list [flags]

// isOperatorCommand reports whether cmd is one of the subcommands above.
func isOperatorCommand(cmd string) bool { return cmd == "admin" || cmd == "keys" }

// runOperator runs `latchkey admin …` or `latchkey keys …`. args are what
// follows the command: the action, its operand (for admin), then flags.
func runOperator(ctx context.Context, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := "usage: latchkey admin grant|revoke <email|username|id> [flags]"
	operands := 2
	if cmd == "keys" {
		usage, operands = "usage: latchkey keys rotate|list [flags]", 1
	}
	if len(args) < operands || strings.HasPrefix(args[0], "-") || (operands == 2 && strings.HasPrefix(args[1], "-")) {
		return errors.New(usage)
	}
	action, rest := args[0], args[operands:]
	cfg, err := parseConfig(rest, getenv, stderr)
	if err != nil {
		return err
	}
	db, err := openOperatorDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()

	switch cmd + " " + action {
	case "admin grant", "admin revoke":
		return setAdmin(ctx, db, args[1], action == "grant", stdout)
	case "keys rotate", "keys list":
		return keys(ctx, cfg, db, action == "rotate", newLogger(cfg, stderr), stdout)
	}
	return fmt.Errorf("unknown action %q; %s", action, usage)
}

// openOperatorDB opens and migrates the configured database.
func openOperatorDB(ctx context.Context, cfg *config) (*store.DB, error) {
	if !cfg.isPostgres() {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the data dir: %w", err)
		}
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, nil)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating the database: %w", err)
	}
	return db, nil
}

func setAdmin(ctx context.Context, db *store.DB, ident string, admin bool, stdout io.Writer) error {
	u, changed, err := auth.SetAdmin(ctx, db, ident, admin, time.Now())
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return fmt.Errorf("no account has the id, email or username %q", ident)
	case errors.Is(err, auth.ErrLastAdmin):
		return fmt.Errorf("%s is the last enabled admin: grant another account first", describeAccount(ident, nil))
	case err != nil:
		return err
	}
	who := describeAccount(ident, u)
	switch {
	case admin && changed:
		fmt.Fprintf(stdout, "%s is now an admin.\n", who)
	case admin:
		fmt.Fprintf(stdout, "%s was already an admin; nothing changed.\n", who)
	case changed:
		fmt.Fprintf(stdout, "%s is no longer an admin.\n", who)
	default:
		fmt.Fprintf(stdout, "%s was not an admin; nothing changed.\n", who)
	}
	if u.Disabled && admin {
		fmt.Fprintln(stdout, "Note: the account is disabled; it cannot act as an admin until it is enabled.")
	}
	return nil
}

// describeAccount names an account for the operator: its id with its
// email or username.
func describeAccount(ident string, u *auth.User) string {
	if u == nil {
		return fmt.Sprintf("%q", ident)
	}
	label := u.Name
	switch {
	case u.Email != nil:
		label = *u.Email
	case u.Username != nil:
		label = *u.Username
	}
	return fmt.Sprintf("Account %s (%s)", u.ID, label)
}

func keys(ctx context.Context, cfg *config, db *store.DB, rotate bool, logger *slog.Logger, stdout io.Writer) error {
	key, err := cfg.masterKey(logger)
	if err != nil {
		return err
	}
	svc, err := auth.NewService(ctx, db, cfg.authConfig(key))
	if err != nil {
		return err
	}
	if rotate {
		k, err := svc.RotateSigningKey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Signing key %s is now current; every instance signs with it within a minute.\n", k.ID)
		fmt.Fprintf(stdout, "The previous key keeps verifying tokens until they have expired (access token TTL %s plus a minute at most).\n", cfg.AccessTokenTTL)
		return nil
	}
	status, err := svc.SigningKeyStatus(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tCREATED\tSTATE")
	for _, k := range status {
		state := "current (signs)"
		switch {
		case k.Current:
		case k.RetiredAt == nil:
			state = "unused"
		case now.Before(*k.VerifiesUntil):
			state = "retired, in the JWKS until " + k.VerifiesUntil.UTC().Format(time.RFC3339)
		default:
			state = "retired, expired (no longer verifies)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", k.ID, k.CreatedAt.UTC().Format(time.RFC3339), state)
	}
	return w.Flush()
}
