package auth

import (
	"context"
	"errors"
	"testing"
)

// TestRotationOnSQLite runs a refresh-rotation flow on the test store, the
// real store over SQLite with the real migrations: a rotated token is
// replaced, logout revokes the session, and a token of a revoked session
// is refused. (Every test here runs on that store; this one was the check
// of the former in-memory fake against it.)
func TestRotationOnSQLite(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newTestService(t)
	_, _, tok := register(t, s, "Ada")
	next, err := s.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if next.RefreshToken == tok.RefreshToken || next.SessionID != tok.SessionID {
		t.Errorf("rotation: same token %v, session %q want %q", next.RefreshToken == tok.RefreshToken, next.SessionID, tok.SessionID)
	}
	if err := s.LogoutRefresh(ctx, next.RefreshToken); err != nil {
		t.Fatalf("LogoutRefresh: %v", err)
	}
	if _, err := s.Refresh(ctx, next.RefreshToken); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Refresh after logout = %v, want ErrUnauthenticated", err)
	}
}
