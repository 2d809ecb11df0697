package server_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/ratelimit"
)

// ---- an authenticator app, written from RFC 4226 / RFC 6238 -------------

// appCode is the 6-digit code an authenticator app shows for key at t
// (HMAC-SHA-1, 30-second steps).
func appCode(key []byte, t time.Time) string {
	mac := hmac.New(sha1.New, key)
	var counter [8]byte
	binary.BigEndian.PutUint64(counter[:], uint64(t.Unix()/30))
	mac.Write(counter[:])
	sum := mac.Sum(nil)
	off := sum[19] & 0x0f
	n := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return fmt.Sprintf("%06d", n%1_000_000)
}

// appWrongCode is a 6-digit code that key gives at no step near t.
func appWrongCode(key []byte, t time.Time) string {
	near := map[string]bool{}
	for d := -2; d <= 2; d++ {
		near[appCode(key, t.Add(time.Duration(d)*30*time.Second))] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i); !near[c] {
			return c
		}
	}
}

// ---- client-side views and helpers ------------------------------------

type (
	tfEnrollment struct {
		Secret     string `json:"secret"`
		OtpauthURL string `json:"otpauth_url"`
		QRCode     string `json:"qr_code"`
	}
	tfChallenge struct {
		TwoFactorRequired bool    `json:"two_factor_required"`
		TwoFactorToken    string  `json:"two_factor_token"`
		ExpiresIn         int     `json:"expires_in"`
		AccessToken       *string `json:"access_token"`
		RefreshToken      *string `json:"refresh_token"`
	}
	tfRecovery struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
)

// tfAccount is an account with two-factor on.
type tfAccount struct {
	account
	Key      []byte
	Recovery []string
}

// enrollTwoFactor sends POST /me/two-factor and checks the answer.
func (h *harness) enrollTwoFactor(access string, body map[string]any) (tfEnrollment, []byte) {
	h.t.Helper()
	r := h.do("POST", "/api/me/two-factor", body, bearer(access))
	h.want(r, http.StatusOK, "")
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		h.t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var e tfEnrollment
	h.decode(r, &e)
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
	if err != nil || len(key) != 20 {
		h.t.Fatalf("secret %q: %d bytes, %v; want 160 bits of unpadded base32", e.Secret, len(key), err)
	}
	return e, key
}

// confirmTwoFactor sends POST /me/two-factor/confirm with a code and
// returns the recovery codes.
func (h *harness) confirmTwoFactor(access, code string) []string {
	h.t.Helper()
	r := h.do("POST", "/api/me/two-factor/confirm", map[string]any{"code": code}, bearer(access))
	h.want(r, http.StatusOK, "")
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		h.t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var rc tfRecovery
	h.decode(r, &rc)
	return rc.RecoveryCodes
}

// twoFactorAccount registers a secret account and turns two-factor on at
// the current step.
func (h *harness) twoFactorAccount(name string) tfAccount {
	h.t.Helper()
	a := h.register(name)
	_, key := h.enrollTwoFactor(a.AccessToken, map[string]any{"secret": a.Secret})
	codes := h.confirmTwoFactor(a.AccessToken, appCode(key, h.clock.Now()))
	return tfAccount{account: a, Key: key, Recovery: codes}
}

// challenge sends a first factor and returns the challenge it gets.
func (h *harness) challenge(body map[string]any) string {
	h.t.Helper()
	r := h.do("POST", "/api/auth", body)
	h.want(r, http.StatusOK, "")
	var c tfChallenge
	h.decode(r, &c)
	if !c.TwoFactorRequired || c.TwoFactorToken == "" || c.AccessToken != nil || c.RefreshToken != nil {
		h.t.Fatalf("sign-in answered %s, want a challenge without tokens", r.Body)
	}
	return c.TwoFactorToken
}

// answer sends POST /auth/two-factor.
func (h *harness) answer(token, code string) response {
	h.t.Helper()
	return h.do("POST", "/api/auth/two-factor", map[string]any{"two_factor_token": token, "code": code})
}

// wantTokens checks a 200 with tokens that work, and returns them.
func (h *harness) wantTokens(r response) tokenPair {
	h.t.Helper()
	h.want(r, http.StatusOK, "")
	var res authResult
	h.decode(r, &res)
	if res.TwoFactorRequired || res.AccessToken == "" || res.RefreshToken == "" {
		h.t.Fatalf("answer %s, want tokens", r.Body)
	}
	h.wantAccess(res.AccessToken, true)
	return res.tokenPair
}

// nextStep moves the clock to the next time step, so that a new code is
// due.
func (h *harness) nextStep() {
	h.clock.advance(30 * time.Second)
}

// decodeQR reads the text of a data:image/png;base64 QR code.
func decodeQR(t *testing.T, dataURL string) string {
	t.Helper()
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(dataURL, prefix) {
		t.Fatalf("qr_code %.40q… is not a PNG data URL", dataURL)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(dataURL, prefix))
	if err != nil {
		t.Fatalf("qr_code is not base64: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("qr_code is not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxingqr.NewQRCodeReader().Decode(bmp, pureBarcode)
	if err != nil {
		t.Fatalf("the QR code does not scan: %v", err)
	}
	return res.GetText()
}

// cheapHasher keeps password hashing fast in these tests.
func cheapHasher(t testing.TB) *password.Hasher {
	t.Helper()
	hs, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 4, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

var recoveryCodePattern = regexp.MustCompile(`^[0-9a-z]{5}-[0-9a-z]{5}$`)

// ---- the tests ------------------------------------------------------------

func TestTwoFactorFlow(t *testing.T) {
	eachDB(t, func(h *harness) {
		a := h.register("Ada Lovelace")
		if h.me(a.AccessToken).TwoFactor {
			h.t.Fatal("two_factor_enabled for a new account")
		}

		// Enrol: the key comes as base32, as a URL and as a QR code that
		// scans back to the URL. Nothing is on yet.
		e, key := h.enrollTwoFactor(a.AccessToken, map[string]any{"secret": a.Secret})
		wantURL := "otpauth://totp/Latchkey:Ada%20Lovelace?secret=" + e.Secret + "&issuer=Latchkey&algorithm=SHA1&digits=6&period=30"
		if e.OtpauthURL != wantURL {
			h.t.Errorf("otpauth_url = %s, want %s", e.OtpauthURL, wantURL)
		}
		if got := decodeQR(h.t, e.QRCode); got != e.OtpauthURL {
			h.t.Errorf("the QR code reads %q, want %q", got, e.OtpauthURL)
		}
		if h.me(a.AccessToken).TwoFactor {
			h.t.Fatal("two_factor_enabled before confirmation")
		}
		h.wantTokens(h.do("POST", "/api/auth", map[string]any{"secret": a.Secret}))

		// Confirm: a wrong code is refused; the app's code turns it on.
		now := h.clock.Now()
		r := h.do("POST", "/api/me/two-factor/confirm", map[string]any{"code": appWrongCode(key, now)}, bearer(a.AccessToken))
		h.want(r, http.StatusUnauthorized, "INVALID_CODE")
		confirmCode := appCode(key, now)
		codes := h.confirmTwoFactor(a.AccessToken, confirmCode)
		if len(codes) != 10 {
			h.t.Fatalf("%d recovery codes, want 10", len(codes))
		}
		for _, c := range codes {
			if !recoveryCodePattern.MatchString(c) {
				h.t.Errorf("recovery code %q", c)
			}
		}
		if !h.me(a.AccessToken).TwoFactor {
			h.t.Fatal("two_factor_enabled is false after confirmation")
		}

		// Sign in: the secret now gets a challenge and no tokens.
		r = h.do("POST", "/api/auth", map[string]any{"secret": a.Secret})
		h.want(r, http.StatusOK, "")
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			h.t.Errorf("Cache-Control %q, want no-store", cc)
		}
		var c tfChallenge
		h.decode(r, &c)
		if !c.TwoFactorRequired || len(c.TwoFactorToken) != 43 || c.ExpiresIn != 300 || c.AccessToken != nil {
			h.t.Fatalf("sign-in answered %s, want a 256-bit challenge for 300 s", r.Body)
		}

		// The step that confirmed enrolment is spent.
		h.want(h.answer(c.TwoFactorToken, confirmCode), http.StatusUnauthorized, "INVALID_CODE")
		h.nextStep()
		code := appCode(key, h.clock.Now())
		r = h.do("POST", "/api/auth/two-factor", url.Values{"two_factor_token": {c.TwoFactorToken}, "code": {code}},
			hdr("User-Agent", "another-agent/2.0"))
		tok := h.wantTokens(r)
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			h.t.Errorf("Cache-Control %q, want no-store", cc)
		}
		for _, s := range h.sessions(tok.AccessToken) {
			if s.Current && (s.UserAgent == nil || *s.UserAgent != clientAgent) {
				h.t.Errorf("the session's user agent is %v, want the first factor's %q", s.UserAgent, clientAgent)
			}
		}

		// The challenge is used up; the step too, through any challenge.
		h.want(h.answer(c.TwoFactorToken, code), http.StatusBadRequest, "INVALID_TOKEN")
		h.want(h.answer(h.challenge(map[string]any{"secret": a.Secret}), code), http.StatusUnauthorized, "INVALID_CODE")
		h.want(h.answer("no-such-challenge", code), http.StatusBadRequest, "INVALID_TOKEN")
	})
}

func TestTwoFactorSignIn(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("POST /auth/two-factor/401 replayed step", func(h *harness) {
			a := h.twoFactorAccount("replay")
			h.nextStep()
			code := appCode(a.Key, h.clock.Now())
			h.wantTokens(h.answer(h.challenge(map[string]any{"secret": a.Secret}), code))
			token := h.challenge(map[string]any{"secret": a.Secret})
			h.want(h.answer(token, code), http.StatusUnauthorized, "INVALID_CODE")
			// An earlier step, still within the skew, is refused too.
			h.want(h.answer(token, appCode(a.Key, h.clock.Now().Add(-30*time.Second))), http.StatusUnauthorized, "INVALID_CODE")
			h.nextStep()
			h.wantTokens(h.answer(token, appCode(a.Key, h.clock.Now())))
		})

		h.run("POST /auth/two-factor/200 skew of one step", func(h *harness) {
			a := h.twoFactorAccount("skew")
			h.clock.advance(5 * time.Minute)
			now := h.clock.Now()
			token := h.challenge(map[string]any{"secret": a.Secret})
			for _, d := range []time.Duration{-time.Minute, time.Minute} {
				h.want(h.answer(token, appCode(a.Key, now.Add(d))), http.StatusUnauthorized, "INVALID_CODE")
			}
			h.wantTokens(h.answer(token, appCode(a.Key, now.Add(-30*time.Second))))
			h.wantTokens(h.answer(h.challenge(map[string]any{"secret": a.Secret}), appCode(a.Key, now.Add(30*time.Second))))
		})

		h.run("POST /auth/two-factor/200 recovery code, once", func(h *harness) {
			a := h.twoFactorAccount("recovery")
			h.wantTokens(h.answer(h.challenge(map[string]any{"secret": a.Secret}), a.Recovery[0]))
			token := h.challenge(map[string]any{"secret": a.Secret})
			h.want(h.answer(token, a.Recovery[0]), http.StatusUnauthorized, "INVALID_CODE")
			h.wantTokens(h.answer(token, strings.ToUpper(a.Recovery[1])))
		})

		h.run("POST /auth/two-factor/400 five wrong codes kill the challenge", func(h *harness) {
			// This stack has no rate limits at all: the rule holds anyway.
			a := h.twoFactorAccount("guessed")
			h.nextStep()
			now := h.clock.Now()
			token := h.challenge(map[string]any{"secret": a.Secret})
			for i := 1; i <= 5; i++ {
				h.want(h.answer(token, appWrongCode(a.Key, now)), http.StatusUnauthorized, "INVALID_CODE")
			}
			h.want(h.answer(token, appCode(a.Key, now)), http.StatusBadRequest, "INVALID_TOKEN")
			h.want(h.answer(token, a.Recovery[0]), http.StatusBadRequest, "INVALID_TOKEN")
			// Four leave the fifth attempt.
			token = h.challenge(map[string]any{"secret": a.Secret})
			for range 4 {
				h.want(h.answer(token, "zzzzz-zzzzz"), http.StatusUnauthorized, "INVALID_CODE")
			}
			h.wantTokens(h.answer(token, appCode(a.Key, now)))
		})

		h.run("POST /auth/two-factor/400 expired challenge", func(h *harness) {
			a := h.twoFactorAccount("slow")
			token := h.challenge(map[string]any{"secret": a.Secret})
			h.clock.advance(5 * time.Minute)
			h.want(h.answer(token, appCode(a.Key, h.clock.Now())), http.StatusBadRequest, "INVALID_TOKEN")
		})

		h.run("POST /auth/two-factor/400 missing code", func(h *harness) {
			r := h.do("POST", "/api/auth/two-factor", map[string]any{"two_factor_token": "x"})
			h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
		})

		h.run("POST /auth/two-factor/200 once of ten concurrent answers", func(h *harness) {
			a := h.twoFactorAccount("racy")
			for _, same := range []bool{true, false} {
				h.nextStep()
				code := appCode(a.Key, h.clock.Now())
				tokens := make([]string, 10)
				for i := range tokens {
					if same && i > 0 {
						tokens[i] = tokens[0]
					} else {
						tokens[i] = h.challenge(map[string]any{"secret": a.Secret})
					}
				}
				statuses := make([]int, len(tokens))
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i, tok := range tokens {
					wg.Go(func() {
						<-start
						statuses[i] = h.answer(tok, code).Code
					})
				}
				close(start)
				wg.Wait()
				ok := 0
				for _, st := range statuses {
					switch st {
					case http.StatusOK:
						ok++
					case http.StatusBadRequest, http.StatusUnauthorized:
					default:
						h.t.Errorf("status %d", st)
					}
				}
				if ok != 1 {
					h.t.Errorf("one challenge for all: %v; %d answers succeeded (%v), want exactly 1", same, ok, statuses)
				}
			}
		})
	})
}

func TestTwoFactorEnrolment(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("POST /me/two-factor/409 already enabled", func(h *harness) {
			a := h.twoFactorAccount("twice")
			r := h.do("POST", "/api/me/two-factor", map[string]any{"secret": a.Secret}, bearer(a.AccessToken))
			h.want(r, http.StatusConflict, "ALREADY_ENABLED")
			h.nextStep()
			r = h.do("POST", "/api/me/two-factor/confirm", map[string]any{"code": appCode(a.Key, h.clock.Now())}, bearer(a.AccessToken))
			h.want(r, http.StatusConflict, "ALREADY_ENABLED")
		})

		h.run("POST /me/two-factor/401 wrong secret", func(h *harness) {
			a := h.register("wrong")
			r := h.do("POST", "/api/me/two-factor", map[string]any{"secret": a.RefreshToken}, bearer(a.AccessToken))
			h.want(r, http.StatusUnauthorized, "INVALID_CREDENTIALS")
			r = h.do("POST", "/api/me/two-factor", map[string]any{}, bearer(a.AccessToken))
			h.want(r, http.StatusBadRequest, "INVALID_REQUEST")
		})

		h.run("POST /me/two-factor/401 no bearer", func(h *harness) {
			a := h.register("anonymous")
			h.want(h.do("POST", "/api/me/two-factor", map[string]any{"secret": a.Secret}), http.StatusUnauthorized, "UNAUTHENTICATED")
		})

		h.run("POST /me/two-factor/200 again replaces the pending key", func(h *harness) {
			a := h.register("changed phone")
			_, first := h.enrollTwoFactor(a.AccessToken, map[string]any{"secret": a.Secret})
			_, second := h.enrollTwoFactor(a.AccessToken, map[string]any{"secret": a.Secret})
			now := h.clock.Now()
			r := h.do("POST", "/api/me/two-factor/confirm", map[string]any{"code": appCode(first, now)}, bearer(a.AccessToken))
			h.want(r, http.StatusUnauthorized, "INVALID_CODE")
			h.confirmTwoFactor(a.AccessToken, appCode(second, now))
		})

		h.run("POST /me/two-factor/confirm/409 nothing pending", func(h *harness) {
			a := h.register("idle")
			r := h.do("POST", "/api/me/two-factor/confirm", map[string]any{"code": "123456"}, bearer(a.AccessToken))
			h.want(r, http.StatusConflict, "NOT_APPLICABLE")
		})

		h.run("password account", func(h *harness) {
			p := h.variant(func(c *auth.Config) { c.Hasher = cheapHasher(h.t) })
			const email, pw = "ada@example.com", "analytical engine 1843"
			r := p.do("POST", "/api/register", map[string]any{"email": email, "password": pw})
			p.want(r, http.StatusCreated, "")
			var reg registerResult
			p.decode(r, &reg)
			access := reg.Tokens.AccessToken

			r = p.do("POST", "/api/me/two-factor", map[string]any{"password": "analytical engine 1842"}, bearer(access))
			p.want(r, http.StatusUnauthorized, "INVALID_CREDENTIALS")
			r = p.do("POST", "/api/me/two-factor", map[string]any{}, bearer(access))
			p.want(r, http.StatusBadRequest, "INVALID_REQUEST")

			e, key := p.enrollTwoFactor(access, map[string]any{"password": pw})
			if !strings.HasPrefix(e.OtpauthURL, "otpauth://totp/Latchkey:ada%40example.com?secret=") {
				p.t.Errorf("otpauth_url %s does not name the account by its email", e.OtpauthURL)
			}
			p.confirmTwoFactor(access, appCode(key, p.clock.Now()))

			token := p.challenge(map[string]any{"email": email, "password": pw})
			p.nextStep()
			p.wantTokens(p.answer(token, appCode(key, p.clock.Now())))
		})
	})
}

func TestTwoFactorDisable(t *testing.T) {
	eachDB(t, func(h *harness) {
		h.run("DELETE /me/two-factor/204 with a TOTP code", func(h *harness) {
			a := h.twoFactorAccount("done")
			token := h.challenge(map[string]any{"secret": a.Secret}) // dies with two-factor
			h.nextStep()
			now := h.clock.Now()
			r := h.do("DELETE", "/api/me/two-factor", map[string]any{"code": appWrongCode(a.Key, now)}, bearer(a.AccessToken))
			h.want(r, http.StatusUnauthorized, "INVALID_CODE")
			r = h.do("DELETE", "/api/me/two-factor", map[string]any{"code": appCode(a.Key, now)}, bearer(a.AccessToken))
			h.want(r, http.StatusNoContent, "")
			if h.me(a.AccessToken).TwoFactor {
				h.t.Error("two_factor_enabled after disabling")
			}
			h.want(h.answer(token, a.Recovery[0]), http.StatusBadRequest, "INVALID_TOKEN")
			h.signIn(a.account) // tokens at once
			r = h.do("DELETE", "/api/me/two-factor", map[string]any{"code": a.Recovery[0]}, bearer(a.AccessToken))
			h.want(r, http.StatusConflict, "NOT_APPLICABLE")
		})

		h.run("DELETE /me/two-factor/204 with a recovery code", func(h *harness) {
			a := h.twoFactorAccount("lost phone")
			r := h.do("DELETE", "/api/me/two-factor", map[string]any{"code": "zzzzz-zzzzz"}, bearer(a.AccessToken))
			h.want(r, http.StatusUnauthorized, "INVALID_CODE")
			r = h.do("DELETE", "/api/me/two-factor", map[string]any{"code": a.Recovery[9]}, bearer(a.AccessToken))
			h.want(r, http.StatusNoContent, "")
			// Enabled again: the old recovery codes are gone.
			h.nextStep()
			_, key := h.enrollTwoFactor(a.AccessToken, map[string]any{"secret": a.Secret})
			h.confirmTwoFactor(a.AccessToken, appCode(key, h.clock.Now()))
			h.want(h.answer(h.challenge(map[string]any{"secret": a.Secret}), a.Recovery[0]), http.StatusUnauthorized, "INVALID_CODE")
		})
	})
}

func TestTwoFactorLimits(t *testing.T) {
	eachDB(t, func(h *harness) {
		b := ratelimit.Memory()
		p := h.variant(func(c *auth.Config) {
			c.Hasher = cheapHasher(h.t)
			c.Limits = auth.Limits{
				LoginAccount: b.New("login-account", 3, 15*time.Minute),
				LoginClient:  b.New("login-client", 30, 15*time.Minute),
			}
		})
		const email, pw = "grace@example.com", "cobol compiler 1959"
		r := p.do("POST", "/api/register", map[string]any{"email": email, "password": pw})
		p.want(r, http.StatusCreated, "")
		var reg registerResult
		p.decode(r, &reg)
		_, key := p.enrollTwoFactor(reg.Tokens.AccessToken, map[string]any{"password": pw})
		p.confirmTwoFactor(reg.Tokens.AccessToken, appCode(key, p.clock.Now()))

		token := p.challenge(map[string]any{"email": email, "password": pw})
		p.nextStep()
		for range 3 {
			p.want(p.answer(token, appWrongCode(key, p.clock.Now())), http.StatusUnauthorized, "INVALID_CODE")
		}
		// The account is at its sign-in limit: the right code and the
		// right password are refused alike.
		r = p.answer(token, appCode(key, p.clock.Now()))
		p.want(r, http.StatusTooManyRequests, "RATE_LIMITED")
		if r.Header.Get("Retry-After") == "" {
			p.t.Error("429 without Retry-After")
		}
		p.want(p.do("POST", "/api/auth", map[string]any{"email": email, "password": pw}), http.StatusTooManyRequests, "RATE_LIMITED")
	})
}

// pureBarcode tells the decoder the image is one upright code on a quiet
// zone, as served. Without it gozxing's finder-pattern detector misjudges
// the size of about 1 valid code in 200 (zbarimg reads those fine).
var pureBarcode = map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_PURE_BARCODE: true}
