package auth

import (
	"errors"
	"strings"
)

// Sentinel errors of the domain. The HTTP edge maps each to one status and
// one stable code (server/errors.go); the store translates database errors
// into them.
var (
	ErrNotFound             = errors.New("not found")
	ErrEmailTaken           = errors.New("email already registered")
	ErrUsernameTaken        = errors.New("username already taken")
	ErrInvalidCredentials   = errors.New("invalid credentials")
	ErrUnauthenticated      = errors.New("unauthenticated")
	ErrRefreshReused        = errors.New("refresh token reused")
	ErrNotApplicable        = errors.New("not applicable to this account")
	ErrRegistrationDisabled = errors.New("registration is disabled")
	ErrAccountDisabled      = errors.New("account disabled")
	ErrEmailNotConfirmed    = errors.New("email not confirmed")
	ErrWeakPassword         = errors.New("weak password")
	ErrInvalidToken         = errors.New("invalid or expired token")
	ErrInvalidCode          = errors.New("invalid code")
	ErrAlreadyEnabled       = errors.New("already enabled")
	ErrForbidden            = errors.New("forbidden")
	// ErrUnsupportedImage is content that is not a PNG, JPEG, GIF or WebP
	// image; ErrInvalidImage one that cannot be decoded or is too large.
	ErrUnsupportedImage = errors.New("unsupported image")
	ErrInvalidImage     = errors.New("invalid image")
	// ErrOverloaded is work refused because a budget (password hashing,
	// image decoding) is in use: retry shortly.
	ErrOverloaded = errors.New("overloaded")
	// ErrUnavailable is part of the Store contract: a Store wraps under it
	// every error that says the database cannot be reached or cannot take
	// the work now (a refused, reset or timed-out connection, SQLite busy
	// past its timeout, a full write queue), and nothing else. The domain
	// passes it on; the edge answers 503 UNAVAILABLE and may retry a read.
	// It stays in auth, unlike the edge's own sentinels (server), because
	// store may not import server nor server store: auth is the one
	// package both know.
	ErrUnavailable = errors.New("unavailable")
	// ErrConflict is a uniqueness violation the store could not attribute
	// to a known column.
	ErrConflict = errors.New("conflict")
)

// FieldError is one rule a request field broke.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError is a request that breaks one or more rules (400
// INVALID_REQUEST). It wraps Kind when a more specific code applies, for
// example ErrWeakPassword.
type ValidationError struct {
	Kind   error // nil for plain INVALID_REQUEST
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

func (e *ValidationError) Unwrap() error { return e.Kind }

// Invalid builds a ValidationError for one field.
func Invalid(field, message string) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: message}}}
}
