package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// TestFlagsSurviveStaleWrites: a profile edit or a rehash of a user read
// before an admin disabled (and demoted) it does not put the old flags
// back, and disabling revokes the sessions in the same transaction.
func TestFlagsSurviveStaleWrites(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, s, _ := mustCreateUser(t, db, "flags@example.com", "flags_user")
		admin := true
		_, err := db.SetUserFlags(ctx, u.ID, auth.FlagChange{Admin: &admin}, at(time.Minute), func(auth.User) ([]auth.Event, error) { return nil, nil })
		noErr(t, "grant", err)

		stale, err := db.UserByID(ctx, u.ID) // read by a PATCH /me in flight
		noErr(t, "UserByID", err)
		disabled, notAdmin := true, false
		// The last enabled admin cannot be disabled; with another admin
		// it can.
		after, err := db.SetUserFlags(ctx, u.ID, auth.FlagChange{Disabled: &disabled}, at(2*time.Minute), func(auth.User) ([]auth.Event, error) { return nil, nil })
		wantErr(t, "disabling the last admin", err, auth.ErrLastAdmin)
		other, _, _ := mustCreateUser(t, db, "other@example.com", "other_user")
		_, err = db.SetUserFlags(ctx, other.ID, auth.FlagChange{Admin: &admin}, at(time.Minute), func(auth.User) ([]auth.Event, error) { return nil, nil })
		noErr(t, "grant another", err)
		after, err = db.SetUserFlags(ctx, u.ID, auth.FlagChange{Disabled: &disabled, Admin: &notAdmin}, at(2*time.Minute), func(auth.User) ([]auth.Event, error) { return nil, nil })
		noErr(t, "disable and demote", err)
		if !after.Disabled || after.Admin {
			t.Fatalf("after the change: %+v", after)
		}
		sess, err := db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		if sess.RevokedAt == nil {
			t.Fatal("disabling left the session live")
		}

		_, err = db.UpdateProfile(ctx, u.ID, auth.UserPatch{Name: ptr("Renamed")}, at(3*time.Minute))
		noErr(t, "UpdateProfile", err)
		noErr(t, "UpgradePasswordHash", db.UpgradePasswordHash(ctx, u.ID, stale.PasswordHash, "$argon2id$rehashed", at(3*time.Minute)))
		got, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		if got.Name != "Renamed" || !got.Disabled || got.Admin {
			t.Fatalf("a stale write put flags back: name %q disabled %v admin %v", got.Name, got.Disabled, got.Admin)
		}
	})
}
