package server

import (
	"time"

	"context"

	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// The Administration operations and the caller's own security log. The
// admin check itself is the domain's (auth/admin.go), on the flag
// Authenticate read for this request.

func toAdminUser(u *auth.AdminUser) gen.AdminUser {
	pub := toUser(&u.User)
	last := nullable.NewNullNullable[time.Time]()
	if u.LastSignInAt != nil {
		last = nullable.NewNullableWithValue(u.LastSignInAt.UTC())
	}
	return gen.AdminUser{
		ID: pub.ID, AccountType: pub.AccountType, Name: pub.Name, Username: pub.Username,
		Email: pub.Email, EmailConfirmed: pub.EmailConfirmed, Bio: pub.Bio, Locale: pub.Locale,
		Timezone: pub.Timezone, Location: pub.Location, BirthDate: pub.BirthDate,
		HasAvatar: pub.HasAvatar, TwoFactorEnabled: pub.TwoFactorEnabled, Admin: pub.Admin,
		CreatedAt: pub.CreatedAt, Disabled: u.Disabled, LastSignInAt: last, LiveSessions: u.LiveSessions,
	}
}

func optionalUUID(s string) *uuid.UUID {
	id, err := uuid.Parse(s)
	if err != nil {
		return nil
	}
	return &id
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toEventPage(p *auth.EventsPage) gen.EventPage {
	out := gen.EventPage{Events: make([]gen.Event, 0, len(p.Events)), NextCursor: optionalString(p.Next)}
	for _, e := range p.Events {
		out.Events = append(out.Events, gen.Event{
			ID:        uuid.MustParse(e.ID),
			Type:      gen.EventType(e.Type),
			CreatedAt: e.CreatedAt.UTC(),
			UserID:    optionalUUID(e.UserID),
			ActorID:   optionalUUID(e.ActorID),
			SessionID: optionalUUID(e.SessionID),
			IP:        optionalString(e.IP),
			UserAgent: optionalString(e.UserAgent),
		})
	}
	return out
}

// (GET /me/events)
func (h *Handlers) ListMyEvents(ctx context.Context, req gen.ListMyEventsRequestObject) (gen.ListMyEventsResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	page, err := h.svc.MyEvents(ctx, p, deref(req.Params.Limit), deref(req.Params.Cursor))
	if err != nil {
		return nil, err
	}
	return gen.ListMyEvents200JSONResponse{Body: toEventPage(page), Headers: gen.ListMyEvents200ResponseHeaders{CacheControl: noStore}}, nil
}

// (GET /admin/users)
func (h *Handlers) AdminListUsers(ctx context.Context, req gen.AdminListUsersRequestObject) (gen.AdminListUsersResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	page, err := h.svc.AdminListUsers(ctx, p, deref(req.Params.Q), deref(req.Params.Limit), deref(req.Params.Cursor))
	if err != nil {
		return nil, err
	}
	out := gen.AdminListUsers200JSONResponse{Users: make([]gen.AdminUser, 0, len(page.Users)), NextCursor: optionalString(page.Next)}
	for i := range page.Users {
		out.Users = append(out.Users, toAdminUser(&page.Users[i]))
	}
	return out, nil
}

// (GET /admin/users/{id})
func (h *Handlers) AdminGetUser(ctx context.Context, req gen.AdminGetUserRequestObject) (gen.AdminGetUserResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	u, err := h.svc.AdminUser(ctx, p, req.ID.String())
	if err != nil {
		return nil, err
	}
	return gen.AdminGetUser200JSONResponse(toAdminUser(u)), nil
}

// (PATCH /admin/users/{id})
func (h *Handlers) AdminUpdateUser(ctx context.Context, req gen.AdminUpdateUserRequestObject) (gen.AdminUpdateUserResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := deref(req.Body)
	u, err := h.svc.AdminUpdateUser(ctx, p, req.ID.String(), auth.FlagChange{
		Disabled: in.Disabled, Admin: in.Admin, EmailConfirmed: in.EmailConfirmed,
	})
	if err != nil {
		return nil, err
	}
	return gen.AdminUpdateUser200JSONResponse(toAdminUser(u)), nil
}

// (DELETE /admin/users/{id})
func (h *Handlers) AdminDeleteUser(ctx context.Context, req gen.AdminDeleteUserRequestObject) (gen.AdminDeleteUserResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.AdminDeleteUser(ctx, p, req.ID.String()); err != nil {
		return nil, err
	}
	return gen.AdminDeleteUser204Response{}, nil
}

// (GET /admin/users/{id}/sessions)
func (h *Handlers) AdminListUserSessions(ctx context.Context, req gen.AdminListUserSessionsRequestObject) (gen.AdminListUserSessionsResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	sessions, err := h.svc.AdminUserSessions(ctx, p, req.ID.String())
	if err != nil {
		return nil, err
	}
	out := make(gen.AdminListUserSessions200JSONResponse, 0, len(sessions))
	for i := range sessions {
		out = append(out, toSession(&sessions[i], p.SessionID))
	}
	return out, nil
}

// (DELETE /admin/users/{id}/sessions)
func (h *Handlers) AdminRevokeUserSessions(ctx context.Context, req gen.AdminRevokeUserSessionsRequestObject) (gen.AdminRevokeUserSessionsResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.AdminRevokeSessions(ctx, p, req.ID.String()); err != nil {
		return nil, err
	}
	return gen.AdminRevokeUserSessions204Response{}, nil
}

// (POST /admin/users/{id}/password-reset)
func (h *Handlers) AdminRequestPasswordReset(ctx context.Context, req gen.AdminRequestPasswordResetRequestObject) (gen.AdminRequestPasswordResetResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.AdminRequestPasswordReset(ctx, p, req.ID.String()); err != nil {
		return nil, err
	}
	return gen.AdminRequestPasswordReset202JSONResponse{AcceptedJSONResponse: gen.AcceptedJSONResponse(accepted)}, nil
}

// (GET /admin/events)
func (h *Handlers) AdminListEvents(ctx context.Context, req gen.AdminListEventsRequestObject) (gen.AdminListEventsResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	f := auth.EventFilter{Type: auth.EventType(deref(req.Params.Type))}
	if req.Params.UserID != nil {
		f.UserID = req.Params.UserID.String()
	}
	page, err := h.svc.AdminEvents(ctx, p, f, deref(req.Params.Limit), deref(req.Params.Cursor))
	if err != nil {
		return nil, err
	}
	return gen.AdminListEvents200JSONResponse(toEventPage(page)), nil
}
