package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/latchkey-dev/latchkey/gen"
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
		normaliseContentType(req)
		route, pathParams, err := s.router.FindRoute(req)
		switch {
		case errors.Is(err, routers.ErrMethodNotAllowed):
			allow := s.allowedMethods(req)
			if len(allow) == 0 {
				return echo.ErrMethodNotAllowed
			}
			c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
			return &APIError{Status: http.StatusMethodNotAllowed, Code: gen.ErrorCodeMethodNotAllowed,
				Message: req.Method + " is not allowed here; this path takes " + orList(allow)}
		case err != nil:
			return echo.ErrNotFound
		}
		apiCacheControl(c, route.Operation.OperationID)

		limit := s.cfg.BodyLimit
		if route.Operation.OperationID == "uploadAvatar" {
			limit = s.cfg.AvatarMaxBytes + multipartOverhead
		}
		body, err := readBody(req, limit)
		if err != nil {
			return err
		}
		if err := mediaTypeHint(route, req, body); err != nil {
			return err
		}
		if err := formFromBody(req, body); err != nil {
			return err
		}
		if err := unknownQueryFields(route, req); err != nil {
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
			return requestError(err, attempt, route)
		}
		if err := unknownFormFields(route, req); err != nil {
			return err
		}
		// Hand the handler the validated body (KeepValidatedValue).
		req.Body = input.Request.Body
		// A bearer that was presented must be good where the operation
		// takes one, even when it also allows anonymous calls (logout by
		// refresh token). Public operations ignore the header: a client
		// that sends its (possibly stale) token on every call must still
		// be able to sign in and refresh.
		if attempt.principal == nil && takesBearer(route) && req.Header.Get(echo.HeaderAuthorization) != "" {
			if attempt.err != nil && !errors.Is(attempt.err, auth.ErrUnauthenticated) {
				return attempt.err
			}
			return auth.ErrUnauthenticated
		}
		meta := auth.ClientMeta{UserAgent: req.UserAgent(), IP: c.RealIP()}
		ctx = auth.WithClientMeta(context.WithValue(req.Context(), clientMetaKey{}, meta), meta) // the events' too
		if attempt.principal != nil {
			ctx = context.WithValue(ctx, principalKey{}, *attempt.principal)
		}
		c.SetRequest(req.WithContext(ctx))
		return next(c)
	}
}

// takesBearer reports whether the operation's security lists bearerAuth.
func takesBearer(route *routers.Route) bool {
	security := route.Operation.Security
	if security == nil && route.Spec != nil {
		security = &route.Spec.Security
	}
	if security == nil {
		return false
	}
	for _, req := range *security {
		if _, ok := req["bearerAuth"]; ok {
			return true
		}
	}
	return false
}

// allowedMethods lists the methods the spec has for the request's path,
// for the Allow header of a 405.
func (s *Server) allowedMethods(req *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := req.Clone(req.Context())
		probe.Method = m
		if _, _, err := s.router.FindRoute(probe); err == nil {
			allow = append(allow, m)
		}
	}
	return allow
}

// normaliseContentType lower-cases the media type of the request's
// Content-Type (RFC 9110: it is case-insensitive), keeping its parameters
// as they are, so that every later check, the validator's and the
// generated binder's prefix matches included, sees one spelling.
func normaliseContentType(req *http.Request) {
	ct := req.Header.Get(echo.HeaderContentType)
	if ct == "" {
		return
	}
	mt, params, found := strings.Cut(ct, ";")
	norm := strings.ToLower(strings.TrimSpace(mt))
	if found {
		norm += ";" + params
	}
	if norm != ct {
		req.Header.Set(echo.HeaderContentType, norm)
	}
}

// mediaType is the (lower-case) media type of the request's body.
func mediaType(req *http.Request) string {
	mt, _, _ := strings.Cut(req.Header.Get(echo.HeaderContentType), ";")
	return strings.TrimSpace(mt)
}

// acceptedMediaTypes lists the media types an operation's body may have.
func acceptedMediaTypes(route *routers.Route) []string {
	if route.Operation.RequestBody == nil || route.Operation.RequestBody.Value == nil {
		return nil
	}
	var out []string
	for mt := range route.Operation.RequestBody.Value.Content {
		out = append(out, mt)
	}
	sort.Strings(out)
	return out
}

// unsupportedMedia is the 415 of an operation: it names the media types
// the operation takes, and adds hint when there is one.
func unsupportedMedia(route *routers.Route, hint string) error {
	types := acceptedMediaTypes(route)
	msg := "this operation takes no request body"
	if len(types) > 0 {
		msg = "this operation takes " + orList(types)
	}
	if hint != "" {
		msg += "; " + hint
	}
	return &APIError{Status: http.StatusUnsupportedMediaType, Code: gen.ErrorCodeUnsupportedMediaType, Message: msg}
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// looksLikeJSON reports whether a body starts like a JSON object or array.
func looksLikeJSON(body []byte) bool {
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// mediaTypeHint refuses, with a hint, a JSON body sent under another
// media type (curl -d sends form-urlencoded; fetch sends text/plain) to an
// operation that takes JSON.
func mediaTypeHint(route *routers.Route, req *http.Request, body []byte) error {
	if !looksLikeJSON(body) || route.Operation.RequestBody == nil {
		return nil
	}
	mt := mediaType(req)
	if mt == echo.MIMEApplicationJSON || route.Operation.RequestBody.Value.Content.Get(echo.MIMEApplicationJSON) == nil {
		return nil
	}
	if mt == "" {
		return unsupportedMedia(route, "the body looks like JSON but has no Content-Type: send Content-Type: application/json")
	}
	return unsupportedMedia(route, "the body looks like JSON but was sent as "+mt+": send Content-Type: application/json")
}

// formFromBody parses a form-urlencoded body into the request's Form and
// PostForm, so that everything reading form fields later (the generated
// binder calls FormParams, which would merge the query string) sees the
// body's fields only: a credential in a URL is never accepted.
func formFromBody(req *http.Request, body []byte) error {
	if mediaType(req) != echo.MIMEApplicationForm {
		return nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return auth.Invalid("body", "is not valid form-urlencoded data")
	}
	req.PostForm = form
	req.Form = form
	return nil
}

// unknownQueryFields refuses, on an operation with a request body, query
// parameters it does not declare. One that names a body field gets a
// message saying where it belongs; the request fails whatever else it
// carries, so a password put in a URL by mistake is never used. Operations
// without a body ignore undeclared parameters (a cache buster, say).
func unknownQueryFields(route *routers.Route, req *http.Request) error {
	query := req.URL.Query()
	if len(query) == 0 || route.Operation.RequestBody == nil {
		return nil
	}
	declared := map[string]bool{}
	for _, params := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	bodyField := func(name string) bool {
		if rb := route.Operation.RequestBody; rb != nil && rb.Value != nil {
			for _, content := range rb.Value.Content {
				if content.Schema != nil && content.Schema.Value != nil && hasProperty(content.Schema.Value, name) {
					return true
				}
			}
		}
		return false
	}
	var fields []gen.FieldError
	for name := range query {
		switch {
		case declared[name]:
		case bodyField(name):
			fields = append(fields, gen.FieldError{Field: name, Message: "belongs in the request body, never in the URL"})
		default:
			fields = append(fields, gen.FieldError{Field: name, Message: "is not a known query parameter"})
		}
	}
	if len(fields) > 0 {
		sort.Slice(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
		return invalidRequest(fields)
	}
	return nil
}

// readBody reads the whole body up to limit bytes, refusing a larger one
// early (by its Content-Length) or as soon as it passes the limit.
func readBody(req *http.Request, limit int64) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.ContentLength > limit {
		return nil, errPayloadTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, &APIError{Status: http.StatusBadRequest, Code: gen.ErrorCodeInvalidRequest, Message: "the request body could not be read"}
	}
	if int64(len(data)) > limit {
		return nil, errPayloadTooLarge
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	return data, nil
}

// unknownFormFields refuses form fields the schema does not name, as the
// validator already does for JSON members (kin-openapi ignores them in
// forms).
func unknownFormFields(route *routers.Route, req *http.Request) error {
	mt := mediaType(req)
	if mt != echo.MIMEApplicationForm || route.Operation.RequestBody == nil {
		return nil
	}
	content := route.Operation.RequestBody.Value.Content.Get(mt)
	if content == nil || content.Schema == nil {
		return nil
	}
	form := req.PostForm // parsed from the body by formFromBody
	var fields []gen.FieldError
	for name := range form {
		if !hasProperty(content.Schema.Value, name) {
			fields = append(fields, gen.FieldError{Field: name, Message: "is not a known field"})
		}
	}
	if len(fields) > 0 {
		sort.Slice(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
		return invalidRequest(fields)
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
// with one detail per broken rule, each saying the rule in words. Values
// are never echoed back: they may be passwords.
func requestError(err error, attempt *authAttempt, route *routers.Route) error {
	errs := []error{err}
	var multi openapi3.MultiError
	if errors.As(err, &multi) {
		errs = multi
	}
	var details []gen.FieldError
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
			details = append(details, gen.FieldError{Field: "request", Message: "is not valid"})
			continue
		}
		if reqErr.RequestBody != nil && strings.HasPrefix(reqErr.Reason, "header Content-Type has unexpected value") {
			return unsupportedMedia(route, "")
		}
		details = append(details, requestErrorDetails(reqErr)...)
	}
	out := invalidRequest(details)
	if out.Message == "" {
		out.Message = "the request is not valid"
	}
	return out
}

func requestErrorDetails(reqErr *openapi3filter.RequestError) []gen.FieldError {
	field := "body"
	var paramSchema *openapi3.Schema
	if reqErr.Parameter != nil {
		field = reqErr.Parameter.Name
		if reqErr.Parameter.Schema != nil {
			paramSchema = reqErr.Parameter.Schema.Value
		}
	}
	if errors.Is(reqErr.Err, openapi3filter.ErrInvalidRequired) {
		return []gen.FieldError{{Field: field, Message: "is required"}}
	}
	var parseErr *openapi3filter.ParseError
	if errors.As(reqErr.Err, &parseErr) {
		if reqErr.Parameter == nil {
			return []gen.FieldError{{Field: field, Message: "is not valid " + mediaTypeWords(reqErr)}}
		}
		return []gen.FieldError{{Field: field, Message: typeRule(paramSchema)}}
	}
	var schemaErrs []error
	var multi openapi3.MultiError
	if errors.As(reqErr.Err, &multi) {
		schemaErrs = multi
	} else if reqErr.Err != nil {
		schemaErrs = []error{reqErr.Err}
	}
	var out []gen.FieldError
	for _, e := range schemaErrs {
		var se *openapi3.SchemaError
		if !errors.As(e, &se) {
			out = append(out, gen.FieldError{Field: field, Message: "is not valid"})
			continue
		}
		f := field
		if ptr := se.JSONPointer(); len(ptr) > 0 {
			f = strings.Join(ptr, ".")
		}
		msg := schemaRule(se)
		// kin-openapi reports an unknown member on its parent object:
		// name the member itself, as for unknown form fields.
		if name, ok := unsupportedProperty(se); ok {
			f, msg = name, "is not a known field"
		}
		out = append(out, gen.FieldError{Field: f, Message: msg})
	}
	if len(out) == 0 {
		out = append(out, gen.FieldError{Field: field, Message: "is not valid"})
	}
	return out
}

// mediaTypeWords names the body's media type for "is not valid …".
func mediaTypeWords(reqErr *openapi3filter.RequestError) string {
	if strings.Contains(reqErr.Reason, "form") {
		return "form-urlencoded data"
	}
	return "JSON"
}

// patternRules say in words what each pattern of the spec means: a
// regular expression is no message for people.
var patternRules = map[string]string{
	`^[A-Za-z0-9_.-]{3,30}$`:              "must be 3 to 30 letters, digits, '_', '.' or '-'",
	`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`: "must be a language tag such as en or fr-CH",
}

// formatRules say in words what each string format means.
var formatRules = map[string]string{
	"email":     "must be a valid email address",
	"date":      "must be a real date written YYYY-MM-DD",
	"date-time": "must be a date and time in RFC 3339 form (2006-01-02T15:04:05Z)",
	"uuid":      "must be a UUID",
}

// schemaRule says in words which rule of its schema a value broke.
func schemaRule(se *openapi3.SchemaError) string {
	sc := se.Schema
	if sc == nil {
		return "is not valid"
	}
	switch se.SchemaField {
	case "required":
		return "is required"
	case "type", "nullable":
		if se.Value == nil {
			return "must not be null"
		}
		return typeRule(sc)
	case "enum":
		var vals []string
		for _, v := range sc.Enum {
			vals = append(vals, fmt.Sprint(v))
		}
		return "must be " + orList(vals)
	case "minLength", "maxLength":
		switch {
		case sc.MaxLength != nil && sc.MinLength > 0:
			return fmt.Sprintf("must be %d to %d characters", sc.MinLength, *sc.MaxLength)
		case sc.MaxLength != nil:
			return fmt.Sprintf("must be at most %d characters", *sc.MaxLength)
		case sc.MinLength == 1:
			return "must not be empty"
		default:
			return fmt.Sprintf("must be at least %d characters", sc.MinLength)
		}
	case "minimum", "maximum":
		switch {
		case sc.Min != nil && sc.Max != nil:
			return fmt.Sprintf("must be from %g to %g", *sc.Min, *sc.Max)
		case sc.Min != nil:
			return fmt.Sprintf("must be at least %g", *sc.Min)
		case sc.Max != nil:
			return fmt.Sprintf("must be at most %g", *sc.Max)
		}
	case "pattern":
		if rule, ok := patternRules[sc.Pattern]; ok {
			return rule
		}
		return "is not in the expected form"
	case "format":
		if rule, ok := formatRules[sc.Format]; ok {
			return rule
		}
		return "is not in the expected form"
	case "oneOf", "anyOf", "allOf":
		return "does not match any of the accepted forms"
	}
	return "is not valid"
}

// typeRule says which JSON type a schema wants.
func typeRule(sc *openapi3.Schema) string {
	if sc == nil || sc.Type == nil {
		return "is not valid"
	}
	switch {
	case sc.Type.Is(openapi3.TypeString):
		if rule, ok := formatRules[sc.Format]; ok {
			return rule
		}
		return "must be a string"
	case sc.Type.Is(openapi3.TypeInteger):
		return "must be a whole number"
	case sc.Type.Is(openapi3.TypeNumber):
		return "must be a number"
	case sc.Type.Is(openapi3.TypeBoolean):
		return "must be true or false"
	case sc.Type.Is(openapi3.TypeArray):
		return "must be a list"
	case sc.Type.Is(openapi3.TypeObject):
		return "must be an object"
	}
	return "is not valid"
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
