package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/latchkey-dev/latchkey/auth"
)

// Default ports when an SMTP URL names none: submission with STARTTLS, and
// submission over implicit TLS (RFC 8314).
const (
	defaultSMTPPort  = 587
	defaultSMTPSPort = 465
)

// SMTPOptions are the less common settings of an SMTP mailer.
type SMTPOptions struct {
	// TLSConfig verifies the server (nil: the system's roots, TLS 1.2 or
	// later). Its ServerName defaults to the URL's host.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each SMTP command (default 30s).
	Timeout time.Duration
	// HELO is the name given in EHLO (default: this machine's host name).
	HELO string
	// DialContext, when set, opens the connections instead of the
	// system dialer (tests point a remote-looking host at a local server).
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)
}

// SMTP sends mails through an SMTP server. It opens one connection per
// mail, which suits the outbox's trickle of mails. It is safe for
// concurrent use.
type SMTP struct {
	r      *Renderer
	host   string
	opts   []gomail.Option
	domain string // of the sender, for Message-IDs
}

var _ auth.Mailer = (*SMTP)(nil)

// NewSMTP returns a mailer for the server at rawURL:
//
//	smtp://[user[:password]@]host[:port]   STARTTLS required (port 587)
//	smtps://[user[:password]@]host[:port]  implicit TLS (port 465)
//
// With smtp://, a server that does not offer STARTTLS gets no mail (the
// send fails and the outbox retries), except on a loopback host
// (localhost, 127.0.0.0/8, ::1), where STARTTLS is used when offered: a
// local relay is not on the network. `?starttls=off` opts out of TLS
// explicitly, for a relay that cannot do it.
//
// With user info, the mailer authenticates with the strongest mechanism
// the server offers; PLAIN and LOGIN only over an encrypted connection.
func NewSMTP(rawURL string, cfg Config, o SMTPOptions) (*SMTP, error) {
	r, err := NewRenderer(cfg)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, password included: say less.
		return nil, errors.New("mail: malformed SMTP URL")
	}
	host := u.Hostname()
	if host == "" || (u.Scheme != "smtp" && u.Scheme != "smtps") || (u.Path != "" && u.Path != "/") {
		return nil, errors.New("mail: SMTP URL must be smtp://[user:pass@]host[:port][?starttls=off] or smtps://…")
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("mail: malformed SMTP URL query")
	}
	startTLSOff := false
	for k, v := range query {
		switch {
		case k == "starttls" && len(v) == 1 && v[0] == "off" && u.Scheme == "smtp":
			startTLSOff = true
		case k == "starttls":
			return nil, errors.New("mail: the only starttls setting is ?starttls=off, on smtp:// (STARTTLS is required otherwise)")
		default:
			return nil, fmt.Errorf("mail: unknown SMTP URL parameter %q (the only one is starttls=off)", k)
		}
	}
	port := defaultSMTPPort
	if u.Scheme == "smtps" {
		port = defaultSMTPSPort
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("mail: SMTP port %q", p)
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSConfig != nil {
		tlsConfig = o.TLSConfig.Clone()
	}
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = host
	}
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(o.Timeout),
		gomail.WithTLSConfig(tlsConfig),
	}
	switch {
	case u.Scheme == "smtps":
		opts = append(opts, gomail.WithSSL())
	case startTLSOff:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case isLoopback(host):
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if o.DialContext != nil {
		opts = append(opts, gomail.WithDialContextFunc(o.DialContext))
	}
	if o.HELO != "" {
		opts = append(opts, gomail.WithHELO(o.HELO))
	}
	if user := u.User.Username(); user != "" {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(user), gomail.WithPassword(pass))
	}
	// Fail now, not at the first mail, on options go-mail refuses.
	if _, err := gomail.NewClient(host, opts...); err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	_, domain, _ := strings.Cut(r.from.Address, "@")
	return &SMTP{r: r, host: host, opts: opts, domain: domain}, nil
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback address, as written (names are not resolved).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send renders m and hands it to the server.
func (s *SMTP) Send(ctx context.Context, m auth.Mail) error {
	msg, err := s.r.Render(m)
	if err != nil {
		return err
	}
	gm, err := s.message(m.ID, msg)
	if err != nil {
		return err
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, gm); err != nil {
		return fmt.Errorf("mail: sending via %s: %w", s.host, err)
	}
	return nil
}

// message builds the MIME message: text and HTML alternatives, and a
// Message-ID made from the outbox id, the same on every attempt.
func (s *SMTP) message(id string, msg *Message) (*gomail.Msg, error) {
	// No User-Agent/X-Mailer: naming the library and its version only
	// helps someone looking for a vulnerable one.
	gm := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	gm.FromMailAddress(msg.From)
	if err := gm.To(msg.To); err != nil {
		return nil, fmt.Errorf("mail: recipient: %w", err)
	}
	gm.Subject(msg.Subject)
	gm.SetDate()
	if id != "" {
		gm.SetMessageIDWithValue(id + "@" + s.domain)
	} else {
		gm.SetMessageID()
	}
	gm.SetGenHeader(gomail.HeaderContentLang, msg.Language)
	gm.SetGenHeader("Auto-Submitted", "auto-generated")
	gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
	gm.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	return gm, nil
}
