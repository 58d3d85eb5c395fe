package rpc

import (
	"context"
	"fmt"
	"iter"
	"reflect"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
)

// Generators are hypha-rpc's `_rtype: generator` values: a producer keeps a
// pull-style iterator in the session it encoded it in, under two keys, the
// "next" method (each call returns the next item, or the
// `{"_rtype": "stop_iteration"}` marker at the end) and "<id>:close" (the
// consumer stops early). Python and JavaScript peers encode their
// (async) generators so and decode such values into async generators.
//
// On the Go side a generator is an iter.Seq2[T, error] for any T: a service
// function returning one (or a value carrying one) produces a remote
// generator, and a remote generator is received as a *RemoteGenerator, or
// directly as an iter.Seq2[T, error] where a typed parameter or result asks
// for one. A yielded error ends the generator: the consumer's pending next
// fails with it.
//
// Both ends are bounded. The producer's iterator is released (its pull
// coroutine stopped, and the context of the function that returned it
// cancelled) when it is exhausted, when the consumer closes it, when the
// consumer disconnects, when its session sees no call for the idle expiry,
// and when the peer closes. A consumer that stops early closes the producer.

// genCloseTimeout bounds the close call a consumer sends when it stops early.
const genCloseTimeout = 10 * time.Second

// stopIteration is the value a producer returns from next at the end.
func stopIteration() map[string]any { return map[string]any{"_rtype": "stop_iteration"} }

func isStopIteration(v any) bool {
	m, ok := v.(map[string]any)
	return ok && m["_rtype"] == "stop_iteration"
}

var boolType = reflect.TypeOf(false)

// isSeq2Type reports whether t has the shape of iter.Seq2[T, error]:
// func(yield func(T, error) bool).
func isSeq2Type(t reflect.Type) bool {
	if t.Kind() != reflect.Func || t.NumIn() != 1 || t.NumOut() != 0 || t.IsVariadic() {
		return false
	}
	y := t.In(0)
	return y.Kind() == reflect.Func && !y.IsVariadic() && y.NumIn() == 2 && y.In(1) == errType &&
		y.NumOut() == 1 && y.Out(0) == boolType
}

// seqOf returns v as an iter.Seq2[any, error] when v is an iter.Seq2[T, error].
func seqOf(v any) (iter.Seq2[any, error], bool) {
	switch s := v.(type) {
	case iter.Seq2[any, error]:
		return s, s != nil
	case func(func(any, error) bool):
		return s, s != nil
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || !isSeq2Type(rv.Type()) || rv.IsNil() {
		return nil, false
	}
	yt := rv.Type().In(0)
	return func(yield func(any, error) bool) {
		y := reflect.MakeFunc(yt, func(in []reflect.Value) []reflect.Value {
			err, _ := in[1].Interface().(error)
			return []reflect.Value{reflect.ValueOf(yield(in[0].Interface(), err))}
		})
		rv.Call([]reflect.Value{y})
	}, true
}

// ownedSeq is the result of a function whose declared result is a
// generator: the function ran with a context of its own, which lives as long
// as the generator it returned (cancel ends it).
type ownedSeq struct {
	v      any
	cancel context.CancelFunc
	taken  atomic.Bool // the generator was stored and owns cancel
}

// generator is a local iterator served to one remote consumer.
type generator struct {
	mu     sync.Mutex // serialises next and stop, as iter.Pull2 requires
	next   func() (any, error, bool)
	stop   func()
	cancel context.CancelFunc // nil unless the producing function's context is the generator's
	done   bool
	onDone func() // removes the generator's entries from its session
}

// step produces the next item, the stop_iteration marker at the end, or the
// error the iterator yielded (which ends it).
func (g *generator) step() (v any, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return stopIteration(), nil
	}
	defer func() {
		if r := recover(); r != nil {
			g.finishLocked()
			v, err = nil, &RemoteError{Message: fmt.Sprintf("panic in generator: %v", r), Trace: string(debug.Stack())}
		}
	}()
	item, ierr, ok := g.next()
	if !ok {
		g.finishLocked()
		return stopIteration(), nil
	}
	if ierr != nil {
		g.finishLocked()
		return nil, ierr
	}
	return item, nil
}

// close ends the generator: the context is cancelled first, so that an
// iterator blocked in a next call of another goroutine can return.
func (g *generator) close() {
	if g.cancel != nil {
		g.cancel()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.finishLocked()
}

func (g *generator) finishLocked() {
	if g.done {
		return
	}
	g.done = true
	func() {
		defer func() { _ = recover() }() // an iterator that keeps yielding after stop panics in stop
		g.stop()
	}()
	if g.cancel != nil {
		g.cancel()
	}
	if g.onDone != nil {
		g.onDone()
	}
}

// storeGenerator keeps seq in the encoding session and returns the
// generator reference that lets the receiver pull from it.
func (p *peer) storeGenerator(seq iter.Seq2[any, error], cancel context.CancelFunc, st *encState) (any, error) {
	if st == nil {
		if cancel != nil {
			cancel()
		}
		return nil, fmt.Errorf("rpc: a generator cannot be sent here")
	}
	next, stop := iter.Pull2(seq)
	g := &generator{next: func() (any, error, bool) { return next() }, stop: stop, cancel: cancel}
	id := idgen.New()
	closeID := id + ":close"
	p.mu.Lock()
	if st.sess == nil {
		st.sess = p.newSessionLocked(st.parent, st.target)
	}
	s := st.sess
	if s.funcs == nil {
		s.funcs = map[string]*localFunc{}
	}
	s.funcs[id] = &localFunc{name: "next", call: func(context.Context, *Call) (any, error) { return g.step() }}
	s.funcs[closeID] = &localFunc{name: "close", call: func(context.Context, *Call) (any, error) {
		g.close()
		return true, nil
	}}
	s.gens = append(s.gens, g)
	sid := s.id
	ws := p.workspace
	p.mu.Unlock()
	g.onDone = func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if s, ok := p.sessions[sid]; ok {
			delete(s.funcs, id)
			delete(s.funcs, closeID)
			s.gens = slices.DeleteFunc(s.gens, func(x *generator) bool { return x == g })
		}
	}
	return map[string]any{
		"_rtype":         "generator",
		"_rserver":       p.cfg.ServerBaseURL,
		"_rtarget":       ws + "/" + p.cfg.ClientID,
		"_rmethod":       sid + "." + id,
		"_rclose_method": sid + "." + closeID,
		"_rpromise":      "*",
		"_rdoc":          "Remote generator",
	}, nil
}

// releaseGens ends the generators of a session being deleted. It runs them
// on their own goroutine: the caller holds p.mu, and a generator may be busy
// in a next call until its context's cancellation reaches the iterator.
func releaseGens(gens []*generator) {
	for _, g := range gens {
		if g.cancel != nil {
			g.cancel()
		}
		go g.close()
	}
}

// RemoteGenerator is a generator of another peer (`_rtype: generator`),
// such as a Python generator or a JavaScript async generator returned by a
// remote function. Read it with All, or with Next and Close. It is safe for
// concurrent use, though items are then split among the readers.
type RemoteGenerator struct {
	next, close *RemoteFunc
	raw         map[string]any
	done        atomic.Bool
}

func (p *peer) newRemoteGenerator(x map[string]any, ds *decState) *RemoteGenerator {
	if x["_rpromise"] == nil {
		x["_rpromise"] = "*"
	}
	g := &RemoteGenerator{raw: x}
	g.next = p.newRemoteFunc(x, ds) // makes _rtarget absolute and applies the foreign-callables rule
	if cm := asString(x["_rclose_method"]); cm != "" {
		g.close = p.newRemoteFunc(map[string]any{"_rtype": "method", "_rserver": x["_rserver"],
			"_rtarget": x["_rtarget"], "_rmethod": cm, "_rpromise": "*"}, ds)
	}
	return g
}

// Target is the absolute id of the peer that produces the items.
func (g *RemoteGenerator) Target() string { return g.next.target }

// Next asks the producer for its next item; ok is false once the generator
// is exhausted (and for every later call). ctx bounds this one request.
func (g *RemoteGenerator) Next(ctx context.Context) (v any, ok bool, err error) {
	if g.next.refused != nil {
		return nil, false, g.next.refused
	}
	if g.done.Load() {
		return nil, false, nil
	}
	v, err = g.next.Call(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("generator of %s: %w", g.next.target, err)
	}
	if isStopIteration(v) {
		g.done.Store(true)
		return nil, false, nil
	}
	return v, true, nil
}

// Close tells the producer that no more items are wanted, so that it
// releases the generator. Closing an exhausted generator does nothing.
func (g *RemoteGenerator) Close(ctx context.Context) error {
	if g.done.Swap(true) || g.close == nil {
		return nil
	}
	if _, err := g.close.Call(ctx); err != nil {
		return fmt.Errorf("close generator of %s: %w", g.close.target, err)
	}
	return nil
}

// All iterates over the remaining items. A failed request ends the
// iteration with its error; a loop that stops early (or fails) closes the
// producer. ctx bounds every request.
func (g *RemoteGenerator) All(ctx context.Context) iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		for {
			v, ok, err := g.Next(ctx)
			if err != nil {
				g.closeQuietly(ctx)
				yield(nil, err)
				return
			}
			if !ok {
				return
			}
			if !yield(v, nil) {
				g.closeQuietly(ctx)
				return
			}
		}
	}
}

// closeQuietly closes the producer after the consumer stopped, even when
// ctx is what stopped it; the producer may be gone already.
func (g *RemoteGenerator) closeQuietly(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), genCloseTimeout)
	defer cancel()
	_ = g.Close(cctx)
}

// makeSeq builds an iter.Seq2[T, error] of type t that reads g, decoding
// every item into T (an item that does not convert ends the iteration with
// the error). It has no context of its own: each request is bounded by the
// method timeout.
func (g *RemoteGenerator) makeSeq(t reflect.Type) reflect.Value {
	yt := t.In(0)
	et := yt.In(0)
	return reflect.MakeFunc(t, func(in []reflect.Value) []reflect.Value {
		yield := in[0]
		for v, err := range g.All(context.Background()) {
			item := reflect.New(et)
			if err == nil {
				err = Decode(v, item.Interface()) // on failure the loop's end closes the producer
			}
			errv := reflect.Zero(errType)
			if err != nil {
				errv = reflect.ValueOf(&err).Elem()
			}
			if !yield.Call([]reflect.Value{item.Elem(), errv})[0].Bool() || err != nil {
				break
			}
		}
		return nil
	})
}

// WireValue keeps a remote generator intact inside structs encoded by reflection.
func (g *RemoteGenerator) WireValue() any { return g }
