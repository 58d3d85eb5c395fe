package hyphaworker_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

// TestWorkerArgs: the wire arguments of worker calls are positional, padded
// to the seed's signatures, with the explicit context last only for a worker
// without require_context (docs/compatibility.md, "Worker calls on the wire").
func TestRemoteArgs(t *testing.T) {
	wctx := map[string]any{"ws": "ws-a", "user": map[string]any{"id": "alice"}}
	cfg := map[string]any{"id": "ws-a/c1"}
	plain := &rpc.RemoteService{Config: map[string]any{"visibility": "protected"}}
	rc := &rpc.RemoteService{Config: map[string]any{"require_context": true}}
	some := &rpc.RemoteService{Config: map[string]any{"require_context": []any{"start"}}}
	for _, tc := range []struct {
		name   string
		svc    *rpc.RemoteService
		method string
		args   []any
		want   []any
	}{
		{"start without require_context", plain, "start", []any{cfg}, []any{cfg, wctx}},
		{"start with require_context", rc, "start", []any{cfg}, []any{cfg}},
		{"require_context for start only", some, "start", []any{cfg}, []any{cfg}},
		{"stop with require_context for start only", some, "stop", []any{"ws-a/c1"}, []any{"ws-a/c1", wctx}},
		{"get_logs padded to the context slot", plain, "get_logs", []any{"ws-a/c1"}, []any{"ws-a/c1", nil, 0, nil, wctx}},
		{"get_logs tail", rc, "get_logs", []any{"ws-a/c1", nil, -500}, []any{"ws-a/c1", nil, -500, nil}},
		{"compile", plain, "compile", []any{map[string]any{}, []any{}}, []any{map[string]any{}, []any{}, nil, wctx}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hyphaworker.Remote(tc.svc).Args(tc.method, wctx, tc.args...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Args (-want +got):\n%s", diff)
			}
			for _, a := range got {
				if _, kw := a.(rpc.Kwargs); kw {
					t.Errorf("a keyword argument is sent: %v", got)
				}
			}
		})
	}
}
