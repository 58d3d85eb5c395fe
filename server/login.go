package server

// The login service public/hypha-login, upstream's protocol for handing a
// token to a program that cannot show a login form itself (hypha-rpc's
// login(), the Go client's rpc.Login):
//
//	program ── start() ──────────────► {key, login_url, report_url, check_url}
//	user opens login_url (the page in login_page.go), logs in there
//	page ── report(key, token) ───────► the session holds the token
//	program ── check(key, timeout) ──► the token (or a profile map)
//
// The key is the session's only secret: 128 random bits, alive for
// SessionTTL, bounded in number per caller and in all. report accepts only a
// token this server verifies (never an arbitrary string), and the first
// report wins. check answers only the caller that started the session when
// that caller has a lasting identity (a connection, a token), so that a key
// seen in a login URL does not hand over the token that was reported for
// it. See docs/security.md ("The login service") for the threat model.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// LoginServiceID is the id of the login service in the public workspace.
const LoginServiceID = "hypha-login"

// LoginPagePath is the login page (upstream's URL: the service's URL with
// "/services/" replaced by "/apps/").
const LoginPagePath = "/public/apps/" + LoginServiceID + "/"

// Sentinel errors of the login service.
var (
	// ErrLoginKey covers an unknown, expired or foreign key alike, so that
	// the answer tells nothing about other callers' sessions.
	ErrLoginKey = errors.New("Invalid key, key does not exist or expired")
	// ErrLoginLimit is returned when a caller or the server holds too many
	// pending login sessions.
	ErrLoginLimit = errors.New("too many pending login sessions")
	// ErrLoginToken is returned when a reported token does not verify.
	ErrLoginToken = errors.New("Invalid token provided to report_login")
	// ErrLoginDone is returned by a second report on one session.
	ErrLoginDone = errors.New("this login session has already been completed")
)

// LoginConfig configures the login service. Zero values give the defaults.
type LoginConfig struct {
	// Disabled leaves public/hypha-login and the login page out, so that
	// another login service (an external identity provider's) may be
	// registered as public/hypha-login by a root client.
	Disabled bool
	// SessionTTL is how long a key lives after start, and again after
	// report (default 180 s, upstream's MAXIMUM_LOGIN_TIME). It also bounds
	// the wait of one check.
	SessionTTL time.Duration
	// MaxSessions bounds pending sessions in all (default 10000) and
	// MaxSessionsPerCaller per caller (default 16).
	MaxSessions          int
	MaxSessionsPerCaller int
	// MaxPasswordFailures is how many failed logins the page accepts from
	// one network address, and for one username, before it refuses further
	// attempts; one more is allowed every PasswordFailureWindow /
	// MaxPasswordFailures (defaults 10 and 15 min).
	MaxPasswordFailures   int
	PasswordFailureWindow time.Duration
	// UsersFile is the account file (auth.Users); default
	// DataDir/users.json, none without a data dir (then only tokens log in).
	UsersFile string
}

// Defaults of LoginConfig (and of hypha server's login flags).
const (
	DefaultLoginSessionTTL           = 180 * time.Second
	DefaultMaxLoginSessions          = 10000
	DefaultMaxLoginSessionsPerCaller = 16
	DefaultMaxPasswordFailures       = 10
	DefaultPasswordFailureWindow     = 15 * time.Minute
)

func (c *LoginConfig) defaults(dataDir string) {
	if c.SessionTTL <= 0 {
		c.SessionTTL = DefaultLoginSessionTTL
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxLoginSessions
	}
	if c.MaxSessionsPerCaller <= 0 {
		c.MaxSessionsPerCaller = DefaultMaxLoginSessionsPerCaller
	}
	if c.MaxPasswordFailures <= 0 {
		c.MaxPasswordFailures = DefaultMaxPasswordFailures
	}
	if c.PasswordFailureWindow <= 0 {
		c.PasswordFailureWindow = DefaultPasswordFailureWindow
	}
	if c.UsersFile == "" && dataDir != "" {
		c.UsersFile = auth.UsersFile(dataDir)
	}
}

// Bounds of one report, as upstream's UserTokenInfo.
const (
	maxLoginTokenBytes = 4096
	maxLoginFieldBytes = 256
	maxCheckWaiters    = 4 // concurrent checks on one key
)

// loginSession is one pending login.
type loginSession struct {
	key       string
	caller    string // the starter's user id (counts against its limit)
	bound     bool   // check must come from caller
	workspace string // asked for at start (carried by the login URL)
	expiresIn string
	expires   time.Time
	done      chan struct{} // closed by the first report
	result    map[string]any
	waiters   int
}

// loginService holds the pending sessions; it is the service's state.
type loginService struct {
	s   *Server
	cfg LoginConfig

	mu       sync.Mutex
	sessions map[string]*loginSession
	byCaller map[string]int

	users    *auth.Users // nil without an account file
	limiter  *failureLimiter
	bcryptSm chan struct{} // bounds concurrent password checks

	client *rpc.Client
}

func newLoginService(s *Server, cfg LoginConfig) *loginService {
	cfg.defaults(s.cfg.DataDir)
	l := &loginService{s: s, cfg: cfg, sessions: map[string]*loginSession{}, byCaller: map[string]int{},
		limiter:  newFailureLimiter(cfg.MaxPasswordFailures, cfg.PasswordFailureWindow, 10000),
		bcryptSm: make(chan struct{}, 2)}
	if cfg.UsersFile != "" {
		l.users = auth.OpenUsers(cfg.UsersFile)
	}
	return l
}

// startLogin registers public/hypha-login through an in-process root
// client and mounts the login page.
func (s *Server) startLogin() error {
	if s.cfg.Login.Disabled {
		return nil
	}
	l := newLoginService(s, s.cfg.Login)
	s.mountLoginPage(l)
	root := auth.RootUser()
	root.Scope.CurrentWorkspace, root.CurrentWorkspace = "public", "public"
	tok, err := s.issuer.Generate(root, 365*24*time.Hour)
	if err != nil {
		return fmt.Errorf("login service: %w", err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	cli, err := s.Connect(ctx, rpc.Config{Workspace: "public", ClientID: LoginServiceID, Token: tok,
		Logger: s.log.With("component", "login")})
	if err != nil {
		return fmt.Errorf("login service: connect: %w", err)
	}
	l.client = cli
	if _, err := cli.RegisterService(ctx, l.service()); err != nil {
		_ = cli.Close()
		return fmt.Errorf("login service: register: %w", err)
	}
	s.loginSvc = l
	return nil
}

// stopLogin disconnects the service's client.
func (s *Server) stopLogin() {
	if s.loginSvc != nil && s.loginSvc.client != nil {
		_ = s.loginSvc.client.Close()
	}
}

func (l *loginService) service() rpc.Service {
	return rpc.Service{
		ID: LoginServiceID, Name: "Hypha Login", Type: "functions",
		Description: "Login service: start a login, open its page, check for the token",
		Config:      rpc.ServiceConfig{Visibility: "public", RequireContext: true},
		Functions: map[string]any{
			"start": rpc.Params(rpc.HandlerFunc(l.rpcStart), "workspace?", "expires_in?"),
			"check": rpc.Params(rpc.HandlerFunc(l.rpcCheck), "key", "timeout?", "profile?"),
			"report": rpc.Params(rpc.HandlerFunc(l.rpcReport), "key", "token", "workspace?", "expires_in?",
				"email?", "email_verified?", "name?", "nickname?", "user_id?", "picture?"),
			"logout":  rpc.Params(rpc.HandlerFunc(l.rpcLogout), "config?"),
			"index":   rpc.Params(rpc.HandlerFunc(l.rpcIndex), "event?"),
			"profile": rpc.Params(rpc.HandlerFunc(l.rpcProfile), "event?"),
		},
	}
}

func (l *loginService) base() string { return l.s.URL() }

// urls are the URLs start returns (upstream's shape).
func (l *loginService) urls(key, workspace, expiresIn string) map[string]any {
	svc := l.base() + "/public/services/" + LoginServiceID
	q := url.Values{"key": {key}}
	if workspace != "" {
		q.Set("workspace", workspace)
	}
	if expiresIn != "" {
		q.Set("expires_in", expiresIn)
	}
	return map[string]any{
		"login_url":    l.base() + LoginPagePath + "?" + q.Encode(),
		"key":          key,
		"report_url":   svc + "/report",
		"check_url":    svc + "/check",
		"generate_url": svc + "/generate",
	}
}

// callerOf is the caller's user and whether its identity lasts beyond this
// call: an anonymous user over a one-shot HTTP call (client id "http-…",
// see userPeer) gets a new anonymous id on every request.
func callerOf(c *rpc.Call) (u *auth.UserInfo, lasting bool, err error) {
	u, _, err = caller(c)
	if err != nil {
		return nil, false, err
	}
	_, cid, _ := strings.Cut(c.Context.From, "/")
	return u, !(u.IsAnonymous && strings.HasPrefix(cid, "http-")), nil
}

func (l *loginService) rpcStart(_ context.Context, c *rpc.Call) (any, error) {
	u, lasting, err := callerOf(c)
	if err != nil {
		return nil, err
	}
	ws, err := optStringArg(c, 0, "workspace")
	if err != nil {
		return nil, err
	}
	var exp string
	switch v := c.Arg(1, "expires_in").(type) {
	case nil:
	case string:
		exp = v
	case int64, uint64, float64:
		exp = fmt.Sprint(v)
	default:
		return nil, fmt.Errorf("start: expires_in must be a number of seconds, got %T", v)
	}
	if exp != "" {
		if _, err := l.s.issuer.ParseLifetime(lifetimeArg(exp), time.Hour); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	if ws != "" {
		if err := validWorkspaceID(ws); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	return l.start(u.ID, lasting, ws, exp)
}

// start opens a session for caller.
func (l *loginService) start(caller string, bound bool, workspace, expiresIn string) (map[string]any, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	if l.byCaller[caller] >= l.cfg.MaxSessionsPerCaller {
		return nil, fmt.Errorf("%w for this caller (max %d per caller, each lives %s); check or let them expire first",
			ErrLoginLimit, l.cfg.MaxSessionsPerCaller, l.cfg.SessionTTL)
	}
	if len(l.sessions) >= l.cfg.MaxSessions {
		return nil, fmt.Errorf("%w on this server (max %d); try again later", ErrLoginLimit, l.cfg.MaxSessions)
	}
	key := idgen.New()
	l.sessions[key] = &loginSession{key: key, caller: caller, bound: bound, workspace: workspace,
		expiresIn: expiresIn, expires: now.Add(l.cfg.SessionTTL), done: make(chan struct{})}
	l.byCaller[caller]++
	return l.urls(key, workspace, expiresIn), nil
}

// sweepLocked drops expired sessions.
func (l *loginService) sweepLocked(now time.Time) {
	for k, ss := range l.sessions {
		if now.After(ss.expires) {
			l.dropLocked(k, ss)
		}
	}
}

func (l *loginService) dropLocked(key string, ss *loginSession) {
	if _, ok := l.sessions[key]; !ok {
		return
	}
	delete(l.sessions, key)
	if l.byCaller[ss.caller]--; l.byCaller[ss.caller] <= 0 {
		delete(l.byCaller, ss.caller)
	}
}

// lookupLocked finds a live session.
func (l *loginService) lookupLocked(key string, now time.Time) *loginSession {
	ss, ok := l.sessions[key]
	if !ok {
		return nil
	}
	if now.After(ss.expires) {
		l.dropLocked(key, ss)
		return nil
	}
	return ss
}

func (l *loginService) rpcCheck(ctx context.Context, c *rpc.Call) (any, error) {
	u, lasting, err := callerOf(c)
	if err != nil {
		return nil, err
	}
	key, _ := c.Arg(0, "key").(string)
	timeout := l.cfg.SessionTTL.Seconds()
	if v := c.Arg(1, "timeout"); v != nil {
		f, ok := convert.Number(v)
		if !ok {
			return nil, fmt.Errorf("check: timeout must be a number of seconds, got %T", v)
		}
		timeout = f
	}
	profile, _ := c.Arg(2, "profile").(bool)
	who := ""
	if lasting {
		who = u.ID
	}
	return l.check(ctx, key, who, timeout, profile)
}

// check waits up to timeout seconds (never past the session's life) for
// the report on key. who is the checking caller's lasting id ("" for none):
// a bound session answers only its starter.
func (l *loginService) check(ctx context.Context, key, who string, timeout float64, profile bool) (any, error) {
	now := time.Now()
	l.mu.Lock()
	ss := l.lookupLocked(key, now)
	if ss == nil || (ss.bound && ss.caller != who) {
		l.mu.Unlock()
		return nil, ErrLoginKey
	}
	if ss.result != nil {
		return l.takeLocked(ss, profile), nil
	}
	if timeout <= 0 || math.IsNaN(timeout) {
		l.mu.Unlock()
		return nil, nil
	}
	if ss.waiters >= maxCheckWaiters {
		l.mu.Unlock()
		return nil, fmt.Errorf("check: too many checks waiting on this key (max %d)", maxCheckWaiters)
	}
	ss.waiters++
	wait := min(time.Until(ss.expires), time.Duration(min(timeout, l.cfg.SessionTTL.Seconds())*float64(time.Second)))
	l.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var cause error
	select {
	case <-ss.done:
	case <-t.C:
		if !time.Now().Before(ss.expires) {
			cause = fmt.Errorf("Login session expired, the maximum login time is %d seconds", int(l.cfg.SessionTTL.Seconds()))
		} else {
			cause = fmt.Errorf("Login timeout, waited for %v seconds", timeout)
		}
	case <-ctx.Done():
		cause = ctx.Err()
	case <-l.s.ctx.Done():
		cause = errors.New("the server is shutting down")
	}
	l.mu.Lock()
	ss.waiters--
	if cause == nil && ss.result != nil && l.sessions[key] == ss {
		return l.takeLocked(ss, profile), nil
	}
	if cause != nil && !time.Now().Before(ss.expires) {
		l.dropLocked(key, ss)
	}
	l.mu.Unlock()
	if cause == nil { // another check took it first
		return nil, ErrLoginKey
	}
	return nil, cause
}

// takeLocked ends the session and returns its result; it unlocks l.mu.
func (l *loginService) takeLocked(ss *loginSession, profile bool) any {
	l.dropLocked(ss.key, ss)
	res := ss.result
	l.mu.Unlock()
	if profile {
		return res
	}
	return res["token"]
}

// loginReport is what a report carries.
type loginReport struct {
	Key, Token, Workspace, ExpiresIn string
	Email, Name, Nickname, Picture   string
	EmailVerified                    any
}

func (l *loginService) rpcReport(_ context.Context, c *rpc.Call) (any, error) {
	var r loginReport
	var err error
	str := func(i int, name string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = optStringArg(c, i, name)
		return v
	}
	r.Key, r.Token, r.Workspace = str(0, "key"), str(1, "token"), str(2, "workspace")
	switch v := c.Arg(3, "expires_in").(type) {
	case nil:
	case string:
		r.ExpiresIn = v
	case int64, uint64, float64:
		r.ExpiresIn = fmt.Sprint(v)
	default:
		return nil, fmt.Errorf("report: expires_in must be a number of seconds, got %T", v)
	}
	r.Email = str(4, "email")
	r.EmailVerified = c.Arg(5, "email_verified")
	r.Name, r.Nickname = str(6, "name"), str(7, "nickname")
	_ = str(8, "user_id") // replaced by the token's own user id
	r.Picture = str(9, "picture")
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return nil, l.report(r)
}

// report verifies r.Token and completes the session r.Key with it. The
// opaque root token is never handed on: the session gets a root JWT that
// expires (and can be revoked). With a workspace, the session gets a token
// of the same user scoped to it, as upstream does.
func (l *loginService) report(r loginReport) error {
	if r.Key == "" {
		return errors.New("report: key is required")
	}
	if r.Token == "" {
		return errors.New("report: token is required")
	}
	if len(r.Token) > maxLoginTokenBytes {
		return fmt.Errorf("%w: the token is longer than %d bytes", ErrLoginToken, maxLoginTokenBytes)
	}
	for name, v := range map[string]string{"workspace": r.Workspace, "email": r.Email, "name": r.Name,
		"nickname": r.Nickname, "picture": r.Picture, "expires_in": r.ExpiresIn} {
		if len(v) > maxLoginFieldBytes {
			return fmt.Errorf("report: %s is longer than %d bytes", name, maxLoginFieldBytes)
		}
	}
	l.mu.Lock()
	ss := l.lookupLocked(r.Key, time.Now())
	l.mu.Unlock()
	if ss == nil {
		return ErrLoginKey
	}
	u, err := l.s.parseToken(r.Token)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLoginToken, err)
	}
	ws := r.Workspace
	if ws == "" {
		ws = ss.workspace
	}
	exp := r.ExpiresIn
	if exp == "" {
		exp = ss.expiresIn
	}
	token := r.Token
	isRootToken := u.IsRoot() && u.TokenID == ""
	if ws != "" || isRootToken {
		if token, err = l.mint(u, ws, exp); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	res := map[string]any{"token": token, "workspace": nilIfEmpty(ws), "expires_in": nil,
		"email": nilIfEmpty(r.Email), "email_verified": r.EmailVerified, "name": nilIfEmpty(r.Name),
		"nickname": nilIfEmpty(r.Nickname), "user_id": u.ID, "picture": nilIfEmpty(r.Picture)}
	if u.Email != "" {
		res["email"] = u.Email
	}
	if exp != "" {
		if f, ok := convert.Number(lifetimeArg(exp)); ok {
			res["expires_in"] = int64(f)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sessions[r.Key] != ss {
		return ErrLoginKey
	}
	if ss.result != nil {
		return ErrLoginDone
	}
	ss.result = res
	ss.expires = time.Now().Add(l.cfg.SessionTTL) // the program has the TTL again to collect it
	close(ss.done)
	return nil
}

// mint makes the token a session hands out for u: scoped to ws when given
// (u needs read permission there), for the lifetime asked (capped by the
// server's maximum token lifetime; default 1 h), derived from u's token so
// that revoking that token revokes this one.
func (l *loginService) mint(u *auth.UserInfo, ws, expiresIn string) (string, error) {
	life, err := l.s.issuer.ParseLifetime(lifetimeArg(expiresIn), time.Hour)
	if err != nil {
		return "", err
	}
	child := u.Clone()
	child.Chain = u.Lineage()
	if len(child.Chain) >= auth.MaxChain {
		return "", fmt.Errorf("the token is derived %d levels deep; use a token closer to the original credential", len(child.Chain))
	}
	child.TokenID = ""
	if ws != "" {
		if err := validWorkspaceID(ws); err != nil {
			return "", err
		}
		if l.s.permission(u, ws) < auth.Read {
			return "", fmt.Errorf("Invalid permission for the workspace %s", ws)
		}
		child.Scope.CurrentWorkspace, child.CurrentWorkspace = ws, ws
	}
	return l.s.issuer.Generate(child, life)
}

func (l *loginService) rpcLogout(context.Context, *rpc.Call) (any, error) {
	return map[string]any{"logout_url": l.base() + LoginPagePath + "?logout=true&close=true"}, nil
}

// rpcIndex and rpcProfile answer upstream's "functions" app calls
// (event in, {status, headers, body} out), for a functions-app route.
func (l *loginService) rpcIndex(context.Context, *rpc.Call) (any, error) {
	return map[string]any{"status": int64(200), "headers": map[string]any{"Content-Type": "text/html; charset=utf-8"},
		"body": strings.ReplaceAll(loginPageHTML, "{{NONCE}}", "")}, nil
}

func (l *loginService) rpcProfile(context.Context, *rpc.Call) (any, error) {
	return map[string]any{"status": int64(302), "headers": map[string]any{"Location": l.base() + LoginPagePath},
		"body": "Redirecting to the login page"}, nil
}

func optStringArg(c *rpc.Call, i int, name string) (string, error) {
	switch v := c.Arg(i, name).(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("%s must be a string, got %T", name, v)
	}
}

// lifetimeArg is expires_in as carried by a URL or form ("3600"), as
// Issuer.ParseLifetime takes it; "" is the default.
func lifetimeArg(s string) any {
	if s == "" {
		return nil
	}
	return guessQueryValue(s)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
