package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
)

// operator runs `latchkey <args…>` on the SQLite database of dir.
func operator(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, env(map[string]string{"LATCHKEY_DATA_DIR": dir}), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestAdminCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "latchkey.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	email, username := "ops@example.com", "Ops_1"
	u := &auth.User{ID: "0b9a3f6e-6c1d-4f7e-9a55-2d1c8e4b7f10", AccountType: auth.AccountPassword, Name: "Ops",
		Email: &email, Username: &username, Locale: "en", Timezone: "UTC", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=1$c2FsdA$aGFzaA"}
	if err := db.CreateUser(ctx, u, nil, nil); err != nil {
		t.Fatal(err)
	}
	isAdmin := func() bool {
		got, err := db.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Admin
	}

	for _, tc := range []struct {
		args  []string
		admin bool
		want  string
	}{
		{[]string{"admin", "grant", "OPS@example.com"}, true, "is now an admin"},
		{[]string{"admin", "grant", "ops_1"}, true, "was already an admin"},
		{[]string{"admin", "revoke", u.ID}, true, "last enabled admin"},
	} {
		out, err := operator(t, dir, tc.args...)
		if strings.Contains(tc.want, "last") != (err != nil) {
			t.Fatalf("%v: err %v, output %q", tc.args, err, out)
		}
		if err != nil {
			out = err.Error()
		}
		if !strings.Contains(out, tc.want) || isAdmin() != tc.admin {
			t.Fatalf("%v: %q (admin %v), want %q", tc.args, out, isAdmin(), tc.want)
		}
	}
	// Its events are recorded, without an actor (the operator).
	evs, err := db.ListEvents(ctx, auth.EventFilter{UserID: u.ID}, nil, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != auth.EventAdminGranted || evs[0].ActorID != "" {
		t.Fatalf("events = %+v, %v", evs, err)
	}

	for _, args := range [][]string{
		{"admin", "grant", "nobody@example.com"},
		{"admin", "grant", "nobody"},
		{"admin", "revoke", "00000000-0000-4000-8000-000000000000"},
	} {
		_, err := operator(t, dir, args...)
		if err == nil || !strings.Contains(err.Error(), "no account has") || !strings.Contains(err.Error(), args[2]) {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	for _, args := range [][]string{{"admin"}, {"admin", "grant"}, {"admin", "promote", "x"}, {"keys"}, {"admin", "grant", "--addr", ":1"}} {
		if _, err := operator(t, dir, args...); err == nil || !strings.Contains(err.Error(), "usage: latchkey") && !strings.Contains(err.Error(), "unknown action") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
}

func TestKeysCommand(t *testing.T) {
	dir := t.TempDir()
	out, err := operator(t, dir, "keys", "list")
	if err != nil || strings.Count(out, "current (signs)") != 1 {
		t.Fatalf("keys list on a new database: %q, %v", out, err)
	}
	out, err = operator(t, dir, "keys", "rotate")
	if err != nil || !strings.Contains(out, "is now current") {
		t.Fatalf("keys rotate: %q, %v", out, err)
	}
	kid := strings.Fields(strings.TrimPrefix(out, "Signing key "))[0]
	out, err = operator(t, dir, "keys", "list")
	if err != nil || strings.Count(out, "current (signs)") != 1 || strings.Count(out, "retired, in the JWKS until") != 1 {
		t.Fatalf("keys list after rotation: %q, %v", out, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, kid) && !strings.Contains(line, "current") {
			t.Fatalf("the new key is not current: %q", out)
		}
	}
}

func TestHelpListsOperatorCommands(t *testing.T) {
	out, err := operator(t, t.TempDir(), "help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"admin grant <email|username|id>", "admin revoke", "keys rotate", "keys list"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}
