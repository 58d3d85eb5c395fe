package hyphaworker

import (
	"context"
	"errors"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// Hosted is a worker a host registered on a client (Host), until Close.
type Hosted struct {
	// Worker is the registered worker.
	Worker worker.Worker
	// ServiceID is the full service id, the server's worker_id.
	ServiceID string
	client    *rpc.Client
}

// Host registers w on c with opts (Register) for a host that keeps the
// worker until it closes it; Serve is the blocking form. When registration
// fails, every session w holds is stopped (StopAll) and the error returned.
func Host(ctx context.Context, c *rpc.Client, w worker.Worker, opts Options) (*Hosted, error) {
	id, err := Register(ctx, c, w, opts)
	if err != nil {
		return nil, errors.Join(err, StopAll(ctx, w))
	}
	return &Hosted{Worker: w, ServiceID: id, client: c}, nil
}

// Close unregisters the service (if the client is still connected) and
// stops every session of the worker (Shutdown).
func (h *Hosted) Close(ctx context.Context) error {
	return Shutdown(ctx, h.client, h.Worker, h.ServiceID)
}
