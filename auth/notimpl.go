package auth

import "errors"

// ErrNotImplemented is returned for features this version does not offer
// yet (password sign-in until password accounts land).
var ErrNotImplemented = errors.New("not implemented")
