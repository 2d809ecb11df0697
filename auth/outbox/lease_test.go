package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/outbox"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type mailer struct {
	mu   sync.Mutex
	sent []auth.Mail
}

func (m *mailer) Send(_ context.Context, mail auth.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, mail)
	return nil
}

func (m *mailer) take() []auth.Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.sent
	m.sent = nil
	return out
}

// TestLeaseOnTheStore: a mail claimed by a worker that died goes to
// another worker only when the lease ends, and the dead worker cannot then
// mark it — on the real store (SQLite, real migrations), through auth's
// queue.
func TestLeaseOnTheStore(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, storetest.Targets(t)[0].DSN) // [0] is always SQLite
	hasher, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.DefaultConfig()
	cfg.Issuer, cfg.MasterKey, cfg.Hasher = "https://latchkey.test", bytes.Repeat([]byte{7}, 32), hasher
	cfg.EmailConfirmationRequired = true
	clk := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	svc, err := auth.NewService(ctx, db, cfg, auth.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	m := &mailer{}
	oc := outbox.DefaultConfig()
	oc.Lease, oc.SendTimeout, oc.Batch = 10*time.Minute, time.Second, 1
	w, err := outbox.New(svc.MailQueue(m), oc)
	if err != nil {
		t.Fatal(err)
	}
	const email = "ada@example.com"
	if _, _, err := svc.RegisterPassword(ctx, auth.RegisterPasswordInput{Email: email, Password: "correct horse battery staple"}, auth.ClientMeta{}); err != nil {
		t.Fatal(err)
	}
	now := clk.now()
	claimed, err := db.ClaimMail(ctx, "dead-worker", now, now.Add(10*time.Minute), 5)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("ClaimMail = %v, %v", claimed, err)
	}
	if _, err := w.SendDue(ctx); err != nil {
		t.Fatal(err)
	}
	if sent := m.take(); len(sent) != 0 {
		t.Fatalf("a claimed mail was sent by another worker: %+v", sent)
	}
	clk.advance(10 * time.Minute)
	if _, err := w.SendDue(ctx); err != nil {
		t.Fatal(err)
	}
	if sent := m.take(); len(sent) != 1 || sent[0].Kind != auth.MailConfirm || sent[0].To != email {
		t.Fatalf("sent %+v, want the confirmation once the lease ended", sent)
	}
	if err := db.MailSent(ctx, claimed[0].ID, "dead-worker", clk.now()); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("the dead worker's mark = %v, want ErrNotFound", err)
	}
}
