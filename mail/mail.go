// Package mail renders Latchkey's mails from embedded, localised templates
// and sends them: over SMTP (SMTP), or into the log when no mail server is
// configured (Log). Both implement auth.Mailer.
package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"

	"golang.org/x/text/language"

	"github.com/latchkey-dev/latchkey/auth"
)

// Languages are the languages mails are written in; the first is the
// fallback for every other locale.
var Languages = []string{"en", "fr", "de"}

//go:embed templates
var templateFS embed.FS

// The default paths of the pages that take a link's token.
const (
	DefaultConfirmPath = "/confirm"
	DefaultResetPath   = "/reset-password"
)

// Config says how mails look and where their links lead.
type Config struct {
	// From is the sender, an RFC 5322 address ("Latchkey
	// <no-reply@example.com>").
	From string
	// PublicURL is the base of links ("https://id.example.com").
	PublicURL string
	// ConfirmPath and ResetPath are the paths under PublicURL of the pages
	// that take a confirmation (or email change) and a password reset
	// token, as ?token=… (DefaultConfirmPath and DefaultResetPath are
	// cmd/latchkey's defaults); required.
	ConfirmPath string
	ResetPath   string
	// ConfirmTTL and ResetTTL are the lifetimes of those links, as the
	// mails state them: the service's (auth.Service.LinkTTLs); required.
	ConfirmTTL time.Duration
	ResetTTL   time.Duration
}

// Message is a rendered mail.
type Message struct {
	From     *mail.Address
	To       string
	Language string // the language it is written in: one of Languages
	Subject  string
	Text     string
	HTML     string
	Link     string // the link it carries; empty for notices
}

// Renderer turns an auth.Mail into a Message.
type Renderer struct {
	cfg  Config
	from *mail.Address
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// NewRenderer checks cfg and parses the templates.
func NewRenderer(cfg Config) (*Renderer, error) {
	for name, p := range map[string]string{"confirm path": cfg.ConfirmPath, "reset path": cfg.ResetPath} {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("mail: %s %q: want a path starting with /", name, p)
		}
	}
	if cfg.ConfirmTTL <= 0 || cfg.ResetTTL <= 0 {
		return nil, fmt.Errorf("mail: link lifetimes %v and %v: want both positive", cfg.ConfirmTTL, cfg.ResetTTL)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", cfg.From, err)
	}
	base, err := url.Parse(cfg.PublicURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("mail: public URL %q: want http(s)://host[/path]", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	r := &Renderer{cfg: cfg, from: from, text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, lang := range Languages {
		t, err := texttemplate.ParseFS(templateFS, "templates/text/"+lang+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("mail: templates: %w", err)
		}
		h, err := htmltemplate.ParseFS(templateFS, "templates/html/layout.tmpl", "templates/html/"+lang+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("mail: templates: %w", err)
		}
		r.text[lang], r.html[lang] = t, h
	}
	return r, nil
}

// Language is the language of mails to someone with this BCP 47 locale:
// its primary subtag when mails are written in it (fr-CH → fr), else
// English.
func Language(locale string) string {
	tag, err := language.Parse(locale)
	if err == nil {
		base, _ := tag.Base()
		for _, lang := range Languages {
			if base.String() == lang {
				return lang
			}
		}
	}
	return Languages[0]
}

// data is what the templates see.
type data struct {
	Lang     string
	Name     string
	Email    string // the recipient
	NewEmail string
	Link     string
	ValidFor string // the link's lifetime, in words
	Site     string // the public URL's host
	Label    string // the link's button text
	Subject  string // the rendered subject, the HTML part's <title>
	// Security notices: when (in the recipient's time zone), from which
	// address, with which user agent.
	At        string
	IP        string
	UserAgent string
}

// With returns d with the button label set (for the "button" template).
func (d data) With(label string) data {
	d.Label = label
	return d
}

// Render renders m in the language of its locale.
func (r *Renderer) Render(m auth.Mail) (*Message, error) {
	lang := Language(m.Locale)
	d := data{Lang: lang, Name: m.Name, Email: m.To, NewEmail: m.NewEmail, IP: m.IP, UserAgent: m.UserAgent}
	if !m.At.IsZero() {
		d.At = localTime(m.At, m.Timezone)
	}
	if u, err := url.Parse(r.cfg.PublicURL); err == nil {
		d.Site = u.Host
	}
	var path string
	var ttl time.Duration
	switch m.Kind {
	case auth.MailConfirm, auth.MailEmailChange:
		path, ttl = r.cfg.ConfirmPath, r.cfg.ConfirmTTL
	case auth.MailPasswordReset, auth.MailAlreadyRegistered:
		path, ttl = r.cfg.ResetPath, r.cfg.ResetTTL
	case auth.MailPasswordChanged, auth.MailEmailChangeNotice:
	case auth.MailPasswordChangeNotice, auth.MailTwoFactorDisabled, auth.MailRecoveryCodeUsed:
		if m.At.IsZero() {
			return nil, fmt.Errorf("mail: %s notice without its time", m.Kind)
		}
	default:
		return nil, fmt.Errorf("mail: unknown kind %q", m.Kind)
	}
	if path != "" {
		if m.Token == "" {
			return nil, fmt.Errorf("mail: %s mail without a token", m.Kind)
		}
		d.Link = r.cfg.PublicURL + path + "?token=" + url.QueryEscape(m.Token)
		d.ValidFor = duration(lang, ttl)
	}
	if m.Kind == auth.MailEmailChangeNotice && m.NewEmail == "" {
		return nil, errors.New("mail: email change notice without the new address")
	}
	name := string(m.Kind)
	var subject, text, html bytes.Buffer
	if err := r.text[lang].ExecuteTemplate(&subject, name+".subject", d); err != nil {
		return nil, fmt.Errorf("mail: %s subject: %w", name, err)
	}
	if err := r.text[lang].ExecuteTemplate(&text, name+".text", d); err != nil {
		return nil, fmt.Errorf("mail: %s text: %w", name, err)
	}
	d.Subject = strings.Join(strings.Fields(subject.String()), " ")
	if err := r.html[lang].ExecuteTemplate(&html, name+".html", d); err != nil {
		return nil, fmt.Errorf("mail: %s html: %w", name, err)
	}
	return &Message{
		From:     r.from,
		To:       m.To,
		Language: lang,
		Subject:  d.Subject,
		Text:     strings.TrimSpace(text.String()) + "\n",
		HTML:     html.String(),
		Link:     d.Link,
	}, nil
}

// localTime is t in the IANA zone tz (UTC when tz is unknown), with the
// zone's abbreviation and its offset, so that it reads right wherever the
// reader is: "2025-11-21 10:30 CET (+01:00)".
func localTime(t time.Time, tz string) string {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04 MST (-07:00)")
}

// units are the words for hours and minutes: singular, plural.
var units = map[string][2][2]string{
	"en": {{"hour", "hours"}, {"minute", "minutes"}},
	"fr": {{"heure", "heures"}, {"minute", "minutes"}},
	"de": {{"Stunde", "Stunden"}, {"Minute", "Minuten"}},
}

// duration says d in lang, in whole hours when it is one, else minutes.
func duration(lang string, d time.Duration) string {
	u := units[lang]
	n, unit := int(d/time.Hour), u[0]
	if d%time.Hour != 0 {
		n, unit = int((d+time.Minute-1)/time.Minute), u[1]
	}
	if n == 1 {
		return "1 " + unit[0]
	}
	return fmt.Sprintf("%d %s", n, unit[1])
}
