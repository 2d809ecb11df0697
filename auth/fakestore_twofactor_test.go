package auth

import (
	"bytes"
	"context"
	"time"
)

// The fakeStore's TwoFactorStore, honouring the interface's contract under
// the store's one mutex.

func (f *fakeStore) SetPendingTwoFactor(_ context.Context, userID string, keyEnc []byte, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[userID]
	switch {
	case !ok:
		return ErrNotFound
	case u.TwoFactorEnabled:
		return ErrAlreadyEnabled
	}
	u.TOTPPendingEnc, u.UpdatedAt = bytes.Clone(keyEnc), now
	f.users[userID] = u
	return nil
}

func (f *fakeStore) EnableTwoFactor(_ context.Context, userID string, pendingEnc []byte, step int64, recoveryHashes [][]byte, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[userID]
	switch {
	case !ok:
		return ErrNotFound
	case u.TwoFactorEnabled:
		return ErrAlreadyEnabled
	case len(pendingEnc) == 0 || !bytes.Equal(u.TOTPPendingEnc, pendingEnc) || step <= u.TOTPLastStep:
		return ErrInvalidCode
	}
	u.TwoFactorEnabled = true
	u.TOTPKeyEnc, u.TOTPPendingEnc, u.TOTPLastStep, u.UpdatedAt = u.TOTPPendingEnc, nil, step, now
	f.users[userID] = u
	f.dropRecovery(userID)
	for _, h := range recoveryHashes {
		f.recovery[string(h)] = userID
	}
	return nil
}

func (f *fakeStore) DisableTwoFactor(_ context.Context, userID string, use CodeUse, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.spendCode(userID, use); err != nil {
		return err
	}
	u := f.users[userID]
	u.TwoFactorEnabled = false
	u.TOTPKeyEnc, u.TOTPPendingEnc, u.UpdatedAt = nil, nil, now
	f.users[userID] = u
	f.dropRecovery(userID)
	for h, c := range f.challenges {
		if c.UserID == userID {
			delete(f.challenges, h)
		}
	}
	return nil
}

// spendCode is the store's spendCode; callers hold mu.
func (f *fakeStore) spendCode(userID string, use CodeUse) error {
	u, ok := f.users[userID]
	switch {
	case !ok:
		return ErrNotFound
	case !u.TwoFactorEnabled:
		return ErrNotApplicable
	}
	if len(use.RecoveryHash) > 0 {
		if f.recovery[string(use.RecoveryHash)] != userID {
			return ErrInvalidCode
		}
		delete(f.recovery, string(use.RecoveryHash))
		return nil
	}
	if use.Step <= u.TOTPLastStep {
		return ErrInvalidCode
	}
	u.TOTPLastStep = use.Step
	f.users[userID] = u
	return nil
}

// dropRecovery deletes a user's recovery codes; callers hold mu.
func (f *fakeStore) dropRecovery(userID string) {
	for h, id := range f.recovery {
		if id == userID {
			delete(f.recovery, h)
		}
	}
}

func (f *fakeStore) CreateTwoFactorChallenge(_ context.Context, c *TwoFactorChallenge) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[c.UserID]; !ok {
		return ErrNotFound
	}
	for h, o := range f.challenges {
		if o.UserID == c.UserID && !o.Live(c.CreatedAt) {
			delete(f.challenges, h)
		}
	}
	if _, ok := f.challenges[string(c.Hash)]; ok {
		return ErrConflict
	}
	f.challenges[string(c.Hash)] = *c
	return nil
}

func (f *fakeStore) TwoFactorChallenge(_ context.Context, hash []byte) (*TwoFactorChallenge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.challenges[string(hash)]
	if !ok {
		return nil, ErrNotFound
	}
	return &c, nil
}

func (f *fakeStore) FailTwoFactorChallenge(_ context.Context, hash []byte, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.challenges[string(hash)]
	if !ok || !c.Live(now) {
		return ErrInvalidToken
	}
	c.AttemptsLeft--
	f.challenges[string(hash)] = c
	return nil
}

func (f *fakeStore) CompleteTwoFactorChallenge(_ context.Context, hash []byte, use CodeUse, s *Session, rt *RefreshToken, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.challenges[string(hash)]
	if !ok {
		return ErrInvalidToken
	}
	if s.UserID != c.UserID {
		return ErrConflict // a bug in the caller
	}
	// Check everything before changing anything: the store's transaction
	// rolls back as a whole.
	u := f.users[c.UserID]
	if !u.TwoFactorEnabled {
		return ErrInvalidToken
	}
	switch {
	case len(use.RecoveryHash) > 0 && f.recovery[string(use.RecoveryHash)] != c.UserID,
		len(use.RecoveryHash) == 0 && use.Step <= u.TOTPLastStep:
		return ErrInvalidCode
	case !c.Live(now):
		return ErrInvalidToken
	}
	if err := f.spendCode(c.UserID, use); err != nil {
		return err
	}
	delete(f.challenges, string(hash))
	f.sessions[s.ID] = *s
	f.refresh[string(rt.Hash)] = *rt
	return nil
}

// challengeCount returns how many challenges are stored (test helper).
func (f *fakeStore) challengeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.challenges)
}

// recoveryCount returns how many recovery codes the user has (test helper).
func (f *fakeStore) recoveryCount(userID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, id := range f.recovery {
		if id == userID {
			n++
		}
	}
	return n
}

// RekeyRecoveryCodes: the fake only ever holds keyed codes.
func (f *fakeStore) RekeyRecoveryCodes(context.Context, func([]byte) []byte) (int, error) {
	return 0, nil
}
