package rpc

// Login: the client side of the login service (public/hypha-login), as
// hypha-rpc's login() runs it: connect anonymously, start a login session,
// show its URL to the user, and wait for the token the login page reports.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// DefaultLoginServiceID is the login service hypha-rpc clients use.
const DefaultLoginServiceID = "public/hypha-login"

// ErrLogin wraps every failure of Login.
var ErrLogin = errors.New("login")

// LoginConfig configures Login.
type LoginConfig struct {
	// Connection is how to reach the server: ServerURL is required; the TLS
	// options and Dialer apply. Token, Workspace and ClientID are ignored
	// (the login client is anonymous).
	Connection Config
	// ServiceID is the login service (default DefaultLoginServiceID).
	ServiceID string
	// Workspace, when set, asks for a token scoped to that workspace.
	Workspace string
	// ExpiresIn asks for the token's lifetime (whole seconds; 0: the
	// server's default).
	ExpiresIn time.Duration
	// Timeout bounds the wait for the user (default 60 s, as hypha-rpc's
	// login_timeout; the server bounds it further by the session's life).
	Timeout time.Duration
	// OnLoginURL shows the login URL to the user. Nil prints it to
	// standard error, as hypha-rpc does. An error ends Login.
	OnLoginURL func(ctx context.Context, info LoginInfo) error
}

// LoginInfo is what start returns: the page to open and the session key.
type LoginInfo struct {
	LoginURL  string
	Key       string
	ReportURL string
	CheckURL  string
	Raw       map[string]any
}

// LoginResult is the reported login (check with profile=true).
type LoginResult struct {
	Token     string
	UserID    string
	Workspace string
	Email     string
	Name      string
	ExpiresIn int64 // seconds, 0 when not given
	Raw       map[string]any
}

// Login runs the login flow and returns the token with its profile.
func Login(ctx context.Context, cfg LoginConfig) (*LoginResult, error) {
	if cfg.Connection.ServerURL == "" {
		return nil, fmt.Errorf("%w: Connection.ServerURL is required", ErrLogin)
	}
	if cfg.ServiceID == "" {
		cfg.ServiceID = DefaultLoginServiceID
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	conn := cfg.Connection
	conn.Token, conn.Workspace, conn.ClientID = "", "", ""
	conn.NoReconnect = true
	// check waits for the user: the call must outlive it.
	conn.MethodTimeout = max(conn.MethodTimeout, cfg.Timeout+30*time.Second)
	c, err := Connect(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLogin, err)
	}
	defer c.Close()
	svc, err := c.GetService(ctx, cfg.ServiceID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLogin, err)
	}
	var startArgs []any
	if cfg.Workspace != "" || cfg.ExpiresIn > 0 {
		kw := Kwargs{}
		if cfg.Workspace != "" {
			kw["workspace"] = cfg.Workspace
		}
		if cfg.ExpiresIn > 0 {
			kw["expires_in"] = int64(math.Ceil(cfg.ExpiresIn.Seconds()))
		}
		startArgs = append(startArgs, kw)
	}
	v, err := svc.Call(ctx, "start", startArgs...)
	if err != nil {
		return nil, fmt.Errorf("%w: start: %w", ErrLogin, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: start returned %T, not a map", ErrLogin, v)
	}
	info := LoginInfo{Raw: m}
	info.LoginURL, _ = m["login_url"].(string)
	info.Key, _ = m["key"].(string)
	info.ReportURL, _ = m["report_url"].(string)
	info.CheckURL, _ = m["check_url"].(string)
	if info.Key == "" || info.LoginURL == "" {
		return nil, fmt.Errorf("%w: start returned no key or login_url", ErrLogin)
	}
	if cfg.OnLoginURL != nil {
		if err := cfg.OnLoginURL(ctx, info); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLogin, err)
		}
	} else {
		fmt.Fprintf(os.Stderr, "Please open your browser and login at %s\n", info.LoginURL)
	}
	v, err = svc.Call(ctx, "check", info.Key, Kwargs{"timeout": cfg.Timeout.Seconds(), "profile": true})
	if err != nil {
		return nil, fmt.Errorf("%w: check: %w", ErrLogin, err)
	}
	p, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: check returned %T, not a profile", ErrLogin, v)
	}
	res := &LoginResult{Raw: p}
	res.Token, _ = p["token"].(string)
	res.UserID, _ = p["user_id"].(string)
	res.Workspace, _ = p["workspace"].(string)
	res.Email, _ = p["email"].(string)
	res.Name, _ = p["name"].(string)
	switch n := p["expires_in"].(type) {
	case int64:
		res.ExpiresIn = n
	case float64:
		res.ExpiresIn = int64(n)
	}
	if res.Token == "" {
		return nil, fmt.Errorf("%w: check returned no token", ErrLogin)
	}
	return res, nil
}
