// Command latchkey is the Latchkey account and authentication service.
//
//	latchkey [serve] [flags]   run the service (the default)
//	latchkey migrate [flags]   apply the database schema and exit
//	latchkey version           print the version
//	latchkey help              list the commands and every setting
//	latchkey admin …, keys …   operator commands (see admin.go)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // IANA time zones even on machines without them

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	latchkey "github.com/latchkey-dev/latchkey"
	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/outbox"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/mail"
	"github.com/latchkey-dev/latchkey/ratelimit"
	"github.com/latchkey-dev/latchkey/server"
	"github.com/latchkey-dev/latchkey/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "latchkey:", err)
		os.Exit(1)
	}
}

// environ lists the process's variables for the unknown-LATCHKEY_*
// warning; tests replace it.
var environ = os.Environ

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd = "version"
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "latchkey", buildVersion())
		return nil
	case "help":
		printHelp(stdout)
		return nil
	case "serve", "migrate":
	case "admin", "keys": // cmd/latchkey/admin.go
		return runOperator(ctx, cmd, args, getenv, stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q (see latchkey --help)", cmd)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout)
		return nil
	}
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	for _, warning := range unknownVariables(environ()) {
		logger.Warn(warning)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if !cfg.isPostgres() {
		if err := makeDataDir(cfg.DataDir); err != nil {
			return err
		}
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, logger, store.WithMaxConns(cfg.DatabaseMaxConns))
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating the database: %w", err)
	}
	if cmd == "migrate" {
		logger.Info("database schema is up to date", "dialect", db.Dialect())
		return nil
	}
	return serve(ctx, cfg, db, logger, stdout)
}

func serve(ctx context.Context, cfg *config, db *store.DB, logger *slog.Logger, stdout io.Writer) error {
	key, err := cfg.masterKey(logger)
	if err != nil {
		return err
	}
	hasher, err := password.NewHasher(password.Params{
		Memory:  uint32(cfg.Argon2Memory),
		Time:    uint32(cfg.Argon2Iterations),
		Threads: uint8(cfg.Argon2Parallelism),
		SaltLen: password.DefaultParams.SaltLen,
		KeyLen:  password.DefaultParams.KeyLen,
	}, cfg.HashConcurrency, password.DefaultMaxWait)
	if err != nil {
		return fmt.Errorf("password hashing: %w", err)
	}
	limits, limitMetrics, closeLimits, err := newLimits(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeLimits()
	ac := cfg.authConfig(key)
	ac.Hasher, ac.Limits = hasher, limits
	svc, err := auth.NewService(ctx, db, ac)
	if err != nil {
		return err
	}
	mailer, err := newMailer(cfg, svc, logger)
	if err != nil {
		return err
	}
	oc := outbox.DefaultConfig()
	oc.Logger, oc.EventRetention = logger, cfg.EventRetention
	worker, err := outbox.New(svc.MailQueue(mailer), oc)
	if err != nil {
		return err
	}
	// The outbox outlives the HTTP server's shutdown (stopped last, below),
	// so mails queued by in-flight requests still go out.
	outboxCtx, stopOutbox := context.WithCancel(context.WithoutCancel(ctx))
	outboxDone := make(chan struct{})
	go func() {
		defer close(outboxDone)
		worker.Run(outboxCtx)
	}()
	defer func() {
		stopOutbox()
		<-outboxDone // a mail being sent is finished (up to 30 s)
	}()
	registry := server.NewRegistry()
	e, err := server.New(svc, server.Config{
		Logger:           logger,
		AvatarMaxBytes:   cfg.AvatarMaxBytes,
		TrustedProxies:   cfg.TrustedProxies,
		Spec:             latchkey.OpenAPIYAML,
		Metrics:          append(limitMetrics, poolCollectors(db)...),
		CORSOrigins:      cfg.CORSOrigins,
		Registry:         registry,
		MetricsElsewhere: cfg.MetricsAddr != "",
		ConfirmPath:      cfg.ConfirmPath,
		ResetPath:        cfg.ResetPath,
	})
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, registry, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("LATCHKEY_ADDR: %s is in use by another process: stop it, or choose another port (LATCHKEY_ADDR=:8081, and LATCHKEY_PUBLIC_URL to match)", cfg.Addr)
	}
	if err != nil {
		return fmt.Errorf("LATCHKEY_ADDR: cannot listen on %s: %w", cfg.Addr, err)
	}
	url := localURL(ln.Addr())
	logger.Info("latchkey is serving", "addr", ln.Addr().String(), "version", buildVersion(), "dialect", db.Dialect())
	fmt.Fprintf(stdout, "Latchkey is serving on %s — API docs at %s/docs\n", url, url)

	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// makeDataDir creates the data dir 0700 whatever the umask (an existing
// one keeps its mode).
func makeDataDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data dir: %w", err)
	}
	return nil
}

// serveMetrics serves /metrics alone on addr (LATCHKEY_METRICS_ADDR), so
// that the public listener need not expose it; the returned function stops
// it.
func serveMetrics(addr string, reg *prometheus.Registry, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("LATCHKEY_METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("metrics are served on their own listener", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// newMailer returns the SMTP mailer, or the log mailer when no SMTP URL is
// set.
// The lifetimes its mails state are the service's own (passed once, to
// auth).
func newMailer(cfg *config, svc *auth.Service, logger *slog.Logger) (auth.Mailer, error) {
	mc := mail.Config{
		From:        cfg.MailFrom,
		PublicURL:   cfg.PublicURL,
		ConfirmPath: cfg.ConfirmPath,
		ResetPath:   cfg.ResetPath,
	}
	mc.ConfirmTTL, mc.ResetTTL = svc.LinkTTLs()
	if cfg.SMTPURL == "" {
		logger.Warn("LATCHKEY_SMTP_URL is not set: mails are written to the log, their links included; use this for development only")
		return mail.NewLog(logger, mc)
	}
	m, err := mail.NewSMTP(cfg.SMTPURL, mc, mail.SMTPOptions{})
	if err != nil {
		return nil, fmt.Errorf("LATCHKEY_SMTP_URL: %w", err)
	}
	return m, nil
}

// Mails one address, and one client address, may have requested in an
// hour (confirmation resends, password resets, email changes).
const (
	mailPerAddress = 5
	mailPerClient  = 30
)

// Avatar uploads one account may make in a window.
const (
	avatarUploads      = 10
	avatarUploadWindow = 10 * time.Minute
)

// newLimits builds the rate limits: none when turned off, in Redis when a
// URL is given (shared by every instance, with this instance's own
// counters while Redis does not answer), else in memory. It returns the
// backend's metrics too.
func newLimits(ctx context.Context, cfg *config, logger *slog.Logger) (auth.Limits, []prometheus.Collector, func(), error) {
	if !cfg.RateLimits {
		logger.Warn("rate limits are off (LATCHKEY_RATE_LIMITS=off): use this for load tests only")
		return auth.Limits{}, nil, func() {}, nil
	}
	backend := ratelimit.Memory()
	if cfg.RedisURL != "" {
		var err error
		if backend, err = ratelimit.Redis(ctx, cfg.RedisURL, ratelimit.WithLogger(logger)); err != nil {
			return auth.Limits{}, nil, nil, fmt.Errorf("LATCHKEY_REDIS_URL: %w", err)
		}
	}
	return auth.Limits{
		LoginAccount: backend.New("login-account", cfg.LoginMaxFailures, cfg.LoginWindow),
		LoginClient:  backend.New("login-client", 10*cfg.LoginMaxFailures, cfg.LoginWindow),
		Register:     backend.New("register", cfg.RegistrationLimit, time.Hour),
		MailAddress:  backend.New("mail-address", mailPerAddress, time.Hour),
		MailClient:   backend.New("mail-client", mailPerClient, time.Hour),
		AvatarUpload: backend.New("avatar-upload", avatarUploads, avatarUploadWindow),
	}, backend.Collectors(), func() { backend.Close() }, nil
}

// authConfig is the auth.Config of these settings (no hasher, no limits:
// serve adds them).
func (c *config) authConfig(key []byte) auth.Config {
	return auth.Config{
		Issuer:                    c.PublicURL,
		Audience:                  c.Audience,
		AccessTokenTTL:            c.AccessTokenTTL,
		RefreshTokenTTL:           c.RefreshTokenTTL,
		RefreshReuseGrace:         c.RefreshReuseGrace,
		RegistrationOpen:          c.RegistrationOpen,
		MasterKey:                 key,
		TwoFactorTTL:              c.TwoFactorTTL,
		EmailConfirmationRequired: c.EmailConfirmation,
		ConfirmTokenTTL:           c.ConfirmTokenTTL,
		ResetTokenTTL:             c.ResetTokenTTL,
		AvatarDecodeBudget:        c.AvatarDecodeBudget,
		AvatarDecodeWait:          auth.DefaultAvatarDecodeWait,
	}
}

// localURL is how a person on this machine reaches the listener.
func localURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	if tcp.IP.IsUnspecified() || tcp.IP.IsLoopback() {
		return fmt.Sprintf("http://localhost:%d", tcp.Port)
	}
	return "http://" + addr.String()
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	format := cfg.LogFormat
	if format == logAuto {
		format = logJSON
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = logText
		}
	}
	if format == logText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// poolCollectors exposes the statistics of the database pools on /metrics
// (go_sql_*, labelled db_name) and the connections each has opened,
// latchkey_db_connections_opened_total: those open now plus those closed
// by the pool's idle and lifetime limits (not counted: connections
// dropped as broken).
func poolCollectors(db *store.DB) []prometheus.Collector {
	var out []prometheus.Collector
	for name, pool := range db.Pools() {
		out = append(out,
			collectors.NewDBStatsCollector(pool, name),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "latchkey_db_connections_opened_total",
				Help:        "Database connections the pool has opened (open now plus closed by its idle and lifetime limits).",
				ConstLabels: prometheus.Labels{"pool": name},
			}, func() float64 {
				s := pool.Stats()
				return float64(int64(s.OpenConnections) + s.MaxIdleClosed + s.MaxIdleTimeClosed + s.MaxLifetimeClosed)
			}),
		)
	}
	return out
}

// serveDebug serves Go's profiles (net/http/pprof, without the command
// line, which may hold secrets given as flags) on addr, a loopback address
// checked by the configuration. The returned function stops it.
func serveDebug(addr string, logger *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("LATCHKEY_DEBUG_ADDR: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Warn("profiles are served on the debug listener (LATCHKEY_DEBUG_ADDR): for diagnosis only", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
