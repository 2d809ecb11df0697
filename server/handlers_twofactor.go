package server

import (
	"context"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// Two-factor authentication.

func (h *Handlers) SignInTwoFactor(context.Context, gen.SignInTwoFactorRequestObject) (gen.SignInTwoFactorResponseObject, error) {
	return nil, auth.ErrNotImplemented
}

func (h *Handlers) EnrollTwoFactor(context.Context, gen.EnrollTwoFactorRequestObject) (gen.EnrollTwoFactorResponseObject, error) {
	return nil, auth.ErrNotImplemented
}

func (h *Handlers) ConfirmTwoFactor(context.Context, gen.ConfirmTwoFactorRequestObject) (gen.ConfirmTwoFactorResponseObject, error) {
	return nil, auth.ErrNotImplemented
}

func (h *Handlers) DisableTwoFactor(context.Context, gen.DisableTwoFactorRequestObject) (gen.DisableTwoFactorResponseObject, error) {
	return nil, auth.ErrNotImplemented
}
