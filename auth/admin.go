package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ErrLastAdmin refuses a change that would leave no enabled admin.
var ErrLastAdmin = errors.New("the change would leave no enabled admin")

// Page sizes of the admin and event listings.
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// AdminUser is an account as admins see it.
type AdminUser struct {
	User
	LastSignInAt *time.Time
	LiveSessions int
}

// FlagChange is an admin's change to an account; nil members stay as
// they are.
type FlagChange struct {
	Disabled       *bool
	Admin          *bool
	EmailConfirmed *bool
}

// Cursor is a position in a newest-first listing: the created_at and id of
// the last item of the previous page. Ties on created_at are broken by id,
// so a listing is a total order and items inserted later (which are newer)
// never shift the pages after the first.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// String is the cursor's opaque form.
func (c *Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

// parseCursor reads a cursor made by String; a bad one is 400.
func parseCursor(s string) (*Cursor, error) {
	bad := Invalid("cursor", "is not a cursor from a previous page")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return nil, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return nil, bad
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, bad
	}
	return &Cursor{CreatedAt: t.UTC(), ID: u.String()}, nil
}

// pageArgs checks a listing's limit (0: the default) and cursor ("":
// the first page).
func pageArgs(limit int, cursor string) (int, *Cursor, error) {
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return 0, nil, Invalid("limit", fmt.Sprintf("must be between 1 and %d", MaxPageSize))
	}
	if cursor == "" {
		return limit, nil, nil
	}
	c, err := parseCursor(cursor)
	if err != nil {
		return 0, nil, err
	}
	return limit, c, nil
}

// AdminStore is the persistence of the admin operations.
type AdminStore interface {
	EventStore

	// ListUsers returns up to limit accounts whose email, username or name
	// contains q case-insensitively (all when q is empty), newest first,
	// strictly after the cursor position when after is not nil; the live
	// session counts are at now.
	ListUsers(ctx context.Context, q string, after *Cursor, now time.Time, limit int) ([]AdminUser, error)
	// AdminUserByID returns one account with its live session count at now.
	AdminUserByID(ctx context.Context, id string, now time.Time) (*AdminUser, error)
	// SetUserFlags applies ch to the account in one transaction that is
	// serialised with every other SetUserFlags and AdminDeleteUser:
	// disabling revokes every live session; the events made by events
	// (from the account as it was) are inserted, and an error from it rolls
	// everything back; so does ErrLastAdmin, when an enabled admin stops
	// being one and none is left. It returns the account as changed.
	SetUserFlags(ctx context.Context, id string, ch FlagChange, now time.Time, events func(before User) ([]Event, error)) (*User, error)
	// AdminDeleteUser deletes the account as DeleteUser does, serialised
	// like SetUserFlags; ErrLastAdmin when it is the last enabled admin.
	AdminDeleteUser(ctx context.Context, id string) error
	// CreateSigningKeyRetiring stores k and retires every other current
	// key at now, in one transaction.
	CreateSigningKeyRetiring(ctx context.Context, k *SigningKey, now time.Time) error
}

// requireAdmin refuses a caller whose account is not an enabled admin, as
// read by Authenticate on this very request.
func requireAdmin(p Principal) error {
	if !p.Admin {
		return ErrForbidden
	}
	return nil
}

// UsersPage is one page of a listing of accounts.
type UsersPage struct {
	Users []AdminUser
	Next  string
}

// AdminListUsers lists accounts, newest first, optionally matching q.
func (s *Service) AdminListUsers(ctx context.Context, p Principal, q string, limit int, cursor string) (*UsersPage, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	limit, after, err := pageArgs(limit, cursor)
	if err != nil {
		return nil, err
	}
	users, err := s.st.ListUsers(ctx, strings.TrimSpace(q), after, s.now(), limit+1)
	if err != nil {
		return nil, err
	}
	page := &UsersPage{Users: users}
	if len(users) > limit {
		page.Users = users[:limit]
		last := page.Users[limit-1]
		page.Next = (&Cursor{CreatedAt: last.CreatedAt, ID: last.ID}).String()
	}
	return page, nil
}

// AdminUser returns one account.
func (s *Service) AdminUser(ctx context.Context, p Principal, id string) (*AdminUser, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	return s.st.AdminUserByID(ctx, id, s.now())
}

// AdminUpdateUser applies an admin's change to an account, recording one
// event per flag that changed with the admin as actor.
func (s *Service) AdminUpdateUser(ctx context.Context, p Principal, id string, ch FlagChange) (*AdminUser, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	now := s.now()
	_, err := s.st.SetUserFlags(ctx, id, ch, now, func(before User) ([]Event, error) {
		if ch.EmailConfirmed != nil && before.AccountType != AccountPassword {
			return nil, ErrNotApplicable
		}
		return s.flagEvents(ctx, before, ch, p.UserID)
	})
	if err != nil {
		return nil, err
	}
	return s.st.AdminUserByID(ctx, id, now)
}

// flagEvents are the events of the flags ch changes on before.
func (s *Service) flagEvents(ctx context.Context, before User, ch FlagChange, actorID string) ([]Event, error) {
	var types []EventType
	if ch.Disabled != nil && *ch.Disabled != before.Disabled {
		types = append(types, map[bool]EventType{true: EventAccountDisabled, false: EventAccountEnabled}[*ch.Disabled])
	}
	if ch.Admin != nil && *ch.Admin != before.Admin {
		types = append(types, map[bool]EventType{true: EventAdminGranted, false: EventAdminRevoked}[*ch.Admin])
	}
	evs := make([]Event, 0, len(types))
	for _, t := range types {
		e, err := s.event(ctx, t, before.ID, "")
		if err != nil {
			return nil, err
		}
		e.ActorID = actorID
		evs = append(evs, e)
	}
	return evs, nil
}

// AdminDeleteUser deletes an account with everything DELETE /me removes.
func (s *Service) AdminDeleteUser(ctx context.Context, p Principal, id string) error {
	if err := requireAdmin(p); err != nil {
		return err
	}
	e, err := s.event(ctx, EventAccountDeleted, id, "")
	if err != nil {
		return err
	}
	e.ActorID = p.UserID
	return s.st.AdminDeleteUser(WithEvents(ctx, e), id)
}

// AdminUserSessions lists an account's live sessions, newest first.
func (s *Service) AdminUserSessions(ctx context.Context, p Principal, id string) ([]Session, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	if _, err := s.st.UserByID(ctx, id); err != nil {
		return nil, err
	}
	return s.st.ListSessions(ctx, id, s.now(), maxSessions)
}

// AdminRevokeSessions revokes every session of an account.
func (s *Service) AdminRevokeSessions(ctx context.Context, p Principal, id string) error {
	if err := requireAdmin(p); err != nil {
		return err
	}
	if _, err := s.st.UserByID(ctx, id); err != nil {
		return err
	}
	e, err := s.event(ctx, EventSessionRevoked, id, "")
	if err != nil {
		return err
	}
	e.ActorID = p.UserID
	return s.st.RevokeUserSessions(WithEvents(ctx, e), id, "", s.now())
}

// AdminRequestPasswordReset mails a reset link to a password account,
// voiding its earlier ones.
func (s *Service) AdminRequestPasswordReset(ctx context.Context, p Principal, id string) error {
	if err := requireAdmin(p); err != nil {
		return err
	}
	u, err := s.st.UserByID(ctx, id)
	if err != nil {
		return err
	}
	if u.AccountType != AccountPassword || u.Email == nil {
		return ErrNotApplicable
	}
	t, m, err := s.tokenMail(TokenReset, MailPasswordReset, u, *u.Email, s.now())
	if err != nil {
		return err
	}
	return s.st.QueueMail(ctx, t, m)
}

// AdminEvents lists the security log, newest first.
func (s *Service) AdminEvents(ctx context.Context, p Principal, f EventFilter, limit int, cursor string) (*EventsPage, error) {
	if err := requireAdmin(p); err != nil {
		return nil, err
	}
	return s.listEvents(ctx, f, limit, cursor)
}

// FindAccount finds an account by id, email or username (in that order of
// trial), for the command line.
func FindAccount(ctx context.Context, st Store, ident string) (*User, error) {
	ident = strings.TrimSpace(ident)
	if ident == "" {
		return nil, ErrNotFound
	}
	if _, err := uuid.Parse(ident); err == nil {
		u, err := st.UserByID(ctx, ident)
		if !errors.Is(err, ErrNotFound) {
			return u, err
		}
	}
	if strings.Contains(ident, "@") {
		email, ok := NormalizeEmail(ident)
		if !ok {
			return nil, ErrNotFound
		}
		return st.UserByEmail(ctx, email)
	}
	return st.UserByUsername(ctx, ident)
}

// SetAdmin grants (admin true) or revokes an account's admin flag from the
// command line, with an admin_granted or admin_revoked event (no actor:
// the operator). It reports whether anything changed. Revoking the last
// enabled admin is ErrLastAdmin, as through the API.
func SetAdmin(ctx context.Context, st Store, ident string, admin bool, now time.Time) (*User, bool, error) {
	u, err := FindAccount(ctx, st, ident)
	if err != nil {
		return nil, false, err
	}
	changed := false
	u, err = st.SetUserFlags(ctx, u.ID, FlagChange{Admin: &admin}, now.UTC().Truncate(time.Microsecond), func(before User) ([]Event, error) {
		if before.Admin == admin {
			return nil, nil
		}
		changed = true
		t := EventAdminRevoked
		if admin {
			t = EventAdminGranted
		}
		return []Event{{ID: uuid.NewString(), Type: t, CreatedAt: now.UTC().Truncate(time.Microsecond), UserID: before.ID}}, nil
	})
	if err != nil {
		return nil, false, err
	}
	return u, changed, nil
}
