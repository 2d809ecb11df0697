package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func TestPageArgs(t *testing.T) {
	c := (&Cursor{CreatedAt: start.Add(time.Microsecond), ID: "0b9a3f6e-6c1d-4f7e-9a55-2d1c8e4b7f10"}).String()
	for _, tc := range []struct {
		name      string
		limit     int
		cursor    string
		wantLimit int
		wantErr   bool
	}{
		{"defaults", 0, "", DefaultPageSize, false},
		{"one", 1, "", 1, false},
		{"the most", MaxPageSize, "", MaxPageSize, false},
		{"too many", MaxPageSize + 1, "", 0, true},
		{"negative", -1, "", 0, true},
		{"a cursor", 10, c, 10, false},
		{"not base64", 10, "!!", 0, true},
		{"no separator", 10, "bm9wZQ", 0, true},
		{"not a time", 10, base64.RawURLEncoding.EncodeToString([]byte("yesterday|0b9a3f6e-6c1d-4f7e-9a55-2d1c8e4b7f10")), 0, true},
		{"not a uuid", 10, (&Cursor{CreatedAt: start, ID: "nope"}).String(), 0, true},
	} {
		limit, after, err := pageArgs(tc.limit, tc.cursor)
		var v *ValidationError
		if tc.wantErr != (err != nil) || (err != nil && !errors.As(err, &v)) {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err == nil && limit != tc.wantLimit {
			t.Errorf("%s: limit %d, want %d", tc.name, limit, tc.wantLimit)
		}
		if tc.cursor == c && (after == nil || !after.CreatedAt.Equal(start.Add(time.Microsecond)) || after.ID != "0b9a3f6e-6c1d-4f7e-9a55-2d1c8e4b7f10") {
			t.Errorf("%s: cursor read back as %+v", tc.name, after)
		}
	}
}

func TestAdminOperationsNeedAnAdmin(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	u, _, tok := register(t, s, "Someone")
	p, err := s.Authenticate(ctx, tok.AccessToken)
	if err != nil || p.Admin {
		t.Fatalf("principal %+v, %v", p, err)
	}
	yes := true
	calls := map[string]func() error{
		"list":     func() error { _, err := s.AdminListUsers(ctx, p, "", 0, ""); return err },
		"read":     func() error { _, err := s.AdminUser(ctx, p, u.ID); return err },
		"update":   func() error { _, err := s.AdminUpdateUser(ctx, p, u.ID, FlagChange{Admin: &yes}); return err },
		"delete":   func() error { return s.AdminDeleteUser(ctx, p, u.ID) },
		"sessions": func() error { _, err := s.AdminUserSessions(ctx, p, u.ID); return err },
		"revoke":   func() error { return s.AdminRevokeSessions(ctx, p, u.ID) },
		"reset":    func() error { return s.AdminRequestPasswordReset(ctx, p, u.ID) },
		"events":   func() error { _, err := s.AdminEvents(ctx, p, EventFilter{}, 0, ""); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s by a non-admin: %v, want ErrForbidden", name, err)
		}
	}
}

func TestAdminFlagEvents(t *testing.T) {
	ctx := WithClientMeta(context.Background(), ClientMeta{IP: "::ffff:192.0.2.1", UserAgent: "Admin/1"})
	s, st, _ := newTestService(t)
	admin, _, tok := register(t, s, "Root")
	target, _, _ := register(t, s, "Target")
	if _, _, err := SetAdmin(ctx, st, admin.ID, true, s.now()); err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, tok.AccessToken)
	if err != nil || !p.Admin {
		t.Fatalf("principal %+v, %v", p, err)
	}
	yes, no := true, false
	for _, tc := range []struct {
		ch   FlagChange
		want []EventType
	}{
		{FlagChange{Disabled: &yes, Admin: &yes}, []EventType{EventAccountDisabled, EventAdminGranted}},
		{FlagChange{Disabled: &yes}, nil}, // no change, no event
		{FlagChange{Disabled: &no, Admin: &no}, []EventType{EventAccountEnabled, EventAdminRevoked}},
	} {
		before := len(st.events(t))
		if _, err := s.AdminUpdateUser(ctx, p, target.ID, tc.ch); err != nil {
			t.Fatalf("%+v: %v", tc.ch, err)
		}
		got := st.events(t)[before:]
		if len(got) != len(tc.want) {
			t.Fatalf("%+v: events %+v, want %v", tc.ch, got, tc.want)
		}
		for i, e := range got {
			if e.Type != tc.want[i] || e.UserID != target.ID || e.ActorID != admin.ID || e.IP != "192.0.2.1" || e.UserAgent != "Admin/1" {
				t.Errorf("%+v: event %+v", tc.ch, e)
			}
		}
	}
	if _, err := s.AdminUpdateUser(ctx, p, admin.ID, FlagChange{Admin: &no}); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("demoting the last admin: %v", err)
	}
}
