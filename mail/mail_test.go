package mail_test

import (
	"bytes"
	"context"
	"encoding/json"
	htmltemplate "html/template"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/mail"
	"github.com/latchkey-dev/latchkey/mail/mailtest"
)

const token = "2_IbhxwZ6b_ecwsveU2uFS7kUmlBVvUJ5abo0qf7NCM"

func testConfig() mail.Config {
	return mail.Config{
		From:        "Latchkey <no-reply@latchkey.test>",
		PublicURL:   "https://id.example.com/",
		ConfirmPath: "/confirm",
		ResetPath:   "/reset-password",
		ConfirmTTL:  24 * time.Hour,
		ResetTTL:    time.Hour,
	}
}

func newRenderer(t *testing.T) *mail.Renderer {
	t.Helper()
	r, err := mail.NewRenderer(testConfig())
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	return r
}

// kinds are every mail kind with a Mail of it.
var kinds = []auth.Mail{
	{Kind: auth.MailConfirm, Token: token},
	{Kind: auth.MailAlreadyRegistered, Token: token},
	{Kind: auth.MailPasswordReset, Token: token},
	{Kind: auth.MailPasswordChanged},
	{Kind: auth.MailEmailChange, Token: token},
	{Kind: auth.MailEmailChangeNotice, NewEmail: "new@example.org"},
}

func TestLanguage(t *testing.T) {
	for locale, want := range map[string]string{
		"en": "en", "en-GB": "en", "fr": "fr", "fr-CH": "fr", "FR-ca": "fr", "de": "de", "de-AT": "de",
		"gsw-CH": "en", "es": "en", "": "en", "not a tag!": "en", "zh-Hant-TW": "en",
	} {
		if got := mail.Language(locale); got != want {
			t.Errorf("Language(%q) = %q, want %q", locale, got, want)
		}
	}
}

// TestRenderEveryKind renders every kind in every language: a subject on
// one line, a text and an HTML part, and a link with the token exactly
// when the kind carries one.
func TestRenderEveryKind(t *testing.T) {
	r := newRenderer(t)
	subjects := map[string]bool{}
	for _, lang := range mail.Languages {
		for _, m := range kinds {
			m.ID, m.To, m.Name, m.Locale = "id", "ada@example.com", "Ada <Lovelace>", lang
			t.Run(lang+"/"+string(m.Kind), func(t *testing.T) {
				msg, err := r.Render(m)
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				if msg.Language != lang {
					t.Errorf("Language = %q, want %q", msg.Language, lang)
				}
				if msg.Subject == "" || strings.ContainsAny(msg.Subject, "\r\n") {
					t.Errorf("Subject = %q", msg.Subject)
				}
				if subjects[lang+msg.Subject] {
					t.Errorf("subject %q is used by two kinds", msg.Subject)
				}
				subjects[lang+msg.Subject] = true
				if !strings.Contains(msg.Text, "Ada <Lovelace>") {
					t.Errorf("the text does not greet by name:\n%s", msg.Text)
				}
				if !strings.Contains(msg.HTML, "Ada &lt;Lovelace&gt;") || strings.Contains(msg.HTML, "<Lovelace>") {
					t.Errorf("the HTML does not greet by the escaped name:\n%s", msg.HTML)
				}
				if title := "<title>" + htmlEscape(msg.Subject) + "</title>"; !strings.Contains(msg.HTML, title) {
					t.Errorf("the HTML has no %s:\n%s", title, msg.HTML)
				}
				if !strings.Contains(msg.HTML, `<html lang="`+lang+`">`) {
					t.Errorf("the HTML is not marked as %s", lang)
				}
				if strings.Contains(msg.Text, "<no value>") || strings.Contains(msg.HTML, "<no value>") {
					t.Errorf("a template field is missing:\n%s\n%s", msg.Text, msg.HTML)
				}
				if m.Token == "" {
					if msg.Link != "" || strings.Contains(msg.Text, "token=") {
						t.Errorf("a notice carries a link: %q", msg.Link)
					}
					return
				}
				if !strings.Contains(msg.Text, msg.Link) || !strings.Contains(msg.HTML, `href="`+msg.Link+`"`) {
					t.Errorf("the link %q is not in both parts", msg.Link)
				}
			})
		}
	}
}

func TestRenderLinks(t *testing.T) {
	r := newRenderer(t)
	for kind, want := range map[auth.MailKind]string{
		auth.MailConfirm:           "https://id.example.com/confirm?token=" + token,
		auth.MailEmailChange:       "https://id.example.com/confirm?token=" + token,
		auth.MailPasswordReset:     "https://id.example.com/reset-password?token=" + token,
		auth.MailAlreadyRegistered: "https://id.example.com/reset-password?token=" + token,
	} {
		msg, err := r.Render(auth.Mail{Kind: kind, To: "a@example.com", Locale: "en", Token: token})
		if err != nil {
			t.Fatalf("Render(%s): %v", kind, err)
		}
		if msg.Link != want {
			t.Errorf("%s link = %q, want %q", kind, msg.Link, want)
		}
	}
	msg, err := r.Render(auth.Mail{Kind: auth.MailPasswordReset, To: "a@example.com", Locale: "de", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "1 Stunde gültig") {
		t.Errorf("the German reset mail does not say the link lasts one hour:\n%s", msg.Text)
	}
	msg, err = r.Render(auth.Mail{Kind: auth.MailConfirm, To: "a@example.com", Locale: "fr-CH", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "Confirmez votre adresse e-mail" || !strings.Contains(msg.Text, "valable 24 heures") {
		t.Errorf("fr-CH confirmation = %q\n%s", msg.Subject, msg.Text)
	}
}

func TestRenderRefuses(t *testing.T) {
	r := newRenderer(t)
	for name, m := range map[string]auth.Mail{
		"unknown kind":            {Kind: "welcome", Token: token},
		"link kind without token": {Kind: auth.MailPasswordReset},
		"notice without address":  {Kind: auth.MailEmailChangeNotice},
	} {
		if _, err := r.Render(m); err == nil {
			t.Errorf("%s: Render succeeded", name)
		}
	}
}

func TestNewRendererRefuses(t *testing.T) {
	for name, edit := range map[string]func(*mail.Config){
		"bad sender":          func(c *mail.Config) { c.From = "not an address" },
		"relative":            func(c *mail.Config) { c.PublicURL = "/only/a/path" },
		"bad scheme":          func(c *mail.Config) { c.PublicURL = "ftp://example.com" },
		"empty":               func(c *mail.Config) { c.PublicURL = "" },
		"empty from":          func(c *mail.Config) { c.From = "" },
		"no host url":         func(c *mail.Config) { c.PublicURL = "https://" },
		"no confirm path":     func(c *mail.Config) { c.ConfirmPath = "" },
		"relative reset path": func(c *mail.Config) { c.ResetPath = "reset" },
		"no confirm ttl":      func(c *mail.Config) { c.ConfirmTTL = 0 },
		"negative reset ttl":  func(c *mail.Config) { c.ResetTTL = -time.Hour },
	} {
		cfg := testConfig()
		edit(&cfg)
		if _, err := mail.NewRenderer(cfg); err == nil {
			t.Errorf("%s: NewRenderer accepted it", name)
		}
	}
}

func TestNewSMTPRefuses(t *testing.T) {
	for _, u := range []string{
		"http://mail.example.com", "smtp://", "smtp://:25", "smtp://host:99999", "smtp://host:port",
		"smtp://host/path", "smtp://host?x=1", "::not a url",
	} {
		_, err := mail.NewSMTP(u, testConfig(), mail.SMTPOptions{})
		if err == nil {
			t.Errorf("NewSMTP(%q) accepted it", u)
		}
	}
	_, err := mail.NewSMTP("smtp://user:s3cr3t-pw@host:99999", testConfig(), mail.SMTPOptions{})
	if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error %v, want one that does not show the password", err)
	}
}

func mailerFor(t *testing.T, srv *mailtest.Server) *mail.SMTP {
	t.Helper()
	m, err := mail.NewSMTP(srv.URL(), testConfig(), mail.SMTPOptions{TLSConfig: srv.ClientTLS(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return m
}

func sendReset(t *testing.T, m auth.Mailer, locale string) error {
	t.Helper()
	return m.Send(context.Background(), auth.Mail{
		ID: "0b6f6a4e-9d7c-4f0e-8f43-55d1f3f0e2a1", Kind: auth.MailPasswordReset,
		To: "ada@example.com", Name: "Ada", Locale: locale, Token: token,
	})
}

// TestSMTP sends over real SMTP in each transport mode and reads the mail
// back as its recipient would.
func TestSMTP(t *testing.T) {
	tests := []struct {
		name    string
		opts    mailtest.Options
		wantTLS bool
	}{
		{"plain", mailtest.Options{}, false},
		{"STARTTLS offered is used", mailtest.Options{STARTTLS: true}, true},
		{"STARTTLS with auth", mailtest.Options{STARTTLS: true, Username: "relay", Password: "p@ss:w/rd"}, true},
		{"smtps with auth", mailtest.Options{ImplicitTLS: true, Username: "relay", Password: "pw"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.Start(t, tt.opts)
			if err := sendReset(t, mailerFor(t, srv), "fr-CH"); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages delivered, want 1", len(msgs))
			}
			m := msgs[0]
			if m.TLS != tt.wantTLS {
				t.Errorf("TLS = %v, want %v", m.TLS, tt.wantTLS)
			}
			if m.AuthUser != tt.opts.Username {
				t.Errorf("authenticated as %q, want %q", m.AuthUser, tt.opts.Username)
			}
			if m.From != "no-reply@latchkey.test" || len(m.To) != 1 || m.To[0] != "ada@example.com" {
				t.Errorf("envelope %s → %v", m.From, m.To)
			}
			if got := m.Header.Get("From"); !strings.Contains(got, "no-reply@latchkey.test") {
				t.Errorf("From: %q", got)
			}
			if got := m.Header.Get("Message-Id"); got != "<0b6f6a4e-9d7c-4f0e-8f43-55d1f3f0e2a1@latchkey.test>" {
				t.Errorf("Message-ID: %q", got)
			}
			for _, h := range []string{"X-Mailer", "User-Agent"} {
				if got := m.Header.Get(h); got != "" {
					t.Errorf("%s: %q names the mail library", h, got)
				}
			}
			if got := m.Header.Get("Content-Language"); got != "fr" {
				t.Errorf("Content-Language: %q", got)
			}
			if m.Subject != "Réinitialisez votre mot de passe" {
				t.Errorf("Subject = %q", m.Subject)
			}
			if !strings.Contains(m.Text, "Bonjour Ada") || !strings.Contains(m.HTML, "Bonjour Ada") {
				t.Errorf("text or HTML part missing or not French:\n%s\n%s", m.Text, m.HTML)
			}
			if m.Token() != token || m.Link() != "https://id.example.com/reset-password?token="+token {
				t.Errorf("link %q, token %q", m.Link(), m.Token())
			}
		})
	}
}

func TestSMTPFailures(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{STARTTLS: true, Username: "relay", Password: "right"})
		m, err := mail.NewSMTP(strings.Replace(srv.URL(), "right", "wrong", 1), testConfig(),
			mail.SMTPOptions{TLSConfig: srv.ClientTLS(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := sendReset(t, m, "en"); err == nil {
			t.Fatal("Send succeeded with a wrong password")
		}
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("%d messages delivered", n)
		}
	})
	t.Run("no password in clear", func(t *testing.T) {
		// The server offers AUTH PLAIN without TLS: the mailer must not
		// send the password over a plain connection.
		srv := mailtest.Start(t, mailtest.Options{Username: "relay", Password: "pw", InsecureAuth: true})
		if err := sendReset(t, mailerFor(t, srv), "en"); err == nil {
			t.Fatal("Send authenticated over a plain connection")
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{ImplicitTLS: true})
		m, err := mail.NewSMTP(srv.URL(), testConfig(), mail.SMTPOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := sendReset(t, m, "en"); err == nil {
			t.Fatal("Send trusted a self-signed certificate")
		}
	})
	t.Run("server down, then up", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{})
		m := mailerFor(t, srv)
		srv.Stop()
		if err := sendReset(t, m, "en"); err == nil {
			t.Fatal("Send succeeded with the server down")
		}
		srv.Restart()
		if err := sendReset(t, m, "en"); err != nil {
			t.Fatalf("Send after restart: %v", err)
		}
		if n := len(srv.Messages()); n != 1 {
			t.Errorf("%d messages, want 1", n)
		}
	})
	t.Run("context", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := mailerFor(t, srv).Send(ctx, auth.Mail{Kind: auth.MailPasswordChanged, To: "a@example.com", Locale: "en"})
		if err == nil {
			t.Fatal("Send succeeded with a cancelled context")
		}
	})
}

// TestLog checks that the log mailer writes the mail, link included.
func TestLog(t *testing.T) {
	var buf bytes.Buffer
	l, err := mail.NewLog(slog.New(slog.NewJSONHandler(&buf, nil)), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sendReset(t, l, "de"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if rec["link"] != "https://id.example.com/reset-password?token="+token || rec["to"] != "ada@example.com" ||
		rec["subject"] != "Setzen Sie Ihr Passwort zurück" || rec["kind"] != "password-reset" {
		t.Errorf("log record = %v", rec)
	}
	if err := l.Send(context.Background(), auth.Mail{Kind: "nonsense"}); err == nil {
		t.Error("the log mailer accepted an unknown kind")
	}
}

func htmlEscape(s string) string { return htmltemplate.HTMLEscapeString(s) }
