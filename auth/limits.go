package auth

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// ErrRateLimited is a request refused because its key has used up its
// allowance; the error is a *RateLimitError that says for how long.
var ErrRateLimited = fmt.Errorf("rate limited")

// RateLimitError is ErrRateLimited with the time until the allowance
// returns (Retry-After).
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string { return fmt.Sprintf("rate limited for %s", e.RetryAfter) }

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// Limiter counts events per key in a fixed window with a maximum. It is
// implemented by package ratelimit, in memory or in Redis (shared by every
// instance).
type Limiter interface {
	// Take reserves one event for key, atomically: zero when it was
	// recorded, or how long key must wait, with nothing recorded, when it
	// has reached its maximum in the current window.
	Take(ctx context.Context, key string) (retryAfter time.Duration, err error)
	// Refund gives back one event Take recorded for key (an attempt that
	// proved not to count, such as a right password).
	Refund(ctx context.Context, key string) error
}

// counter is one limiter and the key it counts; a nil limiter counts
// nothing.
type counter struct {
	l   Limiter
	key string
}

// reservation is the events reserve recorded, to give back with refund.
type reservation []counter

// reserve takes one event on every counter, all or none: when any refuses
// (or fails), the events taken are given back and the error is a
// *RateLimitError with the longest wait of those that refused. Limits
// count before the work they guard, so parallel requests cannot pass a
// limit together.
func reserve(ctx context.Context, cs ...counter) (reservation, error) {
	var (
		taken reservation
		wait  time.Duration
	)
	for _, c := range cs {
		if c.l == nil {
			continue
		}
		w, err := c.l.Take(ctx, c.key)
		switch {
		case err != nil:
			taken.refund(ctx)
			return nil, fmt.Errorf("rate limit: %w", err)
		case w > 0:
			wait = max(wait, w)
		default:
			taken = append(taken, c)
		}
	}
	if wait > 0 {
		taken.refund(ctx)
		return nil, &RateLimitError{RetryAfter: wait}
	}
	return taken, nil
}

// refundTimeout bounds giving events back.
const refundTimeout = 2 * time.Second

// refund gives back the reserved events, also after the caller has gone
// (the answer was decided). A refund that fails leaves the event counted:
// the limits fail closed.
func (r reservation) refund(ctx context.Context) {
	if len(r) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	for _, c := range r {
		_ = c.l.Refund(ctx, c.key)
	}
}

// take counts an event that every counter must allow: refused when any
// has used up its allowance, else recorded on all.
func take(ctx context.Context, cs ...counter) error {
	_, err := reserve(ctx, cs...)
	return err
}

// Limits are the rate limits the service applies; a nil Limiter does not
// limit.
type Limits struct {
	LoginAccount Limiter // failed sign-ins per account (userKey) or unknown identifier
	LoginClient  Limiter // failed sign-ins per client address
	Register     Limiter // registrations per client address
	MailAddress  Limiter // mails requested per email address
	MailClient   Limiter // mails requested per client address
	AvatarUpload Limiter // avatar uploads per account
}

// guard applies the Limits. It is the one place that knows their keys and
// what counts toward which: callers ask it by what they are about to do.
type guard struct {
	l Limits
}

// The limit keys, one kind of subject each. A Limiter counts its own keys
// (ratelimit prefixes them with its policy), so one key may be counted by
// several limits without their counts meeting.

// userKey is the key of an existing account, whichever identifier or
// credential was used.
func userKey(userID string) string { return "user:" + userID }

// emailKey is the key of a normalised email address (NormalizeEmail), with
// or without an account.
func emailKey(email string) string { return "email:" + email }

// usernameKey is the key of a username that names no account, case
// folded as the store looks usernames up.
func usernameKey(username string) string { return "username:" + strings.ToLower(username) }

// clientKey is the key of a client address, in canonical form so that one
// address has one counter however it was written. IPv6 clients are counted
// per /64, the block one subscriber usually holds whole (so stepping
// through its addresses does not reset the count); IPv4 (also IPv4-mapped
// IPv6) per address.
func clientKey(meta ClientMeta) string {
	ip := cleanIP(meta.IP)
	if addr, err := netip.ParseAddr(ip); err == nil && addr.Is6() && !addr.Is4In6() {
		return "ip6:" + netip.PrefixFrom(addr.WithZone(""), 64).Masked().String()
	}
	return "ip:" + ip
}

// signInKey is the sign-in limits' key of a password sign-in's identifier:
// its account's when it names one (u), so an email and a username of one
// account share one counter; else the normalised identifier (email is
// c.Email normalised).
func signInKey(c Credentials, email string, u *User) string {
	switch {
	case u != nil:
		return userKey(u.ID)
	case c.Email != "":
		return emailKey(email)
	}
	return usernameKey(c.Username)
}

// signIn counts one failed sign-in of key (empty: none) and of the client
// address (when known) before a credential is verified: refused with a
// *RateLimitError when either has used up its failures. Refund the
// reservation when the credential proves right (or was not verified).
func (g *guard) signIn(ctx context.Context, key string, meta ClientMeta) (reservation, error) {
	var cs []counter
	if key != "" {
		cs = append(cs, counter{g.l.LoginAccount, key})
	}
	if meta.IP != "" {
		cs = append(cs, counter{g.l.LoginClient, clientKey(meta)})
	}
	return reserve(ctx, cs...)
}

// passwordSignIn is signIn for a password sign-in's identifier (signInKey).
func (g *guard) passwordSignIn(ctx context.Context, c Credentials, email string, u *User, meta ClientMeta) (reservation, error) {
	return g.signIn(ctx, signInKey(c, email, u), meta)
}

// secretSignIn is signIn for an account secret: a secret names no account
// apart from itself, so only the client address counts.
func (g *guard) secretSignIn(ctx context.Context, meta ClientMeta) (reservation, error) {
	return g.signIn(ctx, "", meta)
}

// accountSignIn is signIn for an attempt on a known account: a two-factor
// code, or a signed-in user's credential checked again (a password, a
// secret, a code), so that a stolen access token buys no more guesses than
// sign-in allows.
func (g *guard) accountSignIn(ctx context.Context, u *User, meta ClientMeta) (reservation, error) {
	return g.signIn(ctx, userKey(u.ID), meta)
}

// registration counts one registration of the client address.
func (g *guard) registration(ctx context.Context, meta ClientMeta) error {
	if meta.IP == "" {
		return nil
	}
	return take(ctx, counter{g.l.Register, clientKey(meta)})
}

// mailRequest counts a client's request for a mail to email against the
// per-address and per-client limits; a *RateLimitError when either is used
// up. It counts whether or not the address has an account.
func (g *guard) mailRequest(ctx context.Context, email string, meta ClientMeta) error {
	cs := []counter{{g.l.MailAddress, emailKey(email)}}
	if meta.IP != "" {
		cs = append(cs, counter{g.l.MailClient, clientKey(meta)})
	}
	return take(ctx, cs...)
}

// mailTo counts a mail to email that no client asked for (a notice to an
// account's owner) against the per-address limit only.
func (g *guard) mailTo(ctx context.Context, email string) error {
	return take(ctx, counter{g.l.MailAddress, emailKey(email)})
}

// avatarUpload reserves one avatar upload of the account; refund it when
// the upload was not processed.
func (g *guard) avatarUpload(ctx context.Context, userID string) (reservation, error) {
	return reserve(ctx, counter{g.l.AvatarUpload, userKey(userID)})
}
