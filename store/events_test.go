package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// TestEventsShareTheTransaction: an event that cannot be written rolls
// back the change it records, and a change that fails leaves no event.
func TestEventsShareTheTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, s, _ := mustCreateUser(t, db, "tx@example.com", "tx_user")
		ev := auth.Event{ID: uuid.NewString(), Type: auth.EventLogout, CreatedAt: base, UserID: u.ID, SessionID: s.ID}
		noErr(t, "RecordEvents", db.RecordEvents(auth.WithEvents(ctx, ev)))

		// The same event id again: the insert fails, so must the revocation.
		if err := db.RevokeSession(auth.WithEvents(ctx, ev), u.ID, s.ID, at(time.Minute)); err == nil {
			t.Fatal("RevokeSession succeeded although its event could not be written")
		}
		got, err := db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		if got.RevokedAt != nil {
			t.Fatal("the session was revoked without its event")
		}

		// A change that fails (no such session) writes no event, and
		// leaves none on its context for a later write to record.
		other := auth.Event{ID: uuid.NewString(), Type: auth.EventSessionRevoked, CreatedAt: base, UserID: u.ID}
		failed := auth.WithEvents(ctx, other)
		wantErr(t, "RevokeSession", db.RevokeSession(failed, u.ID, uuid.NewString(), at(time.Minute)), auth.ErrNotFound)
		noErr(t, "RecordEvents", db.RecordEvents(failed))
		if n := countRows(t, db, "events", "id = ?", other.ID); n != 0 {
			t.Fatalf("a failed change left its event (%d rows)", n)
		}

		// Events are written once, by the first write on the context.
		once := auth.WithEvents(ctx, auth.Event{ID: uuid.NewString(), Type: auth.EventSessionRevoked, CreatedAt: base, UserID: u.ID})
		noErr(t, "RevokeUserSessions", db.RevokeUserSessions(once, u.ID, "", at(time.Minute)))
		noErr(t, "RecordEvents", db.RecordEvents(once))
		if n := countRows(t, db, "events", "user_id = ?", u.ID); n != 2 {
			t.Fatalf("%d events, want 2", n)
		}

		// Deleting the account deletes its events and keeps the one the
		// deletion carries.
		del := auth.Event{ID: uuid.NewString(), Type: auth.EventAccountDeleted, CreatedAt: base, UserID: u.ID}
		noErr(t, "DeleteUser", db.DeleteUser(auth.WithEvents(ctx, del), u.ID))
		evs, err := db.ListEvents(ctx, auth.EventFilter{UserID: u.ID}, nil, 10)
		noErr(t, "ListEvents", err)
		if len(evs) != 1 || evs[0].ID != del.ID {
			t.Fatalf("after deletion: %+v", evs)
		}
	})
}
