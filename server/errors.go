package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/latchkey-dev/latchkey/auth"
)

// APIError is a failure on its way to the client as the Error schema. Every
// failure, whatever its origin, becomes one of these in errorHandler.
type APIError struct {
	Status     int
	Code       string
	Message    string
	Details    []auth.FieldError
	RetryAfter int // seconds; sets Retry-After when > 0
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// errorBody is the JSON form of the Error schema.
type errorBody struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Details []errorDetail `json:"details,omitempty"`
}

type errorDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// sentinels maps each domain error to its status, code and public message.
var sentinels = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{auth.ErrWeakPassword, http.StatusBadRequest, "WEAK_PASSWORD", "the password is too weak"},
	{auth.ErrInvalidToken, http.StatusBadRequest, "INVALID_TOKEN", "the token is unknown, expired or already used"},
	{auth.ErrInvalidImage, http.StatusBadRequest, "INVALID_REQUEST", "the image cannot be decoded or is larger than 4096×4096"},
	{auth.ErrInvalidCredentials, http.StatusUnauthorized, "INVALID_CREDENTIALS", "the credentials are not valid"},
	{auth.ErrUnauthenticated, http.StatusUnauthorized, "UNAUTHENTICATED", "authentication is required"},
	{auth.ErrRefreshReused, http.StatusUnauthorized, "REFRESH_TOKEN_REUSED", "the refresh token was already used; the session is revoked"},
	{auth.ErrInvalidCode, http.StatusUnauthorized, "INVALID_CODE", "the code is not valid"},
	{auth.ErrRegistrationDisabled, http.StatusForbidden, "REGISTRATION_DISABLED", "registration is closed"},
	{auth.ErrEmailNotConfirmed, http.StatusForbidden, "EMAIL_NOT_CONFIRMED", "the email address is not confirmed yet"},
	{auth.ErrAccountDisabled, http.StatusForbidden, "ACCOUNT_DISABLED", "the account is disabled"},
	{auth.ErrForbidden, http.StatusForbidden, "FORBIDDEN", "not allowed"},
	{auth.ErrNotFound, http.StatusNotFound, "NOT_FOUND", "not found"},
	{auth.ErrEmailTaken, http.StatusConflict, "EMAIL_TAKEN", "the email address is already registered"},
	{auth.ErrUsernameTaken, http.StatusConflict, "USERNAME_TAKEN", "the username is already taken"},
	{auth.ErrAlreadyEnabled, http.StatusConflict, "ALREADY_ENABLED", "two-factor authentication is already enabled"},
	{auth.ErrNotApplicable, http.StatusConflict, "NOT_APPLICABLE", "not applicable to this kind of account"},
	{auth.ErrLastAdmin, http.StatusConflict, "LAST_ADMIN", "the change would leave no enabled admin"},
	{auth.ErrPayloadTooLarge, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "the request body is too large"},
	{auth.ErrUnsupportedMedia, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "the content is not a PNG, JPEG, GIF or WebP image"},
	{auth.ErrOverloaded, http.StatusServiceUnavailable, "OVERLOADED", "the server is busy; retry shortly"},
	{auth.ErrUnavailable, http.StatusServiceUnavailable, "UNAVAILABLE", "the service is temporarily unavailable; retry shortly"},
}

// statusCodes are the codes for failures Echo itself raises (routing, body
// binding), by status.
var statusCodes = map[int]string{
	http.StatusBadRequest:            "INVALID_REQUEST",
	http.StatusUnauthorized:          "UNAUTHENTICATED",
	http.StatusForbidden:             "FORBIDDEN",
	http.StatusNotFound:              "NOT_FOUND",
	http.StatusMethodNotAllowed:      "METHOD_NOT_ALLOWED",
	http.StatusRequestEntityTooLarge: "PAYLOAD_TOO_LARGE",
	http.StatusUnsupportedMediaType:  "UNSUPPORTED_MEDIA_TYPE",
	http.StatusTooManyRequests:       "RATE_LIMITED",
	http.StatusServiceUnavailable:    "UNAVAILABLE",
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
		e := &APIError{Status: http.StatusBadRequest, Code: "INVALID_REQUEST", Message: verr.Error(), Details: verr.Fields}
		if errors.Is(verr, auth.ErrWeakPassword) {
			e.Code = "WEAK_PASSWORD"
		}
		return e, true
	}
	var limited *auth.RateLimitError
	if errors.As(err, &limited) {
		return &APIError{Status: http.StatusTooManyRequests, Code: "RATE_LIMITED", Message: "too many attempts; retry later",
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
		return &APIError{Status: http.StatusRequestEntityTooLarge, Code: "PAYLOAD_TOO_LARGE", Message: "the request body is too large"}, true
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if code, ok := statusCodes[he.Code]; ok {
			return &APIError{Status: he.Code, Code: code, Message: publicMessage(he)}, true
		}
	}
	return &APIError{Status: http.StatusInternalServerError, Code: "INTERNAL", Message: "internal error"}, false
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
		body := errorBody{Code: apiErr.Code, Message: apiErr.Message}
		for _, d := range apiErr.Details {
			body.Details = append(body.Details, errorDetail(d))
		}
		if c.Request().Method == http.MethodHead {
			// The headers GET would get, without the body.
			c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
			err = c.NoContent(apiErr.Status)
		} else {
			err = c.JSON(apiErr.Status, body)
		}
		if err != nil {
			logger.WarnContext(c.Request().Context(), "writing error response", "error", err)
		}
	}
}
