package server

// Manager functions beyond what clients need to connect: workspace
// environment variables, service types, an event log and token revocation.
// State lives in memory, like the rest of the embedded server.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

type extraState struct {
	mu     sync.Mutex
	env    map[string]map[string]string         // workspace → key → value
	types  map[string]map[string]map[string]any // workspace → type id → info
	events map[string][]map[string]any          // workspace → events, oldest first
	// bookmarks of each user, by the user's own workspace
	bookmarks map[string][]map[string]any
}

// forget drops the state of a workspace that was unloaded (a temporary
// workspace whose last client left): otherwise every anonymous connection
// could leave environment variables, types, events and bookmarks behind.
// Revocations stay until the tokens would have expired.
func (e *extraState) forget(ws string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.env, ws)
	delete(e.types, ws)
	delete(e.events, ws)
	delete(e.bookmarks, ws)
}

// itemSize is the encoded size of a value stored by the manager; values that
// cannot be encoded (such as remote functions) are refused.
func itemSize(v any) (int, error) {
	b, err := wire.Encode(v)
	if err != nil {
		return 0, fmt.Errorf("the value cannot be stored: %w", err)
	}
	return len(b), nil
}

// checkItem refuses one stored entry (env variable, service type, event,
// bookmark) over MaxItemBytes.
func (s *Server) checkItem(what string, v any) error {
	n, err := itemSize(v)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n > s.cfg.MaxItemBytes {
		return fmt.Errorf("%w: %s is %d bytes, over the limit of %d bytes (max item bytes)", rpc.ErrLimit, what, n, s.cfg.MaxItemBytes)
	}
	return nil
}

// tooMany is the error for a per-workspace store that is full.
func (s *Server) tooMany(what, ws string) error {
	return fmt.Errorf("%w: workspace %s already has %d %s, the limit (max items per workspace)",
		rpc.ErrLimit, ws, s.cfg.MaxItemsPerWorkspace, what)
}

func (e *extraState) init() {
	e.env = map[string]map[string]string{}
	e.types = map[string]map[string]map[string]any{}
	e.events = map[string][]map[string]any{}
	e.bookmarks = map[string][]map[string]any{}
}

// parseToken authenticates a token. Revocation and expiry are checked by
// the issuer itself (auth.Issuer.Parse), so that no route can skip them.
func (s *Server) parseToken(tok string) (*auth.UserInfo, error) {
	return s.issuer.Parse(tok)
}

// mRevokeToken revokes a token, and with it every token derived from it
// (generate_token called with it, reconnection tokens of its connections).
// Live connections authenticated by it are closed. The entry is kept (and
// persisted in the data dir) until no token it refuses can still be valid.
func (s *Server) mRevokeToken(_ context.Context, c *rpc.Call) (any, error) {
	u, _, err := caller(c)
	if err != nil {
		return nil, err
	}
	if u.IsAnonymous {
		return nil, errors.New("revoke_token: anonymous users cannot revoke tokens; log in first")
	}
	tok, _ := c.Arg(0, "token").(string)
	if strings.TrimSpace(tok) == "" {
		return nil, errors.New("revoke_token: token is required")
	}
	target, err := s.issuer.Parse(tok)
	switch {
	case errors.Is(err, auth.ErrTokenRevoked):
		return nil, nil // already revoked
	case errors.Is(err, auth.ErrTokenExpired):
		return nil, errors.New("Token has already expired")
	case err != nil:
		return nil, fmt.Errorf("Invalid token: %w", err)
	}
	if target.TokenID == "" || target.ExpiresAt == 0 {
		return nil, errors.New("revoke_token: this token never expires and cannot be revoked (the root token is changed with --root-token)")
	}
	if ws, ok := s.mayRevoke(u, target); !ok {
		return nil, fmt.Errorf("revoke_token: permission denied: only root, the user who generated the token, or an admin of workspace %s may revoke it", ws)
	}
	// Tokens derived from this one may expire later than it does; none
	// was minted with a longer life than the cap (or, for reconnection
	// tokens, the reconnection token life), so the entry is kept that long.
	until := time.Now().Add(max(s.cfg.MaxTokenLifetime, s.cfg.ReconnectionTokenLife))
	if exp := time.Unix(target.ExpiresAt, 0); exp.After(until) {
		until = exp
	}
	if err := s.revoked.Revoke(target.TokenID, until, u.IsRoot()); err != nil {
		return nil, fmt.Errorf("revoke_token: %w", err)
	}
	for _, cn := range s.router.all() {
		if cn.t == nil || cn.id == c.Context.From || !slices.Contains(cn.user.Lineage(), target.TokenID) {
			continue
		}
		s.closeLater(cn, "Token revoked")
	}
	return nil, nil
}

// mayRevoke reports whether u may revoke target's token: root, the user who
// generated it, or an admin of every workspace it grants (other than its
// own user workspace). It returns the workspace that was missing.
func (s *Server) mayRevoke(u, target *auth.UserInfo) (string, bool) {
	if u.IsRoot() || (target.Parent != "" && u.ID == target.Parent) {
		return "", true
	}
	var wss []string
	for w := range target.Scope.Workspaces {
		if w != target.Workspace() {
			wss = append(wss, w)
		}
	}
	if cw := target.Scope.CurrentWorkspace; cw != "" && cw != target.Workspace() && !slices.Contains(wss, cw) {
		wss = append(wss, cw)
	}
	if len(wss) == 0 {
		wss = []string{target.Workspace()}
	}
	slices.Sort(wss)
	for _, w := range wss {
		if w == "*" || s.permission(u, w) < auth.Admin {
			return w, false
		}
	}
	return "", true
}

func (s *Server) mSetEnv(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if err := s.need(u, ws, auth.ReadWrite); err != nil {
		return nil, err
	}
	key, _ := c.Arg(0, "key").(string)
	if key == "" {
		return nil, errors.New("set_env: key is required")
	}
	value := c.Arg(1, "value")
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	if value == nil {
		delete(s.extra.env[ws], key)
		return nil, nil
	}
	str, ok := value.(string)
	if !ok {
		return nil, fmt.Errorf("set_env: value must be a string, got %T", value)
	}
	if n := len(key) + len(str); n > s.cfg.MaxItemBytes {
		return nil, fmt.Errorf("%w: set_env: %s is %d bytes, over the limit of %d bytes (max item bytes)", rpc.ErrLimit, key, n, s.cfg.MaxItemBytes)
	}
	if _, exists := s.extra.env[ws][key]; !exists && len(s.extra.env[ws]) >= s.cfg.MaxItemsPerWorkspace {
		return nil, fmt.Errorf("set_env: %w", s.tooMany("environment variables", ws))
	}
	if s.extra.env[ws] == nil {
		s.extra.env[ws] = map[string]string{}
	}
	s.extra.env[ws][key] = str
	return nil, nil
}

func (s *Server) mGetEnv(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if err := s.need(u, ws, auth.ReadWrite); err != nil {
		return nil, err
	}
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	env := s.extra.env[ws]
	key, _ := c.Arg(0, "key").(string)
	if key == "" {
		out := make(map[string]any, len(env))
		for k, v := range env {
			out[k] = v
		}
		return out, nil
	}
	v, ok := env[key]
	if !ok {
		return nil, fmt.Errorf("Environment variable '%s' not found in workspace %s", key, ws)
	}
	return v, nil
}

func (s *Server) mRegisterServiceType(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if err := s.need(u, ws, auth.ReadWrite); err != nil {
		return nil, err
	}
	info, ok := c.Arg(0, "type_info").(map[string]any)
	if !ok {
		return nil, errors.New("register_service_type: type_info must be a map")
	}
	id, _ := info["id"].(string)
	if tws, tid, found := strings.Cut(id, "/"); found {
		if tws != ws {
			return nil, fmt.Errorf("Workspace mismatch: %s != %s, you can only register service type in your own workspace.", tws, ws)
		}
		id = tid
	}
	if id == "" {
		return nil, errors.New("register_service_type: type_info.id is required")
	}
	if err := s.checkItem("register_service_type: type_info", info); err != nil {
		return nil, err
	}
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	if _, exists := s.extra.types[ws][id]; exists {
		return nil, fmt.Errorf("Service type already exists: %s", id)
	}
	if len(s.extra.types[ws]) >= s.cfg.MaxItemsPerWorkspace {
		return nil, fmt.Errorf("register_service_type: %w", s.tooMany("service types", ws))
	}
	if s.extra.types[ws] == nil {
		s.extra.types[ws] = map[string]map[string]any{}
	}
	stored := cloneMap(info)
	stored["id"] = id
	s.extra.types[ws][id] = stored
	return stored, nil
}

func (s *Server) mGetServiceType(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	id, _ := c.Arg(0, "type_id").(string)
	if tws, tid, found := strings.Cut(id, "/"); found {
		ws, id = tws, tid
	}
	s.extra.mu.Lock()
	info, ok := s.extra.types[ws][id]
	s.extra.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("Service type not found: %s", id)
	}
	cfg, _ := info["config"].(map[string]any)
	if vis, _ := cfg["visibility"].(string); vis != "public" {
		if err := s.need(u, ws, auth.Read); err != nil {
			return nil, err
		}
	}
	out := cloneMap(info)
	out["id"] = ws + "/" + id
	return out, nil
}

func (s *Server) mListServiceTypes(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if w, _ := c.Arg(0, "workspace").(string); w != "" {
		ws = w
	}
	if err := s.need(u, ws, auth.Read); err != nil {
		return nil, err
	}
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	ids := make([]string, 0, len(s.extra.types[ws]))
	for id := range s.extra.types[ws] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = s.extra.types[ws][id]
	}
	return out, nil
}

func (s *Server) mLogEvent(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if err := s.need(u, ws, auth.ReadWrite); err != nil {
		return nil, err
	}
	typ, _ := c.Arg(0, "event_type").(string)
	if typ == "" || strings.Contains(typ, " ") {
		return nil, errors.New("log_event: event_type must be a non-empty string without spaces")
	}
	data, _ := c.Arg(1, "data").(map[string]any)
	if err := s.checkItem("log_event: data", data); err != nil {
		return nil, err
	}
	ev := map[string]any{"event_type": typ, "workspace": ws, "user_id": u.ID, "data": data,
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	evs := append(s.extra.events[ws], ev)
	if limit := s.cfg.MaxItemsPerWorkspace; len(evs) > limit {
		evs = slices.Delete(evs, 0, len(evs)-limit) // the oldest go
	}
	s.extra.events[ws] = evs
	return nil, nil
}

// userEvents returns the caller's events in its workspace, filtered by type
// and by RFC 3339 start_time / end_time, as upstream's get_events does.
func (s *Server) userEvents(c *rpc.Call) ([]map[string]any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if err := s.need(u, ws, auth.Read); err != nil {
		return nil, err
	}
	typ, _ := c.Arg(0, "event_type").(string)
	var from, to time.Time
	for i, name := range []string{"start_time", "end_time"} {
		if v, _ := c.Arg(1+i, name).(string); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if i == 0 {
				from = t
			} else {
				to = t
			}
		}
	}
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	var out []map[string]any
	for _, ev := range s.extra.events[ws] {
		if ev["user_id"] != u.ID || (typ != "" && ev["event_type"] != typ) {
			continue
		}
		ts, _ := time.Parse(time.RFC3339Nano, ev["timestamp"].(string))
		if (!from.IsZero() && ts.Before(from)) || (!to.IsZero() && ts.After(to)) {
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

func (s *Server) mGetEvents(_ context.Context, c *rpc.Call) (any, error) {
	evs, err := s.userEvents(c)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(evs))
	for i, ev := range evs {
		out[i] = ev
	}
	return out, nil
}

func (s *Server) mGetEventStats(_ context.Context, c *rpc.Call) (any, error) {
	evs, err := s.userEvents(c)
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	var order []string
	for _, ev := range evs {
		t := ev["event_type"].(string)
		if _, seen := counts[t]; !seen {
			order = append(order, t)
		}
		counts[t]++
	}
	out := make([]any, len(order))
	for i, t := range order {
		out[i] = map[string]any{"event_type": t, "count": counts[t]}
	}
	return out, nil
}

// mCleanup pings every client of the workspace and disconnects those that do
// not answer (their services go with them).
func (s *Server) mCleanup(ctx context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if w, _ := c.Arg(0, "workspace").(string); w != "" {
		ws = w
	}
	if err := s.need(u, ws, auth.Admin); err != nil {
		return nil, err
	}
	timeout := 5 * time.Second
	if d, ok := asSeconds(c.Arg(1, "timeout")); ok && d > 0 {
		timeout = d
	}
	conns := s.router.inWorkspace(ws)
	var mu sync.Mutex
	removed := []any{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for _, cn := range conns {
		if cn.id == c.Context.From {
			continue // the caller is alive
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if s.alivePing(ctx, cn, timeout) {
				return
			}
			s.closeLater(cn, "Removed by cleanup: not responding")
			mu.Lock()
			removed = append(removed, cn.id)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return map[string]any{"removed_clients": removed}, nil
}

func (s *Server) alivePing(ctx context.Context, cn *conn, timeout time.Duration) bool {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := s.callPeer(pctx, cn.id, "services.built-in.ping", "ping")
	return err == nil && v == "pong"
}

// Bookmarks are kept per user (in the user's own workspace, as upstream).
func (s *Server) mBookmark(ctx context.Context, c *rpc.Call) (any, error) {
	return s.bookmarks(ctx, c, true)
}

func (s *Server) mUnbookmark(ctx context.Context, c *rpc.Call) (any, error) {
	return s.bookmarks(ctx, c, false)
}

func (s *Server) bookmarks(_ context.Context, c *rpc.Call, add bool) (any, error) {
	u, _, err := caller(c)
	if err != nil {
		return nil, err
	}
	item, _ := c.Arg(0, "item").(map[string]any)
	kind, _ := item["bookmark_type"].(string)
	id, _ := item["id"].(string)
	if kind == "" || id == "" {
		return nil, errors.New("bookmark: item needs bookmark_type and id")
	}
	entry := map[string]any{"bookmark_type": kind, "id": id}
	if add {
		switch kind {
		case "workspace":
			w, ok := s.work.get(id)
			if !ok || s.permission(u, id) < auth.Read {
				return nil, fmt.Errorf("Workspace %s does not exist or is not accessible", id)
			}
			entry["name"], entry["description"] = w.Name, w.Description
		case "service":
			info, err := s.mGetServiceInfo(context.Background(), &rpc.Call{Args: []any{id}, Context: c.Context})
			if err != nil {
				return nil, err
			}
			m, _ := info.(map[string]any)
			entry["id"], entry["name"], entry["description"], entry["config"] = m["id"], m["name"], m["description"], m["config"]
		default:
			return nil, fmt.Errorf("Invalid bookmark type: %s", kind)
		}
	}
	if add {
		if err := s.checkItem("bookmark", entry); err != nil {
			return nil, err
		}
	}
	key := u.Workspace()
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	list := slices.DeleteFunc(s.extra.bookmarks[key], func(b map[string]any) bool { return b["id"] == entry["id"] })
	if add && len(list) >= s.cfg.MaxItemsPerWorkspace {
		return nil, fmt.Errorf("bookmark: %w", s.tooMany("bookmarks", key))
	}
	if add {
		list = append(list, entry)
	}
	s.extra.bookmarks[key] = list
	return nil, nil
}

// userBookmarks lists a user's bookmarks (shown in get_workspace_info of the
// user's own workspace, under config.bookmarks).
func (s *Server) userBookmarks(ws string) []any {
	s.extra.mu.Lock()
	defer s.extra.mu.Unlock()
	out := make([]any, len(s.extra.bookmarks[ws]))
	for i, b := range s.extra.bookmarks[ws] {
		out[i] = b
	}
	return out
}
