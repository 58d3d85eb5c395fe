package rpc

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// RemoteFunc is a function of another peer, received in a service or as a
// callback argument. It is safe for concurrent use.
type RemoteFunc struct {
	peer         *peer
	target       string // absolute peer id
	method       string
	promise      any // "*", true or false
	remoteParent string
	localParent  string
	name         string
	doc          string
	raw          map[string]any
	// refused is set when the function was received from a peer that does
	// not own it (ErrForeignCallable); calling or forwarding it fails.
	refused error
}

func (p *peer) newRemoteFunc(x map[string]any, ds *decState) *RemoteFunc {
	target := asString(x["_rtarget"])
	if target != "" && !strings.Contains(target, "/") && ds != nil && ds.remoteWS != "" {
		target = ds.remoteWS + "/" + target
		x["_rtarget"] = target
	}
	f := &RemoteFunc{
		peer:    p,
		target:  target,
		method:  asString(x["_rmethod"]),
		promise: x["_rpromise"],
		name:    asString(x["_rname"]),
		doc:     asString(x["_rdoc"]),
		raw:     x,
	}
	if ds != nil {
		f.remoteParent = ds.remoteParent
		f.localParent = ds.localParent
		if err := p.foreignErr(ds.from, target, f.method); err != nil {
			f.refused = err
			if ds.err == nil {
				ds.err = err
			}
		}
	}
	return f
}

// Name is the remote function's name, when the sender gave one.
func (f *RemoteFunc) Name() string { return f.name }

// Doc is the remote function's documentation, when the sender gave one.
func (f *RemoteFunc) Doc() string { return f.doc }

// Schema is the function's description as its owner sent it (`_rschema`:
// name, description and, when known, the parameters as a JSON-schema
// object), or nil.
func (f *RemoteFunc) Schema() map[string]any {
	m, _ := f.raw["_rschema"].(map[string]any)
	return m
}

// Target is the absolute id of the peer that owns the function.
func (f *RemoteFunc) Target() string { return f.target }

// Method is the method path in the target's object store.
func (f *RemoteFunc) Method() string { return f.method }

func (f *RemoteFunc) String() string { return fmt.Sprintf("<remote %s:%s>", f.target, f.method) }

func (f *RemoteFunc) wantsResult() bool {
	switch v := f.promise.(type) {
	case string:
		return v != ""
	case bool:
		return v
	}
	return false
}

// Call invokes the function with positional arguments; a trailing Kwargs
// argument is sent as keyword arguments. It returns the decoded result or the
// remote error (a *RemoteError). ctx bounds the wait; the peer's method timeout
// applies between heartbeats.
func (f *RemoteFunc) Call(ctx context.Context, args ...any) (any, error) {
	return f.peer.call(ctx, f, args)
}

// CallInto calls the function and decodes the result into out (a pointer).
func (f *RemoteFunc) CallInto(ctx context.Context, out any, args ...any) error {
	v, err := f.Call(ctx, args...)
	if err != nil {
		return err
	}
	return Decode(v, out)
}

func (p *peer) call(ctx context.Context, f *RemoteFunc, args []any) (any, error) {
	if f.refused != nil {
		return nil, f.refused
	}
	var kwargs Kwargs
	if n := len(args); n > 0 {
		if kw, ok := args[n-1].(Kwargs); ok {
			kwargs = kw
			args = args[:n-1]
		}
	}
	wantResult := f.wantsResult()
	timeout := p.cfg.MethodTimeout
	if strings.Contains(f.method, "_rintf_") {
		timeout = 10 * time.Second
	}

	// A session is needed up front only to receive the result; otherwise it
	// is created when an argument turns out to be a function.
	st := &encState{parent: f.localParent, target: f.target}
	var pc *pendingCall
	p.mu.Lock()
	if wantResult {
		st.sess = p.newSessionLocked(f.localParent, f.target)
		pc = &pendingCall{done: make(chan callResult, 1), timeout: timeout, desc: f.target + ":" + f.method}
		st.sess.call = pc
	}
	from := p.workspace + "/" + p.cfg.ClientID
	p.mu.Unlock()
	dropSession := func() {
		if st.sess != nil {
			p.dropSession(st.sess.id)
		}
	}
	encArgs := make([]any, 0, len(args)+1)
	for _, a := range args {
		ea, err := p.encode(a, st)
		if err != nil {
			dropSession()
			return nil, fmt.Errorf("encode arguments of %s: %w", f.method, err)
		}
		encArgs = append(encArgs, ea)
	}
	extra := map[string]any{}
	if kwargs != nil {
		ek, err := p.encode(map[string]any(kwargs), st)
		if err != nil {
			dropSession()
			return nil, fmt.Errorf("encode keyword arguments of %s: %w", f.method, err)
		}
		encArgs = append(encArgs, ek)
		extra["with_kwargs"] = true
	}
	if len(encArgs) > 0 {
		extra["args"] = encArgs
	}
	main := map[string]any{"type": "method", "from": from, "to": f.target, "method": f.method}
	if f.remoteParent != "" {
		main["parent"] = f.remoteParent
	}
	if wantResult {
		main["session"] = st.sess.id
		if pr, ok := f.promise.(bool); ok && pr {
			extra["promise"] = p.fullPromise(st.sess.id, timeout)
		} else {
			extra["promise"] = "*"
			extra["t"] = timeout.Seconds() / 2
		}
	}
	if len(extra) == 0 {
		extra = nil
	}
	if err := p.sendMessage(ctx, main, extra, f.remoteParent); err != nil {
		dropSession()
		return nil, fmt.Errorf("call %s: %w", f.method, err)
	}
	if !wantResult {
		return nil, nil
	}
	sid := st.sess.id
	p.mu.Lock()
	if _, alive := p.sessions[sid]; alive {
		pc.timer = time.AfterFunc(timeout, func() { p.expire(sid, pc) })
	}
	p.mu.Unlock()
	select {
	case r := <-pc.done:
		return r.value, r.err
	case <-ctx.Done():
		dropSession()
		return nil, fmt.Errorf("call %s: %w", f.method, ctx.Err())
	case <-p.closed:
		return nil, fmt.Errorf("call %s: %w", f.method, ErrClosed)
	}
}

func (p *peer) fullPromise(sid string, timeout time.Duration) map[string]any {
	me := p.ID()
	ref := func(name string) map[string]any {
		return map[string]any{"_rtype": "method", "_rtarget": me, "_rmethod": sid + "." + name, "_rpromise": false}
	}
	return map[string]any{
		"heartbeat": ref("heartbeat"), "resolve": ref("resolve"), "reject": ref("reject"),
		"interval": timeout.Seconds() / 2,
	}
}

func (p *peer) expire(sid string, pc *pendingCall) {
	p.mu.Lock()
	s, ok := p.sessions[sid]
	if !ok || s.call != pc {
		p.mu.Unlock()
		return
	}
	p.deleteSessionLocked(sid)
	p.mu.Unlock()
	pc.finish(callResult{err: fmt.Errorf("%w after %s: %s", ErrTimeout, pc.timeout, pc.desc)})
}

func (p *peer) dropSession(id string) {
	p.mu.Lock()
	if s, ok := p.sessions[id]; ok && s.call != nil && s.call.timer != nil {
		s.call.timer.Stop()
	}
	p.deleteSessionLocked(id)
	p.mu.Unlock()
}

// settle handles <session>.resolve / .reject / .heartbeat addressed to one of
// our pending calls. It reports whether the method was such a call.
func (p *peer) settle(method, from string, args []any, ds *decState) (handled bool, err error) {
	i := strings.LastIndexByte(method, '.')
	if i <= 0 {
		return false, nil
	}
	sid, op := method[:i], method[i+1:]
	if op != "resolve" && op != "reject" && op != "heartbeat" {
		return false, nil
	}
	p.mu.Lock()
	s, ok := p.sessions[sid]
	if !ok || s.call == nil {
		p.mu.Unlock()
		// A late answer to a call that timed out or was cancelled: ignore, as
		// the reference clients do.
		return true, nil
	}
	if s.target != from {
		p.mu.Unlock()
		return true, fmt.Errorf("%w: %s may not settle a call made to %s", ErrPermission, from, s.target)
	}
	pc := s.call
	if op == "heartbeat" {
		s.touched = time.Now()
		if pc.timer != nil {
			pc.timer.Reset(pc.timeout)
		}
		p.mu.Unlock()
		return true, nil
	}
	p.deleteSessionLocked(sid)
	p.mu.Unlock()
	var v any
	if len(args) > 0 {
		v = p.decode(args[0], ds)
	}
	if ds.err != nil {
		// A result or error carrying a function of a third peer: the call
		// fails rather than hand it to the caller (who may be a deputy).
		p.refused(ds.err, from)
		pc.finish(callResult{err: fmt.Errorf("result of %s: %w", pc.desc, ds.err)})
		return true, nil
	}
	if op == "resolve" {
		pc.finish(callResult{value: v})
		return true, nil
	}
	var rerr error
	switch e := v.(type) {
	case *RemoteError:
		rerr = e
	case string:
		rerr = &RemoteError{Message: e}
	default:
		rerr = &RemoteError{Message: fmt.Sprint(v)}
	}
	pc.finish(callResult{err: rerr})
	return true, nil
}

// makeFunc builds a Go function of type t that calls f: a leading
// context.Context parameter bounds the call, results are decoded into t's
// first result, a trailing error result receives the call's error.
func (f *RemoteFunc) makeFunc(t reflect.Type) reflect.Value {
	return reflect.MakeFunc(t, func(in []reflect.Value) []reflect.Value {
		ctx := context.Background()
		args := make([]any, 0, len(in))
		for i, a := range in {
			if i == 0 && t.In(0) == ctxType {
				if c, ok := a.Interface().(context.Context); ok && c != nil {
					ctx = c
				}
				continue
			}
			if t.IsVariadic() && i == len(in)-1 {
				for j := 0; j < a.Len(); j++ {
					args = append(args, a.Index(j).Interface())
				}
				continue
			}
			args = append(args, a.Interface())
		}
		v, err := f.Call(ctx, args...)
		out := make([]reflect.Value, t.NumOut())
		for i := range out {
			out[i] = reflect.Zero(t.Out(i))
		}
		n := t.NumOut()
		hasErr := n > 0 && t.Out(n-1) == errType
		if err == nil && n > 0 && !(hasErr && n == 1) {
			dst := reflect.New(t.Out(0))
			if cerr := Decode(v, dst.Interface()); cerr != nil {
				err = cerr
			} else {
				out[0] = dst.Elem()
			}
		}
		if hasErr && err != nil {
			out[n-1] = reflect.ValueOf(&err).Elem()
		} else if err != nil {
			f.peer.log.Warn("remote function failed and its Go signature has no error result", "method", f.method, "err", err)
		}
		return out
	})
}
