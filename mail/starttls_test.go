package mail_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/mail"
	"github.com/latchkey-dev/latchkey/mail/mailtest"
)

// remoteMailer sends to srv as if it were mail.example.com: a host that is
// not loopback, so STARTTLS is required unless the URL opts out.
func remoteMailer(t *testing.T, srv *mailtest.Server, query string) (*mail.SMTP, error) {
	t.Helper()
	u := strings.Replace(srv.URL(), srv.Addr(), "mail.example.com:2525", 1) + query
	tlsConfig := srv.ClientTLS()
	if tlsConfig != nil {
		tlsConfig.ServerName = "localhost" // the test certificate's name
	}
	return mail.NewSMTP(u, testConfig(), mail.SMTPOptions{
		TLSConfig: tlsConfig,
		Timeout:   5 * time.Second,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Addr())
		},
	})
}

// TestSMTPRequiresSTARTTLS: smtp:// to a host on the network delivers only
// over STARTTLS, unless ?starttls=off says otherwise; a loopback relay
// may be plain.
func TestSMTPRequiresSTARTTLS(t *testing.T) {
	t.Run("remote host without STARTTLS: no delivery", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{})
		m, err := remoteMailer(t, srv, "")
		if err != nil {
			t.Fatal(err)
		}
		err = sendReset(t, m, "en")
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Fatalf("Send without STARTTLS: %v, want a failure naming STARTTLS", err)
		}
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("%d messages delivered in clear", n)
		}
	})
	t.Run("remote host with STARTTLS", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{STARTTLS: true, Username: "relay", Password: "pw"})
		m, err := remoteMailer(t, srv, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := sendReset(t, m, "en"); err != nil {
			t.Fatalf("Send: %v", err)
		}
		msgs := srv.Messages()
		if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != "relay" {
			t.Fatalf("delivered %+v, want one mail over TLS", msgs)
		}
	})
	t.Run("remote host, ?starttls=off", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{})
		m, err := remoteMailer(t, srv, "?starttls=off")
		if err != nil {
			t.Fatal(err)
		}
		if err := sendReset(t, m, "en"); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if msgs := srv.Messages(); len(msgs) != 1 || msgs[0].TLS {
			t.Fatalf("delivered %+v, want one plain mail", msgs)
		}
	})
	t.Run("loopback hosts may be plain", func(t *testing.T) {
		srv := mailtest.Start(t, mailtest.Options{})
		for _, host := range []string{srv.Addr(), strings.Replace(srv.Addr(), "127.0.0.1", "localhost", 1)} {
			m, err := mail.NewSMTP("smtp://"+host, testConfig(), mail.SMTPOptions{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := sendReset(t, m, "en"); err != nil {
				t.Fatalf("Send to %s: %v", host, err)
			}
		}
		if n := len(srv.Messages()); n != 2 {
			t.Errorf("%d messages, want 2", n)
		}
	})
	t.Run("bad starttls settings", func(t *testing.T) {
		for _, u := range []string{"smtp://mail.example.com?starttls=on", "smtps://mail.example.com?starttls=off",
			"smtp://mail.example.com?starttls=off&starttls=off", "smtp://mail.example.com?tls=no"} {
			if _, err := mail.NewSMTP(u, testConfig(), mail.SMTPOptions{}); err == nil {
				t.Errorf("NewSMTP(%q) accepted it", u)
			}
		}
	})
}
