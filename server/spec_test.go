package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/gen"
)

// wantOperations is the contract's list of operations (API.md): adding,
// removing or renaming one must be a deliberate change here too.
var wantOperations = map[string]string{
	"POST /register":                    "register",
	"POST /auth":                        "signIn",
	"POST /auth/two-factor":             "signInTwoFactor",
	"POST /auth/refresh":                "refreshToken",
	"POST /auth/logout":                 "logout",
	"POST /auth/confirm":                "confirmEmail",
	"POST /auth/confirm/resend":         "resendConfirmation",
	"POST /auth/password/reset-request": "requestPasswordReset",
	"POST /auth/password/reset":         "resetPassword",
	"GET /me":                           "getMe",
	"PATCH /me":                         "updateMe",
	"DELETE /me":                        "deleteMe",
	"PUT /me/password":                  "changePassword",
	"PUT /me/email":                     "changeEmail",
	"GET /me/secret":                    "getSecret",
	"GET /me/avatar":                    "getAvatar",
	"POST /me/avatar":                   "uploadAvatar",
	"DELETE /me/avatar":                 "deleteAvatar",
	"GET /me/sessions":                  "listSessions",
	"DELETE /me/sessions/{id}":          "deleteSession",
	"POST /me/two-factor":               "enrollTwoFactor",
	"POST /me/two-factor/confirm":       "confirmTwoFactor",
	"DELETE /me/two-factor":             "disableTwoFactor",
	// Administration (API.md).
	"GET /me/events":                        "listMyEvents",
	"GET /admin/users":                      "adminListUsers",
	"GET /admin/users/{id}":                 "adminGetUser",
	"PATCH /admin/users/{id}":               "adminUpdateUser",
	"DELETE /admin/users/{id}":              "adminDeleteUser",
	"GET /admin/users/{id}/sessions":        "adminListUserSessions",
	"DELETE /admin/users/{id}/sessions":     "adminRevokeUserSessions",
	"POST /admin/users/{id}/password-reset": "adminRequestPasswordReset",
	"GET /admin/events":                     "adminListEvents",
}

// tokenResponses are the success responses that carry a token or a secret
// and so must declare Cache-Control: no-store.
var tokenResponses = map[string]string{
	"register":         "201",
	"signIn":           "200",
	"signInTwoFactor":  "200",
	"refreshToken":     "200",
	"confirmEmail":     "200",
	"getSecret":        "200",
	"enrollTwoFactor":  "200",
	"confirmTwoFactor": "200",
}

var allowedTags = []string{"Accounts", "Sessions", "Profile", "Two-factor", "Administration"}

type operation struct {
	key  string // "METHOD /path"
	path string
	op   *openapi3.Operation
}

// loadSpec returns the spec embedded in package gen, validated.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := gen.GetSwagger()
	if err != nil {
		t.Fatalf("gen.GetSwagger: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the spec is not valid OpenAPI: %v", err)
	}
	return doc
}

func operations(doc *openapi3.T) []operation {
	var ops []operation
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			ops = append(ops, operation{key: method + " " + path, path: path, op: op})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.key, b.key) })
	return ops
}

func TestSpecIsValid(t *testing.T) {
	doc := loadSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/api" {
		t.Errorf("servers = %v, want exactly [{url: /api}]", doc.Servers)
	}
}

// TestEmbeddedSpecIsCurrent fails when openapi.yaml changed but gen/ was not
// regenerated. The embedded spec is openapi.yaml without the operations
// tagged Operational (gen/oapi-codegen.yaml excludes them).
func TestEmbeddedSpecIsCurrent(t *testing.T) {
	embedded := loadSpec(t)
	onDisk, err := openapi3.NewLoader().LoadFromData(latchkey.OpenAPIYAML)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	for _, item := range onDisk.Paths.Map() {
		for method, op := range item.Operations() {
			if slices.Contains(op.Tags, "Operational") {
				item.SetOperation(method, nil)
			}
		}
	}
	a, err := json.Marshal(embedded)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(onDisk)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("gen/ is stale: openapi.yaml differs from the spec embedded in gen; run `go generate ./gen/`")
	}
}

func TestSpecOperations(t *testing.T) {
	doc := loadSpec(t)
	got := map[string]string{}
	seen := map[string]string{}
	for _, o := range operations(doc) {
		id := o.op.OperationID
		got[o.key] = id
		if id == "" {
			t.Errorf("%s: no operationId", o.key)
			continue
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("operationId %q used by both %s and %s", id, prev, o.key)
		}
		seen[id] = o.key
		if strings.TrimSpace(o.op.Summary) == "" {
			t.Errorf("%s (%s): no summary", o.key, id)
		}
		if strings.TrimSpace(o.op.Description) == "" {
			t.Errorf("%s (%s): no description", o.key, id)
		}
		if len(o.op.Tags) == 0 {
			t.Errorf("%s (%s): no tag", o.key, id)
		}
		for _, tag := range o.op.Tags {
			if !slices.Contains(allowedTags, tag) {
				t.Errorf("%s (%s): tag %q is not one of %v", o.key, id, tag, allowedTags)
			}
		}
	}
	for key, id := range wantOperations {
		if got[key] != id {
			t.Errorf("%s: operationId %q, want %q", key, got[key], id)
		}
	}
	for key, id := range got {
		if _, ok := wantOperations[key]; !ok {
			t.Errorf("%s (%s): not in the contract's list of operations", key, id)
		}
	}
}

func TestSpecErrorResponsesUseErrorSchema(t *testing.T) {
	doc := loadSpec(t)
	errSchema := doc.Components.Schemas["Error"]
	if errSchema == nil || errSchema.Value == nil {
		t.Fatal("components/schemas/Error is missing")
	}
	for _, o := range operations(doc) {
		for status, ref := range o.op.Responses.Map() {
			code, err := strconv.Atoi(status)
			if err != nil {
				t.Errorf("%s: response %q is not a fixed status", o.op.OperationID, status)
				continue
			}
			if code < 400 {
				continue
			}
			content := ref.Value.Content
			if got := slices.Sorted(maps.Keys(content)); !slices.Equal(got, []string{"application/json"}) {
				t.Errorf("%s %s: content types %v, want [application/json]", o.op.OperationID, status, got)
				continue
			}
			if s := content["application/json"].Schema; s == nil || s.Value != errSchema.Value {
				t.Errorf("%s %s: body is not the Error schema", o.op.OperationID, status)
			}
			if !strings.HasPrefix(ref.Ref, "#/components/responses/") {
				t.Errorf("%s %s: not a shared components/responses entry", o.op.OperationID, status)
			}
		}
	}
}

// TestSpecStatuses checks the statuses every operation must document: the
// edge answers them whatever the handler does.
func TestSpecStatuses(t *testing.T) {
	doc := loadSpec(t)
	for _, o := range operations(doc) {
		op := o.op
		want := []string{"500", "503"}
		hasBody := op.RequestBody != nil
		if hasBody || len(op.Parameters) > 0 {
			want = append(want, "400")
		}
		if hasBody {
			want = append(want, "413", "415")
		}
		if requiresBearer(doc, op) {
			want = append(want, "401")
		} else {
			want = append(want, "429")
		}
		for _, status := range want {
			if op.Responses.Value(status) == nil {
				t.Errorf("%s: no %s response", op.OperationID, status)
			}
		}
	}

	tooMany := doc.Components.Responses["TooManyRequests"].Value
	if h := tooMany.Headers["Retry-After"]; h == nil || !h.Value.Required {
		t.Error("TooManyRequests: Retry-After header missing or not required")
	}
	if doc.Components.Responses["ServiceUnavailable"].Value.Headers["Retry-After"] == nil {
		t.Error("ServiceUnavailable: Retry-After header missing")
	}
}

func TestSpecSecurity(t *testing.T) {
	doc := loadSpec(t)
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Fatal("components/securitySchemes/bearerAuth is not an http bearer scheme")
	}
	if doc.Security != nil {
		t.Error("security is declared globally; declare it per operation")
	}
	for _, o := range operations(doc) {
		op := o.op
		if op.Security == nil {
			t.Errorf("%s: no security (say `security: []` for none)", op.OperationID)
			continue
		}
		var got []string
		for _, req := range *op.Security {
			got = append(got, strings.Join(slices.Sorted(maps.Keys(req)), "+"))
		}
		var want []string
		switch {
		case op.OperationID == "logout":
			want = []string{"bearerAuth", ""} // a bearer token, or anonymous with a refresh_token
		case strings.HasPrefix(o.path, "/me"), strings.HasPrefix(o.path, "/admin/"):
			want = []string{"bearerAuth"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: security %q, want %q", op.OperationID, got, want)
		}
	}
}

func TestSpecRequestBodies(t *testing.T) {
	doc := loadSpec(t)
	for _, o := range operations(doc) {
		op := o.op
		if op.RequestBody == nil {
			continue
		}
		content := op.RequestBody.Value.Content
		types := slices.Sorted(maps.Keys(content))
		switch {
		case op.OperationID == "uploadAvatar":
			if !slices.Equal(types, []string{"image/*", "multipart/form-data"}) {
				t.Errorf("%s: content types %v", op.OperationID, types)
			}
		case !strings.HasPrefix(o.path, "/me") && !strings.HasPrefix(o.path, "/admin/"):
			// The unauthenticated operations take plain HTML forms too.
			if !slices.Equal(types, []string{"application/json", "application/x-www-form-urlencoded"}) {
				t.Errorf("%s: content types %v, want JSON and form", op.OperationID, types)
			} else if content["application/json"].Schema.Ref != content["application/x-www-form-urlencoded"].Schema.Ref {
				t.Errorf("%s: JSON and form bodies have different schemas", op.OperationID)
			}
		default:
			if !slices.Equal(types, []string{"application/json"}) {
				t.Errorf("%s: content types %v, want [application/json]", op.OperationID, types)
			}
		}
		for ct, mt := range content {
			s := mt.Schema.Value
			if !s.Type.Is("object") {
				continue
			}
			checkFlat := func(what string, s *openapi3.Schema) {
				if len(s.OneOf)+len(s.AnyOf)+len(s.AllOf) > 0 {
					t.Errorf("%s %s: %s must be flat (no oneOf/anyOf/allOf)", op.OperationID, ct, what)
				}
				if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has || s.AdditionalProperties.Schema != nil {
					t.Errorf("%s %s: %s must say additionalProperties: false", op.OperationID, ct, what)
				}
			}
			if len(s.OneOf) == 0 {
				checkFlat("the request schema", s)
				continue
			}
			// A oneOf of flat objects (SignInRequest, RegisterRequest): the
			// root names nothing itself, every branch has a title (Swagger
			// UI shows it, error messages say it), and any two branches
			// are told apart by a required field of one that the other
			// does not take, so a body matches at most one.
			if len(s.Properties) > 0 || len(s.AnyOf)+len(s.AllOf) > 0 {
				t.Errorf("%s %s: a oneOf request schema has no properties of its own", op.OperationID, ct)
			}
			for i, a := range s.OneOf {
				checkFlat("oneOf branch "+a.Ref, a.Value)
				if a.Value.Title == "" {
					t.Errorf("%s %s: oneOf branch %s has no title", op.OperationID, ct, a.Ref)
				}
				for _, b := range s.OneOf[i+1:] {
					apart := func(x, y *openapi3.Schema) bool {
						return slices.ContainsFunc(x.Required, func(r string) bool { _, ok := y.Properties[r]; return !ok })
					}
					if !apart(a.Value, b.Value) && !apart(b.Value, a.Value) {
						t.Errorf("%s %s: a body can match both %s and %s", op.OperationID, ct, a.Ref, b.Ref)
					}
				}
			}
		}
	}
}

// TestSpecPasswordsHaveNoLength: a password of the wrong length is 400
// WEAK_PASSWORD from the server, never the validator's INVALID_REQUEST.
func TestSpecPasswordsHaveNoLength(t *testing.T) {
	doc := loadSpec(t)
	for name, ref := range doc.Components.Schemas {
		for prop, p := range ref.Value.Properties {
			if !strings.Contains(prop, "password") {
				continue
			}
			if p.Value.MinLength != 0 || p.Value.MaxLength != nil || p.Value.Pattern != "" {
				t.Errorf("%s.%s: length or pattern constraint on a password", name, prop)
			}
		}
	}
}

func TestSpecNoStoreHeaders(t *testing.T) {
	doc := loadSpec(t)
	for _, o := range operations(doc) {
		status, ok := tokenResponses[o.op.OperationID]
		if !ok {
			continue
		}
		resp := o.op.Responses.Value(status)
		if resp == nil {
			t.Errorf("%s: no %s response", o.op.OperationID, status)
			continue
		}
		h := resp.Value.Headers["Cache-Control"]
		if h == nil || !h.Value.Required {
			t.Errorf("%s %s: no required Cache-Control header", o.op.OperationID, status)
		}
	}
}

func requiresBearer(doc *openapi3.T, op *openapi3.Operation) bool {
	sec := op.Security
	if sec == nil {
		sec = &doc.Security
	}
	for _, req := range *sec {
		if len(req) == 0 {
			return false // anonymous allowed
		}
	}
	return len(*sec) > 0
}

// bindingProbe records what the generated strict server hands its
// handlers. The embedded interface is nil: only the overridden methods may
// be called.
type bindingProbe struct {
	gen.StrictServerInterface
	register gen.RegisterRequestObject
	upload   gen.UploadAvatarRequestObject
	file     []byte
}

func (p *bindingProbe) Register(_ context.Context, req gen.RegisterRequestObject) (gen.RegisterResponseObject, error) {
	p.register = req
	return gen.Register202JSONResponse{Code: gen.AcceptedCodePendingConfirmation, Message: "ok"}, nil
}

func (p *bindingProbe) UploadAvatar(_ context.Context, req gen.UploadAvatarRequestObject) (gen.UploadAvatarResponseObject, error) {
	p.upload = req
	if req.MultipartBody != nil {
		part, err := req.MultipartBody.NextPart()
		if err != nil {
			return nil, err
		}
		if p.file, err = io.ReadAll(part); err != nil {
			return nil, err
		}
	}
	return gen.UploadAvatar204Response{}, nil
}

func serveProbe(t *testing.T, p *bindingProbe, req *http.Request) {
	t.Helper()
	e := echo.New()
	gen.RegisterHandlersWithBaseURL(e, gen.NewStrictHandler(p, nil), "/api")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		t.Fatalf("%s %s: status %d: %s", req.Method, req.URL, rec.Code, rec.Body)
	}
}

// TestGeneratedBinding checks that the generated strict server binds both
// encodings of an unauthenticated body, header parameters, and both avatar
// upload forms, so that a change of generator version cannot silently drop
// one.
func TestGeneratedBinding(t *testing.T) {
	const lang = "fr-CH, fr;q=0.9, en;q=0.8"

	t.Run("register JSON", func(t *testing.T) {
		p := &bindingProbe{}
		req := httptest.NewRequest(http.MethodPost, "/api/register",
			strings.NewReader(`{"name":"Ada","email":"ada@example.com","password":"pw pw pw pw"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Language", lang)
		serveProbe(t, p, req)
		b := p.register.JSONBody
		if b == nil || p.register.FormdataBody != nil {
			t.Fatalf("JSONBody = %v, FormdataBody = %v", b, p.register.FormdataBody)
		}
		pw, err := b.AsPasswordRegistration()
		if err != nil || *pw.Name != "Ada" || string(pw.Email) != "ada@example.com" || pw.Password != "pw pw pw pw" || pw.Username != nil {
			t.Errorf("JSON body bound as %+v (%v)", pw, err)
		}
		if al := p.register.Params.AcceptLanguage; al == nil || *al != lang {
			t.Errorf("Accept-Language bound as %v, want %q", al, lang)
		}
	})

	t.Run("register form", func(t *testing.T) {
		p := &bindingProbe{}
		form := url.Values{"name": {"Ada L"}, "email": {"ada@example.com"}, "password": {"p&ss=word"}, "username": {"ada_l"}}
		req := httptest.NewRequest(http.MethodPost, "/api/register", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		serveProbe(t, p, req)
		b := p.register.FormdataBody
		if b == nil || p.register.JSONBody != nil {
			t.Fatalf("FormdataBody = %v, JSONBody = %v", b, p.register.JSONBody)
		}
		// The generated form binder cannot fill a union (RegisterRequest is
		// a oneOf): it stays empty, which is why the server's unionForms
		// middleware fills it from the validated form (tested end to end in
		// http_test.go). Should a generator version start binding it, this
		// fails and unionForms can go.
		if raw, err := b.MarshalJSON(); err != nil || (string(raw) != "null" && string(raw) != "") {
			t.Errorf("form body bound as %s (%v): drop unionForms?", raw, err)
		}
		if p.register.Params.AcceptLanguage != nil {
			t.Errorf("Accept-Language bound as %q without the header", *p.register.Params.AcceptLanguage)
		}
	})

	t.Run("avatar multipart", func(t *testing.T) {
		p := &bindingProbe{}
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		fw, err := w.CreateFormFile("file", "a.png")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte("\x89PNG fake"))
		w.Close()
		req := httptest.NewRequest(http.MethodPost, "/api/me/avatar", &body)
		req.Header.Set("Content-Type", w.FormDataContentType())
		serveProbe(t, p, req)
		if p.upload.MultipartBody == nil {
			t.Fatal("MultipartBody not bound")
		}
		if string(p.file) != "\x89PNG fake" {
			t.Errorf("file part = %q", p.file)
		}
		if !strings.HasPrefix(p.upload.ContentType, "multipart/form-data; boundary=") {
			t.Errorf("ContentType = %q", p.upload.ContentType)
		}
	})

	// The raw image body: the generated code copies the Content-Type, which
	// is what tells the handler (or a strict middleware binding Body) that
	// the request body is the image itself.
	t.Run("avatar raw image", func(t *testing.T) {
		p := &bindingProbe{}
		req := httptest.NewRequest(http.MethodPost, "/api/me/avatar", strings.NewReader("\x89PNG fake"))
		req.Header.Set("Content-Type", "image/png")
		serveProbe(t, p, req)
		if p.upload.ContentType != "image/png" || p.upload.MultipartBody != nil {
			t.Errorf("ContentType = %q, MultipartBody = %v", p.upload.ContentType, p.upload.MultipartBody)
		}
	})
}

// TestSpecOperationalEndpoints: the root endpoints are in openapi.yaml
// with their own servers: [{url: /}], and routing still puts every API
// operation under /api and no operational endpoint there.
func TestSpecOperationalEndpoints(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(latchkey.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/openapi.yaml"} {
		item := doc.Paths.Value(path)
		if item == nil {
			t.Errorf("%s is not in the spec", path)
			continue
		}
		if len(item.Servers) != 1 || item.Servers[0].URL != "/" {
			t.Errorf("%s: servers %v, want [{url: /}]", path, item.Servers)
		}
		for method, op := range item.Operations() {
			if !slices.Equal(op.Tags, []string{"Operational"}) {
				t.Errorf("%s %s: tags %v, want [Operational]", method, path, op.Tags)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if doc.Paths.Value(path).Head == nil {
			t.Errorf("HEAD %s is not in the spec", path)
		}
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		found        bool
	}{
		{"GET", "/healthz", true}, {"HEAD", "/readyz", true}, {"GET", "/.well-known/jwks.json", true},
		{"GET", "/api/healthz", false}, {"GET", "/api/metrics", false},
		{"POST", "/api/auth", true}, {"GET", "/api/me", true}, {"POST", "/auth", false}, {"GET", "/me", false},
	} {
		_, _, err := router.FindRoute(httptest.NewRequest(c.method, c.path, nil))
		if (err == nil) != c.found {
			t.Errorf("%s %s: routed %v, want %v (%v)", c.method, c.path, err == nil, c.found, err)
		}
	}
}
