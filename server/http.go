package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/hypha-go/hypha/internal/assets/hypharpc"
	"github.com/hypha-go/hypha/internal/assets/pyodide"
	"github.com/hypha-go/hypha/internal/assets/xterm"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/internal/rpcengine"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/server/registry"
)

func mustRawUser(u *auth.UserInfo) wire.Raw { return wire.MustRaw(u.ToMap()) }

func (s *Server) routes() {
	s.mux.HandleFunc("/ws", s.handleWS)
	// The HTTP streaming transport (httprpc.go).
	s.mux.HandleFunc("GET /rpc", s.handleRPCStream)
	s.mux.HandleFunc("POST /rpc", s.handleRPCPost)
	s.mux.HandleFunc("GET /health/readiness", s.health)
	s.mux.HandleFunc("GET /health/liveness", s.health)
	// The browser build of the JavaScript hypha-rpc client, at upstream's
	// paths, so browser apps load it from this server (offline). Exact paths:
	// a "/assets/" prefix pattern would conflict with "/{workspace}/services".
	assets := http.StripPrefix(strings.TrimSuffix(hypharpc.Prefix, "/"), hypharpc.Handler())
	for _, name := range hypharpc.Names {
		s.mux.Handle("GET "+hypharpc.Prefix+name, assets)
	}
	// The web terminal (internal/assets/xterm): xterm.js and the page of
	// a terminal session.
	xtermAssets := http.StripPrefix(strings.TrimSuffix(xterm.Prefix, "/"), xterm.AssetHandler())
	for _, name := range xterm.Names {
		s.mux.Handle("GET "+xterm.Prefix+name, xtermAssets)
	}
	s.mux.Handle("GET /{workspace}/terminal/{client_id}", xterm.PageHandler())
	// The Pyodide runtime for web-python pages, likewise offline.
	py := http.StripPrefix(strings.TrimSuffix(pyodide.Prefix, "/"), pyodide.Handler())
	for _, name := range pyodide.Names {
		s.mux.Handle("GET "+pyodide.Prefix+name, py)
	}
	s.mux.HandleFunc("GET /{workspace}/services", s.httpListServices)
	s.mux.HandleFunc("GET /{workspace}/services/{$}", s.httpListServices)
	s.mux.HandleFunc("GET /{workspace}/services/{service_id}", s.httpServiceInfo)
	s.mux.HandleFunc("GET /{workspace}/services/{service_id}/{function...}", s.httpCall)
	s.mux.HandleFunc("POST /{workspace}/services/{service_id}/{function...}", s.httpCall)
	s.mountMCP()
	s.mountApps() // /{workspace}/apps/{service_id}/... (asgi.go)
	if s.cfg.Pprof {
		s.mux.HandleFunc("/debug/pprof/", loopbackOnly(pprof.Index))
		s.mux.HandleFunc("/debug/pprof/profile", loopbackOnly(pprof.Profile))
		s.mux.HandleFunc("/debug/pprof/symbol", loopbackOnly(pprof.Symbol))
		s.mux.HandleFunc("/debug/pprof/trace", loopbackOnly(pprof.Trace))
	}
	s.wg.Add(1)
	go s.idleSweep()
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-s.done:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "stopping"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "OK"})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]any{"success": false, "detail": "result is not JSON-serialisable: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"success": false, "detail": msg})
}

// jsonable makes decoded RPC values JSON-friendly: bytes as base64,
// remote functions as descriptions, errors as their message.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case wire.Raw:
		v, err := wire.Decode(x)
		if err != nil {
			return nil
		}
		return jsonable(v)
	case *rpc.RemoteFunc:
		return map[string]any{"_rtype": "method", "_rname": x.Name(), "_rdoc": x.Doc()}
	case error:
		return map[string]any{"_rtype": "error", "_rvalue": x.Error()}
	}
	return v
}

// httpUser authenticates a request by its Bearer token or access_token
// cookie; without either it is an anonymous user.
func (s *Server) httpUser(r *http.Request) (*auth.UserInfo, error) {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		tok = h
	} else if c, err := r.Cookie("access_token"); err == nil {
		tok = c.Value
	}
	if tok == "" {
		return s.issuer.NewAnonymous(), nil
	}
	u, err := s.parseToken(tok)
	if err != nil {
		return nil, err
	}
	if u.Specialized() {
		return nil, errors.New("specialized tokens cannot call services")
	}
	return u, nil
}

func (s *Server) httpListServices(w http.ResponseWriter, r *http.Request) {
	u, err := s.httpUser(r)
	if err != nil {
		httpError(w, http.StatusUnauthorized, err.Error())
		return
	}
	ws := r.PathValue("workspace")
	perm := func(x string) auth.Permission { return s.permission(u, x) }
	// Visibility as for a websocket client of the caller's own workspace,
	// never as a member of the workspace in the URL.
	list, err := s.registry.List(registry.ListQuery{Workspace: ws}, s.httpWorkspace(u), perm, false)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		info := cloneMap(e.Info)
		info["id"] = e.ClientID + ":" + e.Name
		out = append(out, info)
	}
	writeJSON(w, http.StatusOK, out)
}

// httpWorkspace is the workspace an HTTP caller acts from: the one a
// websocket client with the same token would be admitted to without asking
// for a workspace (the token's current workspace when the user has
// permission there), else the user's own (ws-user-<id>, for an anonymous
// user its own anonymous workspace). It is never taken from the URL: a
// caller reaching /{ws}/services/... is not thereby a member of ws.
func (s *Server) httpWorkspace(u *auth.UserInfo) string {
	if ws := u.Scope.CurrentWorkspace; ws != "" && validWorkspaceID(ws) == nil && s.permission(u, ws) >= auth.Read {
		return ws
	}
	return u.Workspace()
}

// httpFind resolves /{workspace}/services/{service_id} for an HTTP user,
// with the visibility rules of get_service for a caller in callerWS.
func (s *Server) httpFind(r *http.Request, u *auth.UserInfo, callerWS string) (*registry.Entry, int, error) {
	return s.findFor(u, callerWS, r.PathValue("workspace"), r.PathValue("service_id"), r.URL.Query().Get("_mode"))
}

// findFor resolves service sid of workspace ws for user u acting from
// callerWS (httpWorkspace), with the visibility rules of get_service: the
// one lookup of the HTTP service routes and the MCP endpoint. mode "" refuses
// an ambiguous id.
func (s *Server) findFor(u *auth.UserInfo, callerWS, ws, sid, mode string) (*registry.Entry, int, error) {
	q, err := registry.ParseServiceID(ws+"/"+sid, callerWS)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	perm := func(x string) auth.Permission { return s.permission(u, x) }
	var cands []*registry.Entry
	for _, e := range s.registry.Find(q) {
		if registry.CanGet(e, callerWS, perm) {
			cands = append(cands, registry.ViewFor(e, callerWS, perm))
		}
	}
	switch {
	case len(cands) == 0:
		return nil, http.StatusNotFound, fmt.Errorf("Service not found: %s/%s", ws, sid)
	case len(cands) > 1 && mode == "":
		return nil, http.StatusBadRequest, fmt.Errorf("Multiple services found for %s/%s; use client_id:service_id or _mode=random", ws, sid)
	}
	return cands[0], 0, nil
}

// httpEntry authenticates the request and resolves its service; on failure
// it has already written the error response.
func (s *Server) httpEntry(w http.ResponseWriter, r *http.Request) (*auth.UserInfo, string, *registry.Entry, bool) {
	u, err := s.httpUser(r)
	if err != nil {
		httpError(w, http.StatusUnauthorized, err.Error())
		return nil, "", nil, false
	}
	ws := s.httpWorkspace(u)
	e, code, err := s.httpFind(r, u, ws)
	if err != nil {
		httpError(w, code, err.Error())
		return nil, "", nil, false
	}
	return u, ws, e, true
}

func (s *Server) httpServiceInfo(w http.ResponseWriter, r *http.Request) {
	if _, _, e, ok := s.httpEntry(w, r); ok {
		writeJSON(w, http.StatusOK, e.Info)
	}
}

// userPeer is a short-lived peer in workspace ws acting for an HTTP user:
// the router stamps that user on its frames, as it does for a connected
// client. ws must be the user's own workspace (httpWorkspace), never the
// callee's: upstream places this peer in the service's workspace, which
// made any HTTP caller a member of it. release disconnects it.
func (s *Server) userPeer(u *auth.UserInfo, ws string) (peer rpcengine.Peer, release func()) {
	cid := "http-" + idgen.New()
	user := u.Clone()
	user.Scope.CurrentWorkspace, user.CurrentWorkspace, user.Scope.ClientID = ws, ws, cid
	c := &conn{id: ws + "/" + cid, ws: ws, cid: cid, user: user, userRaw: mustRawUser(user),
		readOnly: true, closed: make(chan struct{}), subs: map[string]bool{}}
	peer = rpcengine.New(rpcengine.Config{
		ClientID: cid, Workspace: ws, ServerBaseURL: s.URL(), ManagerID: s.managerID,
		Logger: s.log.With("peer", c.id), Chunks: rpcengine.ChunkLimits(s.cfg.Chunks),
		Send: func(_ context.Context, frame []byte) error { return s.router.route(c, frame) },
	})
	c.deliverFn = peer.Receive
	s.router.add(c)
	// A call still waiting (a streamed generator, the close of one) ends
	// with the server rather than hold its shutdown.
	stop := context.AfterFunc(s.ctx, func() { peer.Close() })
	return peer, func() {
		stop()
		s.router.remove(c)
		peer.Close()
	}
}

// isPermissionError reports a refusal by the callee: rpc.ErrPermission from
// an in-process peer, or a remote error whose message says so (the wire
// carries only the text; Go peers write "permission denied", upstream's
// Python ones "Permission denied" or PermissionError).
func isPermissionError(err error) bool {
	if errors.Is(err, rpc.ErrPermission) {
		return true
	}
	var re *rpc.RemoteError
	if !errors.As(err, &re) {
		return false
	}
	m := strings.ToLower(re.Message)
	return strings.Contains(m, "permission denied") || strings.Contains(m, "permissionerror")
}

// loopbackOnly serves h only to clients on this machine: the profiler
// reveals the server's internals and costs CPU, so --pprof never opens it to
// the network, whatever --host says.
func loopbackOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			httpError(w, http.StatusForbidden, "the profiler answers only clients on the server's own machine")
			return
		}
		h(w, r)
	}
}
