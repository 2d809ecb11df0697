package outbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQueue is a Queue in memory: mails with the lease bookkeeping the
// worker relies on (the real store's leases are checked in
// lease_test.go), a clock, and a mail server that fails with sendErr.
type fakeQueue struct {
	mu      sync.Mutex
	now     time.Time
	mails   []*fakeMail
	claims  int
	sendErr error
	sent    []string // ids, in order of sending
	pruned  int
}

type fakeMail struct {
	id, claim string
	created   time.Time
	due       time.Time
	attempts  int
	lastError string
	done      string // "", "sent" or "abandoned"
}

func (q *fakeQueue) add(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mails = append(q.mails, &fakeMail{id: id, created: q.now, due: q.now})
}

func (q *fakeQueue) advance(d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.now = q.now.Add(d)
}

func (q *fakeQueue) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sendErr = err
}

func (q *fakeQueue) mail(id string) fakeMail {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.mails {
		if m.id == id {
			return *m
		}
	}
	panic("no mail " + id)
}

func (q *fakeQueue) takeSent() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.sent
	q.sent = nil
	return out
}

func (q *fakeQueue) Now() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.now
}

func (q *fakeQueue) Requests(context.Context, int) ([]Request, error) { return nil, nil }

func (q *fakeQueue) Claim(_ context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.claims++
	claim := fmt.Sprint("claim-", q.claims)
	var out []Delivery
	for _, m := range q.mails {
		if len(out) == limit || m.done != "" || m.due.After(now) {
			continue
		}
		m.claim, m.due = claim, leaseUntil
		id := m.id
		out = append(out, Delivery{ID: m.id, Claim: claim, Kind: "test", CreatedAt: m.created, Attempts: m.attempts,
			Send: func(context.Context) error {
				q.mu.Lock()
				defer q.mu.Unlock()
				if q.sendErr == nil {
					q.sent = append(q.sent, id)
				}
				return q.sendErr
			}})
	}
	return out, nil
}

// update applies change to the pending mail d names under d's claim.
func (q *fakeQueue) update(d *Delivery, change func(*fakeMail)) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.mails {
		if m.id == d.ID && m.claim == d.Claim && m.done == "" {
			change(m)
			return nil
		}
	}
	return ErrLeaseLost
}

func (q *fakeQueue) Sent(_ context.Context, d *Delivery, _ time.Time) error {
	return q.update(d, func(m *fakeMail) { m.done, m.claim = "sent", "" })
}

func (q *fakeQueue) Retry(_ context.Context, d *Delivery, next time.Time, lastError string) error {
	return q.update(d, func(m *fakeMail) { m.attempts++; m.lastError, m.due, m.claim = lastError, next, "" })
}

func (q *fakeQueue) Abandon(_ context.Context, d *Delivery, _ time.Time, lastError string) error {
	return q.update(d, func(m *fakeMail) { m.attempts++; m.lastError, m.done, m.claim = lastError, "abandoned", "" })
}

func (q *fakeQueue) Release(_ context.Context, d *Delivery, now time.Time) error {
	return q.update(d, func(m *fakeMail) { m.due, m.claim = now, "" })
}

func (q *fakeQueue) PruneMail(context.Context, time.Time, time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pruned++
	return nil
}

func (q *fakeQueue) PruneEvents(context.Context, time.Duration) error { return nil }

var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newWorker(t *testing.T, q Queue, edit func(*Config)) *Worker {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	w, err := New(q, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sendDue(t *testing.T, w *Worker) int {
	t.Helper()
	n, err := w.SendDue(context.Background())
	if err != nil {
		t.Fatalf("SendDue: %v", err)
	}
	return n
}

// TestRetries: failures back off exponentially up to the cap, and a mail
// too old is given up; a sent mail is not sent again.
func TestRetries(t *testing.T) {
	q := &fakeQueue{now: start}
	w := newWorker(t, q, func(c *Config) { c.MinBackoff, c.MaxBackoff, c.MaxAge = 10*time.Second, 60*time.Second, 5*time.Minute })
	q.fail(errors.New("421 try later"))
	q.add("a")
	var waits []time.Duration
	for range 5 {
		sendDue(t, w)
		m := q.mail("a")
		wait := m.due.Sub(q.Now())
		waits = append(waits, wait)
		if m.lastError != "421 try later" || m.claim != "" {
			t.Fatalf("mail = %+v", m)
		}
		q.advance(wait - time.Microsecond)
		if n := sendDue(t, w); n != 0 {
			t.Fatalf("claimed %d before it was due", n)
		}
		q.advance(time.Microsecond)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second}
	if !slices.Equal(waits, want) {
		t.Errorf("backoff = %v, want %v", waits, want)
	}
	if m := q.mail("a"); m.attempts != 5 {
		t.Errorf("attempts = %d", m.attempts)
	}

	q.fail(nil)
	sendDue(t, w)
	if sent := q.takeSent(); !slices.Equal(sent, []string{"a"}) || q.mail("a").done != "sent" {
		t.Fatalf("sent %v, mail %+v; want a sent", sent, q.mail("a"))
	}
	q.advance(time.Hour)
	sendDue(t, w)
	if sent := q.takeSent(); len(sent) != 0 {
		t.Errorf("sent again: %v", sent)
	}

	// A mail that keeps failing past MaxAge is given up.
	q.fail(errors.New("550 no such user"))
	q.add("b")
	for range 10 {
		sendDue(t, w)
		q.advance(time.Minute)
	}
	if m := q.mail("b"); m.done != "abandoned" || m.lastError != "550 no such user" {
		t.Errorf("mail = %+v, want given up", m)
	}
	q.fail(nil)
	sendDue(t, w)
	if sent := q.takeSent(); len(sent) != 0 {
		t.Errorf("a given-up mail was sent: %v", sent)
	}
}

// undeliverableQueue is a fakeQueue whose mails never open.
type undeliverableQueue struct{ *fakeQueue }

func (q undeliverableQueue) Claim(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error) {
	ds, err := q.fakeQueue.Claim(ctx, now, leaseUntil, limit)
	for i := range ds {
		ds[i].Send = func(context.Context) error { return fmt.Errorf("%w: open payload: bad seal", ErrUndeliverable) }
	}
	return ds, err
}

// TestUndeliverableIsGivenUp: a mail that can never be sent is given up at
// its first attempt, not retried.
func TestUndeliverableIsGivenUp(t *testing.T) {
	q := &fakeQueue{now: start}
	w := newWorker(t, undeliverableQueue{q}, nil)
	q.add("a")
	sendDue(t, w)
	if m := q.mail("a"); m.done != "abandoned" || m.attempts != 1 || !strings.Contains(m.lastError, "bad seal") {
		t.Errorf("mail = %+v, want given up after one attempt", m)
	}
}

// TestRunStops: Run sends in the background and returns when its context
// ends.
func TestRunStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &fakeQueue{now: start}
	w := newWorker(t, q, func(c *Config) { c.Poll = 5 * time.Millisecond })
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	q.add("a")
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		n := len(q.sent)
		q.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not send the mail")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestNewValidates: New takes DefaultConfig as it is and refuses, naming
// the setting, what would not work instead of filling it in.
func TestNewValidates(t *testing.T) {
	q := &fakeQueue{now: start}
	if _, err := New(q, DefaultConfig()); err != nil {
		t.Fatalf("New(DefaultConfig()) = %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"zero", func(c *Config) { *c = Config{} }, "must be positive"},
		{"no batch", func(c *Config) { c.Batch = 0 }, "batch"},
		{"short lease", func(c *Config) { c.SendTimeout = time.Minute }, "lease"},
		{"backoff cap below start", func(c *Config) { c.MaxBackoff = c.MinBackoff - 1 }, "max backoff"},
		{"no event retention", func(c *Config) { c.EventRetention = 0 }, "event retention"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.edit(&cfg)
		if _, err := New(q, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want an error about %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(nil, DefaultConfig()); err == nil {
		t.Error("New(nil queue) succeeded")
	}
}
