package server_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/mail/mailtest"
)

// Recovery: what the owner does to take an account back must also take
// back what an intruder started, and no write of an intruder's request,
// begun before the recovery, may land after it.

// stealEmail has the holder of access start a change of the address to
// thief and returns the token mailed to thief.
func (m *mailStack) stealEmail(access, pw, thief string) string {
	m.t.Helper()
	m.accepted(m.do("PUT", "/api/me/email", map[string]any{"email": thief, "password": pw}, bearer(access)), "ACCEPTED")
	var stolen string
	for _, msg := range m.flush() {
		if msg.To[0] == thief {
			stolen = msg.Token()
		}
	}
	if stolen == "" {
		m.t.Fatalf("no mail to %s", thief)
	}
	return stolen
}

// TestRecoveryVoidsEmailChange: an intruder who knows the password asks
// for PUT /me/email with their own address; the owner then changes the
// password, resets it, or logs out everywhere. The intruder's link is
// dead: 400 INVALID_TOKEN, and the address stays the owner's.
func TestRecoveryVoidsEmailChange(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		for i, tc := range []struct {
			name    string
			recover func(m *mailStack, email string, owner tokenPair) string // returns the password after
		}{
			{"password change", func(m *mailStack, email string, owner tokenPair) string {
				m.want(m.do("PUT", "/api/me/password", map[string]any{"current_password": adaPassword, "new_password": newPassword},
					bearer(owner.AccessToken)), http.StatusNoContent, "")
				m.flush()
				return newPassword
			}},
			{"password reset", func(m *mailStack, email string, owner tokenPair) string {
				m.want(m.reset(m.requestReset(email).Token(), newPassword), http.StatusNoContent, "")
				m.flush()
				return newPassword
			}},
			{"logout all", func(m *mailStack, email string, owner tokenPair) string {
				m.want(m.do("POST", "/api/auth/logout", map[string]any{"scope": "all"}, bearer(owner.AccessToken)),
					http.StatusNoContent, "")
				return adaPassword
			}},
		} {
			func() {
				email := fmt.Sprintf("owner%d@example.com", i)
				thief := fmt.Sprintf("thief%d@example.net", i)
				owner := m.confirmed(email)
				intruder := m.wantSignIn(email, adaPassword)
				stolen := m.stealEmail(intruder.AccessToken, adaPassword, thief)

				pw := tc.recover(m, email, owner)

				r := m.do("POST", "/api/auth/confirm", map[string]any{"token": stolen})
				if r.Code != http.StatusBadRequest || m.apiErr(r).Code != "INVALID_TOKEN" {
					m.t.Errorf("after a %s the intruder's email-change link answers %s, want 400 INVALID_TOKEN", tc.name, r)
					return
				}
				m.want(m.signInPw(thief, pw), http.StatusUnauthorized, "INVALID_CREDENTIALS")
				tp := m.wantSignIn(email, pw)
				if u := m.me(tp.AccessToken); deref(u.Email) != email {
					m.t.Errorf("the address is %q, want %q", deref(u.Email), email)
				}
				// A change asked for after the recovery works as before.
				m.confirm(m.stealEmail(tp.AccessToken, pw, "moved"+thief))
			}()
		}
	})
}

// otherParams differ from cheapParams in memory only: a hash made under
// one is rehashed on sign-in under the other.
var otherParams = password.Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// raceRounds is how many times each race is run. With the loopers busy
// throughout, some PATCH /me or rehash has read the row before the
// recovery commits and writes after it (waiting on PostgreSQL's row lock
// or SQLite's write lock) in most rounds. Measured on the code before
// column-owned writes (24 rounds of each kind on each database): 47 of 48
// reset and change rounds and 36 of 48 rehash rounds lost a write. Taking
// no more than 2 in 3 per round, 10 rounds all pass with probability at
// most 3^-10 ≈ 1.7e-5 per kind and database: the old bug is caught almost
// surely. A correct store passes every round whatever the interleaving.
const raceRounds = 10

// racers run steps in goroutines until stopped; each step's status must
// be one of ok.
type racers struct {
	t       *testing.T
	stop    chan struct{}
	wg      sync.WaitGroup
	started sync.WaitGroup
	once    sync.Once
}

func newRacers(t *testing.T) *racers {
	r := &racers{t: t, stop: make(chan struct{})}
	t.Cleanup(r.halt) // also when the test fails half way
	return r
}

// run starts a goroutine looping step(0), step(1), … until halt.
func (r *racers) run(step func(i int) response, ok ...int) {
	r.started.Add(1)
	r.wg.Go(func() {
		for i := 0; ; i++ {
			res := step(i)
			if i == 0 {
				r.started.Done()
			}
			if !slices.Contains(ok, res.Code) {
				r.t.Errorf("unexpected %s", res)
				return
			}
			select {
			case <-r.stop:
				return
			default:
			}
		}
	})
}

// ready waits until every racer has finished one step.
func (r *racers) ready() { r.started.Wait() }

// halt stops the racers and waits for them.
func (r *racers) halt() {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
}

// TestRaceRecoveryLostUpdates races profile edits (PATCH /me with a
// session from before) and sign-ins that rehash the password against a
// password reset and a password change. Afterwards the new password
// signs in and the old one does not, every round.
func TestRaceRecoveryLostUpdates(t *testing.T) {
	eachDB(t, func(h *harness) {
		m := h.withMail(mailtest.Start(h.t, mailtest.Options{}), nil)
		// A second stack whose hasher has other parameters: sign-ins
		// alternating between the two rehash every time.
		other := *m.harness
		_, other.h = h.build(func(cfg *auth.Config) {
			cfg.Issuer = publicURL
			cfg.EmailConfirmationRequired = true
			cfg.Hasher = newHasher(h.t, otherParams, 8, 5*time.Second)
		})
		stacks := []*harness{m.harness, &other}

		for _, kind := range []string{"reset", "change"} {
			email := kind + "@example.com"
			pw := adaPassword
			m.confirmed(email)
			for round := range raceRounds {
				next := fmt.Sprintf("fresh quartz phrase %d", round)
				old := m.wantSignIn(email, pw)
				var token string
				if kind == "reset" {
					token = m.requestReset(email).Token()
				}
				rs := newRacers(m.t)
				for j := range 3 {
					rs.run(func(i int) response {
						return m.do("PATCH", "/api/me", map[string]any{"bio": fmt.Sprintf("edit %d.%d.%d", round, j, i)},
							bearer(old.AccessToken))
					}, http.StatusOK, http.StatusUnauthorized)
				}
				for j := range 2 {
					rs.run(func(i int) response {
						return stacks[(i+j)%2].signInPw(email, pw)
					}, http.StatusOK, http.StatusUnauthorized)
				}
				rs.ready()
				if kind == "reset" {
					m.want(m.reset(token, next), http.StatusNoContent, "")
				} else {
					m.want(m.do("PUT", "/api/me/password", map[string]any{"current_password": pw, "new_password": next},
						bearer(old.AccessToken)), http.StatusNoContent, "")
				}
				rs.halt()
				if m.t.Failed() {
					return
				}
				if r := m.signInPw(email, pw); r.Code != http.StatusUnauthorized {
					m.t.Fatalf("%s round %d: the old password still signs in: %s", kind, round, r)
				}
				if r := m.signInPw(email, next); r.Code != http.StatusOK {
					m.t.Fatalf("%s round %d: the new password is refused: %s", kind, round, r)
				}
				m.flush()
				pw = next
			}
		}

		// Profile edits racing a rehash: the upgrade sticks. (Before, a
		// PATCH that had read the old hash wrote it back.)
		email := "rehash@example.com"
		m.confirmed(email)
		for round := range raceRounds {
			// Signing in on m rehashes under cheapParams again.
			access := m.wantSignIn(email, adaPassword).AccessToken
			if got := m.storedUser(email).PasswordHash; !strings.HasPrefix(got, currentPrefix) {
				m.t.Fatalf("hash %q before the round", got)
			}
			rs := newRacers(m.t)
			for j := range 3 {
				rs.run(func(i int) response {
					return m.do("PATCH", "/api/me", map[string]any{"bio": fmt.Sprintf("edit %d.%d.%d", round, j, i)}, bearer(access))
				}, http.StatusOK)
			}
			rs.ready()
			other.wantSignIn(email, adaPassword)
			rs.halt()
			if got := m.storedUser(email).PasswordHash; !strings.Contains(got, "$m=128,") {
				m.t.Fatalf("rehash round %d: the upgrade was undone: %q", round, got)
			}
		}
	})
}

// legacyRecoveryHash is how releases before keyed hashing stored a
// recovery code: SHA-256 over "recovery:", the user id, ":" and the code
// as typed into the hash (lower case, no dash).
func legacyRecoveryHash(userID, code string) []byte {
	sum := sha256.Sum256([]byte("recovery:" + userID + ":" + strings.ReplaceAll(strings.ToLower(code), "-", "")))
	return sum[:]
}

// recoveryHashes returns the stored hashes of a user's recovery codes.
func (h *harness) recoveryHashes(userID string) [][]byte {
	h.t.Helper()
	db := h.rawDB()
	defer db.Close()
	rows, err := db.Query("SELECT hash FROM recovery_codes WHERE user_id = $1", userID)
	if err != nil {
		h.t.Fatalf("reading recovery codes: %v", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// TestRecoveryCodesKeyed: recovery codes (50 bits) are stored under a key
// derived from the master key, so a stolen database cannot be searched
// for them; codes stored by earlier releases as plain SHA-256 keep
// working and are rewritten keyed when the service starts.
func TestRecoveryCodesKeyed(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.twoFactorAccount("keyed")
		stored := h.recoveryHashes(a.ID)
		if len(stored) != len(a.Recovery) {
			h.t.Fatalf("%d stored codes, want %d", len(stored), len(a.Recovery))
		}
		for _, c := range a.Recovery {
			for _, s := range stored {
				if bytes.Equal(s, legacyRecoveryHash(a.ID, c)) {
					h.t.Fatalf("recovery code %s is stored as its plain SHA-256", c)
				}
			}
		}
		h.wantTokens(h.answer(h.challenge(map[string]any{"secret": a.Secret}), a.Recovery[0]))
		h.want(h.answer(h.challenge(map[string]any{"secret": a.Secret}), a.Recovery[0]), http.StatusUnauthorized, "INVALID_CODE")

		// Codes stored the old way, as by an instance of an earlier
		// release on the same database.
		b := h.twoFactorAccount("legacy")
		h.execSQL("DELETE FROM recovery_codes WHERE user_id = $1", b.ID)
		created := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
		for _, c := range b.Recovery {
			h.execSQL("INSERT INTO recovery_codes (user_id, hash, created_at) VALUES ($1, $2, $3)", b.ID, legacyRecoveryHash(b.ID, c), created)
		}
		h.wantTokens(h.answer(h.challenge(map[string]any{"secret": b.Secret}), b.Recovery[0]))
		h.want(h.answer(h.challenge(map[string]any{"secret": b.Secret}), b.Recovery[0]), http.StatusUnauthorized, "INVALID_CODE")

		// A start rewrites them keyed; they still work, once.
		h.restart()
		stored = h.recoveryHashes(b.ID)
		if len(stored) != len(b.Recovery)-1 {
			h.t.Fatalf("%d stored codes after the restart, want %d", len(stored), len(b.Recovery)-1)
		}
		for _, c := range b.Recovery {
			for _, s := range stored {
				if bytes.Equal(s, legacyRecoveryHash(b.ID, c)) {
					h.t.Fatalf("recovery code %s still stored as its plain SHA-256 after a restart", c)
				}
			}
		}
		h.want(h.answer(h.challenge(map[string]any{"secret": b.Secret}), b.Recovery[0]), http.StatusUnauthorized, "INVALID_CODE")
		h.wantTokens(h.answer(h.challenge(map[string]any{"secret": b.Secret}), b.Recovery[1]))
		h.want(h.answer(h.challenge(map[string]any{"secret": b.Secret}), b.Recovery[1]), http.StatusUnauthorized, "INVALID_CODE")
		h.wantTokens(h.answer(h.challenge(map[string]any{"secret": a.Secret}), a.Recovery[1]))
	})
}
