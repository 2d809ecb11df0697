package server

import (
	"context"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// Email confirmation, password reset and email change.

func (h *Handlers) ConfirmEmail(context.Context, gen.ConfirmEmailRequestObject) (gen.ConfirmEmailResponseObject, error) {
	return nil, auth.ErrNotImplemented
}

func (h *Handlers) ResendConfirmation(context.Context, gen.ResendConfirmationRequestObject) (gen.ResendConfirmationResponseObject, error) {
	return nil, auth.ErrNotImplemented
}

func (h *Handlers) RequestPasswordReset(context.Context, gen.RequestPasswordResetRequestObject) (gen.RequestPasswordResetResponseObject, error) {
	return nil, auth.ErrNotImplemented
}

func (h *Handlers) ResetPassword(context.Context, gen.ResetPasswordRequestObject) (gen.ResetPasswordResponseObject, error) {
	return nil, auth.ErrNotImplemented
}

func (h *Handlers) ChangeEmail(context.Context, gen.ChangeEmailRequestObject) (gen.ChangeEmailResponseObject, error) {
	return nil, auth.ErrNotImplemented
}
