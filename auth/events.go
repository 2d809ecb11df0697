package auth

import (
	"context"
	"sync"
	"time"
)

// EventType says what a security event records.
type EventType string

// The security event types (API.md, "Administration").
const (
	EventAccountCreated       EventType = "account_created"
	EventSignIn               EventType = "sign_in"
	EventSignInFailed         EventType = "sign_in_failed"
	EventTwoFactorFailed      EventType = "two_factor_failed"
	EventRefreshReuseDetected EventType = "refresh_reuse_detected"
	EventLogout               EventType = "logout"
	EventSessionRevoked       EventType = "session_revoked"
	EventPasswordChanged      EventType = "password_changed"
	EventPasswordReset        EventType = "password_reset"
	EventEmailChangeRequested EventType = "email_change_requested"
	EventEmailChanged         EventType = "email_changed"
	EventTwoFactorEnabled     EventType = "two_factor_enabled"
	EventTwoFactorDisabled    EventType = "two_factor_disabled"
	EventRecoveryCodeUsed     EventType = "recovery_code_used"
	EventAccountDisabled      EventType = "account_disabled"
	EventAccountEnabled       EventType = "account_enabled"
	EventAdminGranted         EventType = "admin_granted"
	EventAdminRevoked         EventType = "admin_revoked"
	EventAccountDeleted       EventType = "account_deleted"
)

// Event is one entry of the security log. It never holds a secret, a
// token, a password or (for an unknown account) the identifier tried.
type Event struct {
	ID        string
	Type      EventType
	CreatedAt time.Time
	UserID    string // empty: no known account
	ActorID   string // the admin who acted; empty when the user did
	SessionID string
	IP        string
	UserAgent string
}

// EventFilter selects events for a listing; empty fields match all.
type EventFilter struct {
	UserID string
	Type   EventType
}

// EventStore is the persistence of the security log.
//
// Events reach the store on the context of the change they record
// (WithEvents), with the security notices of that change: every store
// method that writes takes the context's pending events and notices when
// its transaction begins and writes them in it, so a change and its
// events commit or roll back together, and a write that fails leaves
// nothing on the context for a later one. RecordEvents writes them alone,
// for what changes nothing else (a failed sign-in).
type EventStore interface {
	// RecordEvents inserts the context's pending events.
	RecordEvents(ctx context.Context) error
	// ListEvents returns up to limit events matching f, newest first,
	// strictly after the cursor position when after is not nil.
	ListEvents(ctx context.Context, f EventFilter, after *Cursor, limit int) ([]Event, error)
	// PruneEvents deletes the events created before before.
	PruneEvents(ctx context.Context, before time.Time) (int64, error)
}

// pendingEvents are the events a context carries to the store. take hands
// them out once, so a second write on the same context does not repeat
// them.
type pendingEvents struct {
	mu     sync.Mutex
	events []Event
	mails  []*OutboxMail // security notices (auth/notices.go)
}

type eventsKey struct{}

// WithEvents returns ctx carrying evs (after any it carries already) for
// the next store write.
func WithEvents(ctx context.Context, evs ...Event) context.Context {
	if p, ok := ctx.Value(eventsKey{}).(*pendingEvents); ok && p != nil {
		p.mu.Lock()
		p.events = append(p.events, evs...)
		p.mu.Unlock()
		return ctx
	}
	return context.WithValue(ctx, eventsKey{}, &pendingEvents{events: evs})
}

// withMails returns ctx carrying mails (security notices) for the next
// store write, as WithEvents does events.
func withMails(ctx context.Context, mails ...*OutboxMail) context.Context {
	if p, ok := ctx.Value(eventsKey{}).(*pendingEvents); ok && p != nil {
		p.mu.Lock()
		p.mails = append(p.mails, mails...)
		p.mu.Unlock()
		return ctx
	}
	return context.WithValue(ctx, eventsKey{}, &pendingEvents{mails: mails})
}

// TakeMails returns the mails ctx carries and forgets them. Store
// implementations call it, with TakeEvents, inside the transaction of a
// write and queue them there.
func TakeMails(ctx context.Context) []*OutboxMail {
	p, ok := ctx.Value(eventsKey{}).(*pendingEvents)
	if !ok || p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	mails := p.mails
	p.mails = nil
	return mails
}

// TakeEvents returns the events ctx carries and forgets them. Store
// implementations call it inside the transaction of a write.
func TakeEvents(ctx context.Context) []Event {
	p, ok := ctx.Value(eventsKey{}).(*pendingEvents)
	if !ok || p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	evs := p.events
	p.events = nil
	return evs
}

type clientMetaKey struct{}

// WithClientMeta returns ctx carrying the caller's address and user agent,
// which the events of the request record. The HTTP edge sets it on every
// request.
func WithClientMeta(ctx context.Context, m ClientMeta) context.Context {
	return context.WithValue(ctx, clientMetaKey{}, m)
}

// ClientMetaFrom returns what WithClientMeta put on ctx.
func ClientMetaFrom(ctx context.Context) ClientMeta {
	m, _ := ctx.Value(clientMetaKey{}).(ClientMeta)
	return m
}

// event builds an event at the service's clock with the client's address
// and user agent from ctx (cleaned as on sessions).
func (s *Service) event(ctx context.Context, t EventType, userID, sessionID string) (Event, error) {
	id, err := s.newID()
	if err != nil {
		return Event{}, err
	}
	meta := ClientMetaFrom(ctx)
	return Event{
		ID: id, Type: t, CreatedAt: s.now(), UserID: userID, SessionID: sessionID,
		IP: cleanIP(meta.IP), UserAgent: cleanUserAgent(meta.UserAgent),
	}, nil
}

// withEvent returns ctx carrying one more event for the next store write.
func (s *Service) withEvent(ctx context.Context, t EventType, userID, sessionID string) (context.Context, error) {
	e, err := s.event(ctx, t, userID, sessionID)
	if err != nil {
		return ctx, err
	}
	return WithEvents(ctx, e), nil
}

// record writes one event on its own, for what changes nothing else (a
// failed sign-in). The log must not make the answer fail, so a failure to
// write it is only returned for the caller to log.
func (s *Service) record(ctx context.Context, t EventType, userID, sessionID string) error {
	ctx, err := s.withEvent(withoutEvents(ctx), t, userID, sessionID)
	if err != nil {
		return err
	}
	return s.st.RecordEvents(ctx)
}

// withoutEvents returns ctx with no pending events (so that record does
// not write events meant for another change).
func withoutEvents(ctx context.Context) context.Context {
	return context.WithValue(ctx, eventsKey{}, (*pendingEvents)(nil))
}

// EventsPage is one page of a listing of events.
type EventsPage struct {
	Events []Event
	Next   string // the cursor of the next page; empty on the last
}

// MyEvents lists the caller's own security events, newest first.
func (s *Service) MyEvents(ctx context.Context, p Principal, limit int, cursor string) (*EventsPage, error) {
	return s.listEvents(ctx, EventFilter{UserID: p.UserID}, limit, cursor)
}

func (s *Service) listEvents(ctx context.Context, f EventFilter, limit int, cursor string) (*EventsPage, error) {
	limit, after, err := pageArgs(limit, cursor)
	if err != nil {
		return nil, err
	}
	evs, err := s.st.ListEvents(ctx, f, after, limit+1)
	if err != nil {
		return nil, err
	}
	page := &EventsPage{Events: evs}
	if len(evs) > limit {
		page.Events = evs[:limit]
		last := page.Events[limit-1]
		page.Next = (&Cursor{CreatedAt: last.CreatedAt, ID: last.ID}).String()
	}
	return page, nil
}

// PruneEvents deletes the events older than retention.
func (s *Service) PruneEvents(ctx context.Context, retention time.Duration) (int64, error) {
	return s.st.PruneEvents(ctx, s.now().Add(-retention))
}

// codeEvents returns ctx carrying a recovery_code_used event and notice
// when use spends a recovery code, then an event of type t.
func (s *Service) codeEvents(ctx context.Context, u *User, sessionID string, use CodeUse, t EventType) (context.Context, error) {
	var err error
	if len(use.RecoveryHash) > 0 {
		if ctx, err = s.withEvent(ctx, EventRecoveryCodeUsed, u.ID, sessionID); err != nil {
			return ctx, err
		}
		if ctx, err = s.withNotice(ctx, MailRecoveryCodeUsed, u); err != nil {
			return ctx, err
		}
	}
	return s.withEvent(ctx, t, u.ID, sessionID)
}

// signInFailed records a failed first factor: with the account the
// identifier named (u, as the sign-in found it), else with neither the
// identifier nor anything else of the attempt but the client's address and
// agent. Nothing is recorded for a wrong secret (it names no account). The
// answer does not wait on the log: a failure to write it is dropped.
func (s *Service) signInFailed(ctx context.Context, u *User) {
	userID := ""
	if u != nil {
		userID = u.ID
	}
	_ = s.record(ctx, EventSignInFailed, userID, "")
}
