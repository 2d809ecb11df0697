package server

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-dev/latchkey/gen"
)

// metrics are the HTTP series exposed on /metrics.
type metrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	overloaded *prometheus.CounterVec
	abandoned  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "latchkey_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route template and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	m.overloaded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_http_overloaded_total",
		Help: "Requests answered 503 OVERLOADED (no free password-hashing or image-decoding slot), by route template.",
	}, []string{"route"})
	m.abandoned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "latchkey_http_abandoned_total",
		Help: "Requests the client gave up on (closed the connection) before they were answered.",
	})
	reg.MustRegister(m.requests, m.latency, m.overloaded, m.abandoned)
	return m
}

// statusAbandoned is what the log and the metrics say of a request whose
// client went away before the answer (nginx's 499): nothing is sent.
const statusAbandoned = 499

// everySecond lets one event through per second and counts the others,
// so that a burst of the same trouble makes one warn line a second.
type everySecond struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// allow reports whether to log now, and how many were held back since
// the last line.
func (e *everySecond) allow(now time.Time) (bool, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.Sub(e.last) < time.Second {
		e.skipped++
		return false, 0
	}
	n := e.skipped
	e.last, e.skipped = now, 0
	return true, n
}

// observe renders any error first (so the status is known), then writes one
// log line and the metrics for the request. Routes are templates, never raw
// paths, so labels stay bounded and ids stay out of them.
//
// A request whose client went away is not a server error: it is logged at
// info as abandoned, and nothing is written. 503 OVERLOADED answers are
// counted, and summed up in a warn line at most once a second.
func observe(logger *slog.Logger, m *metrics) echo.MiddlewareFunc {
	var overloadLog everySecond
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			req, res := c.Request(), c.Response()
			var code gen.ErrorCode
			abandoned := false
			if err := next(c); err != nil {
				if req.Context().Err() != nil && !res.Committed {
					abandoned = true
				} else {
					if apiErr, _ := toAPIError(err); apiErr != nil {
						code = apiErr.Code
					}
					c.Error(err)
				}
			}
			elapsed := time.Since(start)
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := res.Status
			if abandoned {
				status = statusAbandoned
				m.abandoned.Inc()
			}
			m.requests.WithLabelValues(route, req.Method, strconv.Itoa(status)).Inc()
			m.latency.WithLabelValues(route, req.Method).Observe(elapsed.Seconds())
			msg, level := "request", slog.LevelInfo
			switch {
			case abandoned:
				msg = "request abandoned by the client"
			case status == http.StatusServiceUnavailable && code == gen.ErrorCodeOverloaded:
				m.overloaded.WithLabelValues(route).Inc()
				if ok, held := overloadLog.allow(time.Now()); ok {
					logger.LogAttrs(req.Context(), slog.LevelWarn, "overloaded: answering 503 OVERLOADED",
						slog.String("route", route), slog.Int("more_since_last_line", held))
				}
			case status == http.StatusServiceUnavailable:
				level = slog.LevelWarn
			case status >= 500:
				level = slog.LevelError
			}
			logger.LogAttrs(req.Context(), level, msg,
				slog.String("request_id", res.Header().Get(echo.HeaderXRequestID)),
				slog.String("method", req.Method),
				slog.String("route", route),
				slog.String("path", req.URL.Path),
				slog.Int("status", status),
				slog.Int64("bytes", res.Size),
				slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
				slog.String("remote_ip", c.RealIP()),
			)
			return nil
		}
	}
}
