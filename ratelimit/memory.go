package ratelimit

import (
	"sync"
	"time"
)

// sweepEvery is how often the memory store drops counters whose window
// ended (checked as counters are taken).
const sweepEvery = 30 * time.Second

// memoryStore is fixed-window counters in this process, guarded by one
// mutex so that a check and its increment are one step.
type memoryStore struct {
	now func() time.Time

	mu        sync.Mutex
	counters  map[string]*memoryCounter
	nextSweep time.Time
}

type memoryCounter struct {
	n   int64
	end time.Time // when the window ends
}

func newMemoryStore(now func() time.Time) *memoryStore {
	return &memoryStore{now: now, counters: make(map[string]*memoryCounter)}
}

// take records one event for key unless limit events are already recorded
// in its window; it returns zero when recorded, else the time left in the
// window.
func (m *memoryStore) take(key string, limit int64, window time.Duration) time.Duration {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.After(m.nextSweep) {
		for k, c := range m.counters {
			if !now.Before(c.end) {
				delete(m.counters, k)
			}
		}
		m.nextSweep = now.Add(sweepEvery)
	}
	c := m.counters[key]
	if c == nil || !now.Before(c.end) {
		c = &memoryCounter{end: now.Add(window)}
		m.counters[key] = c
	}
	if c.n >= limit {
		return c.end.Sub(now)
	}
	c.n++
	return 0
}

// refund gives back one event of key's current window, if it has any.
func (m *memoryStore) refund(key string) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.counters[key]; c != nil && now.Before(c.end) && c.n > 0 {
		c.n--
	}
}
