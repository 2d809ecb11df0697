package auth

import (
	"context"
	"slices"
	"strings"
	"time"
)

// The AdminStore part of fakeStore.

func (f *fakeStore) RecordEvents(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, TakeEvents(ctx)...)
	return nil
}

func (f *fakeStore) ListEvents(_ context.Context, flt EventFilter, after *Cursor, limit int) ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Event
	for _, e := range f.events {
		if (flt.UserID == "" || e.UserID == flt.UserID) && (flt.Type == "" || e.Type == flt.Type) && fakeAfter(e.CreatedAt, e.ID, after) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Event) int { return fakeNewest(a.CreatedAt, a.ID, b.CreatedAt, b.ID) })
	return out[:min(limit, len(out))], nil
}

func (f *fakeStore) PruneEvents(_ context.Context, before time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.events)
	f.events = slices.DeleteFunc(f.events, func(e Event) bool { return e.CreatedAt.Before(before) })
	return int64(n - len(f.events)), nil
}

func fakeAfter(at time.Time, id string, c *Cursor) bool {
	return c == nil || at.Before(c.CreatedAt) || (at.Equal(c.CreatedAt) && id < c.ID)
}

func fakeNewest(at time.Time, id string, bt time.Time, bid string) int {
	if c := bt.Compare(at); c != 0 {
		return c
	}
	return strings.Compare(bid, id)
}

func (f *fakeStore) adminUser(u User, now time.Time) AdminUser {
	n := 0
	for _, s := range f.sessions {
		if s.UserID == u.ID && s.Live(now) {
			n++
		}
	}
	return AdminUser{User: u, LiveSessions: n}
}

func (f *fakeStore) ListUsers(_ context.Context, q string, after *Cursor, now time.Time, limit int) ([]AdminUser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q = strings.ToLower(q)
	var out []AdminUser
	for _, u := range f.users {
		text := strings.ToLower(deref(u.Email) + "\x00" + deref(u.Username) + "\x00" + u.Name)
		if strings.Contains(text, q) && fakeAfter(u.CreatedAt, u.ID, after) {
			out = append(out, f.adminUser(u, now))
		}
	}
	slices.SortFunc(out, func(a, b AdminUser) int { return fakeNewest(a.CreatedAt, a.ID, b.CreatedAt, b.ID) })
	return out[:min(limit, len(out))], nil
}

func (f *fakeStore) AdminUserByID(_ context.Context, id string, now time.Time) (*AdminUser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[id]
	if !ok {
		return nil, ErrNotFound
	}
	a := f.adminUser(u, now)
	return &a, nil
}

func (f *fakeStore) enabledAdmins() int {
	n := 0
	for _, u := range f.users {
		if u.Admin && !u.Disabled {
			n++
		}
	}
	return n
}

func (f *fakeStore) SetUserFlags(_ context.Context, id string, ch FlagChange, now time.Time, events func(User) ([]Event, error)) (*User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	before, ok := f.users[id]
	if !ok {
		return nil, ErrNotFound
	}
	evs, err := events(before)
	if err != nil {
		return nil, err
	}
	u := before
	if ch.Disabled != nil {
		u.Disabled = *ch.Disabled
	}
	if ch.Admin != nil {
		u.Admin = *ch.Admin
	}
	if ch.EmailConfirmed != nil {
		u.EmailConfirmed = *ch.EmailConfirmed
	}
	f.users[id] = u
	if before.Admin && !before.Disabled && f.enabledAdmins() == 0 {
		f.users[id] = before
		return nil, ErrLastAdmin
	}
	if u.Disabled {
		for sid, s := range f.sessions {
			if s.UserID == id && s.Live(now) {
				f.revoke(f.sessions[sid], now)
			}
		}
	}
	f.events = append(f.events, evs...)
	return &u, nil
}

func (f *fakeStore) AdminDeleteUser(ctx context.Context, id string) error {
	f.mu.Lock()
	u, ok := f.users[id]
	last := ok && u.Admin && !u.Disabled && f.enabledAdmins() == 1
	f.mu.Unlock()
	if last {
		return ErrLastAdmin
	}
	return f.DeleteUser(ctx, id)
}

func (f *fakeStore) CreateSigningKeyRetiring(_ context.Context, k *SigningKey, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.keys {
		if f.keys[i].RetiredAt == nil {
			f.keys[i].RetiredAt = &now
		}
	}
	f.keys = append(f.keys, *k)
	return nil
}
