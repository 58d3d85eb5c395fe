package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Default token settings, matching the upstream server's defaults
// (AUTH0_ISSUER, AUTH0_AUDIENCE, AUTH0_NAMESPACE).
const (
	DefaultIssuer    = "https://amun.ai/"
	DefaultAudience  = "https://amun-ai.eu.auth0.com/api/v2/"
	DefaultNamespace = "https://amun.ai/"

	// AnonymousLifetime is how long an anonymous user is valid.
	AnonymousLifetime = 600 * time.Second
	// AnonymousIDPrefix prefixes anonymous user ids.
	AnonymousIDPrefix = "anonymouz-"
	// RoleAnonymous and RoleAdmin are the roles of anonymous and root users.
	RoleAnonymous = "anonymous"
	RoleAdmin     = "admin"
)

// Sentinel errors returned (wrapped) by Issuer.Parse. Their messages are
// meant for users; the server sends them as "Authentication error: <detail>".
// The token itself never appears in an error message.
var (
	ErrTokenExpired = errors.New("the token has expired, please fetch a new one")
	ErrTokenInvalid = errors.New("invalid token")
	// ErrLifetimeTooLong is returned (wrapped) when a requested token
	// lifetime is over the configured maximum.
	ErrLifetimeTooLong = errors.New("token lifetime too long")
)

// Issuer mints and verifies HS256 tokens. Empty Issuer, Audience and
// Namespace fields and a nil Now use the defaults.
type Issuer struct {
	Secret    []byte
	RootToken string // optional opaque root token ("" disables it)
	Issuer    string // "iss" claim; default DefaultIssuer
	Audience  string // "aud" claim; default DefaultAudience
	Namespace string // prefix of the roles/email/parent claims; default DefaultNamespace
	Now       func() time.Time
	// Revoked, when set, is consulted by Parse: a token whose id or chain
	// holds a revoked id is refused with ErrTokenRevoked. Every route that
	// authenticates a token goes through Parse, so none can skip the check.
	Revoked *Revocations
	// MaxLifetime caps the lifetime of tokens that users ask for
	// (ParseLifetime, ClampLifetime); 0 means no cap. Generate itself does not apply it,
	// so that the server's internal tokens may live longer.
	MaxLifetime time.Duration
}

// NewIssuer returns an Issuer with the default issuer, audience and
// namespace. If secret is empty a random secret is generated (tokens then do
// not survive a restart; the caller should log a warning).
func NewIssuer(secret, rootToken string) *Issuer {
	key := []byte(secret)
	if secret == "" {
		key = []byte(RandomSecret())
	}
	return &Issuer{
		Secret:    key,
		RootToken: rootToken,
		Issuer:    DefaultIssuer,
		Audience:  DefaultAudience,
		Namespace: DefaultNamespace,
		Now:       time.Now,
	}
}

// RandomSecret returns a random 256-bit secret, base64url encoded.
func RandomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("auth: crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (is *Issuer) iss() string {
	if is.Issuer == "" {
		return DefaultIssuer
	}
	return is.Issuer
}

func (is *Issuer) aud() string {
	if is.Audience == "" {
		return DefaultAudience
	}
	return is.Audience
}

func (is *Issuer) ns() string {
	if is.Namespace == "" {
		return DefaultNamespace
	}
	return is.Namespace
}

func (is *Issuer) now() time.Time {
	if is.Now == nil {
		return time.Now()
	}
	return is.Now()
}

// Generate mints an HS256 token for u valid for expiresIn (whole seconds;
// must be positive). Claims: iss, aud, sub (u.ID), iat, exp, gty
// "client-credentials", scope (u.Scope.String()), <ns>roles, <ns>email (null
// when empty) and, when u.Parent is set, <ns>parent. u.ExpiresAt and
// u.CurrentWorkspace are not encoded (the scope's wid: carries the current
// workspace).
func (is *Issuer) Generate(u *UserInfo, expiresIn time.Duration) (string, error) {
	if u == nil || u.ID == "" {
		return "", errors.New("cannot generate a token without a user id")
	}
	if expiresIn <= 0 {
		return "", errors.New("expires_in should be greater than 0")
	}
	if len(is.Secret) == 0 {
		return "", errors.New("cannot generate a token: no signing secret configured")
	}
	now := is.now()
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	ns := is.ns()
	claims := jwt.MapClaims{
		"iss":        is.iss(),
		"sub":        u.ID,
		"aud":        is.aud(),
		"iat":        now.Unix(),
		"exp":        now.Add(expiresIn).Unix(),
		"scope":      u.Scope.String(),
		"gty":        "client-credentials",
		ns + "roles": roles,
		ns + "email": strOrNil(u.Email),
	}
	if u.Parent != "" {
		claims[ns+"parent"] = u.Parent
	}
	if len(u.Chain) > MaxChain {
		return "", fmt.Errorf("cannot generate a token derived from more than %d tokens", MaxChain)
	}
	if len(u.Chain) > 0 {
		chain := make([]any, len(u.Chain))
		for i, id := range u.Chain {
			chain[i] = id
		}
		claims[ns+"chain"] = chain
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	s, err := tok.SignedString(is.Secret)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return s, nil
}

func invalid(detail string) error { return fmt.Errorf("%w: %s", ErrTokenInvalid, detail) }

// stripBearer removes an optional "Bearer " prefix (any case).
func stripBearer(authorization string) (string, error) {
	if len(authorization) >= 7 && strings.EqualFold(authorization[:7], "bearer ") {
		parts := strings.Fields(authorization)
		switch {
		case len(parts) == 1:
			return "", invalid("token not found after 'Bearer'")
		case len(parts) > 2:
			return "", invalid("authorization must be 'Bearer <token>'")
		}
		return parts[1], nil
	}
	return authorization, nil
}

// IsRootToken reports whether token (optionally "Bearer "-prefixed or
// surrounded by whitespace) is the configured root token.
func (is *Issuer) IsRootToken(token string) bool {
	if is.RootToken == "" {
		return false
	}
	t, err := stripBearer(token)
	if err != nil {
		return false
	}
	t = strings.TrimSpace(t)
	return subtle.ConstantTimeCompare([]byte(t), []byte(is.RootToken)) == 1
}

// Parse authenticates a token string (optionally prefixed with "Bearer ").
// The configured root token yields RootUser(). Otherwise the token must be
// an HS256 JWT signed with Secret, with the configured issuer, an "exp"
// claim in the future and, if it has an "aud" claim, the configured
// audience (as upstream, a missing aud is tolerated). The user gets Admin on
// its own workspace. Errors wrap ErrTokenExpired or ErrTokenInvalid.
func (is *Issuer) Parse(token string) (*UserInfo, error) {
	t, err := stripBearer(token)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(t) == "" {
		return nil, invalid("token is empty")
	}
	if is.IsRootToken(t) {
		return RootUser(), nil
	}
	if len(is.Secret) == 0 {
		return nil, invalid("no signing secret configured")
	}
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(is.iss()),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(is.now),
	)
	parsed, err := parser.ParseWithClaims(t, claims, func(*jwt.Token) (any, error) {
		return is.Secret, nil
	})
	if err != nil {
		return nil, classify(parsed, err)
	}
	if err := is.checkAudience(claims); err != nil {
		return nil, err
	}
	u, err := is.userFromClaims(claims)
	if err != nil {
		return nil, err
	}
	u.TokenID = TokenID(t)
	if is.Revoked != nil {
		if is.Revoked.Revoked(u.TokenID) {
			return nil, ErrTokenRevoked
		}
		if is.Revoked.Revoked(u.Chain...) {
			return nil, fmt.Errorf("%w (it was derived from a revoked token)", ErrTokenRevoked)
		}
	}
	return u, nil
}

// ClampLifetime bounds a lifetime chosen by the server on a user's behalf
// (app tokens, file URLs) to MaxLifetime.
func (is *Issuer) ClampLifetime(d time.Duration) time.Duration {
	if is.MaxLifetime > 0 && d > is.MaxLifetime {
		return is.MaxLifetime
	}
	return d
}

// ParseLifetime converts an expires_in value given in seconds (any decoded
// number) into a duration; nil and 0 give def. Negative, NaN, infinite or
// non-numeric values are errors; so is a value over MaxLifetime.
func (is *Issuer) ParseLifetime(v any, def time.Duration) (time.Duration, error) {
	var secs float64
	switch n := v.(type) {
	case nil:
		return def, nil
	case int64:
		secs = float64(n)
	case int:
		secs = float64(n)
	case uint64:
		secs = float64(n)
	case float64:
		secs = n
	case float32:
		secs = float64(n)
	default:
		return 0, fmt.Errorf("expires_in must be a number of seconds, got %T", v)
	}
	switch {
	case math.IsNaN(secs) || math.IsInf(secs, 0):
		return 0, fmt.Errorf("expires_in must be a finite number of seconds, got %v", secs)
	case secs < 0:
		return 0, fmt.Errorf("expires_in must be a positive number of seconds, got %v", secs)
	case secs == 0:
		return def, nil // upstream: "expires_in or 3600"
	case is.MaxLifetime > 0 && secs > is.MaxLifetime.Seconds():
		return 0, fmt.Errorf("%w: expires_in %.0f s is over the maximum token lifetime of %d s (%s; --max-token-lifetime / HYPHA_MAX_TOKEN_LIFETIME)",
			ErrLifetimeTooLong, secs, int64(is.MaxLifetime/time.Second), is.MaxLifetime)
	case secs > maxLifetimeSeconds:
		return 0, fmt.Errorf("%w: expires_in %.0f s is out of range", ErrLifetimeTooLong, secs)
	case secs < 1:
		return 0, fmt.Errorf("expires_in must be at least 1 second, got %v", secs)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// maxLifetimeSeconds keeps durations far from time.Duration's overflow
// (about 292 years) when no cap is configured.
const maxLifetimeSeconds = 100 * 365 * 24 * 3600

// classify maps a jwt library error to one of our sentinels with a short
// detail. jwt error texts never contain the token, but we still use our own
// wording so the messages stay stable.
func classify(tok *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed, not a JWT")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("token is unverifiable (missing or unknown signing algorithm)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && tok.Method.Alg() != jwt.SigningMethodHS256.Alg() {
			return invalid(fmt.Sprintf("unsupported signing algorithm %s", safeAlg(tok.Method.Alg())))
		}
		return invalid("signature verification failed")
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("token is missing a required claim (exp or iss)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("invalid issuer")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("token is not valid yet")
	case errors.Is(err, jwt.ErrInvalidType):
		return invalid("a registered claim has an invalid type")
	}
	return invalid("token validation failed")
}

// safeAlg quotes an attacker-controlled alg header, truncated.
func safeAlg(alg string) string {
	if len(alg) > 16 {
		alg = alg[:16] + "..."
	}
	return fmt.Sprintf("%q", alg)
}

func (is *Issuer) checkAudience(claims jwt.MapClaims) error {
	if _, present := claims["aud"]; !present {
		return nil
	}
	auds, err := claims.GetAudience()
	if err != nil {
		return invalid("invalid audience")
	}
	for _, a := range auds {
		if a == is.aud() {
			return nil
		}
	}
	return invalid("invalid audience")
}

func (is *Issuer) userFromClaims(c jwt.MapClaims) (*UserInfo, error) {
	ns := is.ns()
	sub, ok := c["sub"].(string)
	if !ok || sub == "" {
		return nil, invalid("token has no subject")
	}
	u := &UserInfo{ID: sub}
	if v, ok := c["scope"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, invalid("scope claim is not a string")
		}
		sc, err := ParseScope(s)
		if err != nil {
			return nil, invalid(err.Error())
		}
		u.Scope = sc
	}
	roles, err := optStrings(c[ns+"roles"], "roles")
	if err != nil {
		return nil, invalid("roles claim is not a list of strings")
	}
	if roles == nil {
		roles = []string{}
	}
	u.Roles = roles
	u.IsAnonymous = u.HasRole(RoleAnonymous)
	if u.Email, err = optString(c, ns+"email"); err != nil {
		return nil, invalid("email claim is not a string")
	}
	if u.Parent, err = optString(c, ns+"parent"); err != nil {
		return nil, invalid("parent claim is not a string")
	}
	if u.Chain, err = optStrings(c[ns+"chain"], "chain"); err != nil || len(u.Chain) > MaxChain {
		return nil, invalid("chain claim is not a short list of strings")
	}
	exp, err := c.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, invalid("token has no valid expiration")
	}
	u.ExpiresAt = exp.Unix()
	u.CurrentWorkspace = u.Scope.CurrentWorkspace
	if u.Scope.Workspaces == nil {
		u.Scope.Workspaces = map[string]Permission{}
	}
	u.Scope.Workspaces[u.Workspace()] = Admin
	return u, nil
}

// RootUser returns the root user: id "root", roles ["admin"], not
// anonymous, Admin on "*", current workspace (in the scope) ws-user-root,
// no expiry.
func RootUser() *UserInfo {
	return &UserInfo{
		ID:    RootUserID,
		Roles: []string{RoleAdmin},
		Scope: Scope{
			CurrentWorkspace: UserWorkspacePrefix + RootUserID,
			Workspaces:       map[string]Permission{"*": Admin},
		},
	}
}

// NewAnonymous returns a fresh anonymous user: id "anonymouz-<readable
// id>", roles ["anonymous"], expiring AnonymousLifetime from now, with Admin
// on its own workspace ws-user-<id>. The caller sets the scope's current
// workspace and client id once they are known.
func (is *Issuer) NewAnonymous() *UserInfo {
	id := AnonymousIDPrefix + ReadableID()
	return &UserInfo{
		ID:          id,
		Roles:       []string{RoleAnonymous},
		IsAnonymous: true,
		ExpiresAt:   is.now().Add(AnonymousLifetime).Unix(),
		Scope: Scope{
			Workspaces: map[string]Permission{UserWorkspacePrefix + id: Admin},
		},
	}
}
