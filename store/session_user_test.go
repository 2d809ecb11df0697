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
