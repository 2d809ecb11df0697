package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// BenchmarkRotateRefreshToken: one chain of rotations, one after another,
// on each database (what a refresh costs the store, without the HTTP
// around it; on SQLite this is the section the writers queue for).
func BenchmarkRotateRefreshToken(b *testing.B) {
	for _, tg := range storetest.Targets(b) {
		b.Run(tg.Name, func(b *testing.B) {
			db := storetest.Open(b, tg.DSN)
			ctx := context.Background()
			u := passwordUser(uuid.NewString()+"@example.com", "")
			s := newSession(u.ID, base, at(30*24*time.Hour))
			hash := func(i int) []byte {
				h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(s.ID), uint64(i)))
				return h[:]
			}
			rt := &auth.RefreshToken{Hash: hash(0), SessionID: s.ID, CreatedAt: base, ExpiresAt: s.ExpiresAt}
			if err := db.CreateUser(ctx, u, s, rt); err != nil {
				b.Fatal(err)
			}
			now := at(time.Minute)
			b.ResetTimer()
			for i := range b.N {
				next := &auth.RefreshToken{Hash: hash(i + 1), CreatedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)}
				_, rotated, err := db.RotateRefreshToken(ctx, hash(i), next, []byte("successor"), now)
				if err != nil || !rotated {
					b.Fatalf("rotation %d: rotated=%v err=%v", i, rotated, err)
				}
			}
		})
	}
}

// BenchmarkRotateRefreshTokenParallel: 16 chains per CPU (32 on a 2-CPU
// machine) rotating at once, one per goroutine (the writers' queue under a
// refresh load, without HTTP).
func BenchmarkRotateRefreshTokenParallel(b *testing.B) {
	for _, tg := range storetest.Targets(b) {
		b.Run(tg.Name, func(b *testing.B) {
			db := storetest.Open(b, tg.DSN)
			ctx := context.Background()
			now := at(time.Minute)
			type chain struct {
				sessionID string
				i         int
			}
			hash := func(c *chain) []byte {
				h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte(c.sessionID), uint64(c.i)))
				return h[:]
			}
			const perCPU = 16
			n := perCPU * runtime.GOMAXPROCS(0) // RunParallel's goroutines
			chains := make(chan *chain, n)
			for range n {
				u := passwordUser(uuid.NewString()+"@example.com", "")
				s := newSession(u.ID, base, at(30*24*time.Hour))
				c := &chain{sessionID: s.ID}
				rt := &auth.RefreshToken{Hash: hash(c), SessionID: s.ID, CreatedAt: base, ExpiresAt: s.ExpiresAt}
				if err := db.CreateUser(ctx, u, s, rt); err != nil {
					b.Fatal(err)
				}
				chains <- c
			}
			b.SetParallelism(perCPU)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := <-chains
				for pb.Next() {
					old := hash(c)
					c.i++
					next := &auth.RefreshToken{Hash: hash(c), CreatedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour)}
					_, rotated, err := db.RotateRefreshToken(ctx, old, next, []byte("successor"), now)
					if err != nil || !rotated {
						b.Errorf("rotation: rotated=%v err=%v", rotated, err)
						return
					}
				}
			})
		})
	}
}
