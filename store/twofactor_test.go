package store_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// confirmStep is the time step the tests confirm enrolments with.
const confirmStep = 60_000_000

// enableTwoFactor enrols and confirms two-factor for u at confirmStep, with
// n recovery codes, whose hashes it returns.
func enableTwoFactor(t *testing.T, db *store.DB, u *auth.User, n int) [][]byte {
	t.Helper()
	ctx := context.Background()
	enc := randomHash(t)
	noErr(t, "SetPendingTwoFactor", db.SetPendingTwoFactor(ctx, u.ID, enc, base))
	hashes := make([][]byte, n)
	for i := range hashes {
		hashes[i] = randomHash(t)
	}
	noErr(t, "EnableTwoFactor", db.EnableTwoFactor(ctx, u.ID, enc, confirmStep, hashes, base))
	return hashes
}

func newChallenge(t *testing.T, userID string, created time.Time) *auth.TwoFactorChallenge {
	return &auth.TwoFactorChallenge{
		Hash:         randomHash(t),
		UserID:       userID,
		CreatedAt:    created,
		ExpiresAt:    created.Add(5 * time.Minute),
		AttemptsLeft: 5,
		UserAgent:    "first/1.0",
		IP:           "192.0.2.9",
	}
}

func mustChallenge(t *testing.T, db *store.DB, userID string, created time.Time) *auth.TwoFactorChallenge {
	t.Helper()
	c := newChallenge(t, userID, created)
	noErr(t, "CreateTwoFactorChallenge", db.CreateTwoFactorChallenge(context.Background(), c))
	return c
}

func TestTwoFactorEnrolment(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "tf@example.com", "")

		got, err := db.UserByID(ctx, u.ID)
		noErr(t, "UserByID", err)
		if got.TwoFactorEnabled || got.TOTPKeyEnc != nil || got.TOTPPendingEnc != nil || got.TOTPLastStep != 0 {
			t.Fatalf("a new user's two-factor state: %+v", got)
		}

		first, second := []byte("sealed key one"), []byte("sealed key two")
		noErr(t, "SetPendingTwoFactor", db.SetPendingTwoFactor(ctx, u.ID, first, at(time.Second)))
		noErr(t, "SetPendingTwoFactor (again)", db.SetPendingTwoFactor(ctx, u.ID, second, at(2*time.Second)))
		got, _ = db.UserByID(ctx, u.ID)
		if !bytes.Equal(got.TOTPPendingEnc, second) || got.TwoFactorEnabled || !got.UpdatedAt.Equal(at(2*time.Second)) {
			t.Fatalf("after enrolling twice: %+v", got)
		}
		wantErr(t, "SetPendingTwoFactor(unknown user)",
			db.SetPendingTwoFactor(ctx, secretUser(t).ID, first, base), auth.ErrNotFound)

		hashes := [][]byte{randomHash(t), randomHash(t), randomHash(t)}
		wantErr(t, "EnableTwoFactor(replaced key)",
			db.EnableTwoFactor(ctx, u.ID, first, confirmStep, hashes, base), auth.ErrInvalidCode)
		wantErr(t, "EnableTwoFactor(step 0)",
			db.EnableTwoFactor(ctx, u.ID, second, 0, hashes, base), auth.ErrInvalidCode)
		if n := countRows(t, db, "recovery_codes", ""); n != 0 {
			t.Fatalf("%d recovery codes after refused confirmations", n)
		}
		noErr(t, "EnableTwoFactor", db.EnableTwoFactor(ctx, u.ID, second, confirmStep, hashes, at(time.Minute)))

		got, _ = db.UserByID(ctx, u.ID)
		if !got.TwoFactorEnabled || !bytes.Equal(got.TOTPKeyEnc, second) || got.TOTPPendingEnc != nil ||
			got.TOTPLastStep != confirmStep || !got.UpdatedAt.Equal(at(time.Minute)) {
			t.Fatalf("after confirming: %+v", got)
		}
		if n := countRows(t, db, "recovery_codes", "user_id = ?", u.ID); n != 3 {
			t.Errorf("%d recovery codes stored, want 3", n)
		}

		wantErr(t, "EnableTwoFactor(again)",
			db.EnableTwoFactor(ctx, u.ID, second, confirmStep+1, hashes, base), auth.ErrAlreadyEnabled)
		wantErr(t, "SetPendingTwoFactor(enabled)",
			db.SetPendingTwoFactor(ctx, u.ID, first, base), auth.ErrAlreadyEnabled)

		// A profile update leaves the two-factor columns alone.
		got, err = db.UpdateProfile(ctx, u.ID, auth.UserPatch{Name: ptr("Renamed")}, base)
		noErr(t, "UpdateProfile", err)
		if got.Name != "Renamed" || !got.TwoFactorEnabled || !bytes.Equal(got.TOTPKeyEnc, second) || got.TOTPLastStep != confirmStep {
			t.Errorf("UpdateProfile changed the two-factor columns: %+v", got)
		}
	})
}

func TestTwoFactorChallenges(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "ch@example.com", "")
		c := mustChallenge(t, db, u.ID, base)

		got, err := db.TwoFactorChallenge(ctx, c.Hash)
		noErr(t, "TwoFactorChallenge", err)
		if !bytes.Equal(got.Hash, c.Hash) || got.UserID != c.UserID || !got.CreatedAt.Equal(base.Truncate(time.Microsecond)) ||
			!got.ExpiresAt.Equal(c.ExpiresAt.Truncate(time.Microsecond)) || got.AttemptsLeft != 5 ||
			got.UserAgent != c.UserAgent || got.IP != c.IP {
			t.Fatalf("challenge = %+v, want %+v", got, c)
		}
		_, err = db.TwoFactorChallenge(ctx, randomHash(t))
		wantErr(t, "TwoFactorChallenge(unknown)", err, auth.ErrNotFound)
		wantErr(t, "CreateTwoFactorChallenge(unknown user)",
			db.CreateTwoFactorChallenge(ctx, newChallenge(t, secretUser(t).ID, base)), auth.ErrNotFound)

		for i := range 5 {
			noErr(t, "FailTwoFactorChallenge", db.FailTwoFactorChallenge(ctx, c.Hash, at(time.Duration(i)*time.Second)))
		}
		wantErr(t, "FailTwoFactorChallenge(dead)", db.FailTwoFactorChallenge(ctx, c.Hash, at(time.Minute)), auth.ErrInvalidToken)
		got, _ = db.TwoFactorChallenge(ctx, c.Hash)
		if got.AttemptsLeft != 0 || got.Live(at(time.Minute)) {
			t.Errorf("after five failures: %+v", got)
		}

		expiring := mustChallenge(t, db, u.ID, at(time.Second))
		wantErr(t, "FailTwoFactorChallenge(expired)",
			db.FailTwoFactorChallenge(ctx, expiring.Hash, expiring.ExpiresAt), auth.ErrInvalidToken)
		wantErr(t, "FailTwoFactorChallenge(unknown)", db.FailTwoFactorChallenge(ctx, randomHash(t), base), auth.ErrInvalidToken)

		// A new challenge sweeps the user's dead and expired ones, not
		// the live ones nor another user's.
		other, _, _ := mustCreateUser(t, db, "other@example.com", "")
		otherDead := mustChallenge(t, db, other.ID, base)
		for range 5 {
			noErr(t, "FailTwoFactorChallenge", db.FailTwoFactorChallenge(ctx, otherDead.Hash, base))
		}
		live := mustChallenge(t, db, u.ID, at(3*time.Minute))
		mustChallenge(t, db, u.ID, expiring.ExpiresAt) // sweeps c and expiring
		for _, h := range [][]byte{c.Hash, expiring.Hash} {
			_, err := db.TwoFactorChallenge(ctx, h)
			wantErr(t, "a swept challenge", err, auth.ErrNotFound)
		}
		for _, h := range [][]byte{live.Hash, otherDead.Hash} {
			_, err := db.TwoFactorChallenge(ctx, h)
			noErr(t, "a kept challenge", err)
		}

		// They go with their user.
		noErr(t, "DeleteUser", db.DeleteUser(ctx, u.ID))
		if n := countRows(t, db, "two_factor_challenges", "user_id = ?", u.ID); n != 0 {
			t.Errorf("%d challenges survive their user", n)
		}
	})
}

func TestCompleteTwoFactorChallenge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "complete@example.com", "")
		codes := enableTwoFactor(t, db, u, 2)
		now := at(time.Minute)
		session := func() (*auth.Session, *auth.RefreshToken) {
			s := newSession(u.ID, now, now.Add(time.Hour))
			return s, newToken(t, s.ID, now, s.ExpiresAt)
		}
		lastStep := func() int64 {
			got, err := db.UserByID(ctx, u.ID)
			noErr(t, "UserByID", err)
			return got.TOTPLastStep
		}

		// A TOTP step.
		c := mustChallenge(t, db, u.ID, base)
		s, rt := session()
		noErr(t, "CompleteTwoFactorChallenge(step)",
			db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{Step: confirmStep + 1}, s, rt, now))
		got, err := db.SessionByID(ctx, s.ID)
		noErr(t, "the new session", err)
		equalSessions(t, got, s)
		if n := countRows(t, db, "refresh_tokens", "session_id = ?", s.ID); n != 1 {
			t.Errorf("%d refresh tokens for the new session, want 1", n)
		}
		if lastStep() != confirmStep+1 {
			t.Errorf("last step %d, want %d", lastStep(), confirmStep+1)
		}
		_, err = db.TwoFactorChallenge(ctx, c.Hash)
		wantErr(t, "the answered challenge", err, auth.ErrNotFound)
		s, rt = session()
		wantErr(t, "CompleteTwoFactorChallenge(answered)",
			db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{Step: confirmStep + 2}, s, rt, now), auth.ErrInvalidToken)

		// Used steps, the confirming one included, are refused and change
		// nothing.
		c = mustChallenge(t, db, u.ID, base)
		for _, step := range []int64{confirmStep, confirmStep + 1} {
			s, rt = session()
			wantErr(t, "CompleteTwoFactorChallenge(used step)",
				db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{Step: step}, s, rt, now), auth.ErrInvalidCode)
			_, err := db.SessionByID(ctx, s.ID)
			wantErr(t, "the refused session", err, auth.ErrNotFound)
		}
		if ch, err := db.TwoFactorChallenge(ctx, c.Hash); err != nil || ch.AttemptsLeft != 5 {
			t.Errorf("the challenge after refused codes: %+v, %v", ch, err)
		}

		// An expired or dead challenge does not spend the code (the
		// transaction rolls back).
		s, rt = session()
		wantErr(t, "CompleteTwoFactorChallenge(expired)",
			db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{Step: confirmStep + 5}, s, rt, c.ExpiresAt), auth.ErrInvalidToken)
		dead := mustChallenge(t, db, u.ID, base)
		for range 5 {
			noErr(t, "FailTwoFactorChallenge", db.FailTwoFactorChallenge(ctx, dead.Hash, base))
		}
		wantErr(t, "CompleteTwoFactorChallenge(dead)",
			db.CompleteTwoFactorChallenge(ctx, dead.Hash, auth.CodeUse{RecoveryHash: codes[0]}, s, rt, now), auth.ErrInvalidToken)
		if lastStep() != confirmStep+1 || countRows(t, db, "recovery_codes", "user_id = ?", u.ID) != 2 {
			t.Error("a refused completion spent its code")
		}
		wantErr(t, "CompleteTwoFactorChallenge(unknown)",
			db.CompleteTwoFactorChallenge(ctx, randomHash(t), auth.CodeUse{Step: confirmStep + 5}, s, rt, now), auth.ErrInvalidToken)

		// Recovery codes work once, and only the user's.
		other, _, _ := mustCreateUser(t, db, "other@example.com", "")
		otherCodes := enableTwoFactor(t, db, other, 1)
		c = mustChallenge(t, db, u.ID, now)
		s, rt = session()
		wantErr(t, "CompleteTwoFactorChallenge(another user's code)",
			db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{RecoveryHash: otherCodes[0]}, s, rt, now), auth.ErrInvalidCode)
		noErr(t, "CompleteTwoFactorChallenge(recovery)",
			db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{RecoveryHash: codes[0]}, s, rt, now))
		c = mustChallenge(t, db, u.ID, now)
		s, rt = session()
		wantErr(t, "CompleteTwoFactorChallenge(used recovery code)",
			db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{RecoveryHash: codes[0]}, s, rt, now), auth.ErrInvalidCode)
		if n := countRows(t, db, "recovery_codes", "user_id = ?", u.ID); n != 1 {
			t.Errorf("%d recovery codes left, want 1", n)
		}

		// The session must be the challenge's user's.
		os := newSession(other.ID, now, now.Add(time.Hour))
		if err := db.CompleteTwoFactorChallenge(ctx, c.Hash, auth.CodeUse{RecoveryHash: codes[1]}, os, newToken(t, os.ID, now, os.ExpiresAt), now); err == nil {
			t.Error("completed a challenge with another user's session")
		}

		// With two-factor off, a challenge is void.
		noErr(t, "DisableTwoFactor", db.DisableTwoFactor(ctx, other.ID, auth.CodeUse{Step: confirmStep + 1}, now))
		oc := mustChallenge(t, db, other.ID, now)
		os = newSession(other.ID, now, now.Add(time.Hour))
		wantErr(t, "CompleteTwoFactorChallenge(two-factor off)",
			db.CompleteTwoFactorChallenge(ctx, oc.Hash, auth.CodeUse{Step: confirmStep + 2}, os, newToken(t, os.ID, now, os.ExpiresAt), now), auth.ErrInvalidToken)
	})
}

func TestDisableTwoFactorStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "off@example.com", "")
		wantErr(t, "DisableTwoFactor(off)", db.DisableTwoFactor(ctx, u.ID, auth.CodeUse{Step: 1}, base), auth.ErrNotApplicable)
		wantErr(t, "DisableTwoFactor(unknown user)",
			db.DisableTwoFactor(ctx, secretUser(t).ID, auth.CodeUse{Step: 1}, base), auth.ErrNotFound)

		codes := enableTwoFactor(t, db, u, 3)
		mustChallenge(t, db, u.ID, base)
		wantErr(t, "DisableTwoFactor(used step)",
			db.DisableTwoFactor(ctx, u.ID, auth.CodeUse{Step: confirmStep}, base), auth.ErrInvalidCode)
		wantErr(t, "DisableTwoFactor(unknown recovery code)",
			db.DisableTwoFactor(ctx, u.ID, auth.CodeUse{RecoveryHash: randomHash(t)}, base), auth.ErrInvalidCode)
		got, _ := db.UserByID(ctx, u.ID)
		if !got.TwoFactorEnabled || countRows(t, db, "recovery_codes", "user_id = ?", u.ID) != 3 {
			t.Fatal("a refused disable changed something")
		}

		noErr(t, "DisableTwoFactor", db.DisableTwoFactor(ctx, u.ID, auth.CodeUse{RecoveryHash: codes[1]}, at(time.Hour)))
		got, _ = db.UserByID(ctx, u.ID)
		if got.TwoFactorEnabled || got.TOTPKeyEnc != nil || got.TOTPPendingEnc != nil || !got.UpdatedAt.Equal(at(time.Hour)) {
			t.Errorf("after disabling: %+v", got)
		}
		if got.TOTPLastStep != confirmStep {
			t.Errorf("last step %d after disabling, want %d kept", got.TOTPLastStep, confirmStep)
		}
		if countRows(t, db, "recovery_codes", "user_id = ?", u.ID) != 0 || countRows(t, db, "two_factor_challenges", "user_id = ?", u.ID) != 0 {
			t.Error("recovery codes or challenges survive disabling")
		}

		// Enabled again, its codes go with the user.
		noErr(t, "SetPendingTwoFactor", db.SetPendingTwoFactor(ctx, u.ID, []byte("k"), base))
		wantErr(t, "EnableTwoFactor(an old step)",
			db.EnableTwoFactor(ctx, u.ID, []byte("k"), confirmStep, [][]byte{randomHash(t)}, base), auth.ErrInvalidCode)
		noErr(t, "EnableTwoFactor", db.EnableTwoFactor(ctx, u.ID, []byte("k"), confirmStep+1, [][]byte{randomHash(t)}, base))
		noErr(t, "DeleteUser", db.DeleteUser(ctx, u.ID))
		if n := countRows(t, db, "recovery_codes", "user_id = ?", u.ID); n != 0 {
			t.Errorf("%d recovery codes survive their user", n)
		}
	})
}

// TestCompleteTwoFactorChallengeConcurrent spends one code from ten
// goroutines at once: through one challenge, through ten challenges, and
// (a recovery code) through ten challenges. Exactly one may win.
func TestCompleteTwoFactorChallengeConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u, _, _ := mustCreateUser(t, db, "race@example.com", "")
		codes := enableTwoFactor(t, db, u, 1)
		now := at(time.Minute)

		rounds := []struct {
			name          string
			sameChallenge bool
			use           auth.CodeUse
		}{
			{"one challenge, one step", true, auth.CodeUse{Step: confirmStep + 1}},
			{"ten challenges, one step", false, auth.CodeUse{Step: confirmStep + 2}},
			{"ten challenges, one recovery code", false, auth.CodeUse{RecoveryHash: codes[0]}},
		}
		for _, r := range rounds {
			const n = 10
			hashes := make([][]byte, n)
			for i := range hashes {
				if i == 0 || !r.sameChallenge {
					hashes[i] = mustChallenge(t, db, u.ID, now).Hash
				} else {
					hashes[i] = hashes[0]
				}
			}
			errs := make([]error, n)
			sessions := make([]*auth.Session, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				s := newSession(u.ID, now, now.Add(time.Hour))
				sessions[i] = s
				rt := newToken(t, s.ID, now, s.ExpiresAt)
				wg.Go(func() {
					<-start
					errs[i] = db.CompleteTwoFactorChallenge(ctx, hashes[i], r.use, s, rt, now)
				})
			}
			close(start)
			wg.Wait()

			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case errors.Is(err, auth.ErrInvalidCode), errors.Is(err, auth.ErrInvalidToken):
					if _, err := db.SessionByID(ctx, sessions[i].ID); !errors.Is(err, auth.ErrNotFound) {
						t.Errorf("%s: a loser's session was stored", r.name)
					}
				default:
					t.Errorf("%s: call %d: %v", r.name, i, err)
				}
			}
			if wins != 1 {
				t.Errorf("%s: %d calls succeeded, want exactly 1", r.name, wins)
			}
		}
	})
}
