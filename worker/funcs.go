package worker

import (
	"context"
	"fmt"
)

// Funcs is a worker made of plain functions, the seed's second style. Only
// Start and Stop are required. The bookkeeping methods default to Sessions
// (see Base) when their func is nil; the optional ones (Compile, Execute,
// Shutdown) are provided only when set. Turn it into a Worker with
// FromFuncs.
type Funcs struct {
	Properties Properties
	// Sessions backs the default ListSessions, GetSessionInfo, GetLogs and
	// CloseWorkspace. Start and Stop normally use the same registry.
	Sessions *Registry

	Start func(ctx context.Context, cfg Config) (string, error)
	Stop  func(ctx context.Context, sessionID string) error

	ListSessions     func(ctx context.Context, workspace string) ([]SessionInfo, error)
	GetSessionInfo   func(ctx context.Context, sessionID string) (SessionInfo, error)
	GetLogs          func(ctx context.Context, sessionID string, q LogQuery) (LogPage, error)
	PrepareWorkspace func(ctx context.Context, workspace string) error
	CloseWorkspace   func(ctx context.Context, workspace string) error

	Compile  func(ctx context.Context, req CompileRequest) (CompileResult, error)
	Execute  func(ctx context.Context, req ExecuteRequest) (any, error)
	Shutdown func(ctx context.Context) error

	// Extensions are the worker's extension methods (see Extension).
	Extensions []Extension
}

// FromFuncs checks f and returns it as a Worker. The result has Compile,
// Execute and Shutdown methods whatever f holds; use AsCompiler, AsExecutor
// and AsShutdowner, which report only the ones f provides.
func FromFuncs(f Funcs) (Worker, error) {
	if f.Start == nil || f.Stop == nil {
		return nil, fmt.Errorf("%w: worker.Funcs needs both Start and Stop", ErrInvalidConfig)
	}
	if err := f.Properties.Validate(); err != nil {
		return nil, err
	}
	if err := ValidateExtensions(f.Extensions); err != nil {
		return nil, err
	}
	w := &funcsWorker{f: f}
	w.base = Base{Sessions: f.Sessions, Stopper: StopFunc(f.Stop)}
	return w, nil
}

type funcsWorker struct {
	f    Funcs
	base Base
}

var (
	_ Worker          = (*funcsWorker)(nil)
	_ Compiler        = (*funcsWorker)(nil)
	_ Executor        = (*funcsWorker)(nil)
	_ Shutdowner      = (*funcsWorker)(nil)
	_ MethodSupporter = (*funcsWorker)(nil)
	_ Extender        = (*funcsWorker)(nil)
)

func (w *funcsWorker) Extensions() []Extension { return w.f.Extensions }

func (w *funcsWorker) Properties() Properties { return w.f.Properties }

func (w *funcsWorker) Start(ctx context.Context, cfg Config) (string, error) {
	return w.f.Start(ctx, cfg)
}

func (w *funcsWorker) Stop(ctx context.Context, id string) error { return w.f.Stop(ctx, id) }

func (w *funcsWorker) ListSessions(ctx context.Context, ws string) ([]SessionInfo, error) {
	if w.f.ListSessions != nil {
		return w.f.ListSessions(ctx, ws)
	}
	return w.base.ListSessions(ctx, ws)
}

func (w *funcsWorker) GetSessionInfo(ctx context.Context, id string) (SessionInfo, error) {
	if w.f.GetSessionInfo != nil {
		return w.f.GetSessionInfo(ctx, id)
	}
	return w.base.GetSessionInfo(ctx, id)
}

func (w *funcsWorker) GetLogs(ctx context.Context, id string, q LogQuery) (LogPage, error) {
	if w.f.GetLogs != nil {
		return w.f.GetLogs(ctx, id, q)
	}
	return w.base.GetLogs(ctx, id, q)
}

func (w *funcsWorker) PrepareWorkspace(ctx context.Context, ws string) error {
	if w.f.PrepareWorkspace != nil {
		return w.f.PrepareWorkspace(ctx, ws)
	}
	return w.base.PrepareWorkspace(ctx, ws)
}

func (w *funcsWorker) CloseWorkspace(ctx context.Context, ws string) error {
	if w.f.CloseWorkspace != nil {
		return w.f.CloseWorkspace(ctx, ws)
	}
	return w.base.CloseWorkspace(ctx, ws)
}

func (w *funcsWorker) Compile(ctx context.Context, req CompileRequest) (CompileResult, error) {
	if w.f.Compile == nil {
		return CompileResult{}, fmt.Errorf("%w: %s", ErrNotSupported, MethodCompile)
	}
	return w.f.Compile(ctx, req)
}

func (w *funcsWorker) Execute(ctx context.Context, req ExecuteRequest) (any, error) {
	if w.f.Execute == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotSupported, MethodExecute)
	}
	return w.f.Execute(ctx, req)
}

func (w *funcsWorker) Shutdown(ctx context.Context) error {
	if w.f.Shutdown == nil {
		return fmt.Errorf("%w: %s", ErrNotSupported, MethodShutdown)
	}
	return w.f.Shutdown(ctx)
}

func (w *funcsWorker) SupportsMethod(name string) bool {
	switch name {
	case MethodCompile:
		return w.f.Compile != nil
	case MethodExecute:
		return w.f.Execute != nil
	case MethodShutdown:
		return w.f.Shutdown != nil
	}
	return true
}
