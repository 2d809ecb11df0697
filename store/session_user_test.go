package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

func TestUserByLiveSession(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := passwordUser("live@example.com", "")
		s := &auth.Session{ID: uuid.NewString(), UserID: u.ID, CreatedAt: base, LastUsed: base, ExpiresAt: at(time.Hour)}
		if err := db.CreateUser(ctx, u, s, nil); err != nil {
			t.Fatal(err)
		}
		got, err := db.UserByLiveSession(ctx, s.ID, at(time.Minute))
		if err != nil || got.ID != u.ID || got.Email == nil || *got.Email != "live@example.com" {
			t.Fatalf("live session: %+v, %v", got, err)
		}
		for name, c := range map[string]struct {
			id  string
			now time.Time
		}{
			"expired":      {s.ID, at(time.Hour)},
			"unknown":      {uuid.NewString(), at(time.Minute)},
			"not a uuid":   {"nope", at(time.Minute)},
			"empty string": {"", at(time.Minute)},
		} {
			if _, err := db.UserByLiveSession(ctx, c.id, c.now); !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
		if err := db.RevokeSession(ctx, u.ID, s.ID, at(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UserByLiveSession(ctx, s.ID, at(3*time.Minute)); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("revoked: %v, want ErrNotFound", err)
		}

		v := passwordUser("gone@example.com", "")
		vs := &auth.Session{ID: uuid.NewString(), UserID: v.ID, CreatedAt: base, LastUsed: base, ExpiresAt: at(time.Hour)}
		if err := db.CreateUser(ctx, v, vs, nil); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteUser(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UserByLiveSession(ctx, vs.ID, at(time.Minute)); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("deleted user: %v, want ErrNotFound", err)
		}
	})
}

// TestRotateRefreshTokenDisabledAccount: the rotation reads the account
// with the token; a disabled account's token is not rotated (and nothing
// changes), while an enabled one's rotation reports the session's user.
func TestRotateRefreshTokenDisabledAccount(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, s, rt := mustCreateUser(t, db, "rot-disabled@example.com", "")
		q := "UPDATE users SET disabled = ? WHERE id = ?"
		if db.Dialect() == store.DialectPostgres {
			q = "UPDATE users SET disabled = $1 WHERE id = $2"
		}
		if _, err := db.Pools()["main"].ExecContext(ctx, q, true, u.ID); err != nil {
			t.Fatal(err)
		}
		now := at(time.Minute)
		old, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, newToken(t, "", now, now.Add(time.Hour)), []byte("enc"), now)
		if err != nil || rotated || old.RotatedAt != nil {
			t.Fatalf("disabled account: rotated=%v, %+v, %v; want not rotated", rotated, old, err)
		}
		if _, err := db.Pools()["main"].ExecContext(ctx, q, false, u.ID); err != nil {
			t.Fatal(err)
		}
		old, rotated, err = db.RotateRefreshToken(ctx, rt.Hash, newToken(t, "", now, now.Add(time.Hour)), []byte("enc"), now)
		if err != nil || !rotated || old.UserID != u.ID || old.SessionID != s.ID {
			t.Fatalf("enabled again: rotated=%v, %+v, %v", rotated, old, err)
		}
	})
}

// TestRotateRefreshTokenQueuesOnSQLite: the rotation runs on database/sql
// beside gorm, and still takes its turn in the SQLite writer queue: while
// another writer holds the turn it waits (here until its context ends,
// changing nothing), and rotates once the turn is free.
func TestRotateRefreshTokenQueuesOnSQLite(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, _, rt := mustCreateUser(t, db, "rot-queue@example.com", "")
		release, ok, err := db.HoldSQLiteWriter(ctx)
		if !ok {
			t.Skip("no writer queue on " + db.Dialect())
		}
		noErr(t, "HoldSQLiteWriter", err)
		defer release()
		now := at(time.Minute)
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, rotated, err := db.RotateRefreshToken(short, rt.Hash, newToken(t, "", now, now.Add(time.Hour)), []byte("enc"), now)
		if !errors.Is(err, context.DeadlineExceeded) || rotated {
			t.Fatalf("rotation while another writer holds the turn: rotated=%v err=%v; want it to wait (context.DeadlineExceeded)", rotated, err)
		}
		release()
		old, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, newToken(t, "", now, now.Add(time.Hour)), []byte("enc"), now)
		if err != nil || !rotated || old.RotatedAt == nil {
			t.Fatalf("rotation once the turn is free: rotated=%v, %+v, %v", rotated, old, err)
		}
	})
}
