package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// base is the clock of these tests: a time with a sub-second part, so that
// any truncation to seconds shows.
var base = time.Date(2031, 3, 14, 15, 9, 26, 535897000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

func randomHash(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return h[:]
}

func ptr[T any](v T) *T { return &v }

func passwordUser(email, username string) *auth.User {
	u := &auth.User{
		ID:           uuid.NewString(),
		AccountType:  auth.AccountPassword,
		Name:         "Ada Lovelace",
		Email:        ptr(email),
		Locale:       "en-GB",
		Timezone:     "Europe/London",
		CreatedAt:    base,
		UpdatedAt:    base,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA",
	}
	if username != "" {
		u.Username = ptr(username)
	}
	return u
}

func secretUser(t *testing.T) *auth.User {
	return &auth.User{
		ID:          uuid.NewString(),
		AccountType: auth.AccountSecret,
		Name:        "anonymous",
		Locale:      "en",
		Timezone:    "UTC",
		CreatedAt:   base,
		UpdatedAt:   base,
		SecretHash:  randomHash(t),
		SecretEnc:   []byte("sealed secret"),
	}
}

func newSession(userID string, created, expires time.Time) *auth.Session {
	return &auth.Session{
		ID:        uuid.NewString(),
		UserID:    userID,
		CreatedAt: created,
		LastUsed:  created,
		ExpiresAt: expires,
		UserAgent: "test-agent/1.0",
		IP:        "192.0.2.1",
	}
}

func newToken(t *testing.T, sessionID string, created, expires time.Time) *auth.RefreshToken {
	return &auth.RefreshToken{Hash: randomHash(t), SessionID: sessionID, CreatedAt: created, ExpiresAt: expires}
}

// mustCreateUser creates a password user with one session (30 days) and
// its refresh token.
func mustCreateUser(t *testing.T, db *store.DB, email, username string) (*auth.User, *auth.Session, *auth.RefreshToken) {
	t.Helper()
	u := passwordUser(email, username)
	s := newSession(u.ID, base, at(30*24*time.Hour))
	rt := newToken(t, s.ID, base, s.ExpiresAt)
	if err := db.CreateUser(context.Background(), u, s, rt); err != nil {
		t.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u, s, rt
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func equalUsers(t *testing.T, got, want *auth.User) {
	t.Helper()
	switch {
	case got.ID != want.ID, got.AccountType != want.AccountType, got.Name != want.Name,
		!eqPtr(got.Username, want.Username), !eqPtr(got.Email, want.Email),
		got.EmailConfirmed != want.EmailConfirmed, !eqPtr(got.Bio, want.Bio),
		got.Locale != want.Locale, got.Timezone != want.Timezone,
		!eqPtr(got.Location, want.Location), !eqPtr(got.BirthDate, want.BirthDate),
		got.HasAvatar != want.HasAvatar, got.TwoFactorEnabled != want.TwoFactorEnabled,
		got.Admin != want.Admin, got.Disabled != want.Disabled,
		!got.CreatedAt.Equal(want.CreatedAt), !got.UpdatedAt.Equal(want.UpdatedAt),
		!bytes.Equal(got.SecretHash, want.SecretHash), !bytes.Equal(got.SecretEnc, want.SecretEnc),
		got.PasswordHash != want.PasswordHash, got.PasswordVersion != want.PasswordVersion:
		t.Fatalf("user mismatch:\n got %+v\nwant %+v", got, want)
	}
	if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("times not in UTC: %v, %v", got.CreatedAt, got.UpdatedAt)
	}
}

func eqPtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func eqTimePtr(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

func equalSessions(t *testing.T, got, want *auth.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.LastUsed.Equal(want.LastUsed) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		!eqTimePtr(got.RevokedAt, want.RevokedAt) || got.UserAgent != want.UserAgent || got.IP != want.IP {
		t.Fatalf("session mismatch:\n got %+v\nwant %+v", got, want)
	}
}

func sessionIDs(ss []auth.Session) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}

func countRows(t *testing.T, db *store.DB, table string, where string, args ...any) int64 {
	t.Helper()
	var n int64
	q := "SELECT count(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	noErr(t, "count "+table, db.Scan(context.Background(), &n, q, args...))
	return n
}

func TestPingAndDialect(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		noErr(t, "Ping", db.Ping(context.Background()))
		if got := db.Dialect(); got != t.Name()[strings.LastIndex(t.Name(), "/")+1:] {
			t.Errorf("Dialect() = %q in subtest %s", got, t.Name())
		}
	})
}

func TestOpenRejectsUnknownDSN(t *testing.T) {
	for _, dsn := range []string{"", "mysql://u:hunter2@h/db", "sqlite:", "/tmp/x.db"} {
		db, err := store.Open(context.Background(), dsn, nil)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error leaks the password: %v", dsn, err)
		}
	}
}

func TestUsers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()

		pw := passwordUser("ada@example.com", "Ada_L")
		pw.Bio, pw.Location, pw.BirthDate = ptr("Analyst"), ptr("London"), ptr("1815-12-10")
		pw.EmailConfirmed, pw.TwoFactorEnabled, pw.Admin = true, true, true
		pw.UpdatedAt = at(time.Second)
		noErr(t, "CreateUser(password)", db.CreateUser(ctx, pw, nil, nil))

		sec := secretUser(t)
		s := newSession(sec.ID, base, at(time.Hour))
		rt := newToken(t, s.ID, base, s.ExpiresAt)
		noErr(t, "CreateUser(secret)", db.CreateUser(ctx, sec, s, rt))

		// Two accounts without email, username or secret hash do not
		// collide: NULLs are distinct in the unique indexes.
		noErr(t, "CreateUser(2nd password user)", db.CreateUser(ctx, passwordUser("bob@example.com", ""), nil, nil))
		noErr(t, "CreateUser(3rd password user)", db.CreateUser(ctx, passwordUser("cy@example.com", ""), nil, nil))
		noErr(t, "CreateUser(2nd secret user)", db.CreateUser(ctx, secretUser(t), nil, nil))

		got, err := db.UserByID(ctx, pw.ID)
		noErr(t, "UserByID", err)
		equalUsers(t, got, pw)
		got, err = db.UserByID(ctx, strings.ToUpper(pw.ID))
		noErr(t, "UserByID(upper case)", err)
		equalUsers(t, got, pw)

		got, err = db.UserByEmail(ctx, "ADA@Example.COM")
		noErr(t, "UserByEmail", err)
		equalUsers(t, got, pw)
		got, err = db.UserByUsername(ctx, "ada_l")
		noErr(t, "UserByUsername", err)
		equalUsers(t, got, pw)

		got, err = db.UserBySecretHash(ctx, sec.SecretHash)
		noErr(t, "UserBySecretHash", err)
		equalUsers(t, got, sec)
		if got.PasswordHash != "" || got.Email != nil || got.Username != nil {
			t.Errorf("secret user came back with credentials: %+v", got)
		}

		gotS, err := db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID of the registration session", err)
		equalSessions(t, gotS, s)
		// The registration token exists: it can be rotated.
		_, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, newToken(t, s.ID, at(time.Minute), at(2*time.Hour)), []byte("enc"), at(time.Minute))
		if err != nil || !rotated {
			t.Fatalf("rotating the registration token: rotated=%v err=%v", rotated, err)
		}

		for name, call := range map[string]func() (*auth.User, error){
			"UserByID(unknown)":         func() (*auth.User, error) { return db.UserByID(ctx, uuid.NewString()) },
			"UserByID(not a uuid)":      func() (*auth.User, error) { return db.UserByID(ctx, "nope") },
			"UserByEmail(unknown)":      func() (*auth.User, error) { return db.UserByEmail(ctx, "nobody@example.com") },
			"UserByUsername(unknown)":   func() (*auth.User, error) { return db.UserByUsername(ctx, "nobody") },
			"UserBySecretHash(unknown)": func() (*auth.User, error) { return db.UserBySecretHash(ctx, randomHash(t)) },
			"UserBySecretHash(nil)":     func() (*auth.User, error) { return db.UserBySecretHash(ctx, nil) },
		} {
			u, err := call()
			if !errors.Is(err, auth.ErrNotFound) || u != nil {
				t.Errorf("%s = %v, %v; want nil, ErrNotFound", name, u, err)
			}
		}
	})
}

func TestCreateUserDuplicates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		orig, _, _ := mustCreateUser(t, db, "dup@example.com", "Dupont")
		sec := secretUser(t)
		noErr(t, "CreateUser(secret)", db.CreateUser(ctx, sec, nil, nil))

		sameSecret := secretUser(t)
		sameSecret.SecretHash = sec.SecretHash
		sameID := passwordUser("other@example.com", "")
		sameID.ID = orig.ID

		for _, tc := range []struct {
			name string
			user *auth.User
			want error
		}{
			{"email, other case", passwordUser("DUP@example.com", ""), auth.ErrEmailTaken},
			{"email, same case", passwordUser("dup@example.com", "someone"), auth.ErrEmailTaken},
			{"username, other case", passwordUser("new@example.com", "dUPONT"), auth.ErrUsernameTaken},
			{"secret hash", sameSecret, auth.ErrConflict},
			{"id", sameID, auth.ErrConflict},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newSession(tc.user.ID, base, at(time.Hour))
				rt := newToken(t, s.ID, base, s.ExpiresAt)
				err := db.CreateUser(ctx, tc.user, s, rt)
				wantErr(t, "CreateUser", err, tc.want)
				if tc.want == auth.ErrConflict && (errors.Is(err, auth.ErrEmailTaken) || errors.Is(err, auth.ErrUsernameTaken)) {
					t.Errorf("err = %v: attributed to the wrong column", err)
				}
				// The transaction left nothing behind.
				if _, err := db.SessionByID(ctx, s.ID); !errors.Is(err, auth.ErrNotFound) {
					t.Errorf("session of the failed registration: err = %v, want ErrNotFound", err)
				}
			})
		}

		if n := countRows(t, db, "users", "lower(email) = ?", "dup@example.com"); n != 1 {
			t.Errorf("%d users with the email, want 1", n)
		}
		if n := countRows(t, db, "users", "lower(username) = ?", "dupont"); n != 1 {
			t.Errorf("%d users with the username, want 1", n)
		}
		if n := countRows(t, db, "users", ""); n != 2 {
			t.Errorf("%d users, want 2", n)
		}

		// The same rule holds on update.
		other, _, _ := mustCreateUser(t, db, "other@example.com", "other")
		_, err := db.UpdateProfile(ctx, other.ID, auth.UserPatch{Username: auth.Field[string]{Set: true, Value: ptr("DUPONT")}}, at(time.Hour))
		wantErr(t, "UpdateProfile(taken username)", err, auth.ErrUsernameTaken)
		got, err := db.UserByID(ctx, other.ID)
		noErr(t, "UserByID", err)
		equalUsers(t, got, other)
	})
}

// TestUpdateProfile: only the fields a patch sets are written, so a
// concurrent change of any other column stands.
func TestUpdateProfile(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "upd@example.com", "upd")
		set := func(v string) auth.Field[string] { return auth.Field[string]{Set: true, Value: &v} }

		got, err := db.UpdateProfile(ctx, u.ID, auth.UserPatch{
			Name: ptr("New Name"), Username: auth.Field[string]{Set: true}, Bio: set("bio"),
			Locale: ptr("fr-FR"), Timezone: ptr("Europe/Paris"), Location: set("Paris"), BirthDate: set("2000-01-01"),
		}, at(90*time.Minute))
		noErr(t, "UpdateProfile", err)
		want := *u
		want.Name, want.Username, want.Bio, want.Locale, want.Timezone = "New Name", nil, ptr("bio"), "fr-FR", "Europe/Paris"
		want.Location, want.BirthDate, want.UpdatedAt = ptr("Paris"), ptr("2000-01-01"), at(90*time.Minute)
		equalUsers(t, got, &want)

		// Columns other requests own, changed meanwhile, are not put back;
		// unset fields are kept.
		noErr(t, "ChangePassword", db.ChangePassword(ctx, u.ID, 0, "$argon2id$changed", "", at(91*time.Minute)))
		got, err = db.UpdateProfile(ctx, u.ID, auth.UserPatch{Bio: auth.Field[string]{Set: true}}, at(92*time.Minute))
		noErr(t, "UpdateProfile(clear bio)", err)
		want.Bio, want.PasswordHash, want.PasswordVersion, want.UpdatedAt = nil, "$argon2id$changed", 1, at(92*time.Minute)
		equalUsers(t, got, &want)
		stored, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		equalUsers(t, stored, &want)

		_, err = db.UpdateProfile(ctx, uuid.NewString(), auth.UserPatch{Name: ptr("x")}, base)
		wantErr(t, "UpdateProfile(unknown)", err, auth.ErrNotFound)
	})
}

// TestUpgradePasswordHash: a rehash applies only over the hash it checked.
func TestUpgradePasswordHash(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "rehash@example.com", "rehash")
		noErr(t, "UpgradePasswordHash", db.UpgradePasswordHash(ctx, u.ID, u.PasswordHash, "$argon2id$upgraded", at(time.Minute)))
		wantErr(t, "UpgradePasswordHash(stale)", db.UpgradePasswordHash(ctx, u.ID, u.PasswordHash, "$argon2id$stale", at(2*time.Minute)), auth.ErrNotFound)
		got, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		if got.PasswordHash != "$argon2id$upgraded" || got.PasswordVersion != 0 {
			t.Errorf("hash %q version %d", got.PasswordHash, got.PasswordVersion)
		}
		wantErr(t, "UpgradePasswordHash(unknown)", db.UpgradePasswordHash(ctx, uuid.NewString(), "a", "b", base), auth.ErrNotFound)
	})
}

func TestDeleteUserCascades(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, s, rt := mustCreateUser(t, db, "gone@example.com", "gone")
		s2 := newSession(u.ID, at(time.Second), at(time.Hour))
		rt2 := newToken(t, s2.ID, s2.CreatedAt, s2.ExpiresAt)
		noErr(t, "CreateSession", db.CreateSession(ctx, s2, rt2))
		noErr(t, "PutAvatar", db.PutAvatar(ctx, &auth.Avatar{UserID: u.ID, ContentType: "image/png", Data: []byte("png"), ETag: `"a"`, UpdatedAt: base}))

		keep, keepS, keepRT := mustCreateUser(t, db, "keep@example.com", "keep")
		noErr(t, "PutAvatar(keep)", db.PutAvatar(ctx, &auth.Avatar{UserID: keep.ID, ContentType: "image/png", Data: []byte("png"), ETag: `"k"`, UpdatedAt: base}))

		noErr(t, "DeleteUser", db.DeleteUser(ctx, u.ID))

		_, err := db.UserByID(ctx, u.ID)
		wantErr(t, "UserByID after delete", err, auth.ErrNotFound)
		for _, id := range []string{s.ID, s2.ID} {
			_, err = db.SessionByID(ctx, id)
			wantErr(t, "SessionByID after delete", err, auth.ErrNotFound)
		}
		for _, h := range [][]byte{rt.Hash, rt2.Hash} {
			wantErr(t, "RevokeSessionByRefreshHash after delete", db.RevokeSessionByRefreshHash(ctx, h, base), auth.ErrNotFound)
		}
		_, err = db.AvatarByUserID(ctx, u.ID)
		wantErr(t, "AvatarByUserID after delete", err, auth.ErrNotFound)
		if n := countRows(t, db, "refresh_tokens", ""); n != 1 {
			t.Errorf("%d refresh tokens left, want 1 (the other user's)", n)
		}

		wantErr(t, "DeleteUser again", db.DeleteUser(ctx, u.ID), auth.ErrNotFound)
		wantErr(t, "DeleteUser(not a uuid)", db.DeleteUser(ctx, "x"), auth.ErrNotFound)

		// The other user is untouched.
		_, err = db.UserByID(ctx, keep.ID)
		noErr(t, "UserByID(keep)", err)
		got, err := db.SessionByID(ctx, keepS.ID)
		noErr(t, "SessionByID(keep)", err)
		equalSessions(t, got, keepS)
		_, err = db.AvatarByUserID(ctx, keep.ID)
		noErr(t, "AvatarByUserID(keep)", err)
		_, rotated, err := db.RotateRefreshToken(ctx, keepRT.Hash, newToken(t, keepS.ID, at(time.Minute), at(time.Hour)), []byte("e"), at(time.Minute))
		if err != nil || !rotated {
			t.Fatalf("rotating the other user's token: rotated=%v err=%v", rotated, err)
		}
	})
}

func TestSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, first, _ := mustCreateUser(t, db, "sess@example.com", "")
		other, otherS, _ := mustCreateUser(t, db, "other@example.com", "")

		s := newSession(u.ID, at(time.Minute), at(time.Hour))
		s.UserAgent, s.IP = "", ""
		noErr(t, "CreateSession(no token)", db.CreateSession(ctx, s, nil))
		got, err := db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		equalSessions(t, got, s)

		wantErr(t, "CreateSession(unknown user)",
			db.CreateSession(ctx, newSession(uuid.NewString(), base, at(time.Hour)), nil), auth.ErrNotFound)
		wantErr(t, "CreateSession(same id)", db.CreateSession(ctx, s, nil), auth.ErrConflict)
		_, err = db.SessionByID(ctx, uuid.NewString())
		wantErr(t, "SessionByID(unknown)", err, auth.ErrNotFound)
		_, err = db.SessionByID(ctx, "not-a-uuid")
		wantErr(t, "SessionByID(not a uuid)", err, auth.ErrNotFound)

		// More sessions: two live, one revoked, one expired.
		live1 := newSession(u.ID, at(2*time.Minute), at(time.Hour))
		live2 := newSession(u.ID, at(3*time.Minute), at(time.Hour))
		revoked := newSession(u.ID, at(4*time.Minute), at(time.Hour))
		expired := newSession(u.ID, at(5*time.Minute), at(6*time.Minute))
		for _, x := range []*auth.Session{live1, live2, revoked, expired} {
			noErr(t, "CreateSession", db.CreateSession(ctx, x, newToken(t, x.ID, x.CreatedAt, x.ExpiresAt)))
		}
		noErr(t, "RevokeSession", db.RevokeSession(ctx, u.ID, revoked.ID, at(7*time.Minute)))

		now := at(10 * time.Minute)
		list, err := db.ListSessions(ctx, u.ID, now, 10)
		noErr(t, "ListSessions", err)
		want := []string{live2.ID, live1.ID, s.ID, first.ID}
		if got := sessionIDs(list); !slices.Equal(got, want) {
			t.Fatalf("ListSessions = %v, want %v (newest first, live only)", got, want)
		}
		equalSessions(t, &list[0], live2)

		list, err = db.ListSessions(ctx, u.ID, now, 2)
		noErr(t, "ListSessions(limit 2)", err)
		if got := sessionIDs(list); !slices.Equal(got, want[:2]) {
			t.Fatalf("ListSessions(limit 2) = %v, want %v", got, want[:2])
		}
		list, err = db.ListSessions(ctx, u.ID, now, 0)
		noErr(t, "ListSessions(no limit)", err)
		if len(list) != 4 {
			t.Fatalf("ListSessions(no limit) returned %d, want 4", len(list))
		}
		list, err = db.ListSessions(ctx, uuid.NewString(), now, 10)
		if err != nil || list == nil || len(list) != 0 {
			t.Fatalf("ListSessions(unknown user) = %v, %v; want empty, nil", list, err)
		}

		// RevokeSession: someone else's session is not found and stays live.
		wantErr(t, "RevokeSession(other user's)", db.RevokeSession(ctx, u.ID, otherS.ID, now), auth.ErrNotFound)
		got, err = db.SessionByID(ctx, otherS.ID)
		noErr(t, "SessionByID(other)", err)
		if got.RevokedAt != nil {
			t.Fatal("another user's session was revoked")
		}
		wantErr(t, "RevokeSession(already revoked)", db.RevokeSession(ctx, u.ID, revoked.ID, now), auth.ErrNotFound)
		wantErr(t, "RevokeSession(expired)", db.RevokeSession(ctx, u.ID, expired.ID, now), auth.ErrNotFound)
		wantErr(t, "RevokeSession(unknown)", db.RevokeSession(ctx, u.ID, uuid.NewString(), now), auth.ErrNotFound)
		wantErr(t, "RevokeSession(not a uuid)", db.RevokeSession(ctx, u.ID, "x", now), auth.ErrNotFound)

		noErr(t, "RevokeSession(live1)", db.RevokeSession(ctx, u.ID, live1.ID, now))
		got, err = db.SessionByID(ctx, live1.ID)
		noErr(t, "SessionByID(live1)", err)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(now) {
			t.Fatalf("RevokedAt = %v, want %v", got.RevokedAt, now)
		}

		// RevokeUserSessions keeps exceptID and earlier revocation times.
		noErr(t, "RevokeUserSessions", db.RevokeUserSessions(ctx, u.ID, live2.ID, at(20*time.Minute)))
		list, err = db.ListSessions(ctx, u.ID, at(20*time.Minute), 10)
		noErr(t, "ListSessions", err)
		if got := sessionIDs(list); !slices.Equal(got, []string{live2.ID}) {
			t.Fatalf("after RevokeUserSessions: live = %v, want only %v", got, live2.ID)
		}
		got, err = db.SessionByID(ctx, live1.ID)
		noErr(t, "SessionByID(live1)", err)
		if !got.RevokedAt.Equal(now) {
			t.Errorf("earlier revocation time overwritten: %v", got.RevokedAt)
		}
		got, err = db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID(s)", err)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(at(20*time.Minute)) {
			t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at(20*time.Minute))
		}
		noErr(t, "RevokeUserSessions(no exception)", db.RevokeUserSessions(ctx, u.ID, "", at(21*time.Minute)))
		list, err = db.ListSessions(ctx, u.ID, at(21*time.Minute), 10)
		noErr(t, "ListSessions", err)
		if len(list) != 0 {
			t.Fatalf("after RevokeUserSessions(all): %d live sessions", len(list))
		}
		list, err = db.ListSessions(ctx, other.ID, at(21*time.Minute), 10)
		noErr(t, "ListSessions(other)", err)
		if len(list) != 1 {
			t.Fatalf("the other user has %d live sessions, want 1", len(list))
		}
	})
}

func TestRevokeSessionByRefreshHash(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, s, rt := mustCreateUser(t, db, "rh@example.com", "")
		next := newToken(t, s.ID, at(time.Minute), at(time.Hour))
		_, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, next, []byte("enc"), at(time.Minute))
		if err != nil || !rotated {
			t.Fatalf("rotate: %v %v", rotated, err)
		}
		// By the retired token (reuse): the session goes.
		noErr(t, "RevokeSessionByRefreshHash", db.RevokeSessionByRefreshHash(ctx, rt.Hash, at(2*time.Minute)))
		got, err := db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(at(2*time.Minute)) {
			t.Fatalf("RevokedAt = %v, want %v", got.RevokedAt, at(2*time.Minute))
		}
		// Again, by the current token: still revoked, first time kept.
		noErr(t, "RevokeSessionByRefreshHash(again)", db.RevokeSessionByRefreshHash(ctx, next.Hash, at(3*time.Minute)))
		got, err = db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		if !got.RevokedAt.Equal(at(2 * time.Minute)) {
			t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, at(2*time.Minute))
		}
		wantErr(t, "RevokeSessionByRefreshHash(unknown)", db.RevokeSessionByRefreshHash(ctx, randomHash(t), base), auth.ErrNotFound)
		wantErr(t, "RevokeSessionByRefreshHash(nil)", db.RevokeSessionByRefreshHash(ctx, nil, base), auth.ErrNotFound)
	})
}

func TestRotateRefreshToken(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, s, rt := mustCreateUser(t, db, "rot@example.com", "")

		now := at(time.Hour + 250*time.Millisecond)
		next := newToken(t, "", now, now.Add(30*24*time.Hour))
		old, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, next, []byte("successor-1"), now)
		noErr(t, "RotateRefreshToken", err)
		if !rotated {
			t.Fatal("first rotation: rotated = false")
		}
		if !bytes.Equal(old.Hash, rt.Hash) || old.SessionID != s.ID || !old.CreatedAt.Equal(rt.CreatedAt) ||
			!old.ExpiresAt.Equal(rt.ExpiresAt) || old.RotatedAt == nil || !old.RotatedAt.Equal(now) ||
			string(old.SuccessorEnc) != "successor-1" || old.UserID != s.UserID {
			t.Fatalf("old token = %+v", old)
		}
		got, err := db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		if !got.LastUsed.Equal(now) || !got.ExpiresAt.Equal(next.ExpiresAt) || !got.CreatedAt.Equal(s.CreatedAt) {
			t.Fatalf("session after rotation = %+v; want LastUsed %v, ExpiresAt %v", got, now, next.ExpiresAt)
		}

		// A retry: nothing changes, and the stored rotation is reported.
		later := now.Add(3 * time.Second)
		again, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, newToken(t, s.ID, later, later.Add(time.Hour)), []byte("successor-2"), later)
		noErr(t, "RotateRefreshToken(retry)", err)
		if rotated {
			t.Fatal("second rotation of one token: rotated = true")
		}
		if again.RotatedAt == nil || !again.RotatedAt.Equal(now) || string(again.SuccessorEnc) != "successor-1" {
			t.Fatalf("retry returned %+v; want RotatedAt %v, SuccessorEnc successor-1", again, now)
		}
		got, err = db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		if !got.LastUsed.Equal(now) {
			t.Errorf("a refused rotation moved LastUsed to %v", got.LastUsed)
		}

		// The successor is current and rotates in turn.
		next2 := newToken(t, s.ID, later, later.Add(time.Hour))
		_, rotated, err = db.RotateRefreshToken(ctx, next.Hash, next2, []byte("successor-3"), later)
		if err != nil || !rotated {
			t.Fatalf("rotating the successor: rotated=%v err=%v", rotated, err)
		}

		_, _, err = db.RotateRefreshToken(ctx, randomHash(t), newToken(t, s.ID, later, later), nil, later)
		wantErr(t, "RotateRefreshToken(unknown)", err, auth.ErrNotFound)

		wrong := newToken(t, uuid.NewString(), later, later.Add(time.Hour))
		if _, rotated, err = db.RotateRefreshToken(ctx, next2.Hash, wrong, nil, later); err == nil || rotated {
			t.Errorf("successor in another session: rotated=%v err=%v, want an error", rotated, err)
		}
	})
}

func TestRotateRefreshTokenRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "ref@example.com", "")

		// refused sets up a session and token, then checks that rotating
		// at now changes nothing.
		refused := func(name string, s *auth.Session, tokExpires, now time.Time, revoke bool) {
			t.Run(name, func(t *testing.T) {
				rt := newToken(t, s.ID, s.CreatedAt, tokExpires)
				noErr(t, "CreateSession", db.CreateSession(ctx, s, rt))
				if revoke {
					noErr(t, "RevokeSession", db.RevokeSession(ctx, u.ID, s.ID, s.CreatedAt))
				}
				before, err := db.SessionByID(ctx, s.ID)
				noErr(t, "SessionByID", err)
				next := newToken(t, s.ID, now, now.Add(time.Hour))
				old, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, next, []byte("x"), now)
				noErr(t, "RotateRefreshToken", err)
				if rotated || old.RotatedAt != nil || old.SuccessorEnc != nil {
					t.Fatalf("rotated=%v old=%+v; want an untouched token", rotated, old)
				}
				after, err := db.SessionByID(ctx, s.ID)
				noErr(t, "SessionByID", err)
				equalSessions(t, after, before)
				_, _, err = db.RotateRefreshToken(ctx, next.Hash, newToken(t, s.ID, now, now), nil, now)
				wantErr(t, "the successor of a refused rotation", err, auth.ErrNotFound)
			})
		}
		exp := at(time.Hour + 500*time.Millisecond)
		refused("token expired", newSession(u.ID, base, at(48*time.Hour)), exp, exp.Add(time.Second), false)
		refused("token expires at now", newSession(u.ID, base, at(48*time.Hour)), exp, exp, false)
		refused("session revoked", newSession(u.ID, base, at(48*time.Hour)), at(48*time.Hour), at(time.Minute), true)
		refused("session expired", newSession(u.ID, base, exp), at(48*time.Hour), exp.Add(time.Microsecond), false)
	})
}

// rotation is one call of RotateRefreshToken in a race: call i passes
// successorEnc 'A'+i.
type rotation struct {
	next    *auth.RefreshToken
	old     *auth.RefreshToken
	rotated bool
	err     error
}

// raceWinner checks that of rs, racing for one token, none failed, exactly
// one rotated, and every call saw that rotation (at the winner's now, with
// its successor); it returns the winner.
func raceWinner(t *testing.T, rs []rotation, nowOf func(i int) time.Time) int {
	t.Helper()
	winner := -1
	for i, r := range rs {
		if r.err != nil {
			t.Fatalf("call %d: %v", i, r.err)
		}
		if r.rotated {
			if winner >= 0 {
				t.Fatalf("calls %d and %d both rotated", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no call rotated")
	}
	now, wantEnc := nowOf(winner), []byte{byte('A' + winner)}
	for i, r := range rs {
		if r.old.RotatedAt == nil || !r.old.RotatedAt.Equal(now) || !bytes.Equal(r.old.SuccessorEnc, wantEnc) {
			t.Errorf("call %d saw %+v; want the winner's rotation (%q)", i, r.old, wantEnc)
		}
	}
	return winner
}

func TestRotateRefreshTokenConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for round := range 3 {
			_, s, rt := mustCreateUser(t, db, "conc"+string(rune('a'+round))+"@example.com", "")
			const n = 10
			results := make([]rotation, n)
			// Each call has its own now, so the session shows whose
			// rotation it holds.
			nowOf := func(i int) time.Time { return at(time.Minute + time.Duration(i)*time.Millisecond) }
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				results[i].next = newToken(t, s.ID, nowOf(i), nowOf(i).Add(time.Hour))
				wg.Go(func() {
					<-start
					r := &results[i]
					r.old, r.rotated, r.err = db.RotateRefreshToken(ctx, rt.Hash, r.next, []byte{byte('A' + i)}, nowOf(i))
				})
			}
			close(start)
			wg.Wait()

			winner := raceWinner(t, results, nowOf)
			now := nowOf(winner)
			// The losers changed nothing: the session slid to the winner's.
			got, err := db.SessionByID(ctx, s.ID)
			noErr(t, "SessionByID", err)
			if !got.LastUsed.Equal(now) || !got.ExpiresAt.Equal(results[winner].next.ExpiresAt) {
				t.Errorf("session after the race: last used %v, expires %v; want the winner's %v, %v",
					got.LastUsed, got.ExpiresAt, now, results[winner].next.ExpiresAt)
			}
			// Only the winner's successor was stored.
			for i, r := range results {
				_, rotated, err := db.RotateRefreshToken(ctx, r.next.Hash, newToken(t, s.ID, now, now.Add(time.Hour)), nil, now)
				if i == winner && (err != nil || !rotated) {
					t.Errorf("the winner's successor: rotated=%v err=%v", rotated, err)
				}
				if i != winner && !errors.Is(err, auth.ErrNotFound) {
					t.Errorf("loser %d's successor: err=%v, want ErrNotFound", i, err)
				}
			}
		}
	})
}

// TestSubSecondTimes checks that SQL comparisons and ordering of times are
// exact to the microsecond, across second boundaries and for times that
// arrive in another zone or with nanoseconds.
func TestSubSecondTimes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "time@example.com", "")
		noErr(t, "RevokeUserSessions", db.RevokeUserSessions(ctx, u.ID, "", base))

		whole := time.Date(2031, 3, 14, 16, 0, 1, 0, time.UTC) // no fractional part
		frac := whole.Add(-time.Microsecond)                   // 16:00:00.999999
		for _, tc := range []struct {
			name    string
			expires time.Time
			now     time.Time
			live    bool
		}{
			{"whole second, 1µs before", whole, frac, true},
			{"whole second, at", whole, whole, false},
			{"whole second, 1µs after", whole, whole.Add(time.Microsecond), false},
			{"fraction, 1µs before", frac, frac.Add(-time.Microsecond), true},
			{"fraction, at", frac, frac, false},
			{"fraction vs. whole second after", frac, whole, false},
			{"fraction vs. whole second before", whole.Add(time.Microsecond), whole, true},
			{"half second vs 0.25", whole.Add(500 * time.Millisecond), whole.Add(250 * time.Millisecond), true},
			{"0.1 vs 0.09", whole.Add(90 * time.Millisecond), whole.Add(100 * time.Millisecond), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newSession(u.ID, base, tc.expires)
				rt := newToken(t, s.ID, base, tc.expires)
				noErr(t, "CreateSession", db.CreateSession(ctx, s, rt))
				defer func() { noErr(t, "RevokeUserSessions", db.RevokeUserSessions(ctx, u.ID, "", base)) }()

				list, err := db.ListSessions(ctx, u.ID, tc.now, 10)
				noErr(t, "ListSessions", err)
				if live := len(list) == 1; live != tc.live {
					t.Errorf("ListSessions at %v with expiry %v: live = %v, want %v", tc.now, tc.expires, live, tc.live)
				}
				_, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, newToken(t, s.ID, tc.now, tc.expires), nil, tc.now)
				noErr(t, "RotateRefreshToken", err)
				if rotated != tc.live {
					t.Errorf("RotateRefreshToken at %v with expiry %v: rotated = %v, want %v", tc.now, tc.expires, rotated, tc.live)
				}
			})
		}

		// On SQLite, times are fixed-width UTC text.
		if db.Dialect() == store.DialectSQLite {
			s := newSession(u.ID, whole, whole.Add(500*time.Millisecond))
			noErr(t, "CreateSession", db.CreateSession(ctx, s, nil))
			var created, expires string
			noErr(t, "raw created_at", db.Scan(ctx, &created, "SELECT created_at FROM sessions WHERE id = ?", s.ID))
			noErr(t, "raw expires_at", db.Scan(ctx, &expires, "SELECT expires_at FROM sessions WHERE id = ?", s.ID))
			if created != "2031-03-14T16:00:01.000000Z" || expires != "2031-03-14T16:00:01.500000Z" {
				t.Errorf("stored times %q, %q; want fixed-width UTC text", created, expires)
			}
			noErr(t, "RevokeUserSessions", db.RevokeUserSessions(ctx, u.ID, "", base))
		}

		// Ordering at microsecond spacing across a second boundary.
		var want []string
		for _, d := range []time.Duration{0, time.Microsecond, 999_999 * time.Microsecond, time.Second, time.Second + time.Microsecond} {
			s := newSession(u.ID, whole.Add(-time.Second+d), at(48*time.Hour))
			noErr(t, "CreateSession", db.CreateSession(ctx, s, nil))
			want = append([]string{s.ID}, want...)
		}
		list, err := db.ListSessions(ctx, u.ID, whole, 10)
		noErr(t, "ListSessions", err)
		if got := sessionIDs(list); !slices.Equal(got, want) {
			t.Errorf("ListSessions order = %v, want %v", got, want)
		}

		// Another zone and nanoseconds: stored as UTC microseconds.
		noErr(t, "RevokeUserSessions", db.RevokeUserSessions(ctx, u.ID, "", base))
		paris := time.FixedZone("CET", 3600)
		s := newSession(u.ID, whole.In(paris).Add(789*time.Nanosecond), whole.In(paris).Add(time.Hour+999*time.Nanosecond))
		noErr(t, "CreateSession", db.CreateSession(ctx, s, nil))
		got, err := db.SessionByID(ctx, s.ID)
		noErr(t, "SessionByID", err)
		if !got.CreatedAt.Equal(whole) || got.CreatedAt.Location() != time.UTC || !got.ExpiresAt.Equal(whole.Add(time.Hour)) {
			t.Errorf("CreatedAt = %v, ExpiresAt = %v; want %v, %v in UTC", got.CreatedAt, got.ExpiresAt, whole, whole.Add(time.Hour))
		}
		list, err = db.ListSessions(ctx, u.ID, whole.Add(time.Hour-time.Microsecond), 10)
		noErr(t, "ListSessions", err)
		if len(list) != 1 || list[0].ID != s.ID {
			t.Errorf("ListSessions just before the zoned expiry = %v, want [%s]", sessionIDs(list), s.ID)
		}
	})
}

func TestSigningKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		keys, err := db.SigningKeys(ctx)
		noErr(t, "SigningKeys(empty)", err)
		if len(keys) != 0 {
			t.Fatalf("SigningKeys on an empty database = %v", keys)
		}
		retired := at(time.Hour)
		k1 := &auth.SigningKey{ID: "k1", PrivateEnc: []byte("sealed-1"), Public: []byte("pub-1"), CreatedAt: base, RetiredAt: &retired}
		k2 := &auth.SigningKey{ID: "k2", PrivateEnc: []byte("sealed-2"), Public: []byte("pub-2"), CreatedAt: at(time.Millisecond)}
		k3 := &auth.SigningKey{ID: "k3", PrivateEnc: []byte("sealed-3"), Public: []byte("pub-3"), CreatedAt: at(2 * time.Millisecond)}
		for _, k := range []*auth.SigningKey{k2, k1, k3} {
			noErr(t, "CreateSigningKey", db.CreateSigningKey(ctx, k))
		}
		wantErr(t, "CreateSigningKey(same id)", db.CreateSigningKey(ctx, k1), auth.ErrConflict)

		keys, err = db.SigningKeys(ctx)
		noErr(t, "SigningKeys", err)
		want := []*auth.SigningKey{k3, k2, k1}
		if len(keys) != len(want) {
			t.Fatalf("SigningKeys returned %d keys, want %d", len(keys), len(want))
		}
		for i, w := range want {
			g := keys[i]
			if g.ID != w.ID || !bytes.Equal(g.PrivateEnc, w.PrivateEnc) || !bytes.Equal(g.Public, w.Public) ||
				!g.CreatedAt.Equal(w.CreatedAt) || !eqTimePtr(g.RetiredAt, w.RetiredAt) {
				t.Errorf("key %d = %+v, want %+v", i, g, w)
			}
		}
	})
}

func TestAvatars(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "pic@example.com", "")

		_, err := db.AvatarByUserID(ctx, u.ID)
		wantErr(t, "AvatarByUserID(none)", err, auth.ErrNotFound)

		a := &auth.Avatar{UserID: u.ID, ContentType: "image/png", Data: []byte("\x89PNG..."), ETag: `"v1"`, UpdatedAt: at(time.Second)}
		noErr(t, "PutAvatar", db.PutAvatar(ctx, a))
		if user, err := db.UserByID(ctx, u.ID); err != nil || !user.UpdatedAt.Equal(u.UpdatedAt) {
			t.Fatalf("PutAvatar changed the user's UpdatedAt: %v, %v", user, err)
		}
		checkAvatar := func(want *auth.Avatar) {
			t.Helper()
			got, err := db.AvatarByUserID(ctx, u.ID)
			noErr(t, "AvatarByUserID", err)
			if got.UserID != want.UserID || got.ContentType != want.ContentType || !bytes.Equal(got.Data, want.Data) ||
				got.ETag != want.ETag || !got.UpdatedAt.Equal(want.UpdatedAt) {
				t.Fatalf("avatar = %+v, want %+v", got, want)
			}
			user, err := db.UserByID(ctx, u.ID)
			noErr(t, "UserByID", err)
			if !user.HasAvatar {
				t.Fatal("HasAvatar = false with an avatar stored")
			}
		}
		checkAvatar(a)

		b := &auth.Avatar{UserID: u.ID, ContentType: "image/jpeg", Data: []byte("\xff\xd8jpeg"), ETag: `"v2"`, UpdatedAt: at(2 * time.Second)}
		noErr(t, "PutAvatar(replace)", db.PutAvatar(ctx, b))
		checkAvatar(b)
		if n := countRows(t, db, "avatars", ""); n != 1 {
			t.Fatalf("%d avatar rows, want 1", n)
		}

		// UpdateProfile does not touch HasAvatar.
		_, err = db.UpdateProfile(ctx, u.ID, auth.UserPatch{Name: ptr("Renamed")}, at(3*time.Second))
		noErr(t, "UpdateProfile", err)
		checkAvatar(b)

		noErr(t, "DeleteAvatar", db.DeleteAvatar(ctx, u.ID))
		_, err = db.AvatarByUserID(ctx, u.ID)
		wantErr(t, "AvatarByUserID(deleted)", err, auth.ErrNotFound)
		user, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		if user.HasAvatar {
			t.Fatal("HasAvatar = true after DeleteAvatar")
		}
		noErr(t, "DeleteAvatar(none)", db.DeleteAvatar(ctx, u.ID))

		missing := uuid.NewString()
		wantErr(t, "PutAvatar(unknown user)", db.PutAvatar(ctx, &auth.Avatar{UserID: missing, ContentType: "image/png", Data: []byte("x"), ETag: `"x"`, UpdatedAt: base}), auth.ErrNotFound)
		wantErr(t, "DeleteAvatar(unknown user)", db.DeleteAvatar(ctx, missing), auth.ErrNotFound)
		_, err = db.AvatarByUserID(ctx, "nope")
		wantErr(t, "AvatarByUserID(not a uuid)", err, auth.ErrNotFound)
	})
}

func TestChangePassword(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, first, _ := mustCreateUser(t, db, "cred@example.com", "cred")
		other, otherS, _ := mustCreateUser(t, db, "taken@example.com", "taken")
		keep := newSession(u.ID, at(time.Minute), at(time.Hour))
		live := newSession(u.ID, at(2*time.Minute), at(time.Hour))
		revoked := newSession(u.ID, at(3*time.Minute), at(time.Hour))
		expired := newSession(u.ID, at(4*time.Minute), at(5*time.Minute))
		for _, s := range []*auth.Session{keep, live, revoked, expired} {
			noErr(t, "CreateSession", db.CreateSession(ctx, s, newToken(t, s.ID, s.CreatedAt, s.ExpiresAt)))
		}
		noErr(t, "RevokeSession", db.RevokeSession(ctx, u.ID, revoked.ID, at(6*time.Minute)))
		revoked.RevokedAt = ptr(at(6 * time.Minute))
		for _, k := range []auth.TokenKind{auth.TokenEmailChange, auth.TokenReset, auth.TokenConfirm} {
			noErr(t, "QueueMail", db.QueueMail(ctx, mailToken(t, k, u, "cred@example.com", time.Hour)))
			noErr(t, "QueueMail(other)", db.QueueMail(ctx, mailToken(t, k, other, "taken@example.com", time.Hour)))
		}

		// sessionsAre checks every session of both users against want
		// (revocation times; nil: not revoked).
		sessionsAre := func(what string, want map[*auth.Session]*time.Time) {
			t.Helper()
			for s, revokedAt := range want {
				got, err := db.SessionByID(ctx, s.ID)
				noErr(t, what+": SessionByID", err)
				if !eqTimePtr(got.RevokedAt, revokedAt) {
					t.Errorf("%s: session created at %v: RevokedAt = %v, want %v", what, s.CreatedAt, got.RevokedAt, revokedAt)
				}
			}
		}
		untouched := map[*auth.Session]*time.Time{
			first: nil, keep: nil, live: nil, revoked: revoked.RevokedAt, expired: nil, otherS: nil,
		}

		// A stale version or an unknown user changes and revokes nothing.
		wantErr(t, "ChangePassword(stale version)", db.ChangePassword(ctx, u.ID, 1, "$argon2id$failed", keep.ID, at(7*time.Minute)), auth.ErrNotFound)
		wantErr(t, "ChangePassword(unknown)", db.ChangePassword(ctx, uuid.NewString(), 0, "$argon2id$failed", "", at(7*time.Minute)), auth.ErrNotFound)
		got, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		equalUsers(t, got, u)
		sessionsAre("after the failures", untouched)
		if n := tokenCount(t, db, u.ID, auth.TokenEmailChange); n != 1 {
			t.Errorf("%d email-change tokens after the failures, want 1", n)
		}

		// Success: the hash and the version are written, every other live
		// session of the user revoked, its email-change and reset tokens
		// voided; earlier revocations, expired sessions, the confirmation
		// token and other users' sessions and tokens are left alone.
		now := at(10 * time.Minute)
		noErr(t, "ChangePassword", db.ChangePassword(ctx, u.ID, 0, "$argon2id$new", keep.ID, now))
		got, err = db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		want := *u
		want.PasswordHash, want.PasswordVersion, want.UpdatedAt = "$argon2id$new", 1, now
		equalUsers(t, got, &want)
		sessionsAre("after the change", map[*auth.Session]*time.Time{
			first: &now, keep: nil, live: &now, revoked: revoked.RevokedAt, expired: nil, otherS: nil,
		})
		for k, n := range map[auth.TokenKind]int64{auth.TokenEmailChange: 0, auth.TokenReset: 0, auth.TokenConfirm: 1} {
			if got := tokenCount(t, db, u.ID, k); got != n {
				t.Errorf("%d %s tokens after the change, want %d", got, k, n)
			}
			if got := tokenCount(t, db, other.ID, k); got != 1 {
				t.Errorf("the other user has %d %s tokens, want 1", got, k)
			}
		}
		got, err = db.UserByID(ctx, other.ID)
		noErr(t, "UserByID(other)", err)
		equalUsers(t, got, other)

		// The old version is stale now; no exception revokes the caller's
		// session too.
		wantErr(t, "ChangePassword(old version)", db.ChangePassword(ctx, u.ID, 0, "$argon2id$again", "", now), auth.ErrNotFound)
		later := at(11 * time.Minute)
		noErr(t, "ChangePassword(no exception)", db.ChangePassword(ctx, u.ID, 1, "$argon2id$newer", "", later))
		sessionsAre("after the change without exception", map[*auth.Session]*time.Time{
			first: &now, keep: &later, live: &now, revoked: revoked.RevokedAt, expired: nil, otherS: nil,
		})
	})
}

// TestEndAllSessions: logout everywhere revokes every live session and
// voids the pending email change, nothing else.
func TestEndAllSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, first, _ := mustCreateUser(t, db, "all@example.com", "all")
		other, otherS, _ := mustCreateUser(t, db, "other@example.com", "other")
		for _, k := range []auth.TokenKind{auth.TokenEmailChange, auth.TokenReset} {
			noErr(t, "QueueMail", db.QueueMail(ctx, mailToken(t, k, u, "all@example.com", time.Hour)))
		}
		noErr(t, "QueueMail(other)", db.QueueMail(ctx, mailToken(t, auth.TokenEmailChange, other, "x@example.com", time.Hour)))
		now := at(time.Minute)
		noErr(t, "EndAllSessions", db.EndAllSessions(ctx, u.ID, now))
		if s, _ := db.SessionByID(ctx, first.ID); !eqTimePtr(s.RevokedAt, &now) {
			t.Errorf("session RevokedAt = %v", s.RevokedAt)
		}
		if s, _ := db.SessionByID(ctx, otherS.ID); s.RevokedAt != nil {
			t.Errorf("the other user's session was revoked")
		}
		if n := tokenCount(t, db, u.ID, auth.TokenEmailChange); n != 0 {
			t.Errorf("%d email-change tokens left", n)
		}
		if n := tokenCount(t, db, u.ID, auth.TokenReset); n != 1 {
			t.Errorf("%d reset tokens, want 1", n)
		}
		if n := tokenCount(t, db, other.ID, auth.TokenEmailChange); n != 1 {
			t.Errorf("the other user's email change was voided")
		}
		noErr(t, "EndAllSessions(not a uuid)", db.EndAllSessions(ctx, "nope", now))
	})
}

// TestMigrateNormalizesEmails: addresses stored before IDNA and NFC
// normalisation are rewritten by Migrate, with their pending tokens; an
// address whose normal form is taken is left alone.
func TestMigrateNormalizesEmails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		old, _, _ := mustCreateUser(t, db, "x@exa\u0308mple.com", "")
		noErr(t, "QueueMail", db.QueueMail(ctx, mailToken(t, auth.TokenReset, old, "x@exa\u0308mple.com", time.Hour)))
		kept, _, _ := mustCreateUser(t, db, "y@ex\u00e4mple.com", "")
		taken, _, _ := mustCreateUser(t, db, "y@xn--exmple-cua.com", "")
		ascii, _, _ := mustCreateUser(t, db, "plain@example.com", "")
		noErr(t, "Migrate", db.Migrate(ctx))
		noErr(t, "Migrate(again)", db.Migrate(ctx))

		got, err := db.UserByEmail(ctx, "x@xn--exmple-cua.com")
		noErr(t, "UserByEmail(normalised)", err)
		if got.ID != old.ID {
			t.Errorf("found %s, want %s", got.ID, old.ID)
		}
		if n := countRows(t, db, "mail_tokens", "user_id = ? AND email = ?", old.ID, "x@xn--exmple-cua.com"); n != 1 {
			t.Errorf("%d tokens with the normalised address, want 1", n)
		}
		for _, u := range []*auth.User{kept, taken, ascii} {
			got, err := db.UserByID(ctx, u.ID)
			noErr(t, "UserByID", err)
			if deref(got.Email) != deref(u.Email) {
				t.Errorf("address %q changed to %q", deref(u.Email), deref(got.Email))
			}
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestRotateRefreshTokenRacesDeletion: rotations racing the deletion of
// their account (which locks the sessions, then their tokens) neither
// deadlock nor fail: each rotates before the deletion or finds nothing.
func TestRotateRefreshTokenRacesDeletion(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := at(time.Minute)
		for round := range 5 {
			u, _, rt := mustCreateUser(t, db, "race-del-"+string(rune('a'+round))+"@example.com", "")
			tokens := []*auth.RefreshToken{rt}
			for range 9 { // more sessions, each with a token
				s2 := newSession(u.ID, base, at(48*time.Hour))
				rt2 := newToken(t, s2.ID, base, at(48*time.Hour))
				noErr(t, "CreateSession", db.CreateSession(ctx, s2, rt2))
				tokens = append(tokens, rt2)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make([]error, len(tokens)+1)
			for i, tok := range tokens {
				wg.Go(func() {
					<-start
					_, _, errs[i] = db.RotateRefreshToken(ctx, tok.Hash, newToken(t, "", now, now.Add(time.Hour)), nil, now)
					if errors.Is(errs[i], auth.ErrNotFound) {
						errs[i] = nil // deleted first
					}
				})
			}
			wg.Go(func() {
				<-start
				errs[len(tokens)] = db.DeleteUser(ctx, u.ID)
			})
			close(start)
			wg.Wait()
			for i, err := range errs {
				noErr(t, fmt.Sprintf("round %d, call %d", round, i), err)
			}
		}
	})
}
