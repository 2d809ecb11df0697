package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"github.com/latchkey-dev/latchkey/gen"
)

// Request bodies that are a oneOf of objects (SignInRequest: exactly one
// credential; RegisterRequest: one of two kinds of account) are generated
// as unions. This file explains their validation failures branch by branch
// and hands the handlers their form bodies.

// unionFields decodes a generated union (its JSON) into dst, a flat struct
// of every branch's fields.
func unionFields(u json.Marshaler, dst any) error {
	raw, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, dst)
}

// hasProperty tells whether schema, or one of its oneOf branches, names
// the property.
func hasProperty(schema *openapi3.Schema, name string) bool {
	if _, ok := schema.Properties[name]; ok {
		return true
	}
	for _, b := range schema.OneOf {
		if b.Value != nil && hasProperty(b.Value, name) {
			return true
		}
	}
	return false
}

// unionForms fills the form body of the operations whose body is a union:
// the generated form binder cannot bind a union, so the handler gets the
// value the validator decoded from the form (and validated).
func unionForms(next gen.StrictHandlerFunc, operationID string) gen.StrictHandlerFunc {
	return func(c echo.Context, request any) (any, error) {
		var err error
		switch r := request.(type) {
		case gen.SignInRequestObject:
			if r.FormdataBody != nil {
				err = validatedForm(c.Request(), r.FormdataBody)
			}
		case gen.RegisterRequestObject:
			if r.FormdataBody != nil {
				err = validatedForm(c.Request(), r.FormdataBody)
			}
		}
		if err != nil {
			return nil, err
		}
		return next(c, request)
	}
}

func validatedForm(req *http.Request, dst json.Unmarshaler) error {
	vb, ok := req.Body.(interface{ ValidatedValue() any })
	if !ok {
		return errors.New("server: form body without its validated value")
	}
	raw, err := json.Marshal(vb.ValidatedValue())
	if err != nil {
		return err
	}
	return dst.UnmarshalJSON(raw)
}

// oneOfError explains a request whose body fails a root oneOf schema by the
// branch it comes closest to (the fewest broken rules, an unknown member
// counting as one), and lists the branches. It answers nil when err is
// not such a failure (or not only one), leaving it to requestError.
func oneOfError(route *routers.Route, req *http.Request, body []byte, err error) error {
	if route.Operation.RequestBody == nil || route.Operation.RequestBody.Value == nil {
		return nil
	}
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	mediaType = strings.ToLower(mediaType)
	content := route.Operation.RequestBody.Value.Content.Get(mediaType)
	if content == nil || content.Schema == nil || content.Schema.Value == nil || len(content.Schema.Value.OneOf) == 0 {
		return nil
	}
	errs := []error{err}
	var multi openapi3.MultiError
	if errors.As(err, &multi) {
		errs = multi
	}
	for _, e := range errs {
		var reqErr *openapi3filter.RequestError
		var schemaErr *openapi3.SchemaError
		if !errors.As(e, &reqErr) || reqErr.RequestBody == nil || !errors.As(reqErr.Err, &schemaErr) {
			return nil // a parameter, security or decoding failure
		}
	}
	var value any
	switch mediaType {
	case echo.MIMEApplicationJSON:
		if json.Unmarshal(body, &value) != nil {
			return nil
		}
	case echo.MIMEApplicationForm:
		v, err := openapi3filter.UrlencodedBodyDecoder(bytes.NewReader(body), req.Header, content.Schema, nil)
		if err != nil {
			return nil
		}
		value = v
	default:
		return nil
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return nil
	}

	var best []gen.FieldError
	bestUnknown := 0
	var alternatives []string
	for _, branch := range content.Schema.Value.OneOf {
		b := branch.Value
		if b == nil {
			continue
		}
		alternatives = append(alternatives, describeBranch(b))
		var fields []gen.FieldError
		unknown := 0
		for name := range obj {
			if _, ok := b.Properties[name]; !ok {
				msg := "is not a known field"
				if hasProperty(content.Schema.Value, name) {
					msg = "is not a field of " + b.Title
				}
				fields = append(fields, gen.FieldError{Field: name, Message: msg})
				unknown++
			}
		}
		if err := b.VisitJSON(withoutUnknown(obj, b), openapi3.MultiErrors()); err != nil {
			fields = append(fields, requestErrorDetails(&openapi3filter.RequestError{RequestBody: route.Operation.RequestBody.Value, Err: err})...)
		}
		sort.Slice(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
		// The fewest broken rules; on a tie, the branch that takes every
		// member sent ({"name", "password"}: a password account without
		// its email, not a secret account with a stray password).
		if best == nil || len(fields) < len(best) || (len(fields) == len(best) && unknown < bestUnknown) {
			best, bestUnknown = fields, unknown
		}
	}
	if len(best) == 0 {
		return nil
	}
	return &APIError{
		Status:  http.StatusBadRequest,
		Code:    gen.ErrorCodeInvalidRequest,
		Message: detailsMessage(best) + " (send one of: " + strings.Join(alternatives, "; ") + ")",
		Details: best,
	}
}

// withoutUnknown is obj without the members branch does not name (they are
// reported on their own, once).
func withoutUnknown(obj map[string]any, branch *openapi3.Schema) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if _, ok := branch.Properties[k]; ok {
			out[k] = v
		}
	}
	return out
}

// describeBranch says a oneOf branch in words: its title and required
// fields, "a password account by email (email and password)".
func describeBranch(b *openapi3.Schema) string {
	req := slices.Clone(b.Required)
	fields := strings.Join(req, " and ")
	if len(req) > 2 {
		fields = strings.Join(req[:len(req)-1], ", ") + " and " + req[len(req)-1]
	}
	if b.Title == "" {
		return fields
	}
	return b.Title + " (" + fields + ")"
}
