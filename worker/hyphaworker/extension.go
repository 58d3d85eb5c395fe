package hyphaworker

import (
	"context"
	"fmt"
	"reflect"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

var (
	ctxType  = reflect.TypeFor[context.Context]()
	callType = reflect.TypeFor[*rpc.Call]()
)

// extensionFuncs checks w's extensions (worker.ExtensionsOf) and returns
// them as service functions, guarded by the access rule. taken are the
// names already on the service: an extension may not hide one.
func (a *adapter) extensionFuncs(w worker.Worker, taken map[string]any) (map[string]any, error) {
	exts := worker.ExtensionsOf(w)
	if err := worker.ValidateExtensions(exts); err != nil {
		return nil, err
	}
	out := make(map[string]any, len(exts))
	for _, e := range exts {
		if _, ok := taken[e.Name]; ok {
			return nil, fmt.Errorf("%w: extension %q: the worker's service already has a member of that name", worker.ErrInvalidConfig, e.Name)
		}
		fn, err := a.guard(e)
		if err != nil {
			return nil, err
		}
		out[e.Name] = rpc.Doc(rpc.Params(fn, e.ParamNames()...), e.Description)
	}
	return out, nil
}

// guard wraps e.Func into a function rpc registers like any other: it takes
// (ctx, *rpc.Call, the parameters of e.Func after ctx) and returns what
// e.Func returns. Before e.Func runs it admits the caller with e's
// permission (Admit's rule), attaches the Caller to ctx and, for a session
// extension, confines the session id to the caller's workspace.
//
// The wrapper has e.Func's own parameter and result types, so rpc converts
// the arguments, builds the schema and recognises a generator result
// exactly as for e.Func itself.
func (a *adapter) guard(e worker.Extension) (any, error) {
	need, err := auth.ParsePermission(string(e.Permission))
	if err != nil {
		return nil, fmt.Errorf("%w: extension %q: %v", worker.ErrInvalidConfig, e.Name, err)
	}
	fv := reflect.ValueOf(e.Func)
	ft := fv.Type()
	in := []reflect.Type{ctxType, callType}
	for i := 1; i < ft.NumIn(); i++ {
		in = append(in, ft.In(i))
	}
	outs := make([]reflect.Type, ft.NumOut())
	for i := range outs {
		outs[i] = ft.Out(i)
	}
	fail := func(err error) []reflect.Value {
		res := make([]reflect.Value, len(outs))
		for i, t := range outs {
			res[i] = reflect.Zero(t)
		}
		res[len(res)-1] = reflect.ValueOf(&err).Elem()
		return res
	}
	name := e.Name
	wt := reflect.FuncOf(in, outs, ft.IsVariadic())
	return reflect.MakeFunc(wt, func(args []reflect.Value) []reflect.Value {
		ctx, _ := args[0].Interface().(context.Context)
		if ctx == nil {
			ctx = context.Background()
		}
		c, _ := args[1].Interface().(*rpc.Call)
		if c == nil {
			return fail(fmt.Errorf("%s: %w: the call carries no caller context", name, ErrPermission))
		}
		caller, err := admit(c.Context, c.Kwargs, a.home, name, need, true, a.trusted)
		if err != nil {
			return fail(err)
		}
		if e.Session {
			id := args[2].String()
			if id == "" {
				return fail(fmt.Errorf("%s: %w: session_id is required", name, worker.ErrInvalidConfig))
			}
			if err := checkSession(caller, id); err != nil {
				return fail(fmt.Errorf("%s: %w", name, err))
			}
		}
		ctx = worker.WithCaller(ctx, caller)
		call := append([]reflect.Value{reflect.ValueOf(&ctx).Elem()}, args[2:]...)
		var res []reflect.Value
		if ft.IsVariadic() {
			res = fv.CallSlice(call)
		} else {
			res = fv.Call(call)
		}
		if err, _ := res[len(res)-1].Interface().(error); err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		return res
	}).Interface(), nil
}
