package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/rpcengine"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/server/registry"
)

// The manager peer lives at "*/manager-<server id>" and serves the `default`
// service every client fetches while connecting.

func (s *Server) newManagerPeer() rpcengine.Peer {
	root := auth.RootUser()
	mc := &conn{id: "*/" + s.managerID, ws: "*", cid: s.managerID, user: root,
		closed: make(chan struct{}), subs: map[string]bool{}}
	mc.userRaw = mustRawUser(root)
	peer := rpcengine.New(rpcengine.Config{
		ClientID: s.managerID, Workspace: "*", ServerBaseURL: s.URL(), ManagerID: s.managerID,
		Logger: s.log.With("peer", "manager"), Chunks: rpcengine.ChunkLimits(s.cfg.Chunks),
		Send: func(ctx context.Context, frame []byte) error {
			return s.router.route(mc, frame)
		},
	})
	// Undecodable frames come back to the router, which accounts for them
	// per sending connection.
	mc.deliverFn = peer.Receive
	s.router.add(mc)
	fns := map[string]any{
		// Functions whose parameters are settled (upstream's names) declare
		// them: the schema lists them and a wrong keyword is refused.
		"echo":               rpc.Params(rpc.HandlerFunc(s.mEcho), "data"),
		"log":                rpc.Params(rpc.HandlerFunc(s.mLog), "msg"),
		"ping":               rpc.HandlerFunc(s.mPing),
		"register_service":   rpc.HandlerFunc(s.mRegisterService),
		"unregister_service": rpc.HandlerFunc(s.mUnregisterService),
		"get_service":        rpc.HandlerFunc(s.mGetService),
		"get_service_info":   rpc.HandlerFunc(s.mGetServiceInfo),
		"list_services":      rpc.HandlerFunc(s.mListServices),
		"search_services":    rpc.HandlerFunc(s.mListServices),
		"list_clients":       rpc.HandlerFunc(s.mListClients),
		"generate_token":     rpc.HandlerFunc(s.mGenerateToken),
		"parse_token":        rpc.HandlerFunc(s.mParseToken),
		"create_workspace":   rpc.HandlerFunc(s.mCreateWorkspace),
		"delete_workspace":   rpc.HandlerFunc(s.mDeleteWorkspace),
		"get_workspace_info": rpc.HandlerFunc(s.mGetWorkspaceInfo),
		"list_workspaces":    rpc.HandlerFunc(s.mListWorkspaces),
		"subscribe":          rpc.HandlerFunc(s.mSubscribe),
		"unsubscribe":        rpc.HandlerFunc(s.mUnsubscribe),
		"check_status":       rpc.HandlerFunc(s.mCheckStatus),
		"get_summary":        rpc.HandlerFunc(s.mGetSummary),
		// manager_extra.go
		"revoke_token":          rpc.HandlerFunc(s.mRevokeToken),
		"set_env":               rpc.Params(rpc.HandlerFunc(s.mSetEnv), "key", "value"),
		"get_env":               rpc.Params(rpc.HandlerFunc(s.mGetEnv), "key?"),
		"register_service_type": rpc.HandlerFunc(s.mRegisterServiceType),
		"get_service_type":      rpc.HandlerFunc(s.mGetServiceType),
		"list_service_types":    rpc.HandlerFunc(s.mListServiceTypes),
		"log_event":             rpc.HandlerFunc(s.mLogEvent),
		"get_events":            rpc.HandlerFunc(s.mGetEvents),
		"get_event_stats":       rpc.HandlerFunc(s.mGetEventStats),
		"cleanup":               rpc.HandlerFunc(s.mCleanup),
		"bookmark":              rpc.HandlerFunc(s.mBookmark),
		"unbookmark":            rpc.HandlerFunc(s.mUnbookmark),
	}
	err := peer.AddService(rpc.Service{
		ID: "default", Name: "Default workspace management service", Description: "Services for managing workspace.",
		Config:    rpc.ServiceConfig{Visibility: "public", RequireContext: true, Extra: s.managerConfig()},
		Functions: fns,
	}, true)
	if err != nil {
		panic(err) // static definition
	}
	return peer
}

func (s *Server) managerConfig() map[string]any {
	base := s.URL()
	return map[string]any{
		"server_id": s.serverID, "hypha_version": Version, "public_base_url": base, "local_base_url": base,
		"auth0_client_id": nil, "auth0_domain": nil, "auth0_audience": nil, "auth0_issuer": nil,
		"login_service_url": base + "/public/services/hypha-login",
	}
}

// callPeer calls a method of a connected peer as the manager.
func (s *Server) callPeer(ctx context.Context, target, method string, args ...any) (any, error) {
	return s.manager.Call(ctx, target, method, args...)
}

func caller(c *rpc.Call) (*auth.UserInfo, string, error) {
	if c.Context == nil || c.Context.User.Raw == nil {
		return nil, "", errors.New("missing caller context")
	}
	u, err := auth.UserFromMap(c.Context.User.Raw)
	if err != nil {
		return nil, "", err
	}
	return u, c.Context.WS, nil
}

func (s *Server) need(u *auth.UserInfo, ws string, p auth.Permission) error {
	if s.permission(u, ws) < p {
		return fmt.Errorf("Permission denied for workspace %s: %s permission required", ws, p.Name())
	}
	return nil
}

func (s *Server) mEcho(_ context.Context, c *rpc.Call) (any, error) {
	return c.Arg(0, "data"), nil
}

// Client log lines are bounded in size and rate per connection, so that a
// client cannot flood the server's log through log().
const (
	maxClientLogBytes = 4 << 10
	clientLogEvery    = 100 * time.Millisecond
)

func (s *Server) mLog(_ context.Context, c *rpc.Call) (any, error) {
	msg := fmt.Sprint(c.Arg(0, "msg"))
	if len(msg) > maxClientLogBytes {
		msg = msg[:maxClientLogBytes] + fmt.Sprintf("… (%d bytes cut)", len(msg)-maxClientLogBytes)
	}
	if cn := s.router.get(c.Context.From); cn != nil && cn.clientLog != nil {
		ok, suppressed := cn.clientLog.Allow()
		if !ok {
			return nil, nil
		}
		s.log.Info("client log", "from", c.Context.From, "msg", msg, "suppressed", suppressed)
		return nil, nil
	}
	s.log.Info("client log", "from", c.Context.From, "msg", msg)
	return nil, nil
}

func (s *Server) mCheckStatus(context.Context, *rpc.Call) (any, error) {
	return map[string]any{"status": "ok"}, nil
}

func (s *Server) mPing(ctx context.Context, c *rpc.Call) (any, error) {
	_, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	cid, _ := c.Arg(0, "client_id").(string)
	if cid == "" {
		return nil, errors.New("ping: client_id is required")
	}
	if !strings.Contains(cid, "/") {
		cid = ws + "/" + cid
	}
	if cws, _, _ := strings.Cut(cid, "/"); cws != ws {
		return nil, fmt.Errorf("ping: client %s is not in your workspace", cid)
	}
	timeout := 5 * time.Second
	if f, ok := asSeconds(c.Arg(1, "timeout")); ok {
		timeout = f
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := s.callPeer(pctx, cid, "services.built-in.ping", "ping")
	if err != nil {
		return "Failed to ping client " + cid + ": " + err.Error(), nil
	}
	return v, nil
}

func asSeconds(v any) (time.Duration, bool) {
	switch n := v.(type) {
	case int64:
		return time.Duration(n) * time.Second, true
	case float64:
		return time.Duration(n * float64(time.Second)), true
	}
	return 0, false
}

func (s *Server) mRegisterService(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	info, ok := c.Arg(0, "service").(map[string]any)
	if !ok {
		return nil, errors.New("register_service: service info must be a map")
	}
	if err := s.need(u, ws, auth.ReadWrite); err != nil {
		return nil, err
	}
	id, _ := info["id"].(string)
	if !strings.Contains(id, "/") {
		id = ws + "/" + id
	}
	sws, rest, _ := strings.Cut(id, "/")
	cid, name, found := strings.Cut(rest, ":")
	if !found {
		return nil, fmt.Errorf("register_service: service id %q must be <workspace>/<client_id>:<name>", id)
	}
	if sws != ws {
		return nil, fmt.Errorf("register_service: cannot register service %s in workspace %s from workspace %s", id, sws, ws)
	}
	if from := c.Context.From; from != ws+"/"+cid {
		return nil, fmt.Errorf("register_service: client %s cannot register a service for client %s", from, cid)
	}
	cfg, _ := info["config"].(map[string]any)
	if strings.HasPrefix(name, "_rintf_") || (cfg != nil && cfg["_local_only"] == true) {
		return nil, nil
	}
	info = cloneMap(info)
	info["id"] = id
	if cfg == nil {
		cfg = map[string]any{}
	} else {
		cfg = cloneMap(cfg)
	}
	cfg["workspace"] = ws
	if name == "built-in" {
		cfg["created_by"] = u.ToMap()
	} else {
		cfg["created_by"] = map[string]any{"id": u.ID}
		if n := s.registry.Count(ws, cid); n >= s.cfg.MaxServicesPerClient && !s.registry.HasService(ws, cid, name) {
			return nil, fmt.Errorf("%w: register_service: client %s already has %d services (limit %d, max services per client)",
				rpc.ErrLimit, cid, n, s.cfg.MaxServicesPerClient)
		}
		if size, err := itemSize(info); err != nil {
			return nil, fmt.Errorf("register_service: %w", err)
		} else if size > s.cfg.MaxServiceInfoBytes {
			return nil, fmt.Errorf("%w: register_service: the description of %s is %d bytes, over the limit of %d bytes (max service info bytes)",
				rpc.ErrLimit, name, size, s.cfg.MaxServiceInfoBytes)
		}
	}
	info["config"] = cfg
	if name == "built-in" {
		compactBuiltIn(info) // memory per connection (compact.go)
	}
	replaced, err := s.registry.Register(info)
	if err != nil {
		return nil, err
	}
	e, _ := s.registry.Get(ws + "/" + cid + ":" + name)
	if name == "built-in" {
		typ := "client_connected"
		if replaced != nil {
			typ = "client_updated"
		}
		s.router.event(ws, typ, map[string]any{"id": ws + "/" + cid, "workspace": ws})
		return nil, nil
	}
	if replaced != nil {
		s.router.event(ws, "service_removed", replaced.Info)
	}
	if e != nil {
		s.router.event(ws, "service_added", e.Info)
	}
	return nil, nil
}

func (s *Server) mUnregisterService(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if err := s.need(u, ws, auth.ReadWrite); err != nil {
		return nil, err
	}
	id, _ := c.Arg(0, "service_id").(string)
	if id == "" {
		return nil, errors.New("unregister_service: service_id is required")
	}
	_, callerCID := splitID(c.Context.From)
	switch {
	case strings.Contains(id, "/"):
	case strings.Contains(id, ":"):
		id = ws + "/" + id
	default:
		id = ws + "/" + callerCID + ":" + id
	}
	sws, scid, _, err := registry.SplitFullID(strings.SplitN(id, "@", 2)[0])
	if err != nil {
		return nil, err
	}
	if sws != ws || (scid != callerCID && s.permission(u, ws) < auth.Admin) {
		return nil, fmt.Errorf("Permission denied: cannot unregister service %s", id)
	}
	e, err := s.registry.Unregister(id)
	if err != nil {
		return nil, fmt.Errorf("Service not found: %s", id)
	}
	if e.IsBuiltIn() {
		s.router.event(ws, "client_disconnected", map[string]any{"id": e.ClientKey(), "workspace": ws})
	} else {
		s.router.event(ws, "service_removed", e.Info)
	}
	return nil, nil
}

func splitID(id string) (ws, cid string) {
	ws, cid, _ = strings.Cut(id, "/")
	return
}

// findService resolves a get_service query to one registry entry the caller
// may use.
func (s *Server) findService(ctx context.Context, c *rpc.Call) (*registry.Entry, *auth.UserInfo, string, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, nil, "", err
	}
	query, _ := c.Arg(0, "service_id").(string)
	if query == "" {
		return nil, nil, "", errors.New("get_service: service_id is required")
	}
	mode := ""
	cfg, _ := c.Arg(1, "config").(map[string]any)
	if cfg != nil {
		mode, _ = cfg["mode"].(string)
	}
	if m, ok := c.Kwargs["mode"].(string); ok {
		mode = m
	}
	if err := validCaseConversion(caseConversionOf(c)); err != nil {
		return nil, nil, "", err
	}
	q, err := registry.ParseServiceID(query, ws)
	if err != nil {
		return nil, nil, "", err
	}
	if q.Manager {
		return nil, u, ws, nil
	}
	perm := func(w string) auth.Permission { return s.permission(u, w) }
	var cands []*registry.Entry
	var refused *registry.Entry
	for _, e := range s.registry.Find(q) {
		if registry.CanGet(e, ws, perm) {
			cands = append(cands, e)
		} else if refused == nil {
			refused = e
		}
	}
	if len(cands) == 0 && refused == nil {
		// "svc@app_id" of an installed app that is not running: the apps
		// controller starts it, then the lookup runs again (apphooks.go).
		if again, started, err := s.lazyStart(ctx, u, ws, q); err != nil {
			return nil, nil, "", fmt.Errorf("Service not found: %s (starting app %s: %w)", query, q.AppID, err)
		} else if started {
			for _, e := range s.registry.Find(again) {
				if registry.CanGet(e, ws, perm) {
					cands = append(cands, e)
				} else if refused == nil {
					refused = e
				}
			}
		}
	}
	if len(cands) == 0 {
		if refused != nil {
			// upstream's wording: the service exists but is protected
			return nil, nil, "", fmt.Errorf("Permission denied for non-public service in workspace %s", refused.Workspace)
		}
		return nil, nil, "", fmt.Errorf("Service not found: %s", query)
	}
	if mode == "" {
		mode = "exact"
		if q.Workspace == "public" {
			mode = "random"
		}
	}
	var e *registry.Entry
	switch mode {
	case "exact":
		if len(cands) > 1 {
			return nil, nil, "", fmt.Errorf("Multiple services found for %s (%d); use a full id or mode 'random'/'first'/'last'", query, len(cands))
		}
		e = cands[0]
	case "random", "native:random", "min_load":
		e = cands[rand.IntN(len(cands))]
	case "first":
		e = cands[0]
	case "last":
		e = cands[len(cands)-1]
	default:
		return nil, nil, "", fmt.Errorf("get_service: unknown mode %q", mode)
	}
	return e, u, ws, nil
}

func (s *Server) mGetService(ctx context.Context, c *rpc.Call) (any, error) {
	e, _, _, err := s.findService(ctx, c)
	if err != nil {
		return nil, err
	}
	if e == nil {
		v, _ := s.manager.ServiceValue("default")
		return v, nil
	}
	v, err := s.callPeer(ctx, e.ClientKey(), "services.built-in.get_service", e.Name)
	if err != nil {
		return nil, fmt.Errorf("get service %s: %w", e.FullID(), err)
	}
	svc, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("get service %s: provider returned %T", e.FullID(), v)
	}
	svc["id"] = e.FullID()
	if e.AppID != "" && e.AppID != "*" {
		svc["app_id"] = e.AppID
	}
	// As upstream: the keys are converted before the server adds the
	// workspace and url to the config (caseconv.go).
	if kind := caseConversionOf(c); kind != "" {
		svc = convertCase(svc, kind).(map[string]any)
	}
	cfg, _ := svc["config"].(map[string]any)
	cfg = cloneMap(cfg)
	cfg["workspace"] = e.Workspace
	cfg["url"] = s.URL() + "/" + e.Workspace + "/services/" + e.ClientID + ":" + e.Name
	svc["config"] = cfg
	return svc, nil
}

func (s *Server) mGetServiceInfo(ctx context.Context, c *rpc.Call) (any, error) {
	e, u, ws, err := s.findService(ctx, c)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return map[string]any{"id": "*/" + s.managerID + ":default", "name": "Default workspace management service",
			"type": "generic", "config": map[string]any{"visibility": "public", "require_context": true}}, nil
	}
	return registry.ViewFor(e, ws, func(w string) auth.Permission { return s.permission(u, w) }).Info, nil
}

func (s *Server) mListServices(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	q, err := registry.ParseListQuery(c.Arg(0, "query"), ws)
	if err != nil {
		return nil, err
	}
	includeUnlisted, _ := c.Arg(1, "include_unlisted").(bool)
	perm := func(w string) auth.Permission { return s.permission(u, w) }
	list, err := s.registry.List(q, ws, perm, includeUnlisted)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(list))
	infos := make([]map[string]any, len(list))
	for i, e := range list {
		out[i] = e.Info
		infos[i] = e.Info
	}
	if inc, _ := c.Arg(2, "include_app_services").(bool); inc {
		prio, _ := c.Arg(3, "prioritize_running_services").(bool)
		out = append(out, s.appServices(q, ws, perm, includeUnlisted, prio, infos)...)
	}
	return out, nil
}

func (s *Server) mListClients(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if w, ok := c.Arg(0, "workspace").(string); ok && w != "" {
		ws = w
	}
	if err := s.need(u, ws, auth.Read); err != nil {
		return nil, err
	}
	var out []any
	for _, cn := range s.router.inWorkspace(ws) {
		out = append(out, map[string]any{"id": cn.id, "user": map[string]any{"id": cn.user.ID}})
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

func (s *Server) mGenerateToken(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	cfg, _ := c.Arg(0, "config").(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
	}
	target, _ := cfg["workspace"].(string)
	if target == "" {
		target = ws
	}
	if s.permission(u, target) < auth.Admin {
		return nil, fmt.Errorf("Only admin can generate token for workspace %s", target)
	}
	permName, _ := cfg["permission"].(string)
	if permName == "" {
		permName = "read_write"
	}
	perm, err := auth.ParsePermission(permName)
	if err != nil || perm == auth.None {
		return nil, fmt.Errorf("generate_token: invalid permission %q (read, read_write or admin)", permName)
	}
	expires, err := s.issuer.ParseLifetime(cfg["expires_in"], time.Hour)
	if err != nil {
		return nil, fmt.Errorf("generate_token: %w", err)
	}
	// The new token carries the caller's token chain, so that revoking
	// the caller's token (or any it derives from) refuses it too.
	lineage := s.callerLineage(c)
	if len(lineage) >= auth.MaxChain {
		return nil, fmt.Errorf("generate_token: tokens may be derived at most %d levels deep, and the calling token is at that depth; use a token closer to the original credential", auth.MaxChain)
	}
	child := u.Clone()
	child.Chain = lineage
	if child.Parent == "" {
		child.Parent = u.ID
	}
	child.ID = auth.ReadableID()
	child.Scope = auth.Scope{CurrentWorkspace: target, Workspaces: map[string]auth.Permission{target: perm}}
	if cid, ok := cfg["client_id"].(string); ok {
		child.Scope.ClientID = cid
	}
	if extra, ok := cfg["extra_scopes"].([]any); ok {
		for _, e := range extra {
			if es, ok := e.(string); ok {
				if strings.HasPrefix(es, "ws:") || strings.HasPrefix(es, "cid:") || strings.HasPrefix(es, "wid:") {
					return nil, fmt.Errorf("generate_token: invalid extra scope %q", es)
				}
				child.Scope.ExtraScopes = append(child.Scope.ExtraScopes, es)
			}
		}
	}
	child.CurrentWorkspace = target
	return s.issuer.Generate(child, expires)
}

func (s *Server) mParseToken(_ context.Context, c *rpc.Call) (any, error) {
	tok, _ := c.Arg(0, "token").(string)
	u, err := s.parseToken(tok)
	if err != nil {
		return nil, err
	}
	return u.ToMap(), nil
}

func (s *Server) mCreateWorkspace(_ context.Context, c *rpc.Call) (any, error) {
	u, _, err := caller(c)
	if err != nil {
		return nil, err
	}
	if u.IsAnonymous {
		return nil, errors.New("create_workspace: anonymous users cannot create workspaces; log in first")
	}
	cfg, _ := c.Arg(0, "config").(map[string]any)
	if cfg == nil {
		return nil, errors.New("create_workspace: config is required")
	}
	overwrite, _ := c.Arg(1, "overwrite").(bool)
	id, _ := cfg["id"].(string)
	if id == "" {
		id, _ = cfg["name"].(string)
	}
	if err := validWorkspaceID(id); err != nil {
		return nil, err
	}
	if strings.HasPrefix(id, auth.UserWorkspacePrefix) && id != u.Workspace() && !u.IsRoot() {
		return nil, fmt.Errorf("create_workspace: %q is reserved for user workspaces", id)
	}
	if _, ok := s.work.get(id); ok && overwrite && s.permission(u, id) < auth.Admin {
		return nil, fmt.Errorf("create_workspace: permission denied to overwrite %s", id)
	}
	if id == "public" {
		return nil, errors.New("create_workspace: the public workspace cannot be replaced")
	}
	ws := &workspace{ID: id, Name: id, Owners: []string{u.ID}, Persistent: true,
		CreatedBy: u.ID, Principal: s.principal(c, u)}
	ws.Description, _ = cfg["description"].(string)
	if n, ok := cfg["name"].(string); ok && n != "" {
		ws.Name = n
	}
	if owners, ok := cfg["owners"].([]any); ok {
		for _, o := range owners {
			if os, ok := o.(string); ok && os != u.ID && strings.TrimSpace(os) != "" && !slices.Contains(ws.Owners, os) {
				ws.Owners = append(ws.Owners, os)
			}
		}
	}
	if p, ok := cfg["persistent"].(bool); ok {
		ws.Persistent = p
	}
	if err := s.work.create(ws, overwrite, u, s.cfg.MaxWorkspacesPerUser); err != nil {
		if errors.Is(err, ErrWorkspaceExists) || errors.Is(err, ErrWorkspaceReserved) {
			return nil, fmt.Errorf("create_workspace: %w", err)
		}
		return nil, err
	}
	s.workspaceLoaded(ws.ID) // apps: daemon apps (apphooks.go)
	return ws.toMap(), nil
}

// principal is what the per-user workspace quota counts for the caller:
// the first token of its connection's chain (tokens derived from one
// credential share it), else its user id.
func (s *Server) principal(c *rpc.Call, u *auth.UserInfo) string {
	if l := s.callerLineage(c); len(l) > 0 {
		return "token:" + l[0]
	}
	return "user:" + u.ID
}

// callerLineage is the token chain of the connection a call came from
// (kept by the server, never sent to clients): generated tokens carry it
// so that revoking a token also refuses the tokens derived from it.
func (s *Server) callerLineage(c *rpc.Call) []string {
	if c.Context == nil {
		return nil
	}
	cn := s.router.get(c.Context.From)
	if cn == nil || cn.user == nil {
		return nil
	}
	return cn.user.Lineage()
}

func (s *Server) mDeleteWorkspace(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	id, _ := c.Arg(0, "workspace").(string)
	if id == "" {
		id = ws
	}
	if id == "public" {
		return nil, errors.New("delete_workspace: the public workspace cannot be deleted")
	}
	if err := s.need(u, id, auth.Admin); err != nil {
		return nil, err
	}
	// Installed apps outlive the record: whoever created the workspace
	// again would own them. They must be uninstalled first.
	if n := s.work.apps(id); n > 0 {
		return nil, fmt.Errorf("delete_workspace: workspace %s still has %d installed app(s); uninstall them first", id, n)
	}
	ok, err := s.work.delete(id)
	if err != nil {
		return nil, fmt.Errorf("delete_workspace: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("Workspace %s does not exist", id)
	}
	for _, cn := range s.router.inWorkspace(id) {
		cn.close(closeGoingAway, "Workspace deleted: "+id)
	}
	return nil, nil
}

func (s *Server) mGetWorkspaceInfo(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if id, ok := c.Arg(0, "workspace").(string); ok && id != "" {
		ws = id
	}
	if err := s.need(u, ws, auth.Read); err != nil {
		return nil, err
	}
	w, ok := s.work.get(ws)
	if !ok {
		return nil, fmt.Errorf("Workspace %s does not exist", ws)
	}
	info := w.toMap()
	if ws == u.Workspace() {
		info["config"] = map[string]any{"bookmarks": s.userBookmarks(ws)}
	}
	return info, nil
}

func (s *Server) mListWorkspaces(_ context.Context, c *rpc.Call) (any, error) {
	u, _, err := caller(c)
	if err != nil {
		return nil, err
	}
	var out []any
	for _, w := range s.work.list() {
		if s.permission(u, w.ID) >= auth.Read {
			out = append(out, w.toMap())
		}
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

func (s *Server) mGetSummary(_ context.Context, c *rpc.Call) (any, error) {
	u, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	if err := s.need(u, ws, auth.Read); err != nil {
		return nil, err
	}
	conns := s.router.inWorkspace(ws)
	return map[string]any{"workspace": ws, "client_count": int64(len(conns)),
		"service_count": int64(len(s.registry.Find(registry.ServiceQuery{Workspace: ws, ClientID: "*", Name: "*", AppID: "*"})))}, nil
}

var allowedEvents = map[string]bool{
	"client_connected": true, "client_updated": true, "client_disconnected": true,
	"service_added": true, "service_removed": true, "service_updated": true,
	"workspace_loaded": true, "workspace_deleted": true, "workspace_changed": true,
	"workspace_ready": true, "workspace_unloaded": true, "workspace_status_changed": true,
}

// maxEventTypeLen bounds the name of an event type one subscribes to.
const maxEventTypeLen = 256

func eventTypes(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("event types must be strings, got %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("event types must be a string or a list, got %T", v)
}

func (s *Server) subscriptions(c *rpc.Call, on bool) (any, error) {
	_, ws, err := caller(c)
	if err != nil {
		return nil, err
	}
	types, err := eventTypes(c.Arg(0, "event_types"))
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if !allowedEvents[t] && (strings.Contains(t, "/") || (strings.HasPrefix(t, "ws-") && !strings.HasPrefix(t, ws+":"))) {
			return nil, fmt.Errorf("cannot subscribe to event %q of another workspace", t)
		}
	}
	cn := s.router.get(c.Context.From)
	if cn == nil {
		return nil, fmt.Errorf("client %s is not connected", c.Context.From)
	}
	cn.subsMu.Lock()
	defer cn.subsMu.Unlock()
	if on {
		added := 0
		for _, t := range types {
			if len(t) > maxEventTypeLen {
				return nil, fmt.Errorf("event type %.40q… is longer than %d bytes", t, maxEventTypeLen)
			}
			if !cn.subs[t] {
				added++
			}
		}
		if len(cn.subs)+added > s.cfg.MaxSubscriptionsPerClient {
			return nil, fmt.Errorf("%w: subscribing to %d more event types would exceed the limit of %d per client (max subscriptions per client)",
				rpc.ErrLimit, added, s.cfg.MaxSubscriptionsPerClient)
		}
	}
	for _, t := range types {
		if on {
			cn.subs[t] = true
		} else {
			delete(cn.subs, t)
		}
	}
	return true, nil
}

func (s *Server) mSubscribe(_ context.Context, c *rpc.Call) (any, error) {
	return s.subscriptions(c, true)
}

func (s *Server) mUnsubscribe(_ context.Context, c *rpc.Call) (any, error) {
	return s.subscriptions(c, false)
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}
