package process

import (
	"context"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// Registered is a process worker registered on a test client, as a host
// (internal/embedded, the CLI) registers it.
type Registered struct {
	Worker    *Worker
	ServiceID string
	hosted    *hyphaworker.Hosted
}

// Register creates a process worker with opts, checks it and registers it
// on c; on failure the worker is shut down.
func Register(ctx context.Context, c *rpc.Client, opts Options, hopts hyphaworker.Options) (*Registered, error) {
	w := New(opts)
	if err := w.Check(ctx); err != nil {
		_ = w.Shutdown(ctx)
		return nil, err
	}
	h, err := hyphaworker.Host(ctx, c, w, hopts)
	if err != nil {
		return nil, err
	}
	return &Registered{Worker: w, ServiceID: h.ServiceID, hosted: h}, nil
}

// Close unregisters the worker and stops every session.
func (r *Registered) Close(ctx context.Context) error { return r.hosted.Close(ctx) }
