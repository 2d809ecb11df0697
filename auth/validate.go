package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // timezone validation must not depend on the host's zoneinfo
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"

	"github.com/latchkey-dev/latchkey/auth/password"
)

// The rules of request fields: the validator and its checks, the one form
// of an email address, and the password rules' answer.

// Limits of profile fields, in characters (runes).
const (
	maxName     = 64
	maxBio      = 500
	maxLocation = 100
	maxLocale   = 64 // bytes; far above any real tag
	maxTimezone = 64 // bytes
)

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,30}$`)

// minBirthDate is the earliest birth date accepted.
const minBirthDate = "1900-01-01"

// maxEmail is the longest email address accepted, in bytes (RFC 5321).
const maxEmail = 254

// validator collects field errors.
type validator struct {
	fields []FieldError
}

func (v *validator) add(field, message string) {
	v.fields = append(v.fields, FieldError{Field: field, Message: message})
}

// err returns the collected errors as a ValidationError, or nil.
func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: v.fields}
}

// name checks a display name and returns it trimmed.
func (v *validator) name(field, s string) string {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case n == 0:
		v.add(field, "is required")
	case n > maxName:
		v.add(field, fmt.Sprintf("must be at most %d characters", maxName))
	case hasControl(s, false):
		v.add(field, "must not contain control characters")
	}
	return s
}

// username checks a username (not trimmed: spaces are not allowed).
func (v *validator) username(field, s string) *string {
	if !usernamePattern.MatchString(s) {
		v.add(field, "must be 3 to 30 letters, digits, '_', '.' or '-'")
	}
	return &s
}

// text checks free text of at most max characters and returns it trimmed,
// or nil when empty. Multi-line text may hold line breaks and tabs.
func (v *validator) text(field, s string, max int, multiline bool) *string {
	s = strings.TrimSpace(s)
	switch {
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		v.add(field, fmt.Sprintf("must be at most %d characters", max))
	case hasControl(s, multiline):
		v.add(field, "must not contain control characters")
	}
	if s == "" {
		return nil
	}
	return &s
}

// locale checks a BCP 47 tag and returns its canonical form.
func (v *validator) locale(field, s string) string {
	if s == "" || len(s) > maxLocale {
		v.add(field, "must be a BCP 47 language tag")
		return s
	}
	tag, err := language.Parse(s)
	if err != nil || tag == language.Und {
		v.add(field, "must be a BCP 47 language tag")
		return s
	}
	return tag.String()
}

// timezone checks an IANA time zone name.
func (v *validator) timezone(field, s string) string {
	if s == "" || s == "Local" || len(s) > maxTimezone {
		v.add(field, "must be an IANA time zone name")
		return s
	}
	if _, err := time.LoadLocation(s); err != nil {
		v.add(field, "must be an IANA time zone name")
	}
	return s
}

// birthDate checks a YYYY-MM-DD date from 1900 to today. Today is taken in
// the earliest time zone (UTC+14), so no one is refused their birthday.
func (v *validator) birthDate(field, s string, now time.Time) *string {
	d, err := time.Parse(time.DateOnly, s)
	switch {
	case err != nil || len(s) != len(time.DateOnly):
		v.add(field, "must be a date as YYYY-MM-DD")
	case s < minBirthDate:
		v.add(field, "must not be before 1900")
	case d.After(now.Add(14 * time.Hour)):
		v.add(field, "must not be in the future")
	}
	return &s
}

// hasControl reports whether s holds a control character; multi-line text
// may hold line breaks and tabs.
func hasControl(s string, multiline bool) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			return false
		}
		return unicode.IsControl(r)
	})
}

// NormalizeEmail is the one form in which an address is stored, compared
// and looked up: trimmed; NFC; the local part lower case; the domain
// mapped by IDNA (UTS #46, lookup profile) to its ASCII form, so that the
// Unicode, Punycode and NFD spellings of one mailbox are one address
// ("x@exämple.com" → "x@xn--exmple-cua.com"). ok is false when s is not
// an address whose domain IDNA accepts; the string returned is then still
// the best normal form (trimmed, NFC, lower case), for look-ups that must
// answer "no such account" rather than "invalid".
func NormalizeEmail(s string) (email string, ok bool) {
	s = norm.NFC.String(strings.TrimSpace(s))
	local, domain, found := strings.Cut(s, "@")
	lower := norm.NFC.String(strings.ToLower(s))
	if !found || local == "" || domain == "" || strings.Contains(domain, "@") {
		return lower, false
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || ascii == "" || strings.HasPrefix(ascii, ".") || strings.HasSuffix(ascii, ".") ||
		strings.Contains(ascii, "..") || !strings.Contains(ascii, ".") {
		return lower, false
	}
	return norm.NFC.String(strings.ToLower(local)) + "@" + strings.ToLower(ascii), true
}

// email checks an email address and returns it normalised (NormalizeEmail).
func (v *validator) email(field, s string) string {
	email, ok := NormalizeEmail(s)
	switch {
	case strings.TrimSpace(s) == "":
		v.add(field, "is required")
	case !ok || len(email) > maxEmail || strings.ContainsFunc(email, unicode.IsSpace) || hasControl(email, false):
		v.add(field, "must be a valid email address")
	}
	return email
}

// mailAddress validates an address given to a mail endpoint.
func mailAddress(field, email string) (string, error) {
	var v validator
	email = v.email(field, email)
	return email, v.err()
}

// checkPassword applies the password rules; a failure is 400 WEAK_PASSWORD
// naming the rule.
func checkPassword(field, pw, email, username string) error {
	err := password.Check(pw, email, username)
	var weak *password.Weakness
	if errors.As(err, &weak) {
		return &ValidationError{Kind: ErrWeakPassword, Fields: []FieldError{{Field: field, Message: weak.Message}}}
	}
	return err
}
