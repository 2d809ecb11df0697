package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"github.com/latchkey-dev/latchkey/auth"
)

// principalKey carries the authenticated auth.Principal on a request context.
type principalKey struct{}

// authAttempt collects what the AuthenticationFunc found, since kin-openapi
// reports only that security failed, not why.
type authAttempt struct {
	principal *auth.Principal
	err       error
}

type attemptKey struct{}

// principalFrom returns the caller of an authenticated operation.
func principalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// multipartOverhead is what a multipart envelope may add around an avatar.
const multipartOverhead = 16 << 10

// validateRequests routes a request to its spec operation, enforces the body
// limit, validates parameters, body and bearer token against the spec, and
// puts the principal on the request context.
func (s *Server) validateRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		route, pathParams, err := s.router.FindRoute(req)
		switch {
		case errors.Is(err, routers.ErrMethodNotAllowed):
			return echo.ErrMethodNotAllowed
		case err != nil:
			return echo.ErrNotFound
		}

		limit := s.cfg.BodyLimit
		if route.Operation.OperationID == "uploadAvatar" {
			limit = s.cfg.AvatarMaxBytes + multipartOverhead
		}
		body, err := readBody(req, limit)
		if err != nil {
			return err
		}

		attempt := &authAttempt{}
		ctx := context.WithValue(req.Context(), attemptKey{}, attempt)
		input := &openapi3filter.RequestValidationInput{
			Request:    req.WithContext(ctx),
			PathParams: pathParams,
			Route:      route,
			Options: &openapi3filter.Options{
				AuthenticationFunc: s.authenticate,
				MultiError:         true,
				KeepValidatedValue: true,
			},
		}
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			if err := oneOfError(route, req, body, err); err != nil {
				return err
			}
			return requestError(err, attempt)
		}
		if err := unknownFormFields(route, req, body); err != nil {
			return err
		}
		// Hand the handler the validated body (KeepValidatedValue).
		req.Body = input.Request.Body
		// A bearer that was presented must be good, even where the
		// operation also allows anonymous calls (logout by refresh token).
		if attempt.principal == nil && req.Header.Get(echo.HeaderAuthorization) != "" {
			if attempt.err != nil && !errors.Is(attempt.err, auth.ErrUnauthenticated) {
				return attempt.err
			}
			return auth.ErrUnauthenticated
		}
		ctx = context.WithValue(req.Context(), clientMetaKey{}, auth.ClientMeta{UserAgent: req.UserAgent(), IP: c.RealIP()})
		if attempt.principal != nil {
			ctx = context.WithValue(ctx, principalKey{}, *attempt.principal)
		}
		c.SetRequest(req.WithContext(ctx))
		return next(c)
	}
}

// readBody reads the whole body up to limit bytes, refusing a larger one
// early (by its Content-Length) or as soon as it passes the limit.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.ContentLength > limit {
		return nil, auth.ErrPayloadTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "INVALID_REQUEST", Message: "the request body could not be read"}
	}
	if int64(len(data)) > limit {
		return nil, auth.ErrPayloadTooLarge
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	return data, nil
}

// unknownFormFields refuses form fields the schema does not name, as the
// validator already does for JSON members (kin-openapi ignores them in
// forms).
func unknownFormFields(route *routers.Route, req *http.Request, body []byte) error {
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if mediaType != echo.MIMEApplicationForm || route.Operation.RequestBody == nil {
		return nil
	}
	content := route.Operation.RequestBody.Value.Content.Get(mediaType)
	if content == nil || content.Schema == nil {
		return nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return auth.Invalid("body", "is not valid form-urlencoded data")
	}
	var fields []auth.FieldError
	for name := range form {
		if !hasProperty(content.Schema.Value, name) {
			fields = append(fields, auth.FieldError{Field: name, Message: "is not a known field"})
		}
	}
	if len(fields) > 0 {
		sort.Slice(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
		return &auth.ValidationError{Fields: fields}
	}
	return nil
}

// authenticate is the AuthenticationFunc for the bearerAuth scheme.
func (s *Server) authenticate(ctx context.Context, in *openapi3filter.AuthenticationInput) error {
	attempt, _ := ctx.Value(attemptKey{}).(*authAttempt)
	if attempt == nil || in.SecuritySchemeName != "bearerAuth" {
		return errors.New("unsupported security scheme")
	}
	header := in.RequestValidationInput.Request.Header.Get(echo.HeaderAuthorization)
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		attempt.err = auth.ErrUnauthenticated
		return attempt.err
	}
	p, err := s.svc.Authenticate(ctx, strings.TrimSpace(token))
	if err != nil {
		attempt.err = err
		return err
	}
	attempt.principal = &p
	return nil
}

// requestError turns a kin-openapi validation failure into an APIError
// with one detail per broken rule. Values are never echoed back: they may
// be passwords.
func requestError(err error, attempt *authAttempt) error {
	errs := []error{err}
	var multi openapi3.MultiError
	if errors.As(err, &multi) {
		errs = multi
	}
	out := &APIError{Status: http.StatusBadRequest, Code: "INVALID_REQUEST"}
	for _, e := range errs {
		var secErr *openapi3filter.SecurityRequirementsError
		if errors.As(e, &secErr) {
			if attempt.err != nil && !errors.Is(attempt.err, auth.ErrUnauthenticated) {
				return attempt.err
			}
			return auth.ErrUnauthenticated
		}
		var reqErr *openapi3filter.RequestError
		if !errors.As(e, &reqErr) {
			out.Details = append(out.Details, auth.FieldError{Field: "request", Message: "is not valid"})
			continue
		}
		if reqErr.RequestBody != nil && strings.HasPrefix(reqErr.Reason, "header Content-Type has unexpected value") {
			return auth.ErrUnsupportedMedia
		}
		out.Details = append(out.Details, requestErrorDetails(reqErr)...)
	}
	msgs := make([]string, len(out.Details))
	for i, d := range out.Details {
		msgs[i] = d.Field + ": " + d.Message
	}
	out.Message = strings.Join(msgs, "; ")
	if out.Message == "" {
		out.Message = "the request is not valid"
	}
	return out
}

func requestErrorDetails(reqErr *openapi3filter.RequestError) []auth.FieldError {
	field := "body"
	if reqErr.Parameter != nil {
		field = reqErr.Parameter.Name
	}
	if errors.Is(reqErr.Err, openapi3filter.ErrInvalidRequired) {
		return []auth.FieldError{{Field: field, Message: "is required"}}
	}
	var schemaErrs []error
	var multi openapi3.MultiError
	if errors.As(reqErr.Err, &multi) {
		schemaErrs = multi
	} else if reqErr.Err != nil {
		schemaErrs = []error{reqErr.Err}
	}
	var out []auth.FieldError
	for _, e := range schemaErrs {
		var se *openapi3.SchemaError
		if !errors.As(e, &se) {
			out = append(out, auth.FieldError{Field: field, Message: "is not valid"})
			continue
		}
		f := field
		if ptr := se.JSONPointer(); len(ptr) > 0 {
			f = strings.Join(ptr, ".")
		}
		msg := se.Reason
		// kin-openapi reports an unknown member on its parent object:
		// name the member itself, as for unknown form fields.
		if name, ok := unsupportedProperty(se); ok {
			f, msg = name, "is not a known field"
		}
		out = append(out, auth.FieldError{Field: f, Message: msg})
	}
	if len(out) == 0 {
		out = append(out, auth.FieldError{Field: field, Message: "is not valid"})
	}
	return out
}

// unsupportedProperty extracts the member name from kin-openapi's
// `property "x" is unsupported`.
func unsupportedProperty(se *openapi3.SchemaError) (string, bool) {
	if se.SchemaField != "additionalProperties" && se.SchemaField != "properties" {
		return "", false
	}
	name, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(se.Reason, "property "), " is unsupported"))
	return name, err == nil
}
