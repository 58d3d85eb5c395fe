package apps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

// execute runs code in a running session through its worker's `execute`
// (the conda worker's Jupyter kernel, say), for a caller with read_write
// on the session's workspace. Upstream's users call the worker directly;
// here the worker a session runs on may be a shared one in `public`, which
// only the controller and root may call (docs/security.md), so the
// controller relays the call after checking the caller, exactly as it
// does for stop. The caller's progress_callback is not handed on: the
// worker gets the controller's own callback, which forwards to it.
//
// The result is the worker's, unchanged (the conda worker's
// {status, outputs, error}).

// maxExecuteTimeout bounds one execute relayed by the controller.
const maxExecuteTimeout = 30 * time.Minute

// executeParams are the parameters of execute, in order (schema and binding).
var executeParams = []string{"session_id", "script", "config", "progress_callback"}

func (c *Controller) mExecute(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("execute", call, executeParams...)
	if err != nil {
		return nil, err
	}
	id, err := a.str("session_id")
	if err != nil {
		return nil, err
	}
	// Who may, before what: a refused caller learns nothing of the rest.
	if _, err := c.sessionWorkspace(cl, id, auth.ReadWrite, "execute code in "+id); err != nil {
		return nil, err
	}
	script, err := a.str("script")
	if err != nil {
		return nil, err
	}
	if id == "" || !a.has("script") {
		return nil, argErr("execute() needs session_id and script")
	}
	cfg, err := a.mapping("config")
	if err != nil {
		return nil, err
	}
	cb, err := a.fn("progress_callback")
	if err != nil {
		return nil, err
	}
	s, err := c.runningSession(id)
	if err != nil {
		return nil, err
	}
	if !s.worker.Has(worker.MethodExecute) {
		return nil, fmt.Errorf("%w: the worker of session %s (%s apps) has no execute", worker.ErrNotSupported, id, s.appType)
	}
	req := worker.ExecuteRequest{SessionID: id, Script: script, Config: cfg}
	// The worker applies config.timeout itself; the relay waits a little
	// longer so that the worker's own timeout error is what comes back.
	wait := req.Timeout(workerCallTimeout) + 10*time.Second
	wait = min(wait, maxExecuteTimeout)
	if cb != nil {
		pg := c.newProgress(cb)
		defer pg.close()
		req.ProgressFunc = func(_ context.Context, p worker.Progress) error {
			pg.send(string(p.Type), p.Message)
			return nil
		}
	}
	ectx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	v, err := s.worker.Execute(s.workerCtx(ectx), req)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("execute in %s: no answer from its worker within %s: %w", id, wait, err)
	}
	return v, err
}
