// Package totp implements time-based one-time passwords as authenticator
// apps compute them: RFC 6238 over RFC 4226 HOTP with HMAC-SHA-1, 6 digits
// and 30-second time steps. It also builds the otpauth:// key URI those apps
// read and renders it as a QR code.
package totp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

// The parameters every code uses. Authenticator apps assume exactly these
// when the key URI does not say otherwise; the URI says them anyway.
const (
	KeySize = 20 // bytes: 160 bits, as RFC 4226 recommends
	Digits  = 6
	Period  = 30 * time.Second
	// Skew is how many time steps before and after the current one are
	// accepted, for clocks that drift and codes typed slowly.
	Skew = 1
)

// encoding is base32 without padding, the form of keys in key URIs.
var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewKey returns KeySize random bytes from r.
func NewKey(r io.Reader) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(r, key); err != nil {
		return nil, fmt.Errorf("totp: new key: %w", err)
	}
	return key, nil
}

// EncodeKey returns key in base32 without padding, for manual entry.
func EncodeKey(key []byte) string {
	return encoding.EncodeToString(key)
}

// DecodeKey reverses EncodeKey; it ignores case, spaces and padding.
func DecodeKey(s string) ([]byte, error) {
	s = strings.ToUpper(strings.TrimRight(strings.ReplaceAll(s, " ", ""), "="))
	return encoding.DecodeString(s)
}

// Step returns the time step t falls in.
func Step(t time.Time) int64 {
	return t.Unix() / int64(Period/time.Second)
}

// Code returns the code of key for a time step (RFC 4226 section 5.3 with
// the step as the counter).
func Code(key []byte, step int64) string {
	mac := hmac.New(sha1.New, key)
	_ = binary.Write(mac, binary.BigEndian, step)
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", Digits, bin%1_000_000)
}

// IsCode reports whether s has the shape of a code: exactly Digits ASCII
// digits.
func IsCode(s string) bool {
	if len(s) != Digits {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Match checks code against key at now, within Skew steps either side, and
// returns the earliest matching step that is later than after (the last
// step already used). ok is false when no such step matches: a wrong code,
// or a code of a step already used.
func Match(key []byte, code string, now time.Time, after int64) (step int64, ok bool) {
	if !IsCode(code) {
		return 0, false
	}
	cur := Step(now)
	for s := cur - Skew; s <= cur+Skew; s++ {
		if s > after && subtle.ConstantTimeCompare([]byte(Code(key, s)), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// URL returns the otpauth:// key URI of key for an account of issuer, in the
// format authenticator apps read:
// otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30.
func URL(issuer, account string, key []byte) string {
	q := "secret=" + EncodeKey(key) +
		"&issuer=" + escape(issuer) +
		"&algorithm=SHA1" +
		fmt.Sprintf("&digits=%d&period=%d", Digits, int(Period/time.Second))
	return "otpauth://totp/" + escape(issuer) + ":" + escape(account) + "?" + q
}

// escape percent-encodes s for the label or a query value of a key URI;
// spaces become %20, which every app reads, not +, which some show.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// QRCode renders s as a QR code PNG with medium error correction, 6 pixels a
// module and the standard quiet zone.
func QRCode(s string) ([]byte, error) {
	q, err := qrcode.New(s, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("totp: QR code: %w", err)
	}
	png, err := q.PNG(-6)
	if err != nil {
		return nil, fmt.Errorf("totp: QR code: %w", err)
	}
	return png, nil
}
