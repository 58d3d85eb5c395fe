package worker

import (
	"context"
	"fmt"
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

// Properties describe what the worker is: its name, what it runs, and the
// rpc hints of its methods. How and where it is registered (service id,
// visibility, authorized workspaces, local URL) is the host's choice, made
// with hyphaworker.Options.
type Properties struct {
	// Name and Description are shown by list_workers. Name also gives the
	// default service id (hyphaworker.Options.ServiceID).
	Name        string
	Description string
	// SupportedTypes are the app types (manifest.type) this worker runs;
	// the server matches them exactly.
	SupportedTypes []string
	// RunInExecutor is a hint for hypha-rpc's Python side; kept for parity.
	RunInExecutor bool
	// RequireContext asks the RPC layer to pass the caller context to every
	// method. The Go zero value is false, like upstream's BaseWorker (the
	// seed document says true; every upstream built-in sets true). The
	// adapter always asks for it.
	RequireContext bool
}

// Validate reports properties that make the worker undiscoverable.
func (p Properties) Validate() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("%w: worker name is empty", ErrInvalidConfig)
	case len(p.SupportedTypes) == 0:
		return fmt.Errorf("%w: worker %q supports no app types", ErrInvalidConfig, p.Name)
	}
	for _, t := range p.SupportedTypes {
		if t == "" {
			return fmt.Errorf("%w: worker %q lists an empty app type", ErrInvalidConfig, p.Name)
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
