package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// maxUserAgent is the longest user agent kept on a session, in bytes.
const maxUserAgent = 512

// Principal is who an access token speaks for.
type Principal struct {
	UserID    string
	SessionID string
	// Admin is the account's admin flag as read on this request.
	Admin bool
	// User is the account as Authenticate loaded it for this request (nil
	// when the principal was made otherwise): GET /me answers with it
	// rather than reading the same row again.
	User *User
}

// ClientMeta describes the client starting a session. Either field may be
// empty when unknown.
type ClientMeta struct {
	UserAgent string
	IP        string
}

// Tokens is a fresh access token with its refresh token.
type Tokens struct {
	AccessToken      string
	ExpiresIn        int // seconds
	RefreshToken     string
	RefreshExpiresIn int // seconds
	SessionID        string
}

// AuthResult is the outcome of a first factor: either tokens, or a
// two-factor challenge to answer (TwoFactorToken, valid for
// TwoFactorExpiresIn seconds).
type AuthResult struct {
	Tokens             *Tokens
	TwoFactorToken     string
	TwoFactorExpiresIn int
}

// accessClaims are the claims of an access token.
type accessClaims struct {
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// issueAccessToken signs an access token for the session at now.
func (s *Service) issueAccessToken(userID, sessionID string, now time.Time) (string, error) {
	s.freshSigner(now)
	kid, key := s.keys.signingKey()
	claims := accessClaims{
		SessionID: sessionID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTokenTTL)),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return signed, nil
}

// verifyAccessToken checks an access token's signature and claims. Any
// refusal is ErrUnauthenticated; other errors are failures to load keys.
func (s *Service) verifyAccessToken(ctx context.Context, token string) (*accessClaims, error) {
	if claims := s.cachedClaims(ctx, token); claims != nil {
		return claims, nil
	}
	var (
		loadErr error
		kid     string
		pub     ed25519.PublicKey
	)
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		if kid == "" {
			return nil, errUnknownKey
		}
		var err error
		pub, err = s.publicKey(ctx, kid)
		if err != nil && !errors.Is(err, errUnknownKey) {
			loadErr = err
		}
		return pub, err
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithTimeFunc(s.now),
	)
	var claims accessClaims
	if _, err := p.ParseWithClaims(token, &claims, keyFunc); err != nil {
		if loadErr != nil {
			return nil, loadErr
		}
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if claims.Subject == "" || claims.SessionID == "" {
		return nil, fmt.Errorf("%w: missing sub or sid", ErrUnauthenticated)
	}
	if claims.NotBefore == nil { // ours never have one; cachedClaims checks only exp
		s.verified.put(token, verifiedToken{claims: claims, kid: kid, pub: pub})
	}
	return &claims, nil
}

// Authenticate verifies an access token and, on every call (nothing is
// cached), that its session is still live and belongs to its subject and
// that the account is not disabled, so that revocation, disabling and
// account deletion take effect on the very next request. Session and
// account come in one query; the account's admin flag is read on it, so a
// revoked admin loses access on the next request.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Principal, error) {
	claims, err := s.verifyAccessToken(ctx, accessToken)
	if err != nil {
		return Principal{}, err
	}
	u, err := s.st.UserByLiveSession(ctx, claims.SessionID, s.now())
	if errors.Is(err, ErrNotFound) {
		return Principal{}, ErrUnauthenticated // unknown, revoked or expired session; deleted user
	}
	if err != nil {
		return Principal{}, fmt.Errorf("load session: %w", err)
	}
	if u.ID != claims.Subject || u.Disabled {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{UserID: u.ID, SessionID: claims.SessionID, Admin: u.Admin, User: u}, nil
}

// newSession builds (but does not store) a session for the user with its
// first refresh token, whose plaintext is returned.
func (s *Service) newSession(userID string, meta ClientMeta, now time.Time) (*Session, *RefreshToken, string, error) {
	id, err := s.newID()
	if err != nil {
		return nil, nil, "", err
	}
	refresh, err := newToken(s.rand)
	if err != nil {
		return nil, nil, "", err
	}
	sess := &Session{
		ID:        id,
		UserID:    userID,
		CreatedAt: now,
		LastUsed:  now,
		ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
		UserAgent: cleanUserAgent(meta.UserAgent),
		IP:        cleanIP(meta.IP),
	}
	rt := &RefreshToken{
		Hash:      tokenHash(kindRefresh, refresh),
		SessionID: id,
		CreatedAt: now,
		ExpiresAt: sess.ExpiresAt,
	}
	return sess, rt, refresh, nil
}

// startSession stores a new session for the user and returns its tokens.
func (s *Service) startSession(ctx context.Context, userID string, meta ClientMeta) (*Tokens, error) {
	now := s.now()
	sess, rt, refresh, err := s.newSession(userID, meta, now)
	if err != nil {
		return nil, err
	}
	if ctx, err = s.withEvent(ctx, EventSignIn, userID, sess.ID); err != nil {
		return nil, err
	}
	if err := s.st.CreateSession(ctx, sess, rt); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	return s.tokens(userID, sess.ID, refresh, sess.ExpiresAt, now)
}

// tokens issues an access token and packs it with the refresh token, which
// expires with its session at refreshExpires.
func (s *Service) tokens(userID, sessionID, refresh string, refreshExpires, now time.Time) (*Tokens, error) {
	access, err := s.issueAccessToken(userID, sessionID, now)
	if err != nil {
		return nil, err
	}
	return &Tokens{
		AccessToken:      access,
		ExpiresIn:        int(s.cfg.AccessTokenTTL / time.Second),
		RefreshToken:     refresh,
		RefreshExpiresIn: int(refreshExpires.Sub(now) / time.Second),
		SessionID:        sessionID,
	}, nil
}

// Refresh rotates a refresh token: the token is retired and a successor
// returned with a new access token. Within the reuse grace a retired token
// answers again with the same successor; after it, presenting a retired
// token revokes the whole session (ErrRefreshReused).
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	now := s.now()
	hash := tokenHash(kindRefresh, refreshToken)
	successor, err := newToken(s.rand)
	if err != nil {
		return nil, err
	}
	// The successor is bound to its predecessor's hash, so a sealed
	// successor cannot be replayed for another token.
	owner := hex.EncodeToString(hash)
	successorEnc, err := s.sealer.seal(purposeRefreshSuccessor, owner, []byte(successor))
	if err != nil {
		return nil, err
	}
	next := &RefreshToken{
		Hash:      tokenHash(kindRefresh, successor),
		CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
		// SessionID is the old token's; the store sets it.
	}
	old, rotated, err := s.st.RotateRefreshToken(ctx, hash, next, successorEnc, now)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("rotate refresh token: %w", err)
	}
	if rotated {
		// The rotation slid the session, so it was live when it committed,
		// and it refuses a disabled account's tokens (see RotateRefreshToken).
		return s.tokens(old.UserID, old.SessionID, successor, next.ExpiresAt, now)
	}
	if old.RotatedAt == nil {
		return nil, ErrUnauthenticated // expired, or its session is dead
	}
	if now.Sub(*old.RotatedAt) > s.cfg.RefreshReuseGrace {
		if sess, err := s.st.SessionByID(ctx, old.SessionID); err == nil {
			if ctx, err = s.withEvent(ctx, EventRefreshReuseDetected, sess.UserID, sess.ID); err != nil {
				return nil, err
			}
		}
		if err := s.st.RevokeSessionByRefreshHash(ctx, hash, now); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("revoke reused session: %w", err)
		}
		return nil, ErrRefreshReused
	}
	return s.replaySuccessor(ctx, old, owner, now)
}

// replaySuccessor answers a retry within the reuse grace with the
// successor the first rotation handed out.
func (s *Service) replaySuccessor(ctx context.Context, old *RefreshToken, owner string, now time.Time) (*Tokens, error) {
	sess, err := s.st.SessionByID(ctx, old.SessionID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if !sess.Live(now) {
		return nil, ErrUnauthenticated
	}
	successor, err := s.sealer.open(purposeRefreshSuccessor, owner, old.SuccessorEnc)
	if err != nil {
		return nil, fmt.Errorf("open refresh successor: %w", err)
	}
	return s.tokens(sess.UserID, sess.ID, string(successor), sess.ExpiresAt, now)
}

// Logout scopes.
const (
	LogoutCurrent = "current"
	LogoutOthers  = "others"
	LogoutAll     = "all"
)

// Logout revokes the caller's session ("" or "current"), every other
// session of the user ("others"), or all of them ("all", which also voids
// a pending email change).
func (s *Service) Logout(ctx context.Context, p Principal, scope string) error {
	now := s.now()
	if scope != "" && scope != LogoutCurrent && scope != LogoutOthers && scope != LogoutAll {
		return Invalid("scope", `must be "current", "others" or "all"`)
	}
	ctx, err := s.withEvent(ctx, EventLogout, p.UserID, p.SessionID)
	if err != nil {
		return err
	}
	switch scope {
	case "", LogoutCurrent:
		err := s.st.RevokeSession(ctx, p.UserID, p.SessionID, now)
		if errors.Is(err, ErrNotFound) {
			return ErrUnauthenticated // revoked meanwhile
		}
		return err
	case LogoutOthers:
		return s.st.RevokeUserSessions(ctx, p.UserID, p.SessionID, now)
	case LogoutAll:
		// Everywhere: a pending email change dies with the sessions, as
		// it may be an intruder's.
		return s.st.EndAllSessions(ctx, p.UserID, now)
	default:
		return Invalid("scope", `must be "current", "others" or "all"`)
	}
}

// LogoutRefresh revokes the session a refresh token belongs to. An unknown
// token is not an error, so the answer does not reveal which tokens exist.
func (s *Service) LogoutRefresh(ctx context.Context, refreshToken string) error {
	ctx, err := s.withEvent(ctx, EventLogout, "", "") // the store names the session
	if err != nil {
		return err
	}
	err = s.st.RevokeSessionByRefreshHash(ctx, tokenHash(kindRefresh, refreshToken), s.now())
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// cleanUserAgent makes a user agent valid UTF-8 of at most maxUserAgent
// bytes, cut on a character boundary.
func cleanUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "\uFFFD")
	if len(ua) <= maxUserAgent {
		return ua
	}
	cut := maxUserAgent
	for cut > 0 && !utf8.RuneStart(ua[cut]) {
		cut--
	}
	return ua[:cut]
}

// cleanIP returns the canonical form of an IP address, or "" when ip is
// not one.
func cleanIP(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	return addr.Unmap().String()
}
