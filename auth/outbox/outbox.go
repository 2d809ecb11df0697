// Package outbox is the worker of a durable mail outbox: it claims the
// mails that are due under a lease, tries each once, and records the
// outcome, retrying failures with exponential backoff until they are too
// old. Any number of workers, in any number of processes, may share one
// queue: each mail is claimed by one at a time.
//
// It knows nothing of who gets which mail or what a mail says: that is the
// Queue's business (package auth implements it, auth.Service.MailQueue).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrUndeliverable, wrapped by Delivery.Send, says a mail can never be sent
// (its payload will not open): it is given up at once instead of retried.
var ErrUndeliverable = errors.New("outbox: undeliverable")

// ErrLeaseLost is the Queue's answer to recording a mail whose claim has
// run out (another worker may hold it now).
var ErrLeaseLost = errors.New("outbox: lease lost")

// Delivery is one claimed mail.
type Delivery struct {
	ID        string
	Claim     string    // the claim it is held under
	Kind      string    // for the log
	CreatedAt time.Time // it is retried until MaxAge after this
	Attempts  int       // failed attempts so far
	// Send hands the mail to the mail server: nil when the server took
	// it; an error wrapping ErrUndeliverable when it can never be sent.
	Send func(ctx context.Context) error
}

// Request is a stored request for a mail, which the Queue resolves into
// mails (or into nothing).
type Request struct {
	ID string
	// Resolve turns the request into its mails and deletes it; nil too
	// when another worker did. On an error the request stays and is tried
	// again on a later pass.
	Resolve func(ctx context.Context) error
}

// Queue is the outbox as the worker sees it.
type Queue interface {
	// Now is the queue's clock.
	Now() time.Time
	// Requests returns up to limit stored requests, oldest first.
	Requests(ctx context.Context, limit int) ([]Request, error)
	// Claim leases up to limit mails due at now until leaseUntil, earliest
	// due first, under a new claim; concurrent callers never get the same
	// mail.
	Claim(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error)
	// Sent marks a claimed mail sent at now; ErrLeaseLost when it is no
	// longer under d's claim.
	Sent(ctx context.Context, d *Delivery, now time.Time) error
	// Retry records a failed attempt: due again at next, claim released.
	Retry(ctx context.Context, d *Delivery, next time.Time, lastError string) error
	// Abandon gives a mail up at now after a failed attempt.
	Abandon(ctx context.Context, d *Delivery, now time.Time, lastError string) error
	// Release hands a claimed mail back, due at now, without counting an
	// attempt; ErrLeaseLost as Sent.
	Release(ctx context.Context, d *Delivery, now time.Time) error
	// PruneMail deletes what expired at now and the mails done (sent or
	// given up) and requests made before doneBefore.
	PruneMail(ctx context.Context, now, doneBefore time.Time) error
	// PruneEvents deletes the security events older than retention.
	PruneEvents(ctx context.Context, retention time.Duration) error
}

// The defaults of Config (DefaultConfig).
const (
	DefaultPoll        = time.Second
	DefaultBatch       = 10
	DefaultSendTimeout = 30 * time.Second
	// DefaultLease is the shortest lease of DefaultBatch and
	// DefaultSendTimeout.
	DefaultLease          = (DefaultBatch + 1) * DefaultSendTimeout
	DefaultMinBackoff     = 15 * time.Second
	DefaultMaxBackoff     = 15 * time.Minute
	DefaultMaxAge         = 72 * time.Hour
	DefaultRetention      = 7 * 24 * time.Hour
	DefaultEventRetention = 2160 * time.Hour // 90 days
)

// Config tunes a Worker. Every field is required but Logger: start from
// DefaultConfig; New refuses what would not work rather than guess.
type Config struct {
	// Poll is the pause between looks for due mails when the last look
	// found fewer than Batch.
	Poll time.Duration
	// Batch is how many mails (and requests) one pass claims.
	Batch int
	// SendTimeout bounds one delivery attempt.
	SendTimeout time.Duration
	// Lease is how long claimed mails are reserved for this worker: at
	// least (Batch+1) × SendTimeout, so a lease never runs out while its
	// batch is being sent.
	Lease time.Duration
	// MinBackoff is the wait after the first failure, doubled after each
	// further one up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long a mail is retried before it is given up.
	MaxAge time.Duration
	// Retention is how long sent and given-up mails are kept.
	Retention time.Duration
	// EventRetention is how long security events are kept; the worker
	// prunes older ones along with the mails.
	EventRetention time.Duration
	// Logger receives failures (never a token); nil discards them.
	Logger *slog.Logger
}

// DefaultConfig is Config with every default set.
func DefaultConfig() Config {
	return Config{
		Poll:           DefaultPoll,
		Batch:          DefaultBatch,
		SendTimeout:    DefaultSendTimeout,
		Lease:          DefaultLease,
		MinBackoff:     DefaultMinBackoff,
		MaxBackoff:     DefaultMaxBackoff,
		MaxAge:         DefaultMaxAge,
		Retention:      DefaultRetention,
		EventRetention: DefaultEventRetention,
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Poll <= 0 || c.SendTimeout <= 0 || c.MinBackoff <= 0 || c.MaxAge <= 0 || c.Retention <= 0 || c.EventRetention <= 0 {
		errs = append(errs, errors.New("poll, send timeout, min backoff, max age, retention and event retention must be positive"))
	}
	if c.Batch <= 0 {
		errs = append(errs, errors.New("batch must be positive"))
	}
	if minLease := time.Duration(c.Batch+1) * c.SendTimeout; c.Lease < minLease {
		errs = append(errs, fmt.Errorf("lease %s must be at least (batch+1) × send timeout, %s", c.Lease, minLease))
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("max backoff must not be below min backoff"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("outbox config: %w", err)
	}
	return nil
}

// pruneEvery is how often a Worker prunes.
const pruneEvery = time.Hour

// maxLastError is the longest failure text kept on a mail.
const maxLastError = 500

// Worker sends the mails of a Queue.
type Worker struct {
	q         Queue
	cfg       Config
	log       *slog.Logger
	lastPrune time.Time
}

// New validates cfg and returns a worker on q.
func New(q Queue, cfg Config) (*Worker, error) {
	if q == nil {
		return nil, errors.New("outbox: nil queue")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{q: q, cfg: cfg, log: log}, nil
}

// Run sends due mails until ctx is done. A mail being sent when ctx ends
// is finished (within SendTimeout); the rest of its batch is handed back.
func (w *Worker) Run(ctx context.Context) {
	for {
		n, err := w.SendDue(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.log.ErrorContext(ctx, "outbox: claiming mails failed", "error", err)
		}
		if err == nil && n == w.cfg.Batch {
			continue // there may be more
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.cfg.Poll):
		}
	}
}

// SendDue resolves the stored requests, then claims the mails that are due
// (those just queued included) and tries each once; it returns how many
// requests and mails it handled. When ctx ends it stops after the current
// mail and hands the others back.
func (w *Worker) SendDue(ctx context.Context) (int, error) {
	resolved, err := w.resolveRequests(ctx)
	if err != nil {
		return 0, err
	}
	n, err := w.sendDue(ctx)
	return max(resolved, n), err
}

// resolveRequests resolves up to Batch stored requests.
func (w *Worker) resolveRequests(ctx context.Context) (int, error) {
	reqs, err := w.q.Requests(ctx, w.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("mail requests: %w", err)
	}
	for _, r := range reqs {
		if ctx.Err() != nil {
			break
		}
		if err := r.Resolve(ctx); err != nil {
			w.log.ErrorContext(ctx, "outbox: resolving a mail request failed; will retry", "request_id", r.ID, "error", err)
		}
	}
	return len(reqs), nil
}

func (w *Worker) sendDue(ctx context.Context) (int, error) {
	now := w.q.Now()
	leaseUntil := now.Add(w.cfg.Lease)
	ds, err := w.q.Claim(ctx, now, leaseUntil, w.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("claim mail: %w", err)
	}
	for i := range ds {
		// Do not start a delivery that might outlive the lease: another
		// worker could claim the mail meanwhile and send it too.
		if ctx.Err() != nil || w.q.Now().Add(w.cfg.SendTimeout).After(leaseUntil) {
			w.release(ctx, ds[i:])
			break
		}
		w.deliver(ctx, &ds[i])
	}
	if now.Sub(w.lastPrune) >= pruneEvery {
		w.lastPrune = now
		if err := w.q.PruneMail(ctx, now, now.Add(-w.cfg.Retention)); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "outbox: pruning failed", "error", err)
		}
		if err := w.q.PruneEvents(ctx, w.cfg.EventRetention); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "pruning security events failed", "error", err)
		}
	}
	return len(ds), nil
}

// deliver tries to send one claimed mail and records the outcome. A
// delivery that has started is finished, and its outcome recorded, even
// when ctx ends meanwhile.
func (w *Worker) deliver(ctx context.Context, d *Delivery) {
	log := w.log.With("mail_id", d.ID, "kind", d.Kind)
	bg := context.WithoutCancel(ctx)
	sendCtx, cancel := context.WithTimeout(bg, w.cfg.SendTimeout)
	sendErr := d.Send(sendCtx)
	cancel()
	now := w.q.Now()
	if errors.Is(sendErr, ErrUndeliverable) {
		// It will never open (another master key?): retrying is pointless.
		log.ErrorContext(ctx, "outbox: giving up a mail", "error", sendErr)
		w.record(bg, log, func(ctx context.Context) error {
			return w.q.Abandon(ctx, d, now, sendErr.Error())
		})
		return
	}
	if sendErr == nil {
		w.record(bg, log, func(ctx context.Context) error {
			err := w.q.Sent(ctx, d, now)
			if errors.Is(err, ErrLeaseLost) {
				log.WarnContext(ctx, "outbox: sent a mail whose lease had run out")
				return nil
			}
			return err
		})
		log.InfoContext(ctx, "outbox: mail sent", "attempts", d.Attempts+1)
		return
	}
	msg := sendErr.Error()
	if len(msg) > maxLastError {
		msg = msg[:maxLastError]
	}
	if now.Sub(d.CreatedAt) >= w.cfg.MaxAge {
		log.ErrorContext(ctx, "outbox: giving up a mail", "attempts", d.Attempts+1, "error", sendErr)
		w.record(bg, log, func(ctx context.Context) error {
			return w.q.Abandon(ctx, d, now, msg)
		})
		return
	}
	next := now.Add(w.backoff(d.Attempts))
	log.WarnContext(ctx, "outbox: sending failed; will retry", "attempts", d.Attempts+1, "next_attempt", next, "error", sendErr)
	w.record(bg, log, func(ctx context.Context) error {
		return w.q.Retry(ctx, d, next, msg)
	})
}

// record runs one bookkeeping write with a time limit and logs its
// failure. (A sent mail that cannot be marked goes again when its lease
// ends.)
func (w *Worker) record(ctx context.Context, log *slog.Logger, write func(context.Context) error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
	defer cancel()
	if err := write(ctx); err != nil {
		log.ErrorContext(ctx, "outbox: recording the outcome of a delivery", "error", err)
	}
}

// backoff is the wait after a mail's attempts+1'th failure: MinBackoff
// doubled per earlier failure, at most MaxBackoff.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.cfg.MinBackoff
	for range attempts {
		if d >= w.cfg.MaxBackoff {
			break
		}
		d *= 2
	}
	return min(d, w.cfg.MaxBackoff)
}

// release hands claimed mails back so that they are due at once.
func (w *Worker) release(ctx context.Context, ds []Delivery) {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.SendTimeout)
	defer cancel()
	now := w.q.Now()
	for i := range ds {
		if err := w.q.Release(bg, &ds[i], now); err != nil && !errors.Is(err, ErrLeaseLost) {
			w.log.WarnContext(ctx, "outbox: handing a mail back", "mail_id", ds[i].ID, "error", err)
		}
	}
}
