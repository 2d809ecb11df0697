package auth

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // timezone validation must not depend on the host's zoneinfo
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

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

// Field is an optional, nullable patch field: Set says it was given;
// Set with a nil Value clears it.
type Field[T any] struct {
	Set   bool
	Value *T
}

// UserPatch is a change to a user's profile; nil or unset fields are kept.
type UserPatch struct {
	Name      *string
	Username  Field[string]
	Bio       Field[string]
	Location  Field[string]
	BirthDate Field[string] // YYYY-MM-DD
	Locale    *string       // BCP 47
	Timezone  *string       // IANA
}

// Me returns the user.
func (s *Service) Me(ctx context.Context, userID string) (*User, error) {
	return s.st.UserByID(ctx, userID)
}

// UpdateMe applies a patch to the user's profile. Every broken rule is
// reported in one ValidationError; a taken username is ErrUsernameTaken.
// Bio and location are trimmed, and empty clears them.
func (s *Service) UpdateMe(ctx context.Context, userID string, p UserPatch) (*User, error) {
	now := s.now()
	var v validator
	if p.Name != nil {
		p.Name = new(v.name("name", *p.Name))
	}
	checkOptional(&p.Username, func(x string) *string { return v.username("username", x) })
	checkOptional(&p.Bio, func(x string) *string { return v.text("bio", x, maxBio, true) })
	checkOptional(&p.Location, func(x string) *string { return v.text("location", x, maxLocation, false) })
	checkOptional(&p.BirthDate, func(x string) *string { return v.birthDate("birth_date", x, now) })
	if p.Locale != nil {
		p.Locale = new(v.locale("locale", *p.Locale))
	}
	if p.Timezone != nil {
		p.Timezone = new(v.timezone("timezone", *p.Timezone))
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	// Only the fields given are written: a concurrent change of any other
	// column (a password reset, another field's edit) stands.
	return s.st.UpdateProfile(ctx, userID, p, now)
}

// checkOptional replaces a field's value by what check makes of it; unset
// and null are kept as they are.
func checkOptional(f *Field[string], check func(string) *string) {
	if f.Set && f.Value != nil {
		f.Value = check(*f.Value)
	}
}

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
