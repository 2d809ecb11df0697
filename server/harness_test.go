package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/server"
	"github.com/latchkey-dev/latchkey/store"
	"github.com/latchkey-dev/latchkey/store/storetest"
)

// Addresses and agents the harness sends by default.
const (
	clientIP    = "203.0.113.7"
	clientAgent = "latchkey-test/1.0"
	avatarMax   = 1 << 20
)

// clock is a controllable time source: it moves only when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness is the production stack (store, auth.Service, server.New) on one
// database, driven through ServeHTTP. Copies made by run share the stack
// but report to their own subtest.
type harness struct {
	t     *testing.T
	dsn   string
	key   []byte
	clock *clock
	db    *store.DB
	h     http.Handler
	// serverTweak, when not nil, changes the server.Config of stacks
	// built from now on (see withServer).
	serverTweak func(*server.Config)
}

// eachDB runs fn on a fresh stack per storetest target (SQLite, and
// PostgreSQL when configured).
func eachDB(t *testing.T, fn func(h *harness)) {
	t.Helper()
	for _, target := range storetest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			h := &harness{t: t, dsn: target.DSN, key: key, clock: &clock{now: time.Now().UTC()}}
			h.start(nil)
			fn(h)
		})
	}
}

// run runs fn as a subtest with a copy of h that reports to it.
func (h *harness) run(name string, fn func(h *harness)) {
	h.t.Helper()
	h.t.Run(name, func(t *testing.T) {
		c := *h
		c.t = t
		fn(&c)
	})
}

// start opens and migrates the database at h.dsn and builds the stack on
// it as cmd/latchkey does; tweak, when not nil, changes the auth config.
func (h *harness) start(tweak func(*auth.Config)) {
	h.t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, h.dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		h.t.Fatalf("store.Open: %v", err)
	}
	var once sync.Once
	closeDB := func() { once.Do(func() { _ = db.Close() }) }
	h.t.Cleanup(closeDB)
	if err := db.Migrate(ctx); err != nil {
		h.t.Fatalf("Migrate: %v", err)
	}
	h.db = db
	h.h = h.stack(tweak)
}

// stack builds an auth.Service and an Echo application on h.db.
func (h *harness) stack(tweak func(*auth.Config)) http.Handler {
	_, handler := h.build(tweak)
	return handler
}

// build makes the service and the Echo application on h.db as cmd/latchkey
// does, with tweak (when not nil) changing the auth config and trusted as
// server.Config.TrustedProxies. Requests may pick their peer address with
// from.
// testAuthConfig is the production defaults (auth.DefaultConfig) with the
// harness's issuer and the given master key: every harness starts here.
func testAuthConfig(key []byte) auth.Config {
	cfg := auth.DefaultConfig()
	cfg.Issuer = "http://localhost:8080"
	cfg.MasterKey = key
	return cfg
}

func (h *harness) build(tweak func(*auth.Config), trusted ...*net.IPNet) (*auth.Service, http.Handler) {
	h.t.Helper()
	cfg := testAuthConfig(append([]byte(nil), h.key...))
	if tweak != nil {
		tweak(&cfg)
	}
	svc, err := auth.NewService(context.Background(), h.db, cfg, auth.WithClock(h.clock.Now))
	if err != nil {
		h.t.Fatalf("auth.NewService: %v", err)
	}
	scfg := server.Config{
		AvatarMaxBytes: avatarMax,
		TrustedProxies: trusted,
		Spec:           latchkey.OpenAPIYAML,
		Logger:         slog.New(slog.DiscardHandler),
	}
	if h.serverTweak != nil {
		h.serverTweak(&scfg)
	}
	e, err := server.New(svc, scfg)
	if err != nil {
		h.t.Fatalf("server.New: %v", err)
	}
	return svc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr := r.Header.Get(remoteAddrHeader); addr != "" {
			r.RemoteAddr = addr
			r.Header.Del(remoteAddrHeader)
		}
		e.ServeHTTP(w, r)
	})
}

// variant is a second stack on the same database with another config.
func (h *harness) variant(tweak func(*auth.Config)) *harness {
	c := *h
	c.h = h.stack(tweak)
	return &c
}

// restart closes the database and builds a new stack on the same DSN,
// master key and clock, as a restarted process would.
func (h *harness) restart() {
	h.t.Helper()
	if err := h.db.Close(); err != nil {
		h.t.Fatalf("closing the database: %v", err)
	}
	h.start(nil)
}

// header is one request header.
type header [2]string

func hdr(name, value string) header { return header{name, value} }
func bearer(token string) header    { return header{"Authorization", "Bearer " + token} }

// response is what the server answered.
type response struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Code, r.Body) }

// do sends one request and checks the answer against the contract. body
// is JSON for structs and maps, a form for url.Values, raw for []byte
// (give its Content-Type), and an io.Reader is streamed with no
// Content-Length. It reports problems with Errorf only, so it may be
// called from several goroutines.
func (h *harness) do(method, path string, body any, headers ...header) response {
	h.t.Helper()
	var (
		rd          io.Reader
		contentType string
	)
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	case url.Values:
		rd, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Errorf("marshal request body: %v", err)
			return response{}
		}
		rd, contentType = bytes.NewReader(data), "application/json"
	}
	req := httptest.NewRequest(method, path, rd)
	if _, streamed := body.(io.Reader); streamed {
		req.ContentLength = -1
	}
	req.RemoteAddr = clientIP + ":41234"
	req.Header.Set("User-Agent", clientAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, hd := range headers {
		req.Header.Set(hd[0], hd[1])
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	res := response{Code: rec.Code, Header: rec.Result().Header, Body: rec.Body.Bytes()}
	if err := checkResponse(req, res); err != nil {
		h.t.Errorf("%s %s: the answer breaks the contract: %v\n%s", method, path, err, res)
	}
	return res
}

// want fails the test unless r has the status and, for an error, the
// code.
func (h *harness) want(r response, status int, code string) {
	h.t.Helper()
	if r.Code != status {
		h.t.Fatalf("status %d, want %d: %s", r.Code, status, r.Body)
	}
	if code != "" {
		if got := h.apiErr(r).Code; got != code {
			h.t.Fatalf("code %q, want %q: %s", got, code, r.Body)
		}
	}
}

// decode unmarshals r's JSON body into v.
func (h *harness) decode(r response, v any) {
	h.t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		h.t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

func (h *harness) apiErr(r response) apiError {
	h.t.Helper()
	var e apiError
	h.decode(r, &e)
	return e
}

// Client-side views of the API's bodies.
type (
	apiError struct {
		Code    string       `json:"code"`
		Message string       `json:"message"`
		Details []fieldError `json:"details"`
	}
	fieldError struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	}
	tokenPair struct {
		AccessToken      string `json:"access_token"`
		TokenType        string `json:"token_type"`
		ExpiresIn        int    `json:"expires_in"`
		RefreshToken     string `json:"refresh_token"`
		RefreshExpiresIn int    `json:"refresh_expires_in"`
		SessionID        string `json:"session_id"`
	}
	authResult struct {
		TwoFactorRequired bool `json:"two_factor_required"`
		tokenPair
	}
	user struct {
		ID             string  `json:"id"`
		AccountType    string  `json:"account_type"`
		Name           string  `json:"name"`
		Username       *string `json:"username"`
		Email          *string `json:"email"`
		EmailConfirmed bool    `json:"email_confirmed"`
		Bio            *string `json:"bio"`
		Locale         string  `json:"locale"`
		Timezone       string  `json:"timezone"`
		Location       *string `json:"location"`
		BirthDate      *string `json:"birth_date"`
		HasAvatar      bool    `json:"has_avatar"`
		TwoFactor      bool    `json:"two_factor_enabled"`
		Admin          bool    `json:"admin"`
	}
	registerResult struct {
		User   user      `json:"user"`
		Secret string    `json:"secret"`
		Tokens tokenPair `json:"tokens"`
	}
	session struct {
		ID        string    `json:"id"`
		CreatedAt time.Time `json:"created_at"`
		UserAgent *string   `json:"user_agent"`
		IP        *string   `json:"ip"`
		Current   bool      `json:"current"`
	}
)

// account is a signed-in secret account.
type account struct {
	ID, Secret string
	tokenPair
}

// register creates a secret account.
func (h *harness) register(name string) account {
	h.t.Helper()
	r := h.do("POST", "/api/register", map[string]any{"name": name})
	h.want(r, http.StatusCreated, "")
	var res registerResult
	h.decode(r, &res)
	return account{ID: res.User.ID, Secret: res.Secret, tokenPair: res.Tokens}
}

// signIn starts another session of a.
func (h *harness) signIn(a account, headers ...header) account {
	h.t.Helper()
	r := h.do("POST", "/api/auth", map[string]any{"secret": a.Secret}, headers...)
	h.want(r, http.StatusOK, "")
	var res authResult
	h.decode(r, &res)
	if res.TwoFactorRequired {
		h.t.Fatalf("sign-in asked for two-factor: %s", r.Body)
	}
	a.tokenPair = res.tokenPair
	return a
}

// me returns the user of an access token.
func (h *harness) me(access string) user {
	h.t.Helper()
	r := h.do("GET", "/api/me", nil, bearer(access))
	h.want(r, http.StatusOK, "")
	var u user
	h.decode(r, &u)
	return u
}

// wantAccess checks whether an access token is accepted by GET /me.
func (h *harness) wantAccess(access string, ok bool) {
	h.t.Helper()
	r := h.do("GET", "/api/me", nil, bearer(access))
	switch {
	case ok && r.Code != http.StatusOK:
		h.t.Fatalf("the access token is refused: %s", r)
	case !ok:
		h.want(r, http.StatusUnauthorized, "UNAUTHENTICATED")
	}
}

func (h *harness) sessions(access string) []session {
	h.t.Helper()
	r := h.do("GET", "/api/me/sessions", nil, bearer(access))
	h.want(r, http.StatusOK, "")
	var out []session
	h.decode(r, &out)
	return out
}

// refresh trades a refresh token.
func (h *harness) refresh(token string) response {
	h.t.Helper()
	return h.do("POST", "/api/auth/refresh", map[string]any{"refresh_token": token})
}

// ---- the contract ------------------------------------------------------

type contractDoc struct {
	doc    *openapi3.T
	router routers.Router
}

// loadContract loads openapi.yaml as written: the embedded spec leaves
// out the operational endpoints, whose answers are checked too.
var loadContract = sync.OnceValues(func() (*contractDoc, error) {
	doc, err := openapi3.NewLoader().LoadFromData(latchkey.OpenAPIYAML)
	if err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &contractDoc{doc: doc, router: router}, nil
})

// checkResponse validates an answer to req against openapi.yaml: under
// /api and on the operational endpoints the spec lists (path-level
// servers: [{url: /}]) with openapi3filter (an undocumented status, a
// missing or wrong header, an unknown field all fail), and elsewhere, or
// for a route the spec does not know, that errors are the Error schema in
// JSON.
func checkResponse(req *http.Request, r response) error {
	c, err := loadContract()
	if err != nil {
		return err
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil && req.URL.Path != "/api" && !strings.HasPrefix(req.URL.Path, "/api/") {
		// A root path the spec does not list (/docs/…, /nowhere).
		if r.Code >= 400 {
			return checkErrorBody(c.doc, r)
		}
		return nil
	}
	if err != nil && req.Method == http.MethodOptions && r.Code == http.StatusNoContent {
		// A CORS preflight answered by the CORS middleware.
		if req.Header.Get("Origin") == "" || r.Header.Get("Access-Control-Allow-Origin") == "" || len(r.Body) > 0 {
			return errors.New("204 to OPTIONS that is not a CORS preflight answer")
		}
		return nil
	}
	if err != nil {
		want := http.StatusNotFound
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			want = http.StatusMethodNotAllowed
		}
		if r.Code != want {
			return fmt.Errorf("status %d for a route the spec does not have (%v), want %d", r.Code, err, want)
		}
		return checkErrorBody(c.doc, r)
	}
	if r.Code == http.StatusNotModified && r.Header.Get("ETag") == "" {
		return errors.New("304 without ETag") // openapi3filter skips 304s
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: r.Code,
		Header: r.Header,
		Body:   io.NopCloser(bytes.NewReader(r.Body)),
		// A HEAD answer has the headers of GET, and no body.
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: req.Method == http.MethodHead},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// checkErrorBody checks that r is the Error schema with a JSON content
// type.
func checkErrorBody(doc *openapi3.T, r response) error {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("error with Content-Type %q, want application/json", r.Header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return fmt.Errorf("error body is not JSON: %w", err)
	}
	return doc.Components.Schemas["Error"].Value.VisitJSON(v)
}

// ---- images ------------------------------------------------------------

func testImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 30), uint8(y * 30), 128, 255})
		}
	}
	return img
}

func pngBytes(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, testImage(8, 6)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(8, 6), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gifBytes(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, testImage(8, 6), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// jpegWithExif inserts after the SOI marker an APP1 Exif segment whose
// IFD0 has an Orientation (1) and an ImageDescription holding marker.
func jpegWithExif(t testing.TB, marker string) []byte {
	t.Helper()
	le := binary.LittleEndian
	tiff := []byte("II*\x00")
	tiff = le.AppendUint32(tiff, 8) // IFD0 offset
	tiff = le.AppendUint16(tiff, 2) // entries
	tiff = le.AppendUint16(tiff, 0x0112)
	tiff = le.AppendUint16(tiff, 3) // SHORT
	tiff = le.AppendUint32(tiff, 1)
	tiff = le.AppendUint32(tiff, 1) // value 1, padded
	tiff = le.AppendUint16(tiff, 0x010e)
	tiff = le.AppendUint16(tiff, 2) // ASCII
	tiff = le.AppendUint32(tiff, uint32(len(marker)+1))
	tiff = le.AppendUint32(tiff, 8+2+2*12+4) // right after the IFD
	tiff = le.AppendUint32(tiff, 0)          // no next IFD
	tiff = append(append(tiff, marker...), 0)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := binary.BigEndian.AppendUint16([]byte{0xff, 0xe1}, uint16(len(seg)+2))
	app1 = append(app1, seg...)
	j := jpegBytes(t)
	return append(append(append([]byte{}, j[:2]...), app1...), j[2:]...)
}

// pngWithText inserts a tEXt chunk after the IHDR chunk of a PNG.
func pngWithText(t testing.TB, key, text string) []byte {
	t.Helper()
	p := pngBytes(t)
	const afterIHDR = 8 + 4 + 4 + 13 + 4
	return append(append(append([]byte{}, p[:afterIHDR]...), pngChunk("tEXt", []byte(key+"\x00"+text))...), p[afterIHDR:]...)
}

func pngChunk(typ string, data []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(append(c, typ...), data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

// pngBomb is a 45-byte PNG (signature, IHDR, IEND) that claims w×h
// pixels.
func pngBomb(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, pngChunk("IHDR", ihdr)...)
	return append(out, pngChunk("IEND", nil)...)
}

// multipartFile wraps data as the part field of a multipart form.
func multipartFile(t testing.TB, field string, data []byte) ([]byte, header) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, err := w.CreateFormFile(field, "avatar.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), hdr("Content-Type", w.FormDataContentType())
}

// jwtHeader decodes the header of a JWT.
func jwtHeader(t testing.TB, token string) map[string]any {
	t.Helper()
	part, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	return out
}
