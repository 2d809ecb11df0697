package server

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// This file holds what every response carries whatever its route: the
// security headers, CORS, and the Content-Security-Policy of /docs.

// ParseCORSOrigins reads LATCHKEY_CORS_ORIGINS: a comma-separated list of
// exact origins (scheme://host[:port], as a browser sends them in Origin),
// or "*" alone. An empty value means no CORS at all.
func ParseCORSOrigins(v string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if part == "*" {
			out = append(out, part)
			continue
		}
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Scheme+"://"+u.Host != part || strings.ContainsAny(u.Host, "*?") || u.Host != strings.ToLower(u.Host) {
			return nil, fmt.Errorf("%q is not an origin: want scheme://host[:port] in lower case with no path, such as https://app.example.com, or * alone", part)
		}
		out = append(out, part)
	}
	if len(out) > 1 {
		for _, o := range out {
			if o == "*" {
				return nil, errors.New("* allows every origin: give it alone, not in a list")
			}
		}
	}
	return out, nil
}

// corsAllowHeaders and corsExposeHeaders are the request headers browser
// code may send, and the response headers it may read.
var (
	corsAllowMethods  = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	corsAllowHeaders  = []string{echo.HeaderAuthorization, echo.HeaderContentType, "If-None-Match"}
	corsExposeHeaders = []string{"Retry-After", "ETag", echo.HeaderXRequestID}
)

// corsMaxAge is how long (seconds) a browser may cache a preflight answer.
const corsMaxAge = 600

// cors answers preflights from the listed origins and marks every
// response to them with Access-Control-Allow-Origin; a request from any
// other origin is served as without CORS (a preflight then gets 405, and
// the browser keeps the answer from the page). Credentials are never
// allowed: the API takes a bearer header, not cookies. Every response
// varies by Origin, so that no cache hands one origin's answer to another.
func cors(origins []string) echo.MiddlewareFunc {
	if len(origins) == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	anyOrigin := len(origins) == 1 && origins[0] == "*"
	listed := map[string]bool{}
	for _, o := range origins {
		listed[o] = true
	}
	mw := middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:     origins,
		AllowMethods:     corsAllowMethods,
		AllowHeaders:     corsAllowHeaders,
		ExposeHeaders:    corsExposeHeaders,
		AllowCredentials: false,
		MaxAge:           corsMaxAge,
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withCORS := mw(next)
		return func(c echo.Context) error {
			if o := c.Request().Header.Get(echo.HeaderOrigin); o != "" && (anyOrigin || listed[o]) {
				return withCORS(c) // which adds Vary: Origin itself
			}
			c.Response().Header().Add(echo.HeaderVary, echo.HeaderOrigin)
			return next(c)
		}
	}
}

// securityHeaders sets what every response carries.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXContentTypeOptions, "nosniff")
		return next(c)
	}
}

// apiCacheControl makes every /api answer uncacheable unless its handler
// says otherwise: they are personal (GET /me, sessions) or secret (tokens).
// The avatar is private but revalidated by its ETag.
func apiCacheControl(c echo.Context, operationID string) {
	value := noStore
	if operationID == "getAvatar" {
		value = "private, no-cache"
	}
	res := c.Response()
	res.Before(func() {
		if res.Header().Get(echo.HeaderCacheControl) == "" {
			res.Header().Set(echo.HeaderCacheControl, value)
		}
	})
}

// inlineBlock finds the inline scripts and styles of an HTML page.
var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

// docsCSP is the Content-Security-Policy of the Swagger UI page: its own
// assets only, the inline blocks of the page allowed by their hashes (the
// page is the same on every request), no framing, nothing sent elsewhere.
func docsCSP(page http.Handler, path string) string {
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var scripts, styles []string
	for _, m := range inlineBlock.FindAllStringSubmatch(rec.Body.String(), -1) {
		sum := sha256.Sum256([]byte(m[2]))
		h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if m[1] == "script" {
			scripts = append(scripts, h)
		} else {
			styles = append(styles, h)
		}
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + strings.Join(append([]string{"'self'"}, scripts...), " "),
		"style-src " + strings.Join(append([]string{"'self'"}, styles...), " "),
		"img-src 'self' data:",
		"font-src 'self'",
		"connect-src 'self'",
		"form-action 'self'",
		"base-uri 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// withCSP serves h with the page's Content-Security-Policy and a ban on
// framing for browsers that predate frame-ancestors.
func withCSP(h http.Handler, csp string) echo.HandlerFunc {
	return func(c echo.Context) error {
		hd := c.Response().Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}
