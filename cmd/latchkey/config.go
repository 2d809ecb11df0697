package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/outbox"
	"github.com/latchkey-dev/latchkey/auth/password"
	"github.com/latchkey-dev/latchkey/mail"
	"github.com/latchkey-dev/latchkey/server"
)

// config is every setting of the binary, parsed once from LATCHKEY_*
// environment variables and same-named flags (flags win).
type config struct {
	Addr               string
	PublicURL          string
	DataDir            string
	DatabaseURL        string
	DatabaseMaxConns   int
	MasterKey          string
	RegistrationOpen   bool // registration: open | closed
	Audience           string
	AccessTokenTTL     time.Duration
	RefreshTokenTTL    time.Duration
	RefreshReuseGrace  time.Duration
	AvatarMaxBytes     int64
	AvatarDecodeBudget int64
	TrustedProxies     []*net.IPNet
	HashConcurrency    int
	Argon2Memory       int // KiB
	Argon2Iterations   int
	Argon2Parallelism  int
	RateLimits         bool // rate-limits: on | off
	LoginMaxFailures   int
	LoginWindow        time.Duration
	RegistrationLimit  int // per client address per hour
	RedisURL           string
	TwoFactorTTL       time.Duration
	EmailConfirmation  bool // email-confirmation: required | off
	SMTPURL            string
	MailFrom           string
	ConfirmTokenTTL    time.Duration
	ResetTokenTTL      time.Duration
	EventRetention     time.Duration // security events are pruned after this
	ConfirmPath        string
	ResetPath          string
	LogFormat          logFormat
	LogLevel           slog.Level
	CORSOrigins        []string
	MetricsAddr        string
	DebugAddr          string
}

// setting describes one configuration value: its flag name, which is also
// its variable name (LATCHKEY_ + upper case, dashes to underscores).
type setting struct {
	name, def, usage string
	set              func(string) error
}

func (s setting) env() string {
	return "LATCHKEY_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func durationSetting(dst *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("must be a positive Go duration such as 15m or 720h")
		}
		*dst = d
		return nil
	}
}

func intSetting(dst *int, lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		*dst = n
		return nil
	}
}

func addrSetting(dst *string) func(string) error {
	return func(v string) error {
		_, port, err := net.SplitHostPort(v)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			return errors.New("must be a listen address such as :8080 or 127.0.0.1:8080")
		}
		*dst = v
		return nil
	}
}

func pathSetting(dst *string) func(string) error {
	return func(v string) error {
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?# ") {
			return errors.New("must be a path starting with / (no query or fragment)")
		}
		*dst = v
		return nil
	}
}

func stringSetting(dst *string) func(string) error {
	return func(v string) error {
		*dst = v
		return nil
	}
}

// logFormat is how the log is written: logAuto picks text on a terminal,
// else JSON.
type logFormat int

const (
	logAuto logFormat = iota
	logText
	logJSON
)

// logFormatSetting parses log-format ("" is automatic) at start.
func logFormatSetting(dst *logFormat) func(string) error {
	return func(v string) error {
		switch v {
		case "":
			*dst = logAuto
		case "text":
			*dst = logText
		case "json":
			*dst = logJSON
		default:
			return errors.New("must be text or json")
		}
		return nil
	}
}

// choiceSetting parses one of two words into a bool at start.
func choiceSetting(dst *bool, yes, no string) func(string) error {
	return func(v string) error {
		switch v {
		case yes:
			*dst = true
		case no:
			*dst = false
		default:
			return fmt.Errorf("must be one of %s, %s", yes, no)
		}
		return nil
	}
}

// choice is the word of a choiceSetting for b (the table's defaults).
func choice(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// dur writes a default duration as people do (15m, 720h, 10s), not as
// time.Duration.String does (15m0s).
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func contains(list []string, v string) bool {
	for _, a := range list {
		if a == v {
			return true
		}
	}
	return false
}

// settingsOf is the one table of settings: each entry writes its field of
// c. `latchkey --help` lists it (grouped by settingGroups), and a
// LATCHKEY_* variable that is not in it is warned about at start.
func settingsOf(c *config) []setting {
	ad := auth.DefaultConfig()
	pw := password.DefaultParams
	return []setting{
		{"addr", ":8080", "listen address, host:port or :port (change LATCHKEY_PUBLIC_URL with it)", addrSetting(&c.Addr)},
		{"public-url", "http://localhost:8080", "base of links in mails; the JWT issuer", func(v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("must be an absolute http(s) URL")
			}
			c.PublicURL = strings.TrimRight(v, "/")
			return nil
		}},
		{"data-dir", "./data", "where the SQLite database and a generated development master key live", stringSetting(&c.DataDir)},
		{"database-url", "", "postgres://… for PostgreSQL or sqlite:PATH (default: SQLite in the data dir)", func(v string) error {
			if v != "" && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") && !strings.HasPrefix(v, "sqlite:") {
				return errors.New("must start with postgres://, postgresql:// or sqlite:")
			}
			c.DatabaseURL = v
			return nil
		}},
		{"database-max-conns", "20", "database connections in the pool (SQLite: reader connections, beside one writer); the PostgreSQL URL's pool_max_conns overrides it", intSetting(&c.DatabaseMaxConns, 1, 10000)},
		{"master-key", "", "32 random bytes, base64 (generated into the data dir on a first SQLite start)", func(v string) error {
			if v != "" {
				if _, err := decodeMasterKey(v); err != nil {
					return err
				}
			}
			c.MasterKey = v
			return nil
		}},
		{"registration", choice(ad.RegistrationOpen, "open", "closed"), "open or closed", choiceSetting(&c.RegistrationOpen, "open", "closed")},
		{"jwt-audience", ad.Audience, "the aud claim of access tokens", func(v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			c.Audience = v
			return nil
		}},
		{"access-token-ttl", dur(ad.AccessTokenTTL), "access token lifetime", durationSetting(&c.AccessTokenTTL)},
		{"refresh-token-ttl", dur(ad.RefreshTokenTTL), "refresh token and session lifetime", durationSetting(&c.RefreshTokenTTL)},
		{"refresh-reuse-grace", dur(ad.RefreshReuseGrace), "window in which a rotated refresh token answers with the same successor", func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return errors.New("must be a Go duration of 0 or more, such as 10s")
			}
			c.RefreshReuseGrace = d
			return nil
		}},
		{"avatar-max-bytes", strconv.FormatInt(server.DefaultAvatarMaxBytes, 10), "avatar upload limit in bytes", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 || n > 32<<20 {
				return errors.New("must be a whole number of bytes from 1024 to 33554432")
			}
			c.AvatarMaxBytes = n
			return nil
		}},
		{"avatar-decode-budget", strconv.FormatInt(ad.AvatarDecodeBudget, 10), "memory in bytes that avatar decodes may use at once (each estimated from its image's header); more wait up to 2 s, then 503", func(v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1<<20 || n > 1<<40 {
				return errors.New("must be a whole number of bytes from 1048576 (1 MiB) to 1099511627776 (1 TiB)")
			}
			c.AvatarDecodeBudget = n
			return nil
		}},
		{"trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For is believed", func(v string) error {
			c.TrustedProxies = nil
			for _, part := range strings.Split(v, ",") {
				if part = strings.TrimSpace(part); part == "" {
					continue
				}
				_, n, err := net.ParseCIDR(part)
				if err != nil {
					return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", part)
				}
				c.TrustedProxies = append(c.TrustedProxies, n)
			}
			return nil
		}},
		{"hash-concurrency", strconv.Itoa(password.DefaultConcurrency()), "password hashes computed at once; more wait briefly, then get 503", intSetting(&c.HashConcurrency, 1, 1024)},
		{"argon2-memory", strconv.Itoa(int(pw.Memory)), "argon2id memory in KiB (OWASP: 19456 = 19 MiB)", intSetting(&c.Argon2Memory, 8, 4<<20)},
		{"argon2-iterations", strconv.Itoa(int(pw.Time)), "argon2id iterations", intSetting(&c.Argon2Iterations, 1, 100)},
		{"argon2-parallelism", strconv.Itoa(int(pw.Threads)), "argon2id lanes", intSetting(&c.Argon2Parallelism, 1, 64)},
		{"rate-limits", "on", "off disables every rate limit (load tests only)", choiceSetting(&c.RateLimits, "on", "off")},
		{"login-max-failures", "10", "failed sign-ins per account (email and username alike) within the window before 429 (ten times that per client address)", intSetting(&c.LoginMaxFailures, 1, 1000000)},
		{"login-window", "15m", "the window of login-max-failures", durationSetting(&c.LoginWindow)},
		{"registration-limit", "20", "registrations per client address per hour", intSetting(&c.RegistrationLimit, 1, 1000000)},
		{"redis-url", "", "redis:// URL to share rate limits between instances (default: per instance, in memory)", func(v string) error {
			if v != "" && !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
				return errors.New("must start with redis:// or rediss://")
			}
			c.RedisURL = v
			return nil
		}},
		{"two-factor-ttl", dur(ad.TwoFactorTTL), "lifetime of a two-factor challenge", durationSetting(&c.TwoFactorTTL)},
		{"email-confirmation", choice(ad.EmailConfirmationRequired, "required", "off"), "required or off", choiceSetting(&c.EmailConfirmation, "required", "off")},
		{"smtp-url", "", "smtp://user:pass@host:port (STARTTLS required except to a loopback host; ?starttls=off opts out) or smtps://… (TLS) (default: mails are written to the log)", func(v string) error {
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
					return errors.New("must be smtp://[user:pass@]host[:port][?starttls=off] or smtps://…")
				}
			}
			c.SMTPURL = v
			return nil
		}},
		{"mail-from", "Latchkey <no-reply@localhost>", "sender of mails", func(v string) error {
			if _, err := netmail.ParseAddress(v); err != nil {
				return errors.New("must be an address such as Latchkey <no-reply@example.com>")
			}
			c.MailFrom = v
			return nil
		}},
		{"confirm-token-ttl", dur(ad.ConfirmTokenTTL), "email confirmation / change link lifetime", durationSetting(&c.ConfirmTokenTTL)},
		{"reset-token-ttl", dur(ad.ResetTokenTTL), "password reset link lifetime", durationSetting(&c.ResetTokenTTL)},
		{"confirm-path", mail.DefaultConfirmPath, "path of confirmation links under the public URL (the token is added as ?token=…)", pathSetting(&c.ConfirmPath)},
		{"reset-path", mail.DefaultResetPath, "path of password reset links under the public URL (the token is added as ?token=…)", pathSetting(&c.ResetPath)},
		{"cors-origins", "", "comma-separated origins (https://app.example.com) whose browser code may call the API, or * (default: no CORS)", func(v string) error {
			origins, err := server.ParseCORSOrigins(v)
			if err != nil {
				return err
			}
			c.CORSOrigins = origins
			return nil
		}},
		{"metrics-addr", "", "listen address of /metrics on its own listener, such as 127.0.0.1:9090 (default: /metrics on the public listener)", func(v string) error {
			if v != "" {
				if _, _, err := net.SplitHostPort(v); err != nil {
					return errors.New("must be host:port or :port, such as 127.0.0.1:9090")
				}
			}
			c.MetricsAddr = v
			return nil
		}},
		{"event-retention", dur(outbox.DefaultEventRetention), "how long security events are kept", durationSetting(&c.EventRetention)},
		{"log-format", "", "text or json (default: text in a terminal, else json)", logFormatSetting(&c.LogFormat)},
		{"log-level", "info", "debug, info, warn or error", func(v string) error {
			if !contains([]string{"debug", "info", "warn", "error"}, v) {
				return errors.New("must be one of debug, info, warn, error")
			}
			return c.LogLevel.UnmarshalText([]byte(v))
		}},
		{"debug-addr", "", "loopback host:port serving Go's profiles at /debug/pprof/ (default: off)", func(v string) error {
			if v != "" {
				host, _, err := net.SplitHostPort(v)
				if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
					return errors.New("must be a loopback host:port such as 127.0.0.1:6060 (profiles are not for the network)")
				}
			}
			c.DebugAddr = v
			return nil
		}},
	}
}

// parseConfig reads the environment (getenv) and the flags in args. A bad
// value is one line naming the variable or flag; -h/--help answers
// flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, _ io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("latchkey", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, help is printed by run
	fs.Usage = func() {}
	var flagErr error
	for _, s := range settingsOf(c) {
		value := s.def
		if v, ok := lookup(getenv, s.env()); ok {
			value = v
		}
		if err := s.set(value); err != nil {
			return nil, fmt.Errorf("%s: %w", s.env(), err)
		}
		fs.Func(s.name, s.usage, func(v string) error {
			if err := s.set(v); err != nil {
				flagErr = fmt.Errorf("--%s: %w", s.name, err)
				return err
			}
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			return nil, err
		case flagErr != nil:
			return nil, flagErr
		}
		// The flag package's errors, in one line without its usage dump.
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
			msg = "unknown flag --" + strings.TrimLeft(name, "-")
		} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
			msg = "--" + strings.TrimLeft(name, "-") + " needs a value"
		}
		return nil, fmt.Errorf("%s (see latchkey --help)", msg)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see latchkey --help)", fs.Arg(0))
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:" + filepath.Join(c.DataDir, "latchkey.db")
	}
	if c.isPostgres() && c.MasterKey == "" {
		return nil, errors.New("LATCHKEY_MASTER_KEY is required with PostgreSQL: generate one with `openssl rand -base64 32` and give every instance the same")
	}
	return c, nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func (c *config) isPostgres() bool { return !strings.HasPrefix(c.DatabaseURL, "sqlite:") }

// decodeMasterKey's error names no variable: the caller says where the
// key came from.
func decodeMasterKey(v string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || len(key) != 32 {
		return nil, errors.New("must be 32 random bytes in base64 (openssl rand -base64 32)")
	}
	return key, nil
}

// masterKey returns the configured master key or, on SQLite, the one kept in
// the data dir, generating it on the first start (and saying so, once).
func (c *config) masterKey(logger *slog.Logger) ([]byte, error) {
	if c.MasterKey != "" {
		key, err := decodeMasterKey(c.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("LATCHKEY_MASTER_KEY: %w", err)
		}
		return key, nil
	}
	path := filepath.Join(c.DataDir, "master.key")
	if data, err := os.ReadFile(path); err == nil {
		if info, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("reading the master key: %w", err)
		} else if perm := info.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("the master key file %s can be read or written by other users (mode %04o): run chmod 600 %s", path, perm, path)
		}
		key, err := decodeMasterKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("the master key in %s %w", path, err)
		}
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the master key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating the master key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	logger.Warn("generated a development master key: keep this file with the database, or set LATCHKEY_MASTER_KEY", "path", path)
	return key, nil
}
