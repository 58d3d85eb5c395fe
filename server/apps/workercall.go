package apps

import (
	"context"
	"slices"
	"time"

	"github.com/hypha-go/hypha/rpc"
)

// How the controller passes arguments to a worker function (see
// docs/compatibility.md, "Worker calls on the wire").
//
// Every argument goes positionally, in the order of the seed's signatures,
// with the omitted optional ones filled with their defaults, and nothing as a
// keyword argument. Keyword arguments (the wire's with_kwargs) do not reach
// JavaScript workers intact: the npm hypha-rpc client replaces all positional
// arguments by the keyword values looked up under the names in the
// function's source text (none for a bound class method), so
// `start(config, {context})` arrived as `start(undefined)`.
//
// The explicit `context` ({ws, user} of the end user) is sent only to a
// worker that does not declare require_context, as the last positional
// argument (the `context` slot of the seed's signatures). A worker with
// require_context gets the server-stamped context from its own rpc client
// instead: the Python client passes it as the keyword `context` (a
// positional one as well would be "multiple values for argument
// 'context'"), the JavaScript client appends it after the arguments (which
// is why they are padded to the full signature), and our Go adapter reads
// the stamped fields.

// workerParams are the positional parameters of the worker functions the
// controller calls, in the seed's order, with the defaults used to fill
// omitted ones (context excluded).
var workerParams = map[string][]any{
	"start":            {nil},              // config
	"stop":             {nil},              // session_id
	"get_session_info": {nil},              // session_id
	"get_logs":         {nil, nil, 0, nil}, // session_id, type, offset=0, limit
	"compile":          {nil, nil, nil},    // manifest, files, config
}

// workerArgs returns the wire arguments of a call of method on svc: args
// padded to the method's full parameter list, then the explicit context
// unless svc declares require_context for method.
func workerArgs(svc *rpc.RemoteService, method string, wctx map[string]any, args ...any) []any {
	out := slices.Clone(args)
	if defs, ok := workerParams[method]; ok && len(out) < len(defs) {
		out = append(out, defs[len(out):]...)
	}
	if wctx != nil && !requiresContext(svc, method) {
		out = append(out, wctx)
	}
	return out
}

// callWorker calls method of the worker svc with workerArgs.
func callWorker(ctx context.Context, svc *rpc.RemoteService, method string, wctx map[string]any, args ...any) (any, error) {
	return svc.Call(ctx, method, workerArgs(svc, method, wctx, args...)...)
}

// requiresContext reads the worker's config.require_context: true, or a
// list of the function names that get the context (hypha-rpc accepts both).
func requiresContext(svc *rpc.RemoteService, method string) bool {
	if svc == nil {
		return false
	}
	switch v := svc.Config["require_context"].(type) {
	case bool:
		return v
	case []any:
		return slices.Contains(v, any(method))
	case []string:
		return slices.Contains(v, method)
	}
	return false
}

// followPoll is how often readWorkerLogs asks again while it waits.
const (
	followPoll = 250 * time.Millisecond
	maxLogWait = 20 * time.Second // the longest wait a worker grants (worker.MaxLogWait)
)

// readWorkerLogs reads a page of s's logs from a worker that does not take
// the wait/follower keywords (one that never answered with next_offset:
// upstream's and third-party workers). It sends a plain read and, for a
// wait of w seconds, asks again until entries come or w elapses, so that a
// follower (hypha run, apps logs -f) does not spin. There is no
// back-pressure on such a worker.
func (c *Controller) readWorkerLogs(ctx context.Context, s *session, wait any, id string, typ, offset, limit any) (any, error) {
	var d time.Duration
	if f, ok := number(wait); ok && f > 0 {
		d = time.Duration(min(f, maxLogWait.Seconds()) * float64(time.Second))
	}
	deadline := time.Now().Add(d)
	for {
		v, err := callWorker(ctx, s.worker, "get_logs", s.context, id, typ, offset, limit)
		if err != nil || time.Now().After(deadline) {
			return v, err
		}
		if m, _ := v.(map[string]any); m == nil {
			return v, nil
		} else if items, ok := m["items"].([]any); !ok || len(items) > 0 {
			return v, nil
		}
		t := time.NewTimer(min(followPoll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return v, nil
		case <-t.C:
		}
	}
}
