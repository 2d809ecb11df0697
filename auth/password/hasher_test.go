package password

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testParams are cheap, so tests stay fast; defaults only where they matter.
var testParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 16}

func newTestHasher(t testing.TB, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(p, 4, time.Second)
	if err != nil {
		t.Fatalf("NewHasher(%+v): %v", p, err)
	}
	return h
}

func mustHash(t testing.TB, h *Hasher, password string) string {
	t.Helper()
	encoded, err := h.Hash(context.Background(), password)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return encoded
}

func mustBcrypt(t testing.TB, password string, cost int) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	return string(b)
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		ok   bool
	}{
		{"default", DefaultParams, true},
		{"test", testParams, true},
		{"memory at 8 KiB per thread", Params{Memory: 32, Time: 1, Threads: 4, SaltLen: 16, KeyLen: 16}, true},
		{"memory below 8 KiB per thread", Params{Memory: 31, Time: 1, Threads: 4, SaltLen: 16, KeyLen: 16}, false},
		{"memory 4 GiB", Params{Memory: 4 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 16}, true},
		{"memory above 4 GiB", Params{Memory: 4<<20 + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 16}, false},
		{"time 0", Params{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 16}, false},
		{"time 100", Params{Memory: 64, Time: 100, Threads: 1, SaltLen: 16, KeyLen: 16}, true},
		{"time 101", Params{Memory: 64, Time: 101, Threads: 1, SaltLen: 16, KeyLen: 16}, false},
		{"threads 0", Params{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 16}, false},
		{"threads 64", Params{Memory: 512, Time: 1, Threads: 64, SaltLen: 16, KeyLen: 16}, true},
		{"threads 65", Params{Memory: 1024, Time: 1, Threads: 65, SaltLen: 16, KeyLen: 16}, false},
		{"salt 15", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 15, KeyLen: 16}, false},
		{"key 15", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 15}, false},
		{"key 1025", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 1025}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate(%+v) = %v, want ok=%v", tt.p, err, tt.ok)
			}
		})
	}
}

func TestNewHasherRejects(t *testing.T) {
	tests := []struct {
		name        string
		p           Params
		concurrency int
		wait        time.Duration
	}{
		{"bad params", Params{}, 1, time.Second},
		{"zero concurrency", testParams, 0, time.Second},
		{"negative wait", testParams, 1, -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := NewHasher(tt.p, tt.concurrency, tt.wait); err == nil {
				t.Errorf("NewHasher = %v, nil; want an error", h)
			}
		})
	}
}

func TestHashVerify(t *testing.T) {
	h := newTestHasher(t, testParams)
	tests := []struct {
		name, password, attempt string
		ok                      bool
	}{
		{"ascii", "correct horse battery staple", "correct horse battery staple", true},
		{"wrong password", "correct horse battery staple", "correct horse battery stapler", false},
		{"case matters", "correct horse battery staple", "Correct horse battery staple", false},
		{"unicode", "пароль-密码-🔑🔑", "пароль-密码-🔑🔑", true},
		{"composed vs decomposed é", "caf\u00e9 au lait", "cafe\u0301 au lait", true},
		{"decomposed vs composed é", "cafe\u0301 au lait", "caf\u00e9 au lait", true},
		{"empty attempt", "correct horse battery staple", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded := mustHash(t, h, tt.password)
			ok, rehash, err := h.Verify(context.Background(), tt.attempt, encoded)
			if err != nil || ok != tt.ok || rehash {
				t.Errorf("Verify = %v, %v, %v; want %v, false, nil", ok, rehash, err, tt.ok)
			}
		})
	}
}

// A password is never truncated: every one of 128 characters counts, also
// when the characters take several bytes.
func TestLongPasswordNotTruncated(t *testing.T) {
	h := newTestHasher(t, testParams)
	for _, unit := range []string{"a", "é", "😀"} {
		t.Run(unit, func(t *testing.T) {
			full := strings.Repeat(unit, MaxLength-1) + "z"
			prefix := strings.Repeat(unit, MaxLength-1)
			if err := Check(full, "", ""); err != nil {
				t.Fatalf("Check(128 characters) = %v", err)
			}
			encoded := mustHash(t, h, full)
			if ok, _, err := h.Verify(context.Background(), full, encoded); !ok || err != nil {
				t.Errorf("Verify(128 characters) = %v, %v; want true", ok, err)
			}
			if ok, _, err := h.Verify(context.Background(), prefix, encoded); ok || err != nil {
				t.Errorf("Verify(127-character prefix) = %v, %v; want false", ok, err)
			}
		})
	}
}

func TestHashFormat(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		want *regexp.Regexp
	}{
		{"default", DefaultParams, regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)},
		{"test", testParams, regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{22}$`)},
		{"wide", Params{Memory: 256, Time: 3, Threads: 2, SaltLen: 32, KeyLen: 64},
			regexp.MustCompile(`^\$argon2id\$v=19\$m=256,t=3,p=2\$[A-Za-z0-9+/]{43}\$[A-Za-z0-9+/]{86}$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHasher(t, tt.p)
			a, b := mustHash(t, h, "same password"), mustHash(t, h, "same password")
			if !tt.want.MatchString(a) {
				t.Errorf("Hash = %q, want to match %s", a, tt.want)
			}
			if a == b {
				t.Errorf("two hashes of one password are equal (%q): salt not random", a)
			}
		})
	}
}

// Hashes made by the argon2 reference implementation verify, with the
// parameters they carry.
func TestVerifyReferenceVectors(t *testing.T) {
	h := newTestHasher(t, testParams)
	vectors := []string{
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc",
	}
	for _, encoded := range vectors {
		if ok, rehash, err := h.Verify(context.Background(), "password", encoded); !ok || !rehash || err != nil {
			t.Errorf("Verify(password, %s) = %v, %v, %v; want true, true, nil", encoded, ok, rehash, err)
		}
		if ok, rehash, err := h.Verify(context.Background(), "passwore", encoded); ok || rehash || err != nil {
			t.Errorf("Verify(passwore, %s) = %v, %v, %v; want false, false, nil", encoded, ok, rehash, err)
		}
	}
}

func TestVerifyRehash(t *testing.T) {
	base := Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 16}
	current := newTestHasher(t, base)
	with := func(change func(*Params)) Params {
		p := base
		change(&p)
		return p
	}
	tests := []struct {
		name   string
		stored Params
		rehash bool
	}{
		{"current params", base, false},
		{"less memory", with(func(p *Params) { p.Memory = 32 }), true},
		{"more memory", with(func(p *Params) { p.Memory = 128 }), true},
		{"fewer iterations", with(func(p *Params) { p.Time = 1 }), true},
		{"more iterations", with(func(p *Params) { p.Time = 3 }), true},
		{"more threads", with(func(p *Params) { p.Threads = 2 }), true},
		{"longer salt", with(func(p *Params) { p.SaltLen = 32 }), true},
		{"longer key", with(func(p *Params) { p.KeyLen = 32 }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded := mustHash(t, newTestHasher(t, tt.stored), "hunter2 is not my password")
			ok, rehash, err := current.Verify(context.Background(), "hunter2 is not my password", encoded)
			if !ok || rehash != tt.rehash || err != nil {
				t.Errorf("Verify = %v, %v, %v; want true, %v, nil", ok, rehash, err, tt.rehash)
			}
			ok, rehash, err = current.Verify(context.Background(), "hunter3 is not my password", encoded)
			if ok || rehash || err != nil {
				t.Errorf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestVerifyBcrypt(t *testing.T) {
	h := newTestHasher(t, testParams)
	const password = "imported from elsewhere"
	encoded := mustBcrypt(t, password, 4) // $2a$
	long := strings.Repeat("ü", 50)       // 100 bytes
	tests := []struct {
		name, encoded, attempt string
		ok                     bool
	}{
		{"2a", encoded, password, true},
		{"2b", "$2b$" + encoded[4:], password, true},
		{"2y", "$2y$" + encoded[4:], password, true},
		{"2a wrong password", encoded, "imported from elsewhere!", false},
		{"2b wrong password", "$2b$" + encoded[4:], "Imported from elsewhere", false},
		// bcrypt reads 72 bytes, as the system that made the hash did, so a
		// longer password still signs in (and is then rehashed in full).
		{"longer than 72 bytes", mustBcrypt(t, long[:72], 4), long, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(context.Background(), tt.attempt, tt.encoded)
			if err != nil || ok != tt.ok || rehash != tt.ok {
				t.Errorf("Verify = %v, %v, %v; want %v, %v, nil", ok, rehash, err, tt.ok, tt.ok)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	h := newTestHasher(t, testParams)
	good := mustHash(t, h, "password")
	fields := strings.Split(good, "$") // "", argon2id, v=19, m=64,t=1,p=1, salt, key
	salt, key := fields[4], fields[5]
	phc := func(version, params, salt, key string) string {
		return "$argon2id$" + version + "$" + params + "$" + salt + "$" + key
	}
	bc := mustBcrypt(t, "password", 4)
	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"plain text", "password"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"version 16", phc("v=16", "m=64,t=1,p=1", salt, key)},
		{"version 019", phc("v=019", "m=64,t=1,p=1", salt, key)},
		{"trailing field", good + "$"},
		{"missing key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"params reordered", phc("v=19", "t=1,m=64,p=1", salt, key)},
		{"param missing", phc("v=19", "m=64,t=1", salt, key)},
		{"extra param", phc("v=19", "m=64,t=1,p=1,k=1", salt, key)},
		{"param not a number", phc("v=19", "m=abc,t=1,p=1", salt, key)},
		{"negative param", phc("v=19", "m=-64,t=1,p=1", salt, key)},
		{"leading zero", phc("v=19", "m=064,t=1,p=1", salt, key)},
		{"memory overflows uint32", phc("v=19", "m=4294967296,t=1,p=1", salt, key)},
		{"memory above 4 GiB", phc("v=19", "m=4194305,t=1,p=1", salt, key)},
		{"memory 0", phc("v=19", "m=0,t=1,p=1", salt, key)},
		{"memory below 8 KiB per thread", phc("v=19", "m=15,t=1,p=2", salt, key)},
		{"time 0", phc("v=19", "m=64,t=0,p=1", salt, key)},
		{"time above 100", phc("v=19", "m=64,t=101,p=1", salt, key)},
		{"threads 0", phc("v=19", "m=64,t=1,p=0", salt, key)},
		{"threads above 64", phc("v=19", "m=1024,t=1,p=65", salt, key)},
		{"threads overflow uint8", phc("v=19", "m=4096,t=1,p=257", salt, key)},
		{"salt bad base64", phc("v=19", "m=64,t=1,p=1", "!!!!!!!!!!!!!!!!!!!!!!", key)},
		{"salt padded", phc("v=19", "m=64,t=1,p=1", salt+"==", key)},
		{"salt too short", phc("v=19", "m=64,t=1,p=1", "c2FsdA", key)},
		{"key bad base64", phc("v=19", "m=64,t=1,p=1", salt, "#"+key[1:])},
		{"key too short", phc("v=19", "m=64,t=1,p=1", salt, "a2V5a2V5a2V5")},
		{"key non-canonical trailing bits", phc("v=19", "m=64,t=1,p=1", salt, key[:len(key)-1]+"B")},
		{"bcrypt too short", bc[:59]},
		{"bcrypt too long", bc + "x"},
		{"bcrypt 2x", "$2x$" + bc[4:]},
		{"bcrypt cost not a number", bc[:4] + "xx" + bc[6:]},
		{"bcrypt cost 3", bc[:4] + "03" + bc[6:]},
		{"bcrypt cost 17", bc[:4] + "17" + bc[6:]},
		{"bcrypt cost 31", bc[:4] + "31" + bc[6:]},
		{"bcrypt bad salt", bc[:7] + "!!!!!!!!!!!!!!!!!!!!!!" + bc[29:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(context.Background(), "password", tt.encoded)
			if !errors.Is(err, ErrMalformed) || ok || rehash {
				t.Errorf("Verify(%q) = %v, %v, %v; want false, false, ErrMalformed", tt.encoded, ok, rehash, err)
			}
		})
	}
	// The shapes above really are one change away from valid.
	for _, encoded := range []string{good, bc, "$2b$" + bc[4:]} {
		if ok, _, err := h.Verify(context.Background(), "password", encoded); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want true, nil", encoded, ok, err)
		}
	}
}

// instrument makes h's argon2 calls hold their slot for hold and records
// how many ran at once and with which parameters.
type instrument struct {
	running, peak, calls atomic.Int32
	mu                   sync.Mutex
	params               []Params
}

func (in *instrument) attach(h *Hasher, hold time.Duration) {
	h.derive = func(password, salt []byte, p Params) []byte {
		n := in.running.Add(1)
		defer in.running.Add(-1)
		for old := in.peak.Load(); n > old && !in.peak.CompareAndSwap(old, n); old = in.peak.Load() {
		}
		in.calls.Add(1)
		in.mu.Lock()
		in.params = append(in.params, p)
		in.mu.Unlock()
		time.Sleep(hold)
		return argon2id(password, salt, p)
	}
}

func TestConcurrencyBound(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		wait        time.Duration
		wantBusy    bool
	}{
		{"one slot, short wait", 1, 10 * time.Millisecond, true},
		{"three slots, long wait", 3, time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHasher(testParams, tt.concurrency, tt.wait)
			if err != nil {
				t.Fatal(err)
			}
			var in instrument
			in.attach(h, 30*time.Millisecond)

			const callers = 20
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, callers)
			hashes := make([]string, callers)
			for i := range callers {
				wg.Go(func() {
					<-start
					hashes[i], errs[i] = h.Hash(context.Background(), "password")
				})
			}
			close(start)
			wg.Wait()

			var busy, done int
			for i, err := range errs {
				switch {
				case err == nil && strings.HasPrefix(hashes[i], "$argon2id$"):
					done++
				case errors.Is(err, ErrBusy) && hashes[i] == "":
					busy++
				default:
					t.Errorf("Hash = %q, %v; want a hash or ErrBusy", hashes[i], err)
				}
			}
			if got := int(in.peak.Load()); got > tt.concurrency {
				t.Errorf("%d hashes ran at once, limit %d", got, tt.concurrency)
			}
			if got := int(in.calls.Load()); got != done {
				t.Errorf("argon2 ran %d times for %d hashes", got, done)
			}
			if done == 0 {
				t.Error("no hash succeeded")
			}
			if (busy > 0) != tt.wantBusy {
				t.Errorf("%d of %d callers got ErrBusy; want some: %v", busy, callers, tt.wantBusy)
			}
		})
	}
}

// hold takes every slot of h until the test ends.
func hold(t *testing.T, h *Hasher) {
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	t.Cleanup(func() {
		for range cap(h.slots) {
			<-h.slots
		}
	})
}

// Every operation waits for a slot the same way: ErrBusy after maxWait, or
// the context's error when it ends first.
func TestWaitForSlot(t *testing.T) {
	h, err := NewHasher(testParams, 1, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	encoded := mustHash(t, h, "password")
	bc := mustBcrypt(t, "password", 4)
	ops := map[string]func(context.Context) error{
		"Hash": func(ctx context.Context) error {
			_, err := h.Hash(ctx, "password")
			return err
		},
		"Verify": func(ctx context.Context) error {
			_, _, err := h.Verify(ctx, "password", encoded)
			return err
		},
		"Verify bcrypt": func(ctx context.Context) error {
			_, _, err := h.Verify(ctx, "password", bc)
			return err
		},
		"VerifyDummy": func(ctx context.Context) error {
			return h.VerifyDummy(ctx, "password")
		},
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			var in instrument
			in.attach(h, 0)

			if err := op(cancelled); !errors.Is(err, context.Canceled) {
				t.Errorf("with a free slot and a cancelled context: %v, want context.Canceled", err)
			}

			t.Run("busy", func(t *testing.T) {
				hold(t, h)
				if err := op(context.Background()); !errors.Is(err, ErrBusy) {
					t.Errorf("got %v, want ErrBusy", err)
				}
			})
			t.Run("cancelled while waiting", func(t *testing.T) {
				hold(t, h)
				h.maxWait = time.Minute
				defer func() { h.maxWait = 20 * time.Millisecond }()
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(10*time.Millisecond, cancel)
				if err := op(ctx); !errors.Is(err, context.Canceled) {
					t.Errorf("got %v, want context.Canceled", err)
				}
			})
			t.Run("deadline while waiting", func(t *testing.T) {
				hold(t, h)
				h.maxWait = time.Minute
				defer func() { h.maxWait = 20 * time.Millisecond }()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				defer cancel()
				if err := op(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("got %v, want context.DeadlineExceeded", err)
				}
			})
			if n := in.calls.Load(); n != 0 {
				t.Errorf("argon2 ran %d times without a slot", n)
			}
			t.Run("free again", func(t *testing.T) {
				if err := op(context.Background()); err != nil {
					t.Errorf("got %v, want nil", err)
				}
			})
		})
	}
}

// VerifyDummy does the work of verifying a current hash: one argon2 call with
// the hasher's own parameters.
func TestVerifyDummy(t *testing.T) {
	p := Params{Memory: 128, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}
	h := newTestHasher(t, p)
	var in instrument
	in.attach(h, 0)
	for _, password := range []string{"", "password", strings.Repeat("x", 200)} {
		if err := h.VerifyDummy(context.Background(), password); err != nil {
			t.Errorf("VerifyDummy(%q) = %v", password, err)
		}
	}
	if n := in.calls.Load(); n != 3 {
		t.Errorf("argon2 ran %d times for 3 dummy verifications", n)
	}
	for _, got := range in.params {
		if got != p {
			t.Errorf("dummy verified with %+v, want %+v", got, p)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(context.Background(), "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	encoded := mustHash(b, h, "correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(context.Background(), "correct horse battery staple", encoded); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkVerifyBcrypt(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	encoded := mustBcrypt(b, "correct horse battery staple", 10)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(context.Background(), "correct horse battery staple", encoded); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// TestIdleReleasesMemory: the memory of finished hashes is handed back once
// no hash has run for the idle time — once after start-up (the dummy hash),
// once after a burst however many it held, and never while one runs.
func TestIdleReleasesMemory(t *testing.T) {
	var released atomic.Int32
	const idle = 50 * time.Millisecond
	h, err := newHasher(testParams, 2, time.Second, idle, func() { released.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for released.Load() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := released.Load(); got != n {
			t.Fatalf("released %d times, want %d", got, n)
		}
	}
	waitFor(1) // after the dummy hash

	// A burst of hashes, one held past the idle time: no release until
	// the last is done, then one.
	hold, entered := make(chan struct{}), make(chan struct{})
	h.derive = func(password, salt []byte, p Params) []byte {
		if string(password) == "slow" {
			close(entered)
			<-hold
		}
		return argon2id(password, salt, p)
	}
	ctx := context.Background()
	done := make(chan error)
	go func() { _, err := h.Hash(ctx, "slow"); done <- err }()
	<-entered
	for range 3 {
		if _, err := h.Hash(ctx, "quick"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * idle)
	if got := released.Load(); got != 1 {
		t.Fatalf("released %d times while a hash ran, want still 1", got)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(2)
	time.Sleep(3 * idle)
	waitFor(2) // and not again while idle
}
