package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// APIError is a failure on its way to the client as the Error schema. Every
// failure, whatever its origin, becomes one of these in errorHandler. Code
// and Details are the spec's own types (gen.ErrorCode, gen.FieldError), so
// a code renamed or removed in openapi.yaml no longer compiles here.
type APIError struct {
	Status     int
	Code       gen.ErrorCode
	Message    string
	Details    []gen.FieldError
	RetryAfter int // seconds; sets Retry-After when > 0
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// body is the APIError as the Error schema.
func (e *APIError) body() gen.Error {
	b := gen.Error{Code: e.Code, Message: e.Message}
	if len(e.Details) > 0 {
		b.Details = &e.Details
	}
	return b
}

// errPayloadTooLarge is a request body over its limit. Only the edge knows
// limits on bytes in flight, so the sentinel lives here and not in auth.
var errPayloadTooLarge = errors.New("payload too large")

// sentinels maps each domain error to its status, code and public message.
var sentinels = []struct {
	err     error
	status  int
	code    gen.ErrorCode
	message string
}{
	{auth.ErrWeakPassword, http.StatusBadRequest, gen.ErrorCodeWeakPassword, "the password is too weak"},
	{auth.ErrInvalidToken, http.StatusBadRequest, gen.ErrorCodeInvalidToken, "the token is unknown, expired or already used"},
	{auth.ErrInvalidImage, http.StatusBadRequest, gen.ErrorCodeInvalidRequest, "the image cannot be decoded or is larger than 4096×4096"},
	{auth.ErrInvalidCredentials, http.StatusUnauthorized, gen.ErrorCodeInvalidCredentials, "the credentials are not valid"},
	{auth.ErrUnauthenticated, http.StatusUnauthorized, gen.ErrorCodeUnauthenticated, "authentication is required"},
	{auth.ErrRefreshReused, http.StatusUnauthorized, gen.ErrorCodeRefreshTokenReused, "the refresh token was already used; the session is revoked"},
	{auth.ErrInvalidCode, http.StatusUnauthorized, gen.ErrorCodeInvalidCode, "the code is not valid"},
	{auth.ErrRegistrationDisabled, http.StatusForbidden, gen.ErrorCodeRegistrationDisabled, "registration is closed"},
	{auth.ErrEmailNotConfirmed, http.StatusForbidden, gen.ErrorCodeEmailNotConfirmed, "the email address is not confirmed yet"},
	{auth.ErrAccountDisabled, http.StatusForbidden, gen.ErrorCodeAccountDisabled, "the account is disabled"},
	{auth.ErrForbidden, http.StatusForbidden, gen.ErrorCodeForbidden, "not allowed"},
	{auth.ErrNotFound, http.StatusNotFound, gen.ErrorCodeNotFound, "not found"},
	{auth.ErrEmailTaken, http.StatusConflict, gen.ErrorCodeEmailTaken, "the email address is already registered"},
	{auth.ErrUsernameTaken, http.StatusConflict, gen.ErrorCodeUsernameTaken, "the username is already taken"},
	{auth.ErrAlreadyEnabled, http.StatusConflict, gen.ErrorCodeAlreadyEnabled, "two-factor authentication is already enabled"},
	{auth.ErrNotApplicable, http.StatusConflict, gen.ErrorCodeNotApplicable, "not applicable to this kind of account"},
	{auth.ErrLastAdmin, http.StatusConflict, gen.ErrorCodeLastAdmin, "the change would leave no enabled admin"},
	{errPayloadTooLarge, http.StatusRequestEntityTooLarge, gen.ErrorCodePayloadTooLarge, "the request body is too large"},
	{auth.ErrUnsupportedImage, http.StatusUnsupportedMediaType, gen.ErrorCodeUnsupportedMediaType, "the content is not a PNG, JPEG, GIF or WebP image"},
	{auth.ErrOverloaded, http.StatusServiceUnavailable, gen.ErrorCodeOverloaded, "the server is busy; retry shortly"},
	{auth.ErrUnavailable, http.StatusServiceUnavailable, gen.ErrorCodeUnavailable, "the service is temporarily unavailable; retry shortly"},
}

// statusCodes are the codes for failures Echo itself raises (routing, body
// binding), by status.
var statusCodes = map[int]gen.ErrorCode{
	http.StatusBadRequest:            gen.ErrorCodeInvalidRequest,
	http.StatusUnauthorized:          gen.ErrorCodeUnauthenticated,
	http.StatusForbidden:             gen.ErrorCodeForbidden,
	http.StatusNotFound:              gen.ErrorCodeNotFound,
	http.StatusMethodNotAllowed:      gen.ErrorCodeMethodNotAllowed,
	http.StatusRequestEntityTooLarge: gen.ErrorCodePayloadTooLarge,
	http.StatusUnsupportedMediaType:  gen.ErrorCodeUnsupportedMediaType,
	http.StatusTooManyRequests:       gen.ErrorCodeRateLimited,
	http.StatusServiceUnavailable:    gen.ErrorCodeUnavailable,
}

// detailsMessage is the message of a 400 that lists broken rules:
// "field: message; field: message".
func detailsMessage(details []gen.FieldError) string {
	msgs := make([]string, len(details))
	for i, d := range details {
		msgs[i] = d.Field + ": " + d.Message
	}
	return strings.Join(msgs, "; ")
}

// invalidRequest is the 400 INVALID_REQUEST that lists the broken rules.
func invalidRequest(details []gen.FieldError) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: gen.ErrorCodeInvalidRequest, Message: detailsMessage(details), Details: details}
}

// toAPIError turns any error into the APIError the client sees. The second
// result is false for an unexpected error (a 500 that must be logged).
func toAPIError(err error) (*APIError, bool) {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr, true
	}
	var verr *auth.ValidationError
	if errors.As(err, &verr) {
		e := &APIError{Status: http.StatusBadRequest, Code: gen.ErrorCodeInvalidRequest, Message: verr.Error(), Details: toFieldErrors(verr.Fields)}
		if errors.Is(verr, auth.ErrWeakPassword) {
			e.Code = gen.ErrorCodeWeakPassword
		}
		return e, true
	}
	var limited *auth.RateLimitError
	if errors.As(err, &limited) {
		return &APIError{Status: http.StatusTooManyRequests, Code: gen.ErrorCodeRateLimited, Message: "too many attempts; retry later",
			RetryAfter: int(math.Ceil(max(limited.RetryAfter.Seconds(), 1)))}, true
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			e := &APIError{Status: s.status, Code: s.code, Message: s.message}
			if s.status == http.StatusServiceUnavailable {
				e.RetryAfter = 1
			}
			return e, true
		}
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return &APIError{Status: http.StatusRequestEntityTooLarge, Code: gen.ErrorCodePayloadTooLarge, Message: "the request body is too large"}, true
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if code, ok := statusCodes[he.Code]; ok {
			return &APIError{Status: he.Code, Code: code, Message: publicMessage(he)}, true
		}
	}
	return &APIError{Status: http.StatusInternalServerError, Code: gen.ErrorCodeInternal, Message: "internal error"}, false
}

// publicMessage is the text of an Echo error that is safe to show: Echo's
// own messages are, wrapped internal errors are not.
func publicMessage(he *echo.HTTPError) string {
	if msg, ok := he.Message.(string); ok && he.Internal == nil {
		return msg
	}
	return http.StatusText(he.Code)
}

// errorHandler is Echo's HTTPErrorHandler: it renders every failure as the
// Error schema and logs the unexpected ones with the request id.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		apiErr, expected := toAPIError(err)
		switch {
		case !expected:
			logger.ErrorContext(c.Request().Context(), "request failed",
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
				"method", c.Request().Method, "route", c.Path(), "error", err)
		case errors.Is(err, auth.ErrUnavailable):
			logger.WarnContext(c.Request().Context(), "unavailable: the database cannot be reached",
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
				"method", c.Request().Method, "route", c.Path(), "error", err)
		}
		if apiErr.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(apiErr.RetryAfter))
		}
		if apiErr.Status == http.StatusUnauthorized {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="latchkey"`)
		}
		if c.Request().Method == http.MethodHead {
			// The headers GET would get, without the body.
			c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
			err = c.NoContent(apiErr.Status)
		} else {
			err = c.JSON(apiErr.Status, apiErr.body())
		}
		if err != nil {
			logger.WarnContext(c.Request().Context(), "writing error response", "error", err)
		}
	}
}
