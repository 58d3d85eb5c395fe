package server

// The seam through which the host adds the apps controller.
//
// The server does not build its apps controller: the host does
// (internal/embedded, with server/apps.ForServer) and hands New a hook,
// Config.Apps. The controller is an ordinary RPC client of this server; it
// needs only what this file exposes: in-process connections (Connect), the
// token issuer, the effective permission of a user on a workspace, and a
// synchronous observer of the workspace events the router broadcasts
// (service_added, client_connected, client_disconnected, …) in every
// workspace. The server needs from it only what Apps lists.

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/hypha-go/hypha/server/auth"
)

// Apps is what the server needs from its apps controller
// (server/apps.Controller): the installed apps per workspace (workspace
// bookkeeping), the app files route, and Close.
type Apps interface {
	// AppCount is the number of apps installed in ws.
	AppCount(ws string) int
	// AppWorkspaces lists the workspaces that hold installed apps.
	AppWorkspaces() []string
	// ServeFiles serves GET /{workspace}/artifacts/{app_id}/files[/{path...}]
	// and, for the sessions of an app's staged version,
	// GET /{workspace}/artifacts/{app_id}/stage/files[/{path...}].
	ServeFiles(w http.ResponseWriter, r *http.Request)
	// Close records the sessions and stops the controller.
	Close()
}

// AppsHook builds the apps controller of s; New calls it once the
// manager runs, when Config.DataDir is set.
type AppsHook func(s *Server) (Apps, error)

// extensions holds the apps controller and the event observers.
type extensions struct {
	mu        sync.Mutex
	observers map[int]func(ws, typ string, data map[string]any)
	next      int
	apps      Apps
}

// Observe calls fn for every workspace event the server broadcasts, in every
// workspace, synchronously from the goroutine that emits it (fn must not
// block or call back into the server). data must not be modified. It
// returns a function that removes the observer.
func (s *Server) Observe(fn func(ws, typ string, data map[string]any)) (off func()) {
	s.ext.mu.Lock()
	defer s.ext.mu.Unlock()
	if s.ext.observers == nil {
		s.ext.observers = map[int]func(string, string, map[string]any){}
	}
	id := s.ext.next
	s.ext.next++
	s.ext.observers[id] = fn
	return func() {
		s.ext.mu.Lock()
		delete(s.ext.observers, id)
		s.ext.mu.Unlock()
	}
}

// notifyObservers is called by the router for every broadcast event.
func (s *Server) notifyObservers(ws, typ string, data any) {
	s.ext.mu.Lock()
	if len(s.ext.observers) == 0 {
		s.ext.mu.Unlock()
		return
	}
	fns := make([]func(string, string, map[string]any), 0, len(s.ext.observers))
	for _, fn := range s.ext.observers {
		fns = append(fns, fn)
	}
	s.ext.mu.Unlock()
	m, _ := data.(map[string]any)
	for _, fn := range fns {
		fn(ws, typ, m)
	}
}

// Permission is u's effective permission on workspace ws (token grants,
// workspace ownership, and read access to public for everyone).
func (s *Server) Permission(u *auth.UserInfo, ws string) auth.Permission {
	return s.permission(u, ws)
}

// DataDir is Config.DataDir ("" without one).
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// startExtensions builds the apps controller through Config.Apps when a
// data directory is configured, and mounts its HTTP route for app files.
func (s *Server) startExtensions() error {
	if s.cfg.DataDir == "" || s.cfg.Apps == nil {
		return nil
	}
	ctl, err := s.cfg.Apps(s)
	if err != nil {
		return fmt.Errorf("start server apps: %w", err)
	}
	s.ext.mu.Lock()
	s.ext.apps = ctl
	s.ext.mu.Unlock()
	s.work.setAppCount(ctl.AppCount)
	s.mux.HandleFunc("GET /{workspace}/artifacts/{app_id}/files", ctl.ServeFiles)
	s.mux.HandleFunc("GET /{workspace}/artifacts/{app_id}/files/{path...}", ctl.ServeFiles)
	s.mux.HandleFunc("GET /{workspace}/artifacts/{app_id}/stage/files", ctl.ServeFiles)
	s.mux.HandleFunc("GET /{workspace}/artifacts/{app_id}/stage/files/{path...}", ctl.ServeFiles)
	return nil
}

// stopExtensions stops the controller (before the server drops its clients).
func (s *Server) stopExtensions() {
	s.ext.mu.Lock()
	ctl := s.ext.apps
	s.ext.mu.Unlock()
	if ctl != nil {
		ctl.Close()
	}
}

// CloseApps closes the server-apps controller ahead of Close: it records
// every session (with its last logs) while their workers still answer. The
// embedded system calls it before it stops its built-in workers; Close calls
// it too (closing twice is harmless).
func (s *Server) CloseApps() {
	s.stopExtensions()
}
