package server

// Hooks through which an apps controller extends the workspace manager
// without the server depending on it (the controller finds them on its host
// by interface assertion):
//
//   - LastCall: when a client last received an RPC call (stop_after_inactive);
//   - SetAppHooks: services declared by installed apps (list_services with
//     include_app_services), the lazy start behind get_service("svc@app_id"),
//     and the preparation of a workspace when it is loaded (daemon apps).

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/server/registry"
)

// appHooks are the controller's functions; nil fields are not set.
type appHooks struct {
	mu        sync.RWMutex
	declared  func(ws string) []map[string]any
	lazyStart func(ctx context.Context, u *auth.UserInfo, ws, appID, service string) (string, error)
	prepare   func(ws string)
}

// SetAppHooks installs an apps controller's hooks and returns a function
// that removes them:
//
//   - declared(ws) lists the services the apps installed in ws declare, each
//     {id: "<ws>/*:<name>@<app_id>", name, type, description, config, app_id};
//   - lazyStart starts app appID of ws so that it registers service, on
//     behalf of u (who asked get_service for "service@appID"); it returns
//     the app's client "<ws>/<client_id>" once the service is registered
//     (a running instance is returned as it is);
//   - prepare(ws) is called, on its own goroutine, when a workspace is
//     loaded (created, or a user's workspace on first connection).
func (s *Server) SetAppHooks(declared func(ws string) []map[string]any,
	lazyStart func(ctx context.Context, u *auth.UserInfo, ws, appID, service string) (string, error),
	prepare func(ws string)) (off func()) {
	s.hooks.mu.Lock()
	s.hooks.declared, s.hooks.lazyStart, s.hooks.prepare = declared, lazyStart, prepare
	s.hooks.mu.Unlock()
	return func() {
		s.hooks.mu.Lock()
		s.hooks.declared, s.hooks.lazyStart, s.hooks.prepare = nil, nil, nil
		s.hooks.mu.Unlock()
	}
}

// LastCall is when the client "<ws>/<client_id>" last received an RPC call
// (a call to one of its services, from a client or over HTTP, or the result
// of a call it made), or when it connected; ok is false when it is not
// connected.
func (s *Server) LastCall(clientKey string) (t time.Time, ok bool) {
	c := s.router.get(clientKey)
	if c == nil {
		return time.Time{}, false
	}
	return time.Unix(0, c.lastCall.Load()), true
}

// workspaceLoaded tells the controller that ws was loaded.
func (s *Server) workspaceLoaded(ws string) {
	s.hooks.mu.RLock()
	f := s.hooks.prepare
	s.hooks.mu.RUnlock()
	if f != nil {
		go f(ws)
	}
}

// lazyStart starts the app that declares q's service, when q names an app
// ("svc@app_id") and a controller is there. It returns the query to look up
// again (the app's client and service; an app's client need not tag its
// services with the app id), or ok false when nothing was started.
func (s *Server) lazyStart(ctx context.Context, u *auth.UserInfo, callerWS string, q registry.ServiceQuery) (registry.ServiceQuery, bool, error) {
	if q.AppID == "" || q.AppID == "*" || q.Name == "" || q.Name == "*" || q.Manager {
		return q, false, nil
	}
	if q.ClientID != "" && q.ClientID != "*" {
		return q, false, nil // a given client is not started by anyone
	}
	s.hooks.mu.RLock()
	f := s.hooks.lazyStart
	s.hooks.mu.RUnlock()
	if f == nil {
		return q, false, nil
	}
	ws := q.Workspace
	if ws == "" || ws == "*" {
		ws = callerWS
	}
	key, err := f(ctx, u, ws, q.AppID, q.Name)
	if err != nil {
		return q, false, err
	}
	w, cid, _ := strings.Cut(key, "/")
	return registry.ServiceQuery{Workspace: w, ClientID: cid, Name: q.Name, AppID: "*"}, true, nil
}

// appServices lists the services declared by installed apps that match q
// and that the caller may see, leaving out those already in running (the
// ids of running services), as upstream's include_app_services does. With
// prioritize, an app's service is also left out when a client of its
// workspace serves one of that name.
func (s *Server) appServices(q registry.ListQuery, callerWS string, perm func(string) auth.Permission,
	includeUnlisted, prioritize bool, running []map[string]any) []any {
	s.hooks.mu.RLock()
	f := s.hooks.declared
	s.hooks.mu.RUnlock()
	if f == nil {
		return nil
	}
	ws := q.Workspace
	if ws == "" || ws == "*" {
		ws = callerWS
	}
	have := map[string]bool{}
	served := map[string]bool{}
	for _, info := range running {
		id, _ := info["id"].(string)
		have[id] = true
		if w, rest, ok := strings.Cut(id, "/"); ok {
			if _, name, ok := strings.Cut(rest, ":"); ok {
				name, _, _ = strings.Cut(name, "@")
				served[w+"/"+name] = true
			}
		}
	}
	var out []any
	for _, d := range f(ws) {
		id, _ := d["id"].(string)
		svcName := id
		if _, after, ok := strings.Cut(id, ":"); ok {
			svcName, _, _ = strings.Cut(after, "@")
		}
		if have[id] || (prioritize && served[ws+"/"+svcName]) {
			continue
		}
		if q.ServiceID != "" && q.ServiceID != "*" && q.ServiceID != svcName {
			continue
		}
		if q.Type != "" && q.Type != "*" && d["type"] != q.Type {
			continue
		}
		if q.AppID != "" && q.AppID != "*" && d["app_id"] != q.AppID {
			continue
		}
		if q.ClientID != "" && q.ClientID != "*" {
			continue // an app that is not running has no client
		}
		cfg, _ := d["config"].(map[string]any)
		vis, _ := cfg["visibility"].(string)
		if vis == "" {
			vis = "protected"
		}
		if q.Visibility != "" && q.Visibility != "*" && q.Visibility != vis {
			continue
		}
		switch vis {
		case "public":
		case "unlisted":
			if !includeUnlisted || ws != callerWS {
				continue
			}
		default:
			if perm(ws) < auth.Read {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}
