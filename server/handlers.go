package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/language"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// Handlers implements the generated strict server on top of auth.Service.
// Each method turns the request object into one service call and the result
// into a typed response; failures travel back as errors to errorHandler.
type Handlers struct {
	svc *auth.Service
	cfg Config
}

var _ gen.StrictServerInterface = (*Handlers)(nil)

const noStore = "no-store"

// clientMetaKey carries the caller's address and user agent on the request
// context, for the sessions that sign-in creates.
type clientMetaKey struct{}

func clientMeta(ctx context.Context) auth.ClientMeta {
	m, _ := ctx.Value(clientMetaKey{}).(auth.ClientMeta)
	return m
}

// caller is the principal of an authenticated operation; the validator has
// already refused the request when there is none.
func caller(ctx context.Context) (auth.Principal, error) {
	p, ok := principalFrom(ctx)
	if !ok {
		return auth.Principal{}, auth.ErrUnauthenticated
	}
	return p, nil
}

// body returns whichever of the JSON and form bodies was sent.
func body[T any](jsonBody, formBody *T) *T {
	if jsonBody != nil {
		return jsonBody
	}
	if formBody != nil {
		return formBody
	}
	return new(T)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// (POST /register)
func (h *Handlers) Register(ctx context.Context, req gen.RegisterRequestObject) (gen.RegisterResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	// The validator let through exactly one branch of the oneOf: a
	// password account has an email (a valid one: never empty).
	pw, err := in.AsPasswordRegistration()
	if err != nil {
		// The only member that can fail to decode after validation: the
		// generated Email type parses it again (net/mail), stricter than
		// the spec's format.
		return nil, auth.Invalid("email", "must be a valid email address")
	}
	locale := string(deref(pw.Locale))
	if locale == "" {
		locale = preferredLocale(deref(req.Params.AcceptLanguage))
	}
	if pw.Email != "" {
		return h.registerPassword(ctx, pw, locale)
	}
	user, secret, tokens, err := h.svc.RegisterSecret(ctx, auth.RegisterSecretInput{Name: deref(pw.Name), Locale: locale}, clientMeta(ctx))
	if err != nil {
		return nil, err
	}
	return gen.Register201JSONResponse{
		Body:    gen.RegisterResult{User: toUser(user), Secret: &secret, Tokens: toTokenPair(tokens)},
		Headers: gen.Register201ResponseHeaders{CacheControl: noStore},
	}, nil
}

func (h *Handlers) registerPassword(ctx context.Context, in gen.PasswordRegistration, locale string) (gen.RegisterResponseObject, error) {
	user, tokens, err := h.svc.RegisterPassword(ctx, auth.RegisterPasswordInput{
		Email:        string(in.Email),
		Password:     in.Password,
		PasswordConf: in.PasswordConf,
		Name:         in.Name,
		Username:     in.Username,
		Bio:          in.Bio,
		Locale:       locale,
		Timezone:     deref(in.Timezone),
	}, clientMeta(ctx))
	if err != nil {
		return nil, err
	}
	if tokens == nil { // confirmation required: see handlers_mail.go
		return pendingConfirmation, nil
	}
	return gen.Register201JSONResponse{
		Body:    gen.RegisterResult{User: toUser(user), Tokens: toTokenPair(tokens)},
		Headers: gen.Register201ResponseHeaders{CacheControl: noStore},
	}, nil
}

// preferredLocale is the first language of an Accept-Language header, or ""
// when the header is absent or unreadable.
func preferredLocale(header string) string {
	tags, _, err := language.ParseAcceptLanguage(header)
	if err != nil || len(tags) == 0 {
		return ""
	}
	return tags[0].String()
}

// (POST /auth)
func (h *Handlers) SignIn(ctx context.Context, req gen.SignInRequestObject) (gen.SignInResponseObject, error) {
	// The validator let through exactly one branch of the oneOf; the
	// fields of the others are empty.
	var in struct {
		Secret, Email, Username, Password string
	}
	if err := unionFields(body(req.JSONBody, req.FormdataBody), &in); err != nil {
		return nil, err
	}
	res, err := h.svc.SignIn(ctx, auth.Credentials{
		Secret:   in.Secret,
		Email:    in.Email,
		Username: in.Username,
		Password: in.Password,
	}, clientMeta(ctx))
	if err != nil {
		return nil, err
	}
	return gen.SignIn200JSONResponse{Body: toAuthResult(res), Headers: gen.SignIn200ResponseHeaders{CacheControl: noStore}}, nil
}

// (POST /auth/refresh)
func (h *Handlers) RefreshToken(ctx context.Context, req gen.RefreshTokenRequestObject) (gen.RefreshTokenResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	tokens, err := h.svc.Refresh(ctx, in.RefreshToken)
	if err != nil {
		return nil, err
	}
	return gen.RefreshToken200JSONResponse{Body: toTokenPair(tokens), Headers: gen.RefreshToken200ResponseHeaders{CacheControl: noStore}}, nil
}

// (POST /auth/logout)
func (h *Handlers) Logout(ctx context.Context, req gen.LogoutRequestObject) (gen.LogoutResponseObject, error) {
	in := body(req.JSONBody, req.FormdataBody)
	if p, ok := principalFrom(ctx); ok {
		if err := h.svc.Logout(ctx, p, string(deref(in.Scope))); err != nil {
			return nil, err
		}
		return gen.Logout204Response{}, nil
	}
	if in.RefreshToken == nil {
		return nil, auth.ErrUnauthenticated
	}
	if err := h.svc.LogoutRefresh(ctx, *in.RefreshToken); err != nil {
		return nil, err
	}
	return gen.Logout204Response{}, nil
}

// (GET /me)
func (h *Handlers) GetMe(ctx context.Context, _ gen.GetMeRequestObject) (gen.GetMeResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	user := p.User // loaded by this request's authentication
	if user == nil {
		if user, err = h.svc.Me(ctx, p.UserID); err != nil {
			return nil, err
		}
	}
	return gen.GetMe200JSONResponse(toUser(user)), nil
}

// (PATCH /me)
func (h *Handlers) UpdateMe(ctx context.Context, req gen.UpdateMeRequestObject) (gen.UpdateMeResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := deref(req.Body)
	patch := auth.UserPatch{
		Name:      in.Name,
		Username:  patchField(in.Username),
		Bio:       patchField(in.Bio),
		Location:  patchField(in.Location),
		BirthDate: patchDate(in.BirthDate),
		Locale:    (*string)(in.Locale),
		Timezone:  (*string)(in.Timezone),
	}
	user, err := h.svc.UpdateMe(ctx, p.UserID, patch)
	if err != nil {
		return nil, err
	}
	return gen.UpdateMe200JSONResponse(toUser(user)), nil
}

// (DELETE /me)
func (h *Handlers) DeleteMe(ctx context.Context, req gen.DeleteMeRequestObject) (gen.DeleteMeResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := deref(req.Body)
	if err := h.svc.DeleteMe(ctx, p.UserID, auth.DeleteCredentials{Secret: deref(in.Secret), Password: deref(in.Password)}, clientMeta(ctx)); err != nil {
		return nil, err
	}
	return gen.DeleteMe204Response{}, nil
}

// (GET /me/secret)
func (h *Handlers) GetSecret(ctx context.Context, _ gen.GetSecretRequestObject) (gen.GetSecretResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	secret, err := h.svc.Secret(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	return gen.GetSecret200JSONResponse{Body: gen.Secret{Secret: secret}, Headers: gen.GetSecret200ResponseHeaders{CacheControl: noStore}}, nil
}

// (GET /me/avatar)
func (h *Handlers) GetAvatar(ctx context.Context, req gen.GetAvatarRequestObject) (gen.GetAvatarResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	av, err := h.svc.Avatar(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	if etagMatches(deref(req.Params.IfNoneMatch), av.ETag) {
		return gen.GetAvatar304Response{Headers: gen.GetAvatar304ResponseHeaders{ETag: av.ETag}}, nil
	}
	return gen.GetAvatar200ImageResponse{
		Body:          bytes.NewReader(av.Data),
		ContentType:   av.ContentType,
		ContentLength: int64(len(av.Data)),
		Headers:       gen.GetAvatar200ResponseHeaders{ETag: av.ETag},
	}, nil
}

// etagMatches applies If-None-Match (RFC 9110 §13.1.2: weak comparison, a
// list of tags, or *).
func etagMatches(ifNoneMatch, etag string) bool {
	for _, tag := range strings.Split(ifNoneMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// (POST /me/avatar)
func (h *Handlers) UploadAvatar(ctx context.Context, req gen.UploadAvatarRequestObject) (gen.UploadAvatarResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var image io.Reader
	switch {
	case req.MultipartBody != nil:
		if image, err = filePart(req.MultipartBody); err != nil {
			return nil, err
		}
	case req.Body != nil:
		image = req.Body
	default:
		return nil, auth.Invalid("body", "is required: an image, or multipart/form-data with a file part")
	}
	data, err := io.ReadAll(io.LimitReader(image, h.cfg.AvatarMaxBytes+1))
	if err != nil {
		return nil, auth.Invalid("body", "could not be read")
	}
	if int64(len(data)) > h.cfg.AvatarMaxBytes {
		return nil, errPayloadTooLarge
	}
	if err := h.svc.SetAvatar(ctx, p.UserID, data); err != nil {
		return nil, err
	}
	return gen.UploadAvatar204Response{}, nil
}

// filePart finds the part named file of a multipart upload.
func filePart(r *multipart.Reader) (io.Reader, error) {
	for {
		part, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, auth.Invalid("file", "is required")
		}
		if err != nil {
			return nil, auth.Invalid("body", "is not valid multipart/form-data")
		}
		if part.FormName() == "file" {
			return part, nil
		}
	}
}

// (DELETE /me/avatar)
func (h *Handlers) DeleteAvatar(ctx context.Context, _ gen.DeleteAvatarRequestObject) (gen.DeleteAvatarResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeleteAvatar(ctx, p.UserID); err != nil {
		return nil, err
	}
	return gen.DeleteAvatar204Response{}, nil
}

// (GET /me/sessions)
func (h *Handlers) ListSessions(ctx context.Context, _ gen.ListSessionsRequestObject) (gen.ListSessionsResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	sessions, err := h.svc.Sessions(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make(gen.ListSessions200JSONResponse, 0, len(sessions))
	for i := range sessions {
		out = append(out, toSession(&sessions[i], p.SessionID))
	}
	return out, nil
}

// (DELETE /me/sessions/{id})
func (h *Handlers) DeleteSession(ctx context.Context, req gen.DeleteSessionRequestObject) (gen.DeleteSessionResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.RevokeSession(ctx, p, req.ID.String()); err != nil {
		return nil, err
	}
	return gen.DeleteSession204Response{}, nil
}

// (PUT /me/password)
func (h *Handlers) ChangePassword(ctx context.Context, req gen.ChangePasswordRequestObject) (gen.ChangePasswordResponseObject, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := deref(req.Body)
	if err := h.svc.ChangePassword(ctx, p, in.CurrentPassword, in.NewPassword, clientMeta(ctx)); err != nil {
		return nil, err
	}
	return gen.ChangePassword204Response{}, nil
}

// rawImageBody hands a raw image upload's body to the strict handler: the
// generated code only recognises the literal media range "image/*".
func rawImageBody(next gen.StrictHandlerFunc, operationID string) gen.StrictHandlerFunc {
	if operationID != "UploadAvatar" {
		return next
	}
	return func(c echo.Context, request any) (any, error) {
		if req, ok := request.(gen.UploadAvatarRequestObject); ok && req.Body == nil && req.MultipartBody == nil &&
			strings.HasPrefix(req.ContentType, "image/") {
			req.Body = c.Request().Body
			request = req
		}
		return next(c, request)
	}
}
