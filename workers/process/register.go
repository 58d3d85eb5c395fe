package process

import (
	"context"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// Registered is a process worker registered on a client.
type Registered struct {
	Worker *Worker
	// ServiceID is the full service id, the server's worker_id.
	ServiceID string
	client    *rpc.Client
}

// Register creates a process worker with opts and registers it on c. This
// is what the embedded server calls to offer python-eval and node-eval
// in-process: connect a client as root in the "public" workspace (so that
// every workspace finds the worker through the public fallback), pass
// hyphaworker.Options{UseLocalURL: true}, and Close the result on shutdown.
//
// hopts may be the zero value.
func Register(ctx context.Context, c *rpc.Client, opts Options, hopts hyphaworker.Options) (*Registered, error) {
	return RegisterWorker(ctx, c, New(opts), hopts)
}

// RegisterWorker is Register for a worker made with New (and perhaps
// already checked with Check). On failure the worker is shut down.
func RegisterWorker(ctx context.Context, c *rpc.Client, w *Worker, hopts hyphaworker.Options) (*Registered, error) {
	// Who apps run as and with which interpreters is decided (and
	// logged) now, so that a problem shows at start-up.
	if _, err := w.setup(ctx); err != nil {
		_ = w.Shutdown(ctx)
		return nil, err
	}
	id, err := hyphaworker.Register(ctx, c, w, hopts)
	if err != nil {
		_ = w.Shutdown(ctx)
		return nil, err
	}
	return &Registered{Worker: w, ServiceID: id, client: c}, nil
}

// Close unregisters the service (if the client is still connected) and
// stops every session and background goroutine of the worker.
func (r *Registered) Close(ctx context.Context) error {
	return hyphaworker.Shutdown(ctx, r.client, r.Worker, r.ServiceID)
}

// Serve creates a process worker and serves it on c until ctx ends (see
// hyphaworker.Serve): then every session is stopped and the service
// unregistered.
func Serve(ctx context.Context, c *rpc.Client, opts Options, hopts hyphaworker.Options) error {
	w := New(opts)
	if _, err := w.setup(ctx); err != nil {
		_ = w.Shutdown(ctx)
		return err
	}
	return hyphaworker.Serve(ctx, c, w, hopts)
}
