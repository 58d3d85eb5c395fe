package interop

import (
	"context"
	"errors"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
)

// goGeneratorService serves the generators the JS generators scenario reads.
// ended receives the context error of every forever generator once it ends.
func goGeneratorService(ended chan<- error) rpc.Service {
	return rpc.Service{ID: "go-gen", Config: rpc.ServiceConfig{Visibility: "public"}, Functions: map[string]any{
		"count": func(n int) iter.Seq2[int, error] {
			return func(yield func(int, error) bool) {
				for i := range n {
					if !yield(i, nil) {
						return
					}
				}
			}
		},
		"forever": func(ctx context.Context) iter.Seq2[int, error] {
			return func(yield func(int, error) bool) {
				defer func() { ended <- context.Cause(ctx) }()
				for i := 0; ctx.Err() == nil; i++ {
					if !yield(i, nil) {
						<-ctx.Done()
						return
					}
				}
			}
		},
		"failing": func() iter.Seq2[string, error] {
			return func(yield func(string, error) bool) {
				if yield("a", nil) {
					yield("", errors.New("go source broke"))
				}
			}
		},
		"sum": func(items iter.Seq2[int, error]) (int, error) {
			total := 0
			for v, err := range items {
				if err != nil {
					return 0, err
				}
				total += v
			}
			return total, nil
		},
	}}
}

// TestJSGenerators: generators both ways with the npm client. JS reads a Go
// iter.Seq2 as an async generator (to its end, stopping early, until an
// error) and sends its own async generator to a Go function; Go reads JS
// async generators (to the end, typed, and stopping early, which runs the JS
// generator's finally).
func TestJSGenerators(t *testing.T) {
	t.Parallel()
	needJS(t)
	s := startServer(t)
	url := s.URL()
	checkPeerReadsGoGenerators(t, url, func(args map[string]any) map[string]any {
		return jsRun(t, "generators", url, args)
	})
	serve, ready := jsServe(t, url, map[string]any{"client_id": "js-gen-serve", "service_id": "js-gen"})
	checkGoReadsPeerGenerators(t, url, serve, str(ready, "service_id"))
}

// checkPeerReadsGoGenerators registers goGeneratorService and runs the
// peer's generators scenario on it (run gets the scenario's arguments).
func checkPeerReadsGoGenerators(t *testing.T, url string, run func(map[string]any) map[string]any) {
	ctx := ctxTimeout(t, 2*time.Minute)
	goc := goConnect(t, url, rpc.Config{Token: testserver.RootToken, ClientID: "go-gen-client"})
	ended := make(chan error, 4)
	sid, err := goc.RegisterService(ctx, goGeneratorService(ended))
	if err != nil {
		t.Fatal(err)
	}
	r := run(map[string]any{"service_id": sid, "n": 4})
	expect(t, "peer reads count(4)", at(r, "count"), []any{0, 1, 2, 3})
	expect(t, "peer reads forever() for 3 items", at(r, "forever"), []any{0, 1, 2})
	expect(t, "peer reads failing()", at(r, "failing"), []any{"a"})
	expectContains(t, "failing() error", str(r, "failing_error", "$error"), "go source broke")
	expect(t, "Go sum of the peer's generator", at(r, "sum"), 42)
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the Go forever generator ended with %v, want context.Canceled", err)
		}
	case <-ctx.Done():
		t.Fatal("the Go forever generator was not released after the peer stopped reading it")
	}
}

// checkGoReadsPeerGenerators reads the numbers and ticks generators of the
// peer's test service sid (served by serve, which it ends).
func checkGoReadsPeerGenerators(t *testing.T, url string, serve *proc, sid string) {
	ctx := ctxTimeout(t, 2*time.Minute)
	goc := goConnect(t, url, rpc.Config{Token: testserver.RootToken, ClientID: "go-gen-reader"})
	svc, err := goc.GetService(ctx, sid)
	if err != nil {
		t.Fatalf("get the peer's service: %v%s", err, serve.diag())
	}
	v, err := svc.Call(ctx, "numbers", 4)
	if err != nil {
		t.Fatalf("numbers: %v%s", err, serve.diag())
	}
	g, ok := v.(*rpc.RemoteGenerator)
	if !ok {
		t.Fatalf("numbers returned %T, want *rpc.RemoteGenerator", v)
	}
	var got []any
	for item, err := range g.All(ctx) {
		if err != nil {
			t.Fatalf("numbers: %v", err)
		}
		got = append(got, item)
	}
	if !slices.Equal(got, []any{int64(0), int64(1), int64(2), int64(3)}) {
		t.Errorf("Go reads the peer's numbers(4) = %v", got)
	}
	var typed iter.Seq2[float64, error]
	if err := svc.CallInto(ctx, &typed, "numbers", 3); err != nil {
		t.Fatal(err)
	}
	var floats []float64
	for x, err := range typed {
		if err != nil {
			t.Fatal(err)
		}
		floats = append(floats, x)
	}
	if !slices.Equal(floats, []float64{0, 1, 2}) {
		t.Errorf("typed numbers(3) = %v", floats)
	}
	v, err = svc.Call(ctx, "ticks")
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for item, err := range v.(*rpc.RemoteGenerator).All(ctx) {
		if err != nil {
			t.Fatalf("ticks: %v", err)
		}
		if got = append(got, item); len(got) == 3 {
			break
		}
	}
	if !slices.Equal(got, []any{int64(0), int64(1), int64(2)}) {
		t.Errorf("Go reads the peer's ticks() = %v", got)
	}
	res := serve.mustResult()
	expect(t, "the peer's generator calls", res["calls"], map[string]any{"numbers": 2, "ticks": 1, "ticks_closed": 1})
}
