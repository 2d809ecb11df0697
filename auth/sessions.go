package auth

import "context"

// maxSessions is the most sessions Sessions lists.
const maxSessions = 100

// Sessions lists the caller's live sessions, newest first.
func (s *Service) Sessions(ctx context.Context, p Principal) ([]Session, error) {
	return s.st.ListSessions(ctx, p.UserID, s.now(), maxSessions)
}

// RevokeSession revokes one of the caller's sessions (their own current
// one included: that is a logout). ErrNotFound when it is not a live
// session of theirs.
func (s *Service) RevokeSession(ctx context.Context, p Principal, sessionID string) error {
	t := EventSessionRevoked
	if sessionID == p.SessionID {
		t = EventLogout
	}
	ctx, err := s.withEvent(ctx, t, p.UserID, sessionID)
	if err != nil {
		return err
	}
	return s.st.RevokeSession(ctx, p.UserID, sessionID, s.now())
}
