package auth

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeStore is an in-memory Store honouring the interface's contract. One
// mutex makes every method atomic, which is what RotateRefreshToken needs.
// It hands out copies, never pointers into its maps.
type fakeStore struct {
	mu       sync.Mutex
	users    map[string]User
	sessions map[string]Session
	refresh  map[string]RefreshToken // by string(Hash)
	keys     []SigningKey
	avatars  map[string]Avatar

	// Two-factor (fakestore_twofactor_test.go).
	challenges map[string]TwoFactorChallenge // by string(Hash)
	recovery   map[string]string             // user id by string(hash)

	// Mail (fakestore_mail_test.go).
	mailTokens map[string]MailToken  // by string(Hash)
	outbox     map[string]fakeOutbox // by ID
	requests   []MailRequest         // oldest first

	events []Event // the security log (fakestore_admin_test.go)

	keyLoads int   // SigningKeys calls
	pingErr  error // returned by Ping
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		users:    map[string]User{},
		sessions: map[string]Session{},
		refresh:  map[string]RefreshToken{},
		avatars:  map[string]Avatar{},

		challenges: map[string]TwoFactorChallenge{},
		recovery:   map[string]string{},

		mailTokens: map[string]MailToken{},
		outbox:     map[string]fakeOutbox{},
	}
}

func (f *fakeStore) Ping(context.Context) error { return f.pingErr }

// checkUnique enforces the unique columns of users against every user but
// u itself.
func (f *fakeStore) checkUnique(u *User) error {
	for id, o := range f.users {
		if id == u.ID {
			continue
		}
		if u.Email != nil && o.Email != nil && strings.EqualFold(*u.Email, *o.Email) {
			return ErrEmailTaken
		}
		if u.Username != nil && o.Username != nil && strings.EqualFold(*u.Username, *o.Username) {
			return ErrUsernameTaken
		}
		if u.SecretHash != nil && bytes.Equal(u.SecretHash, o.SecretHash) {
			return ErrConflict
		}
	}
	return nil
}

func (f *fakeStore) CreateUser(_ context.Context, u *User, s *Session, rt *RefreshToken) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[u.ID]; ok {
		return ErrConflict
	}
	if err := f.checkUnique(u); err != nil {
		return err
	}
	f.users[u.ID] = *u
	if s != nil {
		f.sessions[s.ID] = *s
		f.refresh[string(rt.Hash)] = *rt
	}
	return nil
}

func (f *fakeStore) UserByID(_ context.Context, id string) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[id]
	if !ok {
		return nil, ErrNotFound
	}
	return &u, nil
}

func (f *fakeStore) UserBySecretHash(_ context.Context, hash []byte) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.SecretHash != nil && bytes.Equal(u.SecretHash, hash) {
			return &u, nil
		}
	}
	return nil, ErrNotFound
}

func (f *fakeStore) UserByEmail(_ context.Context, email string) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.Email != nil && strings.EqualFold(*u.Email, email) {
			return &u, nil
		}
	}
	return nil, ErrNotFound
}

func (f *fakeStore) UserByUsername(_ context.Context, username string) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.Username != nil && strings.EqualFold(*u.Username, username) {
			return &u, nil
		}
	}
	return nil, ErrNotFound
}

func (f *fakeStore) UpdateProfile(_ context.Context, userID string, p UserPatch, now time.Time) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[userID]
	if !ok {
		return nil, ErrNotFound
	}
	if p.Name != nil {
		u.Name = *p.Name
	}
	if p.Locale != nil {
		u.Locale = *p.Locale
	}
	if p.Timezone != nil {
		u.Timezone = *p.Timezone
	}
	for dst, f := range map[**string]Field[string]{&u.Username: p.Username, &u.Bio: p.Bio, &u.Location: p.Location, &u.BirthDate: p.BirthDate} {
		if f.Set {
			*dst = f.Value
		}
	}
	if err := f.checkUnique(&u); err != nil {
		return nil, err
	}
	u.UpdatedAt = now
	f.users[userID] = u
	return &u, nil
}

func (f *fakeStore) UpgradePasswordHash(_ context.Context, userID, old, next string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[userID]
	if !ok || u.PasswordHash != old {
		return ErrNotFound
	}
	u.PasswordHash, u.UpdatedAt = next, now
	f.users[userID] = u
	return nil
}

func (f *fakeStore) ChangePassword(_ context.Context, userID string, version int64, hash, exceptID string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[userID]
	if !ok || u.PasswordVersion != version {
		return ErrNotFound
	}
	u.PasswordHash, u.PasswordVersion, u.UpdatedAt = hash, version+1, now
	f.users[userID] = u
	f.revokeUser(userID, exceptID, now)
	f.deleteTokens(userID, TokenEmailChange, TokenReset)
	return nil
}

func (f *fakeStore) EndAllSessions(_ context.Context, userID string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokeUser(userID, "", now)
	f.deleteTokens(userID, TokenEmailChange)
	return nil
}

func (f *fakeStore) DeleteUser(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[id]; !ok {
		return ErrNotFound
	}
	delete(f.users, id)
	delete(f.avatars, id)
	for sid, s := range f.sessions {
		if s.UserID != id {
			continue
		}
		delete(f.sessions, sid)
		for h, rt := range f.refresh {
			if rt.SessionID == sid {
				delete(f.refresh, h)
			}
		}
	}
	return nil
}

func (f *fakeStore) CreateSession(_ context.Context, s *Session, rt *RefreshToken) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[s.UserID]; !ok {
		return ErrNotFound
	}
	f.sessions[s.ID] = *s
	f.refresh[string(rt.Hash)] = *rt
	return nil
}

func (f *fakeStore) SessionByID(_ context.Context, id string) (*Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return nil, ErrNotFound
	}
	return &s, nil
}

func (f *fakeStore) UserByLiveSession(_ context.Context, sessionID string, now time.Time) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[sessionID]
	if !ok || !s.Live(now) {
		return nil, ErrNotFound
	}
	u, ok := f.users[s.UserID]
	if !ok {
		return nil, ErrNotFound
	}
	return &u, nil
}

func (f *fakeStore) ListSessions(_ context.Context, userID string, now time.Time, limit int) ([]Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Session
	for _, s := range f.sessions {
		if s.UserID == userID && s.Live(now) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// revoke marks a session revoked at now; callers hold mu.
func (f *fakeStore) revoke(s Session, now time.Time) {
	s.RevokedAt = &now
	f.sessions[s.ID] = s
}

func (f *fakeStore) RevokeSession(_ context.Context, userID, sessionID string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[sessionID]
	if !ok || s.UserID != userID || !s.Live(now) {
		return ErrNotFound
	}
	f.revoke(s, now)
	return nil
}

func (f *fakeStore) RevokeUserSessions(_ context.Context, userID, exceptID string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokeUser(userID, exceptID, now)
	return nil
}

// revokeUser revokes the user's live sessions but exceptID; f.mu held.
func (f *fakeStore) revokeUser(userID, exceptID string, now time.Time) {
	for id, s := range f.sessions {
		if s.UserID == userID && id != exceptID && s.Live(now) {
			f.revoke(s, now)
		}
	}
}

func (f *fakeStore) RevokeSessionByRefreshHash(_ context.Context, hash []byte, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rt, ok := f.refresh[string(hash)]
	if !ok {
		return ErrNotFound
	}
	if s, ok := f.sessions[rt.SessionID]; ok && s.Live(now) {
		f.revoke(s, now)
	}
	return nil
}

func (f *fakeStore) RotateRefreshToken(_ context.Context, hash []byte, next *RefreshToken, successorEnc []byte, now time.Time) (*RefreshToken, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.refresh[string(hash)]
	if !ok {
		return nil, false, ErrNotFound
	}
	s, ok := f.sessions[old.SessionID]
	if old.RotatedAt != nil || !now.Before(old.ExpiresAt) || !ok || !s.Live(now) || f.users[s.UserID].Disabled {
		return &old, false, nil
	}
	old.RotatedAt = &now
	old.SuccessorEnc = successorEnc
	f.refresh[string(hash)] = old
	n := *next
	n.SessionID = old.SessionID
	f.refresh[string(n.Hash)] = n
	s.LastUsed, s.ExpiresAt = now, n.ExpiresAt
	f.sessions[s.ID] = s
	old.UserID = s.UserID
	return &old, true, nil
}

func (f *fakeStore) SigningKeys(context.Context) ([]SigningKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keyLoads++
	out := slices.Clone(f.keys)
	slices.SortStableFunc(out, func(a, b SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (f *fakeStore) CreateSigningKey(_ context.Context, k *SigningKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.keys {
		if o.ID == k.ID {
			return ErrConflict
		}
	}
	f.keys = append(f.keys, *k)
	return nil
}

func (f *fakeStore) PutAvatar(_ context.Context, a *Avatar) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[a.UserID]
	if !ok {
		return ErrNotFound
	}
	f.avatars[a.UserID] = *a
	u.HasAvatar = true
	f.users[u.ID] = u
	return nil
}

func (f *fakeStore) AvatarByUserID(_ context.Context, userID string) (*Avatar, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.avatars[userID]
	if !ok {
		return nil, ErrNotFound
	}
	return &a, nil
}

func (f *fakeStore) DeleteAvatar(_ context.Context, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.avatars, userID)
	if u, ok := f.users[userID]; ok {
		u.HasAvatar = false
		f.users[userID] = u
	}
	return nil
}

// session returns a copy of a stored session (test helper).
func (f *fakeStore) session(id string) (Session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	return s, ok
}

// setSession replaces a stored session (test helper).
func (f *fakeStore) setSession(s Session) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[s.ID] = s
}

// putUser stores a user directly (test helper).
func (f *fakeStore) putUser(u User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[u.ID] = u
}

var _ Store = (*fakeStore)(nil)
