package server

// The login page of public/hypha-login (login.go), at upstream's URL
// /public/apps/hypha-login/?key=…: a form that logs in with the server's own
// accounts (a user created by an admin with `hypha users add`, password
// checked with bcrypt) or with a token (the root token, or any token this
// server issued), and posts to /public/apps/hypha-login/report, which
// completes the login session named by the key. No cookie is set or read,
// so a cross-site post carries no credential the attacker does not already
// type in itself.
//
// Password guessing is bounded: failed attempts are counted per network
// address and per username (failureLimiter), and at most two bcrypt
// comparisons run at once.

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/server/auth"
)

//go:embed login_page.html
var loginPageHTML string

// maxLoginFormBytes bounds the body of a page report.
const maxLoginFormBytes = 16 << 10

func (s *Server) mountLoginPage(l *loginService) {
	page := strings.TrimSuffix(LoginPagePath, "/")
	s.mux.HandleFunc("GET "+page, func(w http.ResponseWriter, r *http.Request) {
		u := LoginPagePath
		if r.URL.RawQuery != "" {
			u += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, u, http.StatusFound)
	})
	s.mux.HandleFunc("GET "+LoginPagePath+"{$}", l.servePage)
	s.mux.HandleFunc("POST "+LoginPagePath+"report", l.serveReport)
}

func (l *loginService) servePage(w http.ResponseWriter, _ *http.Request) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	nonce := base64.StdEncoding.EncodeToString(b[:])
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL holds the key
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+"'; connect-src 'self'; form-action 'self'; base-uri 'none'")
	_, _ = w.Write([]byte(strings.ReplaceAll(loginPageHTML, "{{NONCE}}", nonce)))
}

// serveReport completes a login session from the page: with a username and
// password, or with a token. The answer is JSON {success, detail?, user_id?}.
func (l *loginService) serveReport(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	f, err := readLoginForm(w, r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if f.Get("key") == "" {
		httpError(w, http.StatusBadRequest, "key is required: open the login link your program printed")
		return
	}
	if !l.live(f.Get("key")) {
		httpError(w, http.StatusBadRequest, ErrLoginKey.Error())
		return
	}
	addr := remoteHost(r.RemoteAddr)
	rep := loginReport{Key: f.Get("key"), Workspace: f.Get("workspace"), ExpiresIn: f.Get("expires_in")}
	switch {
	case f.Get("username") != "":
		name, pw := f.Get("username"), f.Get("password")
		if l.users == nil {
			httpError(w, http.StatusBadRequest, "this server has no user accounts (it runs without a data directory); log in with a token")
			return
		}
		if wait, ok := l.limiter.take("addr:"+addr, "user:"+name); !ok {
			h.Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
			httpError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed logins (max %d per %s, per address and per user); try again in %s",
				l.cfg.MaxPasswordFailures, l.cfg.PasswordFailureWindow, wait.Round(time.Second)))
			return
		}
		u, err := l.verifyPassword(r.Context(), name, pw)
		if err != nil {
			if errors.Is(err, auth.ErrBadCredentials) {
				l.s.log.Info("login page: failed password login", "user", name, "addr", addr)
				httpError(w, http.StatusUnauthorized, err.Error())
				return
			}
			l.limiter.refund("addr:"+addr, "user:"+name)
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		l.limiter.refund("addr:"+addr, "user:"+name)
		tok, err := l.mint(u, "", rep.ExpiresIn)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		rep.Token, rep.Name, rep.Nickname, rep.Email = tok, u.ID, u.ID, u.Email
	case f.Get("token") != "":
		if wait, ok := l.limiter.take("addr:" + addr); !ok {
			h.Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
			httpError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed logins from this address; try again in %s", wait.Round(time.Second)))
			return
		}
		rep.Token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(f.Get("token")), "Bearer "))
	default:
		httpError(w, http.StatusBadRequest, "give a username and password, or a token")
		return
	}
	err = l.report(rep)
	if f.Get("username") == "" && !errors.Is(err, ErrLoginToken) {
		l.limiter.refund("addr:" + addr) // only a token that does not verify counts
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrLoginToken) {
			code = http.StatusUnauthorized
		}
		httpError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// live reports whether key names a pending session (a cheap refusal before
// a password is checked).
func (l *loginService) live(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ss := l.lookupLocked(key, time.Now())
	return ss != nil && ss.result == nil
}

// verifyPassword runs one bcrypt comparison, at most two at a time.
func (l *loginService) verifyPassword(ctx context.Context, name, pw string) (*auth.UserInfo, error) {
	select {
	case l.bcryptSm <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.bcryptSm }()
	return l.users.Verify(ctx, name, pw)
}

func readLoginForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginFormBytes)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			return nil, fmt.Errorf("the body is not a JSON object: %w", err)
		}
		v := url.Values{}
		for k, x := range m {
			switch x := x.(type) {
			case string:
				v.Set(k, x)
			case float64:
				v.Set(k, fmt.Sprint(x))
			case nil:
			default:
				return nil, fmt.Errorf("field %s must be a string", k)
			}
		}
		return v, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("the body is not a form: %w", err)
	}
	return r.PostForm, nil
}

// failureLimiter counts failed logins per key (an address, a username),
// forgetting one every window/max; a key at max is refused until then. It
// holds at most cap keys: when full, keys whose count has decayed to zero
// are dropped, and if none has, every attempt is refused (a flood of
// distinct names or addresses cannot grow it).
type failureLimiter struct {
	max    float64
	per    time.Duration // time to forget one failure
	cap    int
	mu     sync.Mutex
	counts map[string]*failCount
}

type failCount struct {
	n    float64
	last time.Time
}

func newFailureLimiter(max int, window time.Duration, cap int) *failureLimiter {
	return &failureLimiter{max: float64(max), per: window / time.Duration(max), cap: cap, counts: map[string]*failCount{}}
}

func (f *failureLimiter) decayed(c *failCount, now time.Time) float64 {
	return max(0, c.n-float64(now.Sub(c.last))/float64(f.per))
}

// take counts one attempt against every key, unless one of them is at its
// maximum: then nothing is counted and it says how long to wait. Counting
// before the attempt (and refunding a success) keeps parallel guesses
// within the bound too.
func (f *failureLimiter) take(keys ...string) (time.Duration, bool) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if c, ok := f.counts[k]; ok {
			if n := f.decayed(c, now); n+1 > f.max {
				wait = max(wait, time.Duration((n+1-f.max)*float64(f.per)))
			}
		}
	}
	if wait > 0 {
		return wait, false
	}
	if len(f.counts)+len(keys) > f.cap {
		f.sweepLocked(now)
		if len(f.counts)+len(keys) > f.cap {
			return f.per, false
		}
	}
	for _, k := range keys {
		c, ok := f.counts[k]
		if !ok {
			c = &failCount{}
			f.counts[k] = c
		}
		c.n, c.last = f.decayed(c, now)+1, now
	}
	return 0, true
}

// refund takes back the attempt of a successful login.
func (f *failureLimiter) refund(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range keys {
		if c, ok := f.counts[k]; ok {
			c.n = max(0, c.n-1)
		}
	}
}

func (f *failureLimiter) sweepLocked(now time.Time) {
	for k, c := range f.counts {
		if f.decayed(c, now) == 0 {
			delete(f.counts, k)
		}
	}
}
