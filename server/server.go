// Package server is Latchkey's HTTP edge: the Echo assembly, request
// validation against the OpenAPI spec, bearer authentication, the handlers of
// the generated strict interface, and the one error renderer.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/swaggest/swgui/v5emb"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/gen"
)

// Config is what the HTTP edge needs to know.
// DefaultAvatarMaxBytes is the avatar upload limit cmd/latchkey starts
// from (LATCHKEY_AVATAR_MAX_BYTES).
const DefaultAvatarMaxBytes = 1 << 20

type Config struct {
	Logger         *slog.Logger
	BodyLimit      int64        // bytes; every request body but an avatar upload
	AvatarMaxBytes int64        // bytes of the image itself
	TrustedProxies []*net.IPNet // whose X-Forwarded-For is believed
	Spec           []byte       // openapi.yaml as served at /openapi.yaml
	// Metrics are more series for /metrics (the rate limits' own).
	Metrics []prometheus.Collector
	// Where the pages behind the links in mails are served (default
	// /confirm and /reset-password, as the mailer's defaults).
	ConfirmPath, ResetPath string
	CORSOrigins            []string // from ParseCORSOrigins; empty: no CORS
	// Registry receives the HTTP metrics (nil: a registry of New's own,
	// with the Go and process collectors).
	Registry *prometheus.Registry
	// MetricsElsewhere keeps /metrics off this application: the binary
	// serves the Registry on its own listener (LATCHKEY_METRICS_ADDR).
	MetricsElsewhere bool
}

// NewRegistry is a Prometheus registry with the Go and process collectors,
// for Config.Registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// stringFormats turns on kin-openapi's (process-wide) checks of the email
// and date formats.
var stringFormats sync.Once

// Server holds the dependencies of the handlers.
type Server struct {
	svc    *auth.Service
	cfg    Config
	router routers.Router
}

// New assembles the Echo application: operational endpoints at the root and
// the API under /api.
func New(svc *auth.Service, cfg Config) (*echo.Echo, error) {
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	stringFormats.Do(func() {
		openapi3.DefineStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
		openapi3.DefineStringFormatValidator("date", openapi3.NewCallbackValidator(func(s string) error {
			_, err := time.Parse(time.DateOnly, s) // a real date, not just the pattern
			return err
		}))
		openapi3.DefineStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
			_, err := uuid.Parse(s)
			return err
		}))
	})
	spec, err := gen.GetSwagger()
	if err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, err
	}
	s := &Server{svc: svc, cfg: cfg, router: router}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)

	reg := cfg.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	reg.MustRegister(cfg.Metrics...)
	e.Use(
		keepGoodRequestID,
		middleware.RequestID(),
		observe(cfg.Logger, newMetrics(reg)),
		securityHeaders,
		cors(cfg.CORSOrigins),
		middleware.RecoverWithConfig(middleware.RecoverConfig{
			LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
				cfg.Logger.ErrorContext(c.Request().Context(), "panic", "error", err, "stack", string(stack),
					"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
				return err
			},
		}),
	)

	// Probes answer HEAD too (load balancers and uptime checkers use it);
	// net/http sends no body for HEAD.
	probe := []string{http.MethodGet, http.MethodHead}
	e.Match(probe, "/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.Match(probe, "/readyz", func(c echo.Context) error {
		if err := svc.Ready(c.Request().Context()); err != nil {
			return fmt.Errorf("readiness: %w: %w", auth.ErrUnavailable, err) // logged at warn
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	if !cfg.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	}
	e.GET("/.well-known/jwks.json", func(c echo.Context) error {
		keys, err := svc.JWKS(c.Request().Context())
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=300")
		return c.JSON(http.StatusOK, map[string]any{"keys": keys})
	})
	e.GET("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", cfg.Spec)
	})
	swagger := v5emb.New("Latchkey API", "/openapi.yaml", "/docs/")
	docs := withCSP(swagger, docsCSP(swagger, "/docs/"))
	e.GET("/docs", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/docs/") })
	e.GET("/docs/*", docs)

	if cfg.ConfirmPath == "" {
		cfg.ConfirmPath = "/confirm"
	}
	if cfg.ResetPath == "" {
		cfg.ResetPath = "/reset-password"
	}
	registerMailPages(e, cfg.ConfirmPath, cfg.ResetPath)

	api := e.Group("/api", retryReadOnce, s.validateRequests)
	gen.RegisterHandlers(api, gen.NewStrictHandler(&Handlers{svc: svc, cfg: cfg}, []gen.StrictMiddlewareFunc{rawImageBody, unionForms}))
	return e, nil
}

// ipExtractor takes the client address from the socket, or from the
// X-Forwarded-For hops that trusted proxies added.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// keepGoodRequestID drops a client's X-Request-Id unless it is short and
// plain (at most 64 of A-Z a-z 0-9 . _ -), so that RequestID makes a fresh
// one: an id reaches every log line and the response.
func keepGoodRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && !goodRequestID(id) {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

func goodRequestID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, r := range id {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// retryReadOnce runs a GET or HEAD a second time when the first attempt
// found the database unavailable: after a failover or a restart the pool
// still holds connections the server dropped, and a read is safe to
// repeat on a fresh one. A second failure is answered 503 UNAVAILABLE.
func retryReadOnce(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		err := next(c)
		if (req.Method != http.MethodGet && req.Method != http.MethodHead) || !errors.Is(err, auth.ErrUnavailable) ||
			c.Response().Committed || req.Context().Err() != nil {
			return err
		}
		c.SetRequest(req)
		return next(c)
	}
}
