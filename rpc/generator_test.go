package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// genFixture is a provider serving generators and a caller reading them.
type genFixture struct {
	s      *server.Server
	prov   *rpc.Client
	caller *rpc.Client
	svc    *rpc.RemoteService
	// ended receives the reason each "forever" generator ended (its
	// function's context error), once its iterator has returned.
	ended chan error
	// started receives once per item a "forever" generator yields.
	started chan int
	// waiting is signalled when "blocked" waits for its context.
	waiting chan struct{}
}

func newGenFixture(t *testing.T) *genFixture {
	t.Helper()
	f := &genFixture{s: testserver.Start(t, server.Config{}), ended: make(chan error, 16), started: make(chan int, 1024),
		waiting: make(chan struct{}, 16)}
	f.prov = testserver.RootClient(t, f.s, "gen-prov")
	f.caller = testserver.RootClient(t, f.s, "gen-caller")
	testserver.MustRegister(t, f.prov, rpc.Service{ID: "gen", Functions: map[string]any{
		"count": rpc.Params(func(n int) iter.Seq2[int, error] {
			return func(yield func(int, error) bool) {
				for i := range n {
					if !yield(i, nil) {
						return
					}
				}
			}
		}, "n"),
		// forever yields until its consumer stops; then its context ends.
		"forever": func(ctx context.Context) iter.Seq2[int, error] {
			return func(yield func(int, error) bool) {
				defer func() { f.ended <- ctx.Err() }()
				for i := 0; ; i++ {
					select {
					case <-ctx.Done():
						return
					default:
					}
					f.started <- i
					if !yield(i, nil) {
						<-ctx.Done() // the context ends with the generator, not before
						return
					}
				}
			}
		},
		// blocked yields one item, then waits for its context.
		"blocked": func(ctx context.Context) iter.Seq2[string, error] {
			return func(yield func(string, error) bool) {
				defer func() { f.ended <- ctx.Err() }()
				if !yield("first", nil) {
					return
				}
				f.waiting <- struct{}{}
				<-ctx.Done()
			}
		},
		"failing": func() iter.Seq2[any, error] {
			return func(yield func(any, error) bool) {
				if yield("a", nil) && yield("b", nil) {
					yield(nil, errors.New("the source broke"))
				}
			}
		},
		"nested": func() map[string]any {
			return map[string]any{"label": "letters", "items": iter.Seq2[string, error](func(yield func(string, error) bool) {
				_ = yield("x", nil) && yield("y", nil)
			})}
		},
		// sum reads a generator the caller sends.
		"sum": func(ctx context.Context, items iter.Seq2[int, error]) (int, error) {
			total := 0
			for v, err := range items {
				if err != nil {
					return 0, err
				}
				total += v
			}
			return total, nil
		},
	}})
	var err error
	if f.svc, err = f.caller.GetService(testserver.Ctx(t), "gen-prov:gen"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *genFixture) gen(t *testing.T, fn string, args ...any) *rpc.RemoteGenerator {
	t.Helper()
	v, err := f.svc.Call(testserver.Ctx(t), fn, args...)
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	g, ok := v.(*rpc.RemoteGenerator)
	if !ok {
		t.Fatalf("%s returned %T, not a *rpc.RemoteGenerator", fn, v)
	}
	return g
}

func collect(t *testing.T, seq iter.Seq2[any, error]) ([]any, error) {
	t.Helper()
	var out []any
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// TestGeneratorBothWays: a Go function returning an iter.Seq2 is read by a
// Go caller as a remote generator (untyped and typed, nested in a result,
// with keyword arguments), and a generator the caller sends is read by the
// provider's typed parameter.
func TestGeneratorBothWays(t *testing.T) {
	f := newGenFixture(t)
	ctx := testserver.Ctx(t)

	got, err := collect(t, f.gen(t, "count", 4).All(ctx))
	if err != nil || !slices.Equal(got, []any{int64(0), int64(1), int64(2), int64(3)}) {
		t.Fatalf("count(4) = %v, %v", got, err)
	}
	// Exhausted: Next keeps saying so, and Close does nothing.
	g := f.gen(t, "count", rpc.Kwargs{"n": 1})
	if v, ok, err := g.Next(ctx); !ok || err != nil || v != int64(0) {
		t.Fatalf("Next = %v, %v, %v", v, ok, err)
	}
	for range 2 {
		if v, ok, err := g.Next(ctx); ok || err != nil {
			t.Fatalf("Next after the end = %v, %v, %v", v, ok, err)
		}
	}
	if err := g.Close(ctx); err != nil {
		t.Fatalf("Close after the end: %v", err)
	}

	var typed iter.Seq2[int, error]
	if err := f.svc.CallInto(ctx, &typed, "count", 3); err != nil {
		t.Fatal(err)
	}
	var ints []int
	for v, err := range typed {
		if err != nil {
			t.Fatal(err)
		}
		ints = append(ints, v)
	}
	if !slices.Equal(ints, []int{0, 1, 2}) {
		t.Fatalf("typed count(3) = %v", ints)
	}

	v, err := f.svc.Call(ctx, "nested")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := v.(map[string]any)
	ng, ok := m["items"].(*rpc.RemoteGenerator)
	if !ok || m["label"] != "letters" {
		t.Fatalf("nested = %#v", v)
	}
	if got, err := collect(t, ng.All(ctx)); err != nil || !slices.Equal(got, []any{"x", "y"}) {
		t.Fatalf("nested items = %v, %v", got, err)
	}

	// The caller sends a generator; the provider reads it.
	mine := func(yield func(int, error) bool) {
		for _, x := range []int{10, 20, 12} {
			if !yield(x, nil) {
				return
			}
		}
	}
	sum, err := f.svc.Call(ctx, "sum", iter.Seq2[int, error](mine))
	if err != nil || sum != int64(42) {
		t.Fatalf("sum = %v, %v", sum, err)
	}
}

// TestGeneratorErrorEndsIt: an error yielded by the producer reaches the
// consumer as the error of its read, with its message, and ends the generator.
func TestGeneratorErrorEndsIt(t *testing.T) {
	f := newGenFixture(t)
	ctx := testserver.Ctx(t)
	got, err := collect(t, f.gen(t, "failing").All(ctx))
	if !slices.Equal(got, []any{"a", "b"}) || err == nil || !strings.Contains(err.Error(), "the source broke") {
		t.Fatalf("failing = %v, %v", got, err)
	}
	var re *rpc.RemoteError
	if !errors.As(err, &re) {
		t.Errorf("error %v is not a *rpc.RemoteError", err)
	}
}

// TestGeneratorEarlyStopReleasesProducer: a consumer that breaks out of its
// loop closes the producer: the iterator returns and the context of the
// function that made it ends, while other generators go on.
func TestGeneratorEarlyStopReleasesProducer(t *testing.T) {
	f := newGenFixture(t)
	ctx := testserver.Ctx(t)
	other := f.gen(t, "count", 3)
	var got []any
	for v, err := range f.gen(t, "forever").All(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if got = append(got, v); len(got) == 3 {
			break
		}
	}
	if !slices.Equal(got, []any{int64(0), int64(1), int64(2)}) {
		t.Fatalf("forever = %v", got)
	}
	if err := recv(t, f.ended, 20*time.Second, "the producer's end", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("producer context error = %v, want context.Canceled", err)
	}
	if n := len(f.started); n != 3 {
		t.Errorf("the producer yielded %d items for 3 reads", n)
	}
	if rest, err := collect(t, other.All(ctx)); err != nil || len(rest) != 3 {
		t.Errorf("another generator after the early stop = %v, %v", rest, err)
	}
}

// TestGeneratorConsumerDisconnectReleasesProducer: a consumer that goes
// away without closing releases the producer's generator.
func TestGeneratorConsumerDisconnectReleasesProducer(t *testing.T) {
	f := newGenFixture(t)
	ctx := testserver.Ctx(t)
	consumer := testserver.RootClient(t, f.s, "gen-leaver")
	svc, err := consumer.GetService(ctx, "gen-prov:gen")
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Call(ctx, "blocked")
	if err != nil {
		t.Fatal(err)
	}
	if item, ok, err := v.(*rpc.RemoteGenerator).Next(ctx); item != "first" || !ok || err != nil {
		t.Fatalf("first item = %v, %v, %v", item, ok, err)
	}
	consumer.Close()
	if err := recv(t, f.ended, 20*time.Second, "the producer's end", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("producer context error = %v, want context.Canceled", err)
	}
}

// TestGeneratorProducerDisconnectEndsConsumer: a consumer waiting for an
// item of a producer that disconnects gets an error instead of waiting.
func TestGeneratorProducerDisconnectEndsConsumer(t *testing.T) {
	f := newGenFixture(t)
	ctx := testserver.Ctx(t)
	g := f.gen(t, "blocked")
	if item, ok, err := g.Next(ctx); item != "first" || !ok || err != nil {
		t.Fatalf("first item = %v, %v, %v", item, ok, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := g.Next(ctx)
		errc <- err
	}()
	// The second read is waiting in the producer's iterator when it leaves.
	recv(t, f.waiting, 20*time.Second, "the second read to reach the producer", nil)
	f.prov.Close()
	err := recv(t, errc, 20*time.Second, "the consumer's error", nil)
	if err == nil {
		t.Fatal("Next after the producer left: no error")
	}
	if !isDisconnectError(err) && !errors.Is(err, rpc.ErrClosed) && !strings.Contains(err.Error(), "closed") {
		t.Errorf("Next after the producer left = %v, want a disconnection", err)
	}
	recv(t, f.ended, 20*time.Second, "the producer's end", nil)
}

// TestHostileForeignGenerator: a generator reference owned by a third peer
// is refused like a foreign function, before the handler runs, and neither
// of its methods is ever called.
func TestHostileForeignGenerator(t *testing.T) {
	f := newDeputyFixture(t, false, nil)
	ctx := testserver.Ctx(t)
	foreign := map[string]any{"_rtype": "generator", "_rtarget": f.victim, "_rmethod": "services.worker.stop",
		"_rclose_method": "services.worker.stop", "_rpromise": "*"}
	_, err := f.mallory.Call(ctx, f.deputyID, "services.svc.call_back", []any{foreign}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "foreign callable refused") || !strings.Contains(err.Error(), f.victim) {
		t.Fatalf("call with a foreign generator = %v, want a refusal naming %s", err, f.victim)
	}
	f.sync(t, ctx)
	if n := f.ran.Load(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
	if n := f.stops.Load(); n != 0 {
		t.Errorf("the victim's stop was called %d times", n)
	}
}

func ExampleRemoteGenerator_All() {
	// A service function returning an iter.Seq2 serves a generator:
	//	"count": func(ctx context.Context, n int) iter.Seq2[int, error] { ... }
	// and a caller reads it:
	var svc *rpc.RemoteService // from Client.GetService
	if svc == nil {
		return
	}
	ctx := context.Background()
	v, _ := svc.Call(ctx, "count", 3)
	if g, ok := v.(*rpc.RemoteGenerator); ok {
		for item, err := range g.All(ctx) { // breaking out closes the producer
			fmt.Println(item, err)
		}
	}
}
