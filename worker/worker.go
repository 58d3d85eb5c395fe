package worker

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Worker is the worker API of the seed document in Go. Every method takes a
// ctx: it carries the call's deadline and cancellation and, when the call
// came over RPC, the Caller (see WithCaller).
//
// Of these the current server calls only Start, Stop and GetLogs; the rest
// are for clients that talk to the worker service directly. Base (embedded)
// or FromFuncs supply the bookkeeping ones.
type Worker interface {
	// Properties describe the worker for registration.
	Properties() Properties
	// Start starts a session for cfg and returns its id, which should be
	// cfg.ID (the server ignores the return value and already knows the id).
	// Start may take long (environment setup): report through a Reporter on
	// cfg.ProgressFunc and honour ctx.
	Start(ctx context.Context, cfg Config) (sessionID string, err error)
	// Stop stops a session and releases everything it holds. It must be
	// idempotent: stopping an unknown session returns nil. Registry.StopSession
	// implements the whole protocol.
	Stop(ctx context.Context, sessionID string) error
	// ListSessions lists the sessions of a workspace.
	ListSessions(ctx context.Context, workspace string) ([]SessionInfo, error)
	// GetSessionInfo describes one session, or returns ErrSessionNotFound.
	GetSessionInfo(ctx context.Context, sessionID string) (SessionInfo, error)
	// GetLogs returns a page of a session's logs, or ErrSessionNotFound.
	GetLogs(ctx context.Context, sessionID string, q LogQuery) (LogPage, error)
	// PrepareWorkspace readies a workspace before sessions start in it.
	PrepareWorkspace(ctx context.Context, workspace string) error
	// CloseWorkspace stops every session of a workspace.
	CloseWorkspace(ctx context.Context, workspace string) error
}

// Stopper is the part of a Worker that Base needs to close workspaces.
type Stopper interface {
	Stop(ctx context.Context, sessionID string) error
}

// StopFunc adapts a function to Stopper.
type StopFunc func(ctx context.Context, sessionID string) error

// Stop calls f.
func (f StopFunc) Stop(ctx context.Context, sessionID string) error { return f(ctx, sessionID) }

// ServiceType is the service type the server discovers workers by.
const ServiceType = "server-app-worker"

// Visibility controls who can see and call the worker service.
type Visibility string

// The visibilities the server accepts. The seed also names "private"; the
// server has no such value (worker-contract §1.1), so Validate rejects it.
const (
	Public    Visibility = "public"
	Protected Visibility = "protected"
	Unlisted  Visibility = "unlisted"
)

// Properties are the seed's worker properties plus use_local_url and
// authorized_workspaces from the current server.
type Properties struct {
	// ServiceID is the service id inside the worker's client; the full id
	// (the server's worker_id) is "<ws>/<client_id>:<ServiceID>". Empty
	// means a slug of Name (WithDefaults): stable across restarts, and unique
	// enough because the client id is part of the full id. Two workers with
	// the same name on one client need explicit ids.
	ServiceID string
	// Name and Description are shown by list_workers.
	Name        string
	Description string
	// SupportedTypes are the app types (manifest.type) this worker runs;
	// the server matches them exactly.
	SupportedTypes []string
	// Visibility defaults to Protected.
	Visibility Visibility
	// AuthorizedWorkspaces lets these workspaces call a Protected worker from
	// outside its own workspace. The server rejects it for other
	// visibilities.
	AuthorizedWorkspaces []string
	// RunInExecutor is a hint for hypha-rpc's Python side; kept for parity.
	RunInExecutor bool
	// RequireContext asks the RPC layer to pass the caller context to every
	// method. The Go zero value is false, like upstream's BaseWorker (the
	// seed document says true; every upstream built-in sets true).
	RequireContext bool
	// UseLocalURL asks the server to put its local base URL in
	// Config.ServerURL instead of the public one; for workers on the
	// server's host or cluster.
	UseLocalURL bool
	// LocalURL, when set, is the exact URL the server should hand out
	// instead (use_local_url may be a URL string); it overrides UseLocalURL.
	LocalURL string
}

var slugRE = regexp.MustCompile(`[^a-z0-9]+`)

// WithDefaults fills Visibility (protected) and ServiceID (slug of Name).
func (p Properties) WithDefaults() Properties {
	if p.Visibility == "" {
		p.Visibility = Protected
	}
	if p.ServiceID == "" {
		p.ServiceID = strings.Trim(slugRE.ReplaceAllString(strings.ToLower(p.Name), "-"), "-")
	}
	return p
}

// Validate reports properties the server would refuse or that make the
// worker undiscoverable.
func (p Properties) Validate() error {
	p = p.WithDefaults()
	switch {
	case p.Name == "":
		return fmt.Errorf("%w: worker name is empty", ErrInvalidConfig)
	case p.ServiceID == "":
		return fmt.Errorf("%w: service id is empty and cannot be derived from name %q", ErrInvalidConfig, p.Name)
	case strings.ContainsAny(p.ServiceID, "/:@"):
		return fmt.Errorf("%w: service id %q must not contain '/', ':' or '@'", ErrInvalidConfig, p.ServiceID)
	case len(p.SupportedTypes) == 0:
		return fmt.Errorf("%w: worker %q supports no app types", ErrInvalidConfig, p.Name)
	}
	for _, t := range p.SupportedTypes {
		if t == "" {
			return fmt.Errorf("%w: worker %q lists an empty app type", ErrInvalidConfig, p.Name)
		}
	}
	switch p.Visibility {
	case Public, Protected, Unlisted:
	case "private":
		return fmt.Errorf("%w: visibility %q does not exist on the server; use %q", ErrInvalidConfig, p.Visibility, Protected)
	default:
		return fmt.Errorf("%w: unknown visibility %q (want public, protected or unlisted)", ErrInvalidConfig, p.Visibility)
	}
	if len(p.AuthorizedWorkspaces) > 0 && p.Visibility != Protected {
		return fmt.Errorf("%w: authorized workspaces need visibility %q, not %q", ErrInvalidConfig, Protected, p.Visibility)
	}
	if p.LocalURL != "" {
		u, err := url.Parse(p.LocalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: local URL %q is not an http(s) URL", ErrInvalidConfig, p.LocalURL)
		}
	}
	return nil
}

// SupportsType reports whether appType is one of SupportedTypes.
func (p Properties) SupportsType(appType string) bool {
	for _, t := range p.SupportedTypes {
		if t == appType {
			return true
		}
	}
	return false
}

// ServiceMap returns the data part of the worker's service registration
// (WithDefaults applied), in the shape upstream's get_worker_service()
// produces:
//
//	{"id", "name", "description", "type": "server-app-worker",
//	 "config": {"visibility", "run_in_executor", "require_context"[, "authorized_workspaces"]},
//	 "supported_types": [...], "use_local_url": bool or URL}
//
// Visibility sits under "config"; a top-level visibility is ignored by the
// server. The adapter adds the methods (start, stop, get_logs, …).
func (p Properties) ServiceMap() map[string]any {
	p = p.WithDefaults()
	cfg := map[string]any{
		"visibility":      string(p.Visibility),
		"run_in_executor": p.RunInExecutor,
		"require_context": p.RequireContext,
	}
	if len(p.AuthorizedWorkspaces) > 0 {
		cfg["authorized_workspaces"] = stringsToList(p.AuthorizedWorkspaces)
	}
	var local any = p.UseLocalURL
	if p.LocalURL != "" {
		local = p.LocalURL
	}
	return map[string]any{
		"id":              p.ServiceID,
		"name":            p.Name,
		"description":     p.Description,
		"type":            ServiceType,
		"config":          cfg,
		"supported_types": stringsToList(p.SupportedTypes),
		"use_local_url":   local,
	}
}
