package server

import (
	"embed"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// The pages behind the links in mails (confirmation, password reset),
// for development and for applications without their own: plain HTML and
// one same-origin script, embedded in the binary.
//
//go:embed mailpages/confirm.html mailpages/reset-password.html mailpages/mail-pages.js
var mailPages embed.FS

// mailPagesScript is where the pages load their script from.
const mailPagesScript = "/_latchkey/mail-pages.js"

// mailPagesCSP allows the pages nothing but their own script and calls to
// the API on the same origin.
const mailPagesCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

// registerMailPages serves the confirmation page at confirmPath and the
// reset page at resetPath (LATCHKEY_CONFIRM_PATH, LATCHKEY_RESET_PATH),
// unless a path is under /api, where the API answers.
func registerMailPages(e *echo.Echo, confirmPath, resetPath string) {
	page := func(file, contentType string) echo.HandlerFunc {
		data, err := mailPages.ReadFile("mailpages/" + file)
		if err != nil {
			panic(err) // embedded above: cannot happen
		}
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", mailPagesCSP)
			h.Set("Referrer-Policy", "no-referrer")
			h.Set(echo.HeaderXContentTypeOptions, "nosniff")
			h.Set(echo.HeaderXFrameOptions, "DENY")
			h.Set(echo.HeaderCacheControl, "no-store") // the URL carries a token
			return c.Blob(http.StatusOK, contentType, data)
		}
	}
	methods := []string{http.MethodGet, http.MethodHead}
	for path, file := range map[string]string{confirmPath: "confirm.html", resetPath: "reset-password.html"} {
		if path == "" || path == "/api" || strings.HasPrefix(path, "/api/") {
			continue
		}
		e.Match(methods, path, page(file, echo.MIMETextHTMLCharsetUTF8))
	}
	e.Match(methods, mailPagesScript, page("mail-pages.js", echo.MIMEApplicationJavaScriptCharsetUTF8))
}
