package auth

import (
	"context"
	"errors"
	"testing"
)

// TestRotationOnFakeAndSQLite runs the same refresh-rotation flow on the
// in-memory fake and on the real store over SQLite with the real
// migrations, so the fake's rotation semantics are checked against the
// database: a rotated token is replaced, logout revokes the session, and a
// token of a revoked session is refused.
func TestRotationOnFakeAndSQLite(t *testing.T) {
	stores := map[string]func(t *testing.T) Store{
		"fake":   func(*testing.T) Store { return newFakeStore() },
		"sqlite": func(t *testing.T) Store { return OpenSQLiteStore(t) },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := &testClock{t: start}
			s, err := NewService(ctx, open(t), testConfig(), WithClock(clk.now))
			if err != nil {
				t.Fatalf("NewService: %v", err)
			}
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
		})
	}
}
