package server

import (
	"context"
	"encoding/base64"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// Two-factor authentication.

// (POST /auth/two-factor)
func (h *Handlers) SignInTwoFactor(ctx context.Context, req gen.SignInTwoFactorRequestObject) (gen.SignInTwoFactorResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	res, err := h.svc.SignInTwoFactor(ctx, in.TwoFactorToken, in.Code, clientMeta(ctx))
	if err != nil {
		return nil, err
	}
	return gen.SignInTwoFactor200JSONResponse{Body: toAuthResult(res), Headers: gen.SignInTwoFactor200ResponseHeaders{CacheControl: noStore}}, nil
}

// (POST /me/two-factor)
func (h *Handlers) EnrollTwoFactor(ctx context.Context, req gen.EnrollTwoFactorRequestObject) (gen.EnrollTwoFactorResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := deref(req.Body)
	e, err := h.svc.EnrollTwoFactor(ctx, p.UserID, auth.TwoFactorCredentials{Password: deref(in.Password), Secret: deref(in.Secret)}, clientMeta(ctx))
	if err != nil {
		return nil, err
	}
	return gen.EnrollTwoFactor200JSONResponse{
		Body: gen.TwoFactorEnrollment{
			Secret:     e.Secret,
			OtpauthURL: e.URL,
			QrCode:     "data:image/png;base64," + base64.StdEncoding.EncodeToString(e.QRCode),
		},
		Headers: gen.EnrollTwoFactor200ResponseHeaders{CacheControl: noStore},
	}, nil
}

// (POST /me/two-factor/confirm)
func (h *Handlers) ConfirmTwoFactor(ctx context.Context, req gen.ConfirmTwoFactorRequestObject) (gen.ConfirmTwoFactorResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	codes, err := h.svc.ConfirmTwoFactor(ctx, p.UserID, deref(req.Body).Code, clientMeta(ctx))
	if err != nil {
		return nil, err
	}
	return gen.ConfirmTwoFactor200JSONResponse{
		Body:    gen.RecoveryCodes{RecoveryCodes: codes},
		Headers: gen.ConfirmTwoFactor200ResponseHeaders{CacheControl: noStore},
	}, nil
}

// (DELETE /me/two-factor)
func (h *Handlers) DisableTwoFactor(ctx context.Context, req gen.DisableTwoFactorRequestObject) (gen.DisableTwoFactorResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.DisableTwoFactor(ctx, p.UserID, deref(req.Body).Code, clientMeta(ctx)); err != nil {
		return nil, err
	}
	return gen.DisableTwoFactor204Response{}, nil
}
