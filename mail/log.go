package mail

import (
	"context"
	"log/slog"

	"github.com/latchkey-dev/latchkey/auth"
)

// Log is the mailer used when no SMTP server is configured: it writes each
// mail, link included, to the log instead of sending it, so that a
// development setup (make run) works without a mail server.
//
// The link is a live credential (it confirms an address or resets a
// password): Log is for development only, never for production, where
// whoever reads the log could take over accounts.
type Log struct {
	r      *Renderer
	logger *slog.Logger
}

var _ auth.Mailer = (*Log)(nil)

// NewLog returns a mailer that writes mails to logger.
func NewLog(logger *slog.Logger, cfg Config) (*Log, error) {
	r, err := NewRenderer(cfg)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{r: r, logger: logger}, nil
}

// Send renders m and logs it at level INFO.
func (l *Log) Send(ctx context.Context, m auth.Mail) error {
	msg, err := l.r.Render(m)
	if err != nil {
		return err
	}
	l.logger.InfoContext(ctx, "mail (not sent: no LATCHKEY_SMTP_URL, written to the log)",
		"mail_id", m.ID,
		"kind", string(m.Kind),
		"from", msg.From.String(),
		"to", msg.To,
		"language", msg.Language,
		"subject", msg.Subject,
		"link", msg.Link,
		"text", msg.Text,
	)
	return nil
}
