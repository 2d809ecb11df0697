// Package password hashes and verifies passwords (argon2id, and bcrypt for
// imported accounts) under a bounded number of concurrent hashes, and holds
// the password policy: length, common passwords, and context.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // iterations
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams follow OWASP's argon2id recommendation: m=19 MiB, t=2, p=1.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// DefaultConcurrency is how many hashes run at once by default: one per
// CPU. An argon2id hash with one lane keeps one core busy, so more at once
// add no throughput, only memory (19 MiB each at DefaultParams, all of it
// garbage the moment the hash is done) and latency.
func DefaultConcurrency() int { return runtime.NumCPU() }

// DefaultMaxWait is how long a hash waits for a free slot by default
// before it is refused (the caller answers 503).
const DefaultMaxWait = 2 * time.Second

// Bounds on argon2id parameters, for configured ones and for those read back
// from a stored hash (so a crafted row cannot make a verification allocate or
// run without end).
const (
	maxMemory  = 4 * 1024 * 1024 // KiB: 4 GiB
	maxTime    = 100
	maxThreads = 64
	maxLen     = 1024 // bytes, salt or key

	minParamSalt  = 16 // for hashes we make
	minStoredSalt = 8  // RFC 9106's minimum, for hashes made elsewhere
	minKey        = 16

	// maxBcryptCost bounds imported bcrypt hashes: cost 16 already takes
	// seconds; anything above is a crafted row, not a real one.
	maxBcryptCost = 16
)

// Validate reports whether p is within sane bounds: Memory from 8 KiB per
// thread to 4 GiB, Time 1–100, Threads 1–64, SaltLen and KeyLen 16–1024 bytes.
func (p Params) Validate() error {
	if err := validateCost(p.Memory, p.Time, uint64(p.Threads)); err != nil {
		return err
	}
	if p.SaltLen < minParamSalt || p.SaltLen > maxLen {
		return fmt.Errorf("argon2id salt length %d outside %d..%d bytes", p.SaltLen, minParamSalt, maxLen)
	}
	if p.KeyLen < minKey || p.KeyLen > maxLen {
		return fmt.Errorf("argon2id key length %d outside %d..%d bytes", p.KeyLen, minKey, maxLen)
	}
	return nil
}

// validateCost checks memory, time and threads, shared by Validate and by the
// parser of stored hashes. threads is wide so an out-of-range stored value is
// reported rather than wrapped.
func validateCost(memory, time uint32, threads uint64) error {
	if threads < 1 || threads > maxThreads {
		return fmt.Errorf("argon2id threads %d outside 1..%d", threads, maxThreads)
	}
	if memory < 8*uint32(threads) || memory > maxMemory {
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d", memory, 8*threads, maxMemory)
	}
	if time < 1 || time > maxTime {
		return fmt.Errorf("argon2id time %d outside 1..%d", time, maxTime)
	}
	return nil
}

// ErrBusy is returned when no hashing slot became free within the wait.
var ErrBusy = errors.New("password hashing is busy")

// ErrMalformed is returned (wrapped) for a stored hash that is neither an
// argon2id PHC string within bounds nor a bcrypt hash.
var ErrMalformed = errors.New("malformed password hash")

func malformed(reason string) error {
	return fmt.Errorf("%w: %s", ErrMalformed, reason)
}

// Hasher hashes and verifies passwords with at most `concurrency` hashes
// running at once; a caller waits at most maxWait (or until its context ends)
// for a slot, then gets ErrBusy. Memory therefore stays bounded under a
// flood: at most concurrency × the memory of one hash. A Hasher is safe for
// concurrent use.
type Hasher struct {
	params  Params
	slots   chan struct{} // a buffered semaphore: one token per running hash
	maxWait time.Duration
	dummy   string // a hash of a random password with params, for VerifyDummy

	// derive computes an argon2id key; a field so tests can observe it.
	derive func(password, salt []byte, p Params) []byte

	// Each hash allocates its memory afresh (m KiB, garbage once it is
	// done), and the runtime keeps what a burst of hashes used for reuse:
	// once no hash has run for idleAfter (releaseAfter), idle hands it
	// back to the OS (debug.FreeOSMemory), so the process returns to its
	// idle size after a sign-in peak.
	running   atomic.Int32
	idle      *time.Timer
	idleAfter time.Duration
}

// releaseAfter is how long the hasher must have been idle before it
// returns the memory of its hashes to the OS.
const releaseAfter = time.Second

func argon2id(password, salt []byte, p Params) []byte {
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// NewHasher returns a Hasher for params p running at most concurrency hashes
// at once, each caller waiting at most maxWait for a slot. It computes one
// hash (the dummy for VerifyDummy) before returning.
func NewHasher(p Params, concurrency int, maxWait time.Duration) (*Hasher, error) {
	return newHasher(p, concurrency, maxWait, releaseAfter, debug.FreeOSMemory)
}

// newHasher is NewHasher calling releaseMemory once no hash has run for
// idleAfter.
func newHasher(p Params, concurrency int, maxWait, idleAfter time.Duration, releaseMemory func()) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if concurrency < 1 {
		return nil, fmt.Errorf("hash concurrency %d must be at least 1", concurrency)
	}
	if maxWait < 0 {
		return nil, fmt.Errorf("hash wait %v must not be negative", maxWait)
	}
	h := &Hasher{
		params:  p,
		slots:   make(chan struct{}, concurrency),
		maxWait: maxWait,
		derive:  argon2id,

		idleAfter: idleAfter,
	}
	h.idle = time.AfterFunc(idleAfter, func() {
		if h.running.Load() == 0 {
			releaseMemory()
		}
	})
	dummy, err := h.hash(rand.Text())
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// acquire takes a hashing slot, waiting at most maxWait or until ctx ends.
// The caller must call the returned release once done.
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	release = func() {
		if h.running.Add(-1) == 0 {
			h.idle.Reset(h.idleAfter)
		}
		<-h.slots
	}
	select {
	case h.slots <- struct{}{}:
		h.running.Add(1)
		return release, nil
	default:
	}
	timer := time.NewTimer(h.maxWait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		h.running.Add(1)
		return release, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Hash returns the argon2id hash of the NFC form of password in PHC string
// form: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, both in unpadded
// standard base64. It returns ErrBusy when no slot became free in time, or
// ctx's error when ctx ended first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return h.hash(password)
}

func (h *Hasher) hash(password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := h.derive([]byte(Normalize(password)), salt, h.params)
	return encodePHC(h.params, salt, key), nil
}

// Verify checks password (NFC-normalised) against an argon2id PHC string,
// honouring the parameters stored in it, or against a bcrypt hash ($2a$,
// $2b$, $2y$: accounts imported from other systems; bcrypt looks at the first
// 72 bytes only, as the system that made the hash did). rehash is true when
// ok and the hash is not argon2id with exactly h's parameters (so bcrypt
// always). The comparison is constant-time. A malformed hash, or one whose
// parameters are out of bounds, gives an error wrapping ErrMalformed; no slot
// free in time gives ErrBusy; an ended ctx gives its error.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	if isBcrypt(encoded) {
		return h.verifyBcrypt(ctx, password, encoded)
	}
	stored, err := parsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, false, err
	}
	defer release()
	key := h.derive([]byte(Normalize(password)), stored.salt, stored.params)
	if subtle.ConstantTimeCompare(key, stored.key) != 1 {
		return false, false, nil
	}
	return true, stored.params != h.params, nil
}

// VerifyDummy costs what Verify of a hash with h's parameters costs: it
// verifies password against a hash of a random password made in NewHasher.
// Call it when the account is unknown, so that answer takes as long as a
// wrong password. It returns only ErrBusy or ctx's error.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

// bcryptLen is the length of every bcrypt hash: "$2b$" (4), the cost and
// '$' (3), 22 characters of salt and 31 of hash.
const bcryptLen = 60

func isBcrypt(encoded string) bool {
	return strings.HasPrefix(encoded, "$2a$") ||
		strings.HasPrefix(encoded, "$2b$") ||
		strings.HasPrefix(encoded, "$2y$")
}

func (h *Hasher) verifyBcrypt(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	if len(encoded) != bcryptLen {
		return false, false, malformed("bcrypt hash of the wrong length")
	}
	cost, err := bcrypt.Cost([]byte(encoded))
	if err != nil {
		return false, false, malformed("bcrypt: " + err.Error())
	}
	if cost > maxBcryptCost {
		return false, false, malformed(fmt.Sprintf("bcrypt cost %d above %d", cost, maxBcryptCost))
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, false, err
	}
	defer release()
	switch err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(Normalize(password))); {
	case err == nil:
		return true, true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, false, nil
	default: // e.g. a salt that is not bcrypt's base64
		return false, false, malformed("bcrypt: " + err.Error())
	}
}

// b64 is the PHC string format's base64: standard alphabet, no padding, and
// (strict) no stray bits in the last character.
var b64 = base64.RawStdEncoding.Strict()

func encodePHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

type phcHash struct {
	params Params
	salt   []byte
	key    []byte
}

// parsePHC decodes $argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<key>, the form
// the reference implementation writes, and checks its bounds.
func parsePHC(encoded string) (phcHash, error) {
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" || fields[1] != "argon2id" {
		return phcHash{}, malformed("neither an argon2id PHC string nor bcrypt")
	}
	if v, ok := strings.CutPrefix(fields[2], "v="); !ok || v != strconv.Itoa(argon2.Version) {
		return phcHash{}, malformed("unsupported argon2id version")
	}
	costs := strings.Split(fields[3], ",")
	if len(costs) != 3 {
		return phcHash{}, malformed("argon2id parameters are not m,t,p")
	}
	var values [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		s, ok := strings.CutPrefix(costs[i], name+"=")
		n, err := strconv.ParseUint(s, 10, 32)
		if !ok || err != nil || (len(s) > 1 && s[0] == '0') {
			return phcHash{}, malformed("argon2id parameters are not m,t,p")
		}
		values[i] = n
	}
	if err := validateCost(uint32(values[0]), uint32(values[1]), values[2]); err != nil {
		return phcHash{}, malformed(err.Error())
	}
	salt, err := b64.DecodeString(fields[4])
	if err != nil || len(salt) < minStoredSalt || len(salt) > maxLen {
		return phcHash{}, malformed("argon2id salt is not 8–1024 bytes of base64")
	}
	key, err := b64.DecodeString(fields[5])
	if err != nil || len(key) < minKey || len(key) > maxLen {
		return phcHash{}, malformed("argon2id key is not 16–1024 bytes of base64")
	}
	return phcHash{
		params: Params{
			Memory:  uint32(values[0]),
			Time:    uint32(values[1]),
			Threads: uint8(values[2]),
			SaltLen: uint32(len(salt)),
			KeyLen:  uint32(len(key)),
		},
		salt: salt,
		key:  key,
	}, nil
}
