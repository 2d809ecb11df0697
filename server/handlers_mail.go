package server

import (
	"context"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// Email confirmation, password reset and email change. The operations that
// send mail only queue it (auth's outbox sends it), so they answer at once
// and take the same time whether or not the address has an account.

// accepted is the 202 body of the mail operations.
var accepted = gen.Accepted{
	Code:    gen.AcceptedCodeAccepted,
	Message: "If the address belongs to an account, a mail is on its way.",
}

// pendingConfirmation is the 202 body of a registration that waits for its
// address to be confirmed, whether or not the address already had an
// account.
var pendingConfirmation = gen.Register202JSONResponse{
	Code:    gen.AcceptedCodePendingConfirmation,
	Message: "Check your inbox to confirm your email address.",
}

// (POST /auth/confirm)
func (h *Handlers) ConfirmEmail(ctx context.Context, req gen.ConfirmEmailRequestObject) (gen.ConfirmEmailResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	res, err := h.svc.ConfirmEmail(ctx, in.Token, clientMeta(ctx))
	if err != nil {
		return nil, err
	}
	return gen.ConfirmEmail200JSONResponse{Body: toAuthResult(res), Headers: gen.ConfirmEmail200ResponseHeaders{CacheControl: noStore}}, nil
}

// (POST /auth/confirm/resend)
func (h *Handlers) ResendConfirmation(ctx context.Context, req gen.ResendConfirmationRequestObject) (gen.ResendConfirmationResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	if err := h.svc.ResendConfirmation(ctx, string(in.Email), clientMeta(ctx)); err != nil {
		return nil, err
	}
	return gen.ResendConfirmation202JSONResponse{AcceptedJSONResponse: gen.AcceptedJSONResponse(accepted)}, nil
}

// (POST /auth/password/reset-request)
func (h *Handlers) RequestPasswordReset(ctx context.Context, req gen.RequestPasswordResetRequestObject) (gen.RequestPasswordResetResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	if err := h.svc.RequestPasswordReset(ctx, string(in.Email), clientMeta(ctx)); err != nil {
		return nil, err
	}
	return gen.RequestPasswordReset202JSONResponse{AcceptedJSONResponse: gen.AcceptedJSONResponse(accepted)}, nil
}

// (POST /auth/password/reset)
func (h *Handlers) ResetPassword(ctx context.Context, req gen.ResetPasswordRequestObject) (gen.ResetPasswordResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	err := h.svc.ResetPassword(ctx, auth.ResetPasswordInput{Token: in.Token, Password: in.Password, PasswordConf: in.PasswordConf})
	if err != nil {
		return nil, err
	}
	return gen.ResetPassword204Response{}, nil
}

// (PUT /me/email)
func (h *Handlers) ChangeEmail(ctx context.Context, req gen.ChangeEmailRequestObject) (gen.ChangeEmailResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := deref(req.Body)
	if err := h.svc.ChangeEmail(ctx, p, string(in.Email), in.Password, clientMeta(ctx)); err != nil {
		return nil, err
	}
	return gen.ChangeEmail202JSONResponse{AcceptedJSONResponse: gen.AcceptedJSONResponse(accepted)}, nil
}
