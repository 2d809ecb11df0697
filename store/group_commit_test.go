package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// queueTogether starts jobs while the SQLite writer's turn is held, so
// that they all queue behind it, then frees the turn and waits for them:
// whoever gets the turn next leads one group commit of them all.
func queueTogether(t *testing.T, db *store.DB, jobs ...func()) {
	t.Helper()
	release, ok, err := db.HoldSQLiteWriter(context.Background())
	if !ok {
		t.Skip("no writer queue on " + db.Dialect())
	}
	noErr(t, "HoldSQLiteWriter", err)
	var started, done sync.WaitGroup
	for _, job := range jobs {
		started.Add(1)
		done.Go(func() { started.Done(); job() })
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond) // they block in the queue
	release()
	done.Wait()
}

// probe is a job that records the transaction it ran in.
func probe(db *store.DB, tx *store.TxStmts, err *error) func() {
	return func() {
		_, *err = db.InSQLiteGroup(context.Background(), func(_ context.Context, t store.TxStmts) error {
			*tx = t
			return nil
		})
	}
}

// TestRotationsGroupCommit: on SQLite, rotations queued together commit
// as one group, and behave as if they had committed one after another:
// of ten racing for one token exactly one rotates and the others see its
// rotation; a refused rotation (its session slid, then its expired token
// refused) is rolled back alone.
func TestRotationsGroupCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := at(time.Minute)
		_, s, rt := mustCreateUser(t, db, "group@example.com", "")
		u2, _, _ := mustCreateUser(t, db, "group-refused@example.com", "")
		s2 := newSession(u2.ID, base, at(48*time.Hour))
		rt2 := newToken(t, s2.ID, base, at(time.Second)) // expired at now
		noErr(t, "CreateSession", db.CreateSession(ctx, s2, rt2))
		before, err := db.SessionByID(ctx, s2.ID)
		noErr(t, "SessionByID", err)

		const n = 10
		results := make([]rotation, n+1)
		var jobs []func()
		for i := range results {
			sid, hash := s.ID, rt.Hash
			if i == n {
				sid, hash = s2.ID, rt2.Hash
			}
			results[i].next = newToken(t, sid, now, now.Add(time.Hour))
			jobs = append(jobs, func() {
				r := &results[i]
				r.old, r.rotated, r.err = db.RotateRefreshToken(ctx, hash, r.next, []byte{byte('A' + i)}, now)
			})
		}
		var tx1, tx2 store.TxStmts
		var err1, err2 error
		jobs = append(jobs, probe(db, &tx1, &err1), probe(db, &tx2, &err2))
		queueTogether(t, db, jobs...)

		noErr(t, "probe", errors.Join(err1, err2))
		if tx1 == nil || tx1 != tx2 {
			t.Fatal("two jobs queued together ran in different transactions: no group commit")
		}
		winner := raceWinner(t, results[:n], func(int) time.Time { return now })
		_, rotated, err := db.RotateRefreshToken(ctx, results[winner].next.Hash, newToken(t, s.ID, now, now.Add(time.Hour)), nil, now)
		if err != nil || !rotated {
			t.Errorf("the winner's successor: rotated=%v err=%v", rotated, err)
		}

		refused := results[n]
		noErr(t, "the refused rotation", refused.err)
		if refused.rotated || refused.old.RotatedAt != nil {
			t.Errorf("expired token: rotated=%v old=%+v; want it refused", refused.rotated, refused.old)
		}
		after, err := db.SessionByID(ctx, s2.ID)
		noErr(t, "SessionByID", err)
		equalSessions(t, after, before) // its slide was rolled back
	})
}

// TestGroupCommitFailsTogether: a job that breaks the group's transaction
// fails every job of the group, and nothing of the group is stored; the
// writers after it are not affected.
func TestGroupCommitFailsTogether(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := at(time.Minute)
		tokens := make([]*auth.RefreshToken, 3)
		sessions := make([]string, len(tokens))
		errs := make([]error, len(tokens)+1)
		var jobs []func()
		for i := range tokens {
			_, s, rt := mustCreateUser(t, db, "fail-"+string(rune('a'+i))+"@example.com", "")
			tokens[i], sessions[i] = rt, s.ID
			jobs = append(jobs, func() {
				_, _, errs[i] = db.RotateRefreshToken(ctx, rt.Hash, newToken(t, s.ID, now, now.Add(time.Hour)), nil, now)
			})
		}
		jobs = append(jobs, func() {
			_, errs[len(tokens)] = db.InSQLiteGroup(ctx, func(ctx context.Context, tx store.TxStmts) error {
				_, err := tx.ExecContext(ctx, "ROLLBACK") // ends the group's transaction under it
				return err
			})
		})
		queueTogether(t, db, jobs...)

		for i, err := range errs {
			if err == nil {
				t.Errorf("job %d of the broken group: no error", i)
			}
		}
		for i, rt := range tokens {
			_, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, newToken(t, sessions[i], now, now.Add(time.Hour)), nil, now)
			if err != nil || !rotated {
				t.Errorf("token %d after the broken group: rotated=%v err=%v; want it untouched, rotating now", i, rotated, err)
			}
		}
	})
}

// TestGroupCommitSurvivesAPanic: a job that panics fails its group (the
// panic goes on in the leader's goroutine, whichever that is) without
// leaving the others waiting or the transaction open: writers after it
// go on.
func TestGroupCommitSurvivesAPanic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := at(time.Minute)
		_, s, rt := mustCreateUser(t, db, "panic@example.com", "")
		var panics atomic.Int32
		var rotateErr, panicErr error
		guard := func(job func()) func() {
			return func() {
				defer func() {
					if recover() != nil {
						panics.Add(1)
					}
				}()
				job()
			}
		}
		queueTogether(t, db,
			guard(func() {
				_, _, rotateErr = db.RotateRefreshToken(ctx, rt.Hash, newToken(t, s.ID, now, now.Add(time.Hour)), nil, now)
			}),
			guard(func() {
				_, panicErr = db.InSQLiteGroup(ctx, func(context.Context, store.TxStmts) error { panic("job") })
			}),
		)
		if panics.Load() != 1 {
			t.Fatalf("%d goroutines panicked, want 1 (the leader's)", panics.Load())
		}
		if rotateErr == nil && panicErr == nil {
			t.Error("the follower of a panicked group got no error")
		}
		_, rotated, err := db.RotateRefreshToken(ctx, rt.Hash, newToken(t, s.ID, now, now.Add(time.Hour)), nil, now)
		if err != nil || !rotated {
			t.Fatalf("rotation after the panicked group: rotated=%v err=%v; want the token untouched and the writer free", rotated, err)
		}
	})
}
