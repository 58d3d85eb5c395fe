package browser

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/hypha-go/hypha/worker"
)

// Bounds of a web-app's preloaded state.
const (
	maxCookies        = 100
	maxStorageItems   = 1000
	maxStateBytes     = 1 << 20
	maxStartupScript  = 1 << 20
	maxExtraHeaders   = 50
	maxHeaderValueLen = 8 << 10
)

// webAppSetup is what a web-app's manifest asks to prepare before and after
// its page loads (upstream's cookies, local_storage, session_storage,
// authorization_token, extra_http_headers and startup_script).
type webAppSetup struct {
	entry   *url.URL
	origin  string
	cookies []*network.CookieParam
	local   map[string]string
	session map[string]string
	headers map[string]string
	startup string // a path among the app's files
}

// parseWebApp validates the manifest's web-app options against entry.
func parseWebApp(man worker.Manifest, entry *url.URL) (*webAppSetup, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: web-app manifest: %s", worker.ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	ws := &webAppSetup{entry: entry, origin: entry.Scheme + "://" + entry.Host, headers: map[string]string{}}
	size := 0
	str := func(field string, v any) (string, error) {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case bool, int, int64, uint64, float64:
			s = fmt.Sprint(x)
		default:
			return "", bad("%s: want a string or a number, got %T", field, v)
		}
		size += len(s)
		if size > maxStateBytes {
			return "", bad("the preloaded cookies, storage and headers exceed %d bytes", maxStateBytes)
		}
		return s, nil
	}
	switch c := man["cookies"].(type) {
	case nil:
	case map[string]any:
		for _, name := range sortedKeys(c) {
			v, err := str("cookies."+name, c[name])
			if err != nil {
				return nil, err
			}
			ws.cookies = append(ws.cookies, &network.CookieParam{Name: name, Value: v, URL: entry.String()})
		}
	case []any:
		for i, e := range c {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, bad("cookies[%d]: want a map, got %T", i, e)
			}
			name, _ := m["name"].(string)
			if name == "" {
				return nil, bad("cookies[%d]: name is missing", i)
			}
			v, err := str(fmt.Sprintf("cookies[%d].value", i), m["value"])
			if err != nil && m["value"] != nil {
				return nil, err
			}
			cp := &network.CookieParam{Name: name, Value: v}
			if d, _ := m["domain"].(string); d != "" {
				cp.Domain = d
				cp.Path = "/"
			} else {
				cp.URL = entry.String()
			}
			if p, _ := m["path"].(string); p != "" {
				cp.Path = p
			}
			cp.Secure, _ = m["secure"].(bool)
			cp.HTTPOnly, _ = m["httpOnly"].(bool)
			if ss, ok := m["sameSite"].(string); ok {
				switch network.CookieSameSite(ss) {
				case network.CookieSameSiteStrict, network.CookieSameSiteLax, network.CookieSameSiteNone:
					cp.SameSite = network.CookieSameSite(ss)
				default:
					return nil, bad("cookies[%d].sameSite: want Strict, Lax or None, got %q", i, ss)
				}
			}
			if ex, ok := m["expires"].(float64); ok {
				cp.Expires = cdp.TimeSinceEpoch(ex)
			} else if ex, ok := m["expires"].(int64); ok {
				cp.Expires = cdp.TimeSinceEpoch(ex)
			}
			ws.cookies = append(ws.cookies, cp)
		}
	default:
		return nil, bad("cookies: want a list of cookies or a map of names to values, got %T", c)
	}
	if len(ws.cookies) > maxCookies {
		return nil, bad("%d cookies (at most %d)", len(ws.cookies), maxCookies)
	}
	for _, f := range []struct {
		key string
		dst *map[string]string
	}{{"local_storage", &ws.local}, {"session_storage", &ws.session}} {
		switch m := man[f.key].(type) {
		case nil:
		case map[string]any:
			if len(m) > maxStorageItems {
				return nil, bad("%s: %d items (at most %d)", f.key, len(m), maxStorageItems)
			}
			*f.dst = map[string]string{}
			for k, v := range m {
				var s string
				if vs, ok := v.(string); ok {
					s = vs
				} else {
					b, err := json.Marshal(v)
					if err != nil {
						return nil, bad("%s.%s: %v", f.key, k, err)
					}
					s = string(b)
				}
				size += len(k) + len(s)
				if size > maxStateBytes {
					return nil, bad("the preloaded cookies, storage and headers exceed %d bytes", maxStateBytes)
				}
				(*f.dst)[k] = s
			}
		default:
			return nil, bad("%s: want a map of keys to values, got %T", f.key, m)
		}
	}
	addHeader := func(field, name string, v any) error {
		val, ok := v.(string)
		if !ok {
			return bad("%s: want a string, got %T", field, v)
		}
		if !validHeaderName(name) {
			return bad("%s: %q is not a header name", field, name)
		}
		if strings.ContainsAny(val, "\r\n\x00") || len(val) > maxHeaderValueLen {
			return bad("%s: the value has a line break or is longer than %d bytes", field, maxHeaderValueLen)
		}
		size += len(name) + len(val)
		if size > maxStateBytes {
			return bad("the preloaded cookies, storage and headers exceed %d bytes", maxStateBytes)
		}
		ws.headers[http.CanonicalHeaderKey(name)] = val
		return nil
	}
	switch h := man["extra_http_headers"].(type) {
	case nil:
	case map[string]any:
		if len(h) > maxExtraHeaders {
			return nil, bad("extra_http_headers: %d headers (at most %d)", len(h), maxExtraHeaders)
		}
		for _, k := range sortedKeys(h) {
			if err := addHeader("extra_http_headers."+k, k, h[k]); err != nil {
				return nil, err
			}
		}
	default:
		return nil, bad("extra_http_headers: want a map of header names to values, got %T", h)
	}
	if tok, ok := man["authorization_token"]; ok && tok != nil {
		if err := addHeader("authorization_token", "Authorization", tok); err != nil {
			return nil, err
		}
	}
	if s, ok := man["startup_script"]; ok && s != nil {
		p, ok := s.(string)
		if !ok || !relativePath(p) {
			return nil, bad("startup_script: want the relative path of one of the app's files, got %v", s)
		}
		ws.startup = p
	}
	return ws, nil
}

// addHeaders lets the paused requests to the entry's origin go on with
// the extra headers, until the page closes. A request the browser gave up
// on answers an error, which is ignored.
func (w *Worker) addHeaders(h *tab, events iter.Seq2[fetch.EventRequestPaused, error], extra map[string]string) {
	defer w.bg.Done()
	for ev, err := range events {
		if err != nil {
			return
		}
		var hdrs []*fetch.HeaderEntry
		for k, v := range ev.Request.Headers {
			if _, ours := extra[http.CanonicalHeaderKey(k)]; !ours {
				hdrs = append(hdrs, &fetch.HeaderEntry{Name: k, Value: fmt.Sprint(v)})
			}
		}
		for k, v := range extra {
			hdrs = append(hdrs, &fetch.HeaderEntry{Name: k, Value: v})
		}
		_, _ = chromedp.Call(h.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID, Headers: hdrs})
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func validHeaderName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= 0x20 || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}

// relativePath reports whether p names a file under the app's files.
func relativePath(p string) bool {
	return p != "" && !strings.Contains(p, "..") && !strings.HasPrefix(p, "/") &&
		!strings.Contains(p, "://") && !strings.ContainsAny(p, "?#\\")
}

// beforeLoad prepares the page before it loads: cookies in the session's
// browser context, storage set by a script that runs before the page's own
// scripts on the entry's origin only, and headers added to the requests to
// the entry's origin only (upstream adds them to every request, which
// hands the token to any third party the page loads from).
func (w *Worker) beforeLoad(ctx context.Context, h *tab, ws *webAppSetup) error {
	if len(ws.cookies) > 0 {
		if _, err := chromedp.Call(ctx, network.SetCookies, network.SetCookiesParams{Cookies: ws.cookies}); err != nil {
			return fmt.Errorf("setting the cookies: %w", err)
		}
	}
	if len(ws.local)+len(ws.session) > 0 {
		origin, _ := json.Marshal(ws.origin)
		local, _ := json.Marshal(ws.local)
		session, _ := json.Marshal(ws.session)
		src := fmt.Sprintf(`(() => {
  if (location.origin !== %s) return;
  const fill = (store, items) => { for (const [k, v] of Object.entries(items || {})) store.setItem(k, v); };
  try { fill(localStorage, %s); fill(sessionStorage, %s); } catch (e) { console.warn("preloading storage failed:", e); }
})();`, origin, local, session)
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			return fmt.Errorf("preloading the storage: %w", err)
		}
	}
	if len(ws.headers) > 0 {
		pattern := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`).Replace(ws.origin) + "/*"
		events := chromedp.Events(h.ctx, fetch.RequestPaused) // subscribed from here on
		w.bg.Add(1)
		go w.addHeaders(h, events, ws.headers)
		if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: pattern}}}); err != nil {
			return fmt.Errorf("adding the headers: %w", err)
		}
	}
	return nil
}

// startupScript fetches the app's startup_script from its files.
func (w *Worker) startupScript(ctx context.Context, cfg worker.Config, p string) (string, error) {
	base, err := url.Parse(cfg.AppFilesBaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") {
		return "", fmt.Errorf("%w: startup_script %s: app_files_base_url must be an http(s) URL, got %q", worker.ErrInvalidConfig, p, cfg.AppFilesBaseURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.JoinPath(p).String(), nil)
	if err != nil {
		return "", err
	}
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	client := http.DefaultClient
	if w.opts.IgnoreCertErrors {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching startup_script %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching startup_script %s: HTTP %d", p, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxStartupScript+1))
	if err != nil {
		return "", fmt.Errorf("fetching startup_script %s: %w", p, err)
	}
	if len(b) > maxStartupScript {
		return "", fmt.Errorf("%w: startup_script %s is larger than %d bytes", worker.ErrInvalidConfig, p, maxStartupScript)
	}
	return string(b), nil
}
