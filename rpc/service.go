package rpc

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
)

// Service describes a service to register. Functions maps names to Go funcs
// (any signature, see Client.RegisterService), nested map[string]any of funcs,
// or plain values (e.g. a worker's supported_types).
type Service struct {
	ID          string
	Name        string
	Type        string
	Description string
	Docs        string
	AppID       string
	Config      ServiceConfig
	Functions   map[string]any
}

// ServiceConfig is the service's config block.
type ServiceConfig struct {
	// Visibility is "public", "protected" (the default) or "unlisted".
	Visibility string
	// RequireContext tells callers that functions receive the caller context.
	// It is set automatically when a function takes a *CallContext.
	RequireContext bool
	// AuthorizedWorkspaces may call a protected service from outside its workspace.
	AuthorizedWorkspaces []string
	RunInExecutor        bool
	// Extra keys are stored in config as given.
	Extra map[string]any
}

type localService struct {
	id         string
	name       string
	typ        string
	desc       string
	docs       string
	appID      string
	visibility string
	authorized []string
	config     map[string]any
	members    map[string]any // *localFunc, map[string]any or plain values
}

type localFunc struct {
	name   string
	doc    string
	call   func(ctx context.Context, c *Call) (any, error)
	schema map[string]any
	usesCC bool
	// generator: the declared result is an iter.Seq2[T, error]; the
	// function's context then lives as long as the generator it returns.
	generator bool
}

func newLocalService(s Service) (*localService, error) {
	if s.ID == "" {
		return nil, errors.New("rpc: service id is empty")
	}
	if strings.ContainsAny(s.ID, "/:.") && s.ID != "~" {
		return nil, fmt.Errorf("rpc: service id %q must not contain '/', ':' or '.'", s.ID)
	}
	ls := &localService{
		id: s.ID, name: s.Name, typ: s.Type, desc: s.Description, docs: s.Docs, appID: s.AppID,
		visibility: s.Config.Visibility, authorized: s.Config.AuthorizedWorkspaces,
	}
	if ls.name == "" {
		ls.name = s.ID
	}
	if ls.typ == "" {
		ls.typ = "generic"
	}
	switch ls.visibility {
	case "":
		ls.visibility = "protected"
	case "public", "protected", "unlisted":
	default:
		return nil, fmt.Errorf("rpc: service %q: visibility %q is not public, protected or unlisted", s.ID, ls.visibility)
	}
	if len(ls.authorized) > 0 && ls.visibility != "protected" {
		return nil, fmt.Errorf("rpc: service %q: authorized_workspaces needs visibility protected", s.ID)
	}
	members, usesCC, err := adaptMembers(s.Functions, "")
	if err != nil {
		return nil, fmt.Errorf("rpc: service %q: %w", s.ID, err)
	}
	ls.members = members
	cfg := map[string]any{}
	for k, v := range s.Config.Extra {
		cfg[k] = v
	}
	cfg["visibility"] = ls.visibility
	cfg["require_context"] = s.Config.RequireContext || usesCC
	if s.Config.RunInExecutor {
		cfg["run_in_executor"] = true
	}
	if len(ls.authorized) > 0 {
		aw := make([]any, len(ls.authorized))
		for i, w := range ls.authorized {
			aw[i] = w
		}
		cfg["authorized_workspaces"] = aw
	}
	ls.config = cfg
	return ls, nil
}

func adaptMembers(in map[string]any, prefix string) (map[string]any, bool, error) {
	out := make(map[string]any, len(in))
	uses := false
	for k, v := range in {
		if strings.HasPrefix(k, "_") && k != "_dispose" {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			sub, u, err := adaptMembers(x, prefix+k+".")
			if err != nil {
				return nil, false, err
			}
			out[k], uses = sub, uses || u
			continue
		case Kwargs:
			out[k] = map[string]any(x)
			continue
		}
		if isFunc(v) {
			lf, err := adaptFunc(v, k)
			if err != nil {
				return nil, false, fmt.Errorf("function %s%s: %w", prefix, k, err)
			}
			out[k], uses = lf, uses || lf.usesCC
			continue
		}
		out[k] = v
	}
	return out, uses, nil
}

func isFunc(v any) bool {
	switch v.(type) {
	case HandlerFunc, *namedFunc, *docFunc, *schemaFunc:
		return true
	case nil:
		return false
	}
	return reflect.TypeOf(v).Kind() == reflect.Func
}

// adaptFunc turns a Go func into a localFunc by reflection. Parameters of
// type context.Context, *CallContext, *Call and Kwargs are filled by the peer;
// the others take wire arguments, by position or (when Params names them) by
// name, converted to their Go types.
func adaptFunc(v any, name string) (lfOut *localFunc, err error) {
	var names []string
	var explicit map[string]any
	doc := ""
	for {
		switch x := v.(type) {
		case *namedFunc:
			names, v = x.names, x.fn
			continue
		case *docFunc:
			doc, v = x.doc, x.fn
			continue
		case *schemaFunc:
			explicit, v = x.parameters, x.fn
			continue
		}
		break
	}
	specs, err := parseParams(names)
	if err != nil {
		return nil, err
	}
	if explicit != nil {
		// An explicit schema replaces the derived one, whatever path
		// below builds it.
		defer func() {
			if lf := lfOut; lf != nil {
				if f, ok := lf.schema["function"].(map[string]any); ok {
					f["parameters"] = explicit
				}
			}
		}()
	}
	lf := &localFunc{name: name, doc: doc}
	ename := name // the name errors give
	if ename == "" {
		ename = "callback"
	}
	var h HandlerFunc
	switch x := v.(type) {
	case HandlerFunc:
		h = x
	case func(context.Context, *Call) (any, error):
		h = x
	}
	if h != nil {
		lf.usesCC = true
		lf.schema = funcSchema(name, doc, specs, nil)
		lf.call = h
		if specs != nil {
			// Declared names: the handler reads the Call itself, but the
			// call is checked against the declaration first.
			lf.call = func(ctx context.Context, c *Call) (any, error) {
				if _, _, err := bindArgs(ename, specs, len(specs), false, false, c); err != nil {
					return nil, err
				}
				return h(ctx, c)
			}
		}
		return lf, nil
	}
	fv := reflect.ValueOf(v)
	ft := fv.Type()
	if ft.Kind() != reflect.Func {
		return nil, fmt.Errorf("%T is not a function", v)
	}
	nout := ft.NumOut()
	if nout > 2 || (nout == 2 && ft.Out(1) != errType) {
		return nil, fmt.Errorf("signature %s: results must be (), (T), (error) or (T, error)", ft)
	}
	type param struct {
		kind int // 0 wire, 1 ctx, 2 callctx, 3 call, 4 kwargs, 5 variadic
		t    reflect.Type
	}
	params := make([]param, ft.NumIn())
	var wireTypes []reflect.Type
	for i := range params {
		t := ft.In(i)
		switch {
		case t == ctxType:
			params[i] = param{kind: 1}
		case t == callCtxType:
			params[i] = param{kind: 2}
			lf.usesCC = true
		case t == callType:
			params[i] = param{kind: 3}
			lf.usesCC = true
		case t == kwargsType:
			params[i] = param{kind: 4}
		case ft.IsVariadic() && i == len(params)-1:
			params[i] = param{kind: 5, t: t}
		default:
			params[i] = param{kind: 0, t: t}
			wireTypes = append(wireTypes, t)
		}
	}
	if len(specs) > len(wireTypes) {
		return nil, fmt.Errorf("Params gives %d names for %d parameters", len(specs), len(wireTypes))
	}
	lf.schema = funcSchema(name, doc, specs, wireTypes)
	lf.generator = nout > 0 && isSeq2Type(ft.Out(0))
	hasKwargsParam := slices.ContainsFunc(params, func(p param) bool { return p.kind == 4 })
	variadic := ft.IsVariadic()
	// argName names wire parameter i in errors.
	argName := func(i int) string {
		if i < len(specs) {
			return strconv.Quote(specs[i].name)
		}
		return strconv.Itoa(i)
	}
	lf.call = func(ctx context.Context, c *Call) (any, error) {
		args, rest, err := bindArgs(ename, specs, len(wireTypes), variadic, hasKwargsParam, c)
		if err != nil {
			return nil, err
		}
		in := make([]reflect.Value, len(params))
		ai := 0
		for i, p := range params {
			switch p.kind {
			case 1:
				in[i] = reflect.ValueOf(&ctx).Elem()
			case 2:
				in[i] = reflect.ValueOf(c.Context)
			case 3:
				in[i] = reflect.ValueOf(c)
			case 4:
				in[i] = reflect.ValueOf(Kwargs(rest))
			case 5:
				vs := reflect.MakeSlice(p.t, 0, len(args))
				for ; ai < len(args); ai++ {
					ev := reflect.New(p.t.Elem()).Elem()
					if err := convert.Assign(ev, args[ai], hookOnly); err != nil {
						return nil, fmt.Errorf("%w: %s: argument %d: %w", ErrArguments, ename, ai, err)
					}
					vs = reflect.Append(vs, ev)
				}
				in[i] = vs
			default:
				dst := reflect.New(p.t).Elem()
				if _, isMissing := args[ai].(missing); !isMissing {
					if err := convert.Assign(dst, args[ai], hookOnly); err != nil {
						return nil, fmt.Errorf("%w: %s: argument %s: %w", ErrArguments, ename, argName(ai), err)
					}
				}
				ai++
				in[i] = dst
			}
		}
		var out []reflect.Value
		if variadic {
			out = fv.CallSlice(in)
		} else {
			out = fv.Call(in)
		}
		switch nout {
		case 0:
			return nil, nil
		case 1:
			if ft.Out(0) == errType {
				if e, _ := out[0].Interface().(error); e != nil {
					return nil, e
				}
				return nil, nil
			}
			return out[0].Interface(), nil
		default:
			if e, _ := out[1].Interface().(error); e != nil {
				return nil, e
			}
			return out[0].Interface(), nil
		}
	}
	return lf, nil
}

// paramSpec is one parameter named by Params.
type paramSpec struct {
	name     string
	optional bool
}

func parseParams(names []string) ([]paramSpec, error) {
	if names == nil {
		return nil, nil
	}
	specs := make([]paramSpec, len(names))
	for i, n := range names {
		sp := paramSpec{name: n}
		if rest, ok := strings.CutSuffix(n, "?"); ok {
			sp = paramSpec{name: rest, optional: true}
		}
		switch {
		case sp.name == "":
			return nil, fmt.Errorf("Params: parameter %d has an empty name", i)
		case sp.name == "context":
			return nil, errors.New(`Params: the name "context" is reserved for the caller context (take a *rpc.CallContext parameter)`)
		case slices.ContainsFunc(specs[:i], func(o paramSpec) bool { return o.name == sp.name }):
			return nil, fmt.Errorf("Params: parameter %q is named twice", sp.name)
		}
		specs[i] = sp
	}
	return specs, nil
}

// missing marks a parameter that the call left out.
type missing struct{}

// bindArgs lays a call's arguments out by position. n is the number of
// fixed wire parameters, the first len(specs) of them named; keyword
// arguments take the place of the parameter they name. It returns the
// positional list, at least n long, with missing{} for optional parameters
// left out, and the keyword arguments that name no parameter (rest, only
// when acceptRest; otherwise they are refused). A required parameter left
// out, a parameter given twice and more than n positional arguments (unless
// variadic) are refused with an error naming the parameter.
func bindArgs(fn string, specs []paramSpec, n int, variadic, acceptRest bool, c *Call) (args []any, rest map[string]any, err error) {
	args = c.Args
	if len(args) > n && !variadic {
		if specs != nil {
			return nil, nil, fmt.Errorf("%w: %s takes %d arguments (%s), %d given", ErrArguments, fn, n, specNames(specs), len(args))
		}
		return nil, nil, fmt.Errorf("%w: %s takes %d arguments, %d given", ErrArguments, fn, n, len(args))
	}
	if len(c.Kwargs) > 0 {
		args = slices.Clone(args)
		for _, k := range slices.Sorted(maps.Keys(c.Kwargs)) {
			if k == "context" {
				continue // the trusted context is injected, never taken from the caller
			}
			pos := slices.IndexFunc(specs, func(s paramSpec) bool { return s.name == k })
			if pos < 0 {
				if !acceptRest {
					return nil, nil, unexpectedKwarg(fn, k, specs)
				}
				if rest == nil {
					rest = map[string]any{}
				}
				rest[k] = c.Kwargs[k]
				continue
			}
			if pos < len(c.Args) {
				return nil, nil, fmt.Errorf("%w: %s: argument %q given twice (by position and by name)", ErrArguments, fn, k)
			}
			for len(args) <= pos {
				args = append(args, missing{})
			}
			args[pos] = c.Kwargs[k]
		}
	}
	for i := 0; i < n; i++ {
		if i < len(args) {
			if _, isMissing := args[i].(missing); !isMissing {
				continue
			}
		} else {
			args = append(args, missing{})
		}
		switch {
		case i >= len(specs):
			return nil, nil, fmt.Errorf("%w: %s takes %d arguments, %d given", ErrArguments, fn, n, len(c.Args))
		case !specs[i].optional:
			return nil, nil, fmt.Errorf("%w: %s: missing argument %q", ErrArguments, fn, specs[i].name)
		}
	}
	return args, rest, nil
}

func unexpectedKwarg(fn, k string, specs []paramSpec) error {
	if specs == nil {
		return fmt.Errorf("%w: %s: unexpected keyword argument %q (this function takes positional arguments only; "+
			"its parameters can be named with rpc.Params)", ErrArguments, fn, k)
	}
	return fmt.Errorf("%w: %s: unexpected keyword argument %q (parameters: %s)", ErrArguments, fn, k, specNames(specs))
}

func specNames(specs []paramSpec) string {
	if len(specs) == 0 {
		return "none"
	}
	ns := make([]string, len(specs))
	for i, s := range specs {
		ns[i] = s.name
		if s.optional {
			ns[i] += "?"
		}
	}
	return strings.Join(ns, ", ")
}

// funcSchema is the JSON-schema style description of a function; types
// gives the Go types of the named parameters (nil for a HandlerFunc, whose
// parameters then have no type).
func funcSchema(name, doc string, specs []paramSpec, types []reflect.Type) map[string]any {
	props := map[string]any{}
	required := []any{}
	for i, sp := range specs {
		p := map[string]any{"description": ""}
		if i < len(types) {
			p["type"] = jsonType(types[i])
		}
		props[sp.name] = p
		if !sp.optional {
			required = append(required, sp.name)
		}
	}
	return map[string]any{"type": "function", "function": map[string]any{
		"name": name, "description": doc,
		"parameters": map[string]any{"type": "object", "properties": props, "required": required},
	}}
}

func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string"
		}
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "object"
}

// lookup finds a member by dotted path.
func (s *localService) lookup(path []string) (any, bool) {
	var cur any = s.members
	for _, k := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[k]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// schema mirrors the members: functions become their schemas.
func membersSchema(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case *localFunc:
			out[k] = x.schema
		case map[string]any:
			out[k] = membersSchema(x)
		case string:
			out[k] = map[string]any{"type": "string"}
		case nil:
			out[k] = map[string]any{"type": "null"}
		case int, int64, float64, uint64:
			out[k] = map[string]any{"type": "number"}
		default:
			out[k] = map[string]any{}
		}
	}
	return out
}

// info is the service description sent to the manager's register_service.
func (p *peer) serviceInfo(s *localService) map[string]any {
	ws := p.ws()
	cfg := make(map[string]any, len(s.config)+1)
	for k, v := range s.config {
		cfg[k] = v
	}
	cfg["workspace"] = ws
	appID := s.appID
	if appID == "" {
		appID = "*"
	}
	return map[string]any{
		"config":         cfg,
		"id":             ws + "/" + p.cfg.ClientID + ":" + s.id,
		"name":           s.name,
		"description":    nilIfEmpty(s.desc),
		"type":           s.typ,
		"docs":           nilIfEmpty(s.docs),
		"app_id":         appID,
		"service_schema": membersSchema(s.members),
	}
}

// encodeService is the service as returned by built-in get_service: its
// description plus method references for every function.
func (p *peer) encodeService(s *localService) map[string]any {
	me := p.ID()
	out := map[string]any{
		"id": s.id, "name": s.name, "type": s.typ, "description": s.desc,
		"config": s.config,
	}
	if s.docs != "" {
		out["docs"] = s.docs
	}
	if s.appID != "" {
		out["app_id"] = s.appID
	}
	var walk func(m map[string]any, prefix string) map[string]any
	walk = func(m map[string]any, prefix string) map[string]any {
		o := make(map[string]any, len(m))
		for k, v := range m {
			switch x := v.(type) {
			case *localFunc:
				o[k] = map[string]any{
					"_rtype": "method", "_rserver": p.cfg.ServerBaseURL, "_rtarget": me,
					"_rmethod": "services." + s.id + "." + prefix + k, "_rpromise": "*",
					"_rname": k, "_rdoc": nilIfEmpty(x.doc), "_rschema": x.schema["function"],
				}
			case map[string]any:
				o[k] = walk(x, prefix+k+".")
			default:
				o[k] = v
			}
		}
		return o
	}
	for k, v := range walk(s.members, "") {
		out[k] = v
	}
	return out
}

// AddService stores a service locally (without telling any server) and
// returns its description for register_service.
func (p *peer) AddService(s Service, overwrite bool) (map[string]any, error) {
	ls, err := newLocalService(s)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if _, exists := p.services[ls.id]; exists && !overwrite {
		p.mu.Unlock()
		return nil, fmt.Errorf("rpc: service %q already exists", ls.id)
	}
	p.services[ls.id] = ls
	p.mu.Unlock()
	return p.serviceInfo(ls), nil
}

// RemoveService deletes a local service.
func (p *peer) RemoveService(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.services[id]; !ok {
		return false
	}
	delete(p.services, id)
	return true
}

// ServiceInfos returns the registration descriptions of every local service,
// built-in first.
func (p *peer) ServiceInfos() []map[string]any {
	p.mu.Lock()
	list := make([]*localService, 0, len(p.services))
	for _, s := range p.services {
		list = append(list, s)
	}
	p.mu.Unlock()
	slices.SortFunc(list, func(a, b *localService) int {
		if a.id == "built-in" {
			return -1
		}
		if b.id == "built-in" {
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]map[string]any, len(list))
	for i, s := range list {
		out[i] = p.serviceInfo(s)
	}
	return out
}

// handleMethod runs an incoming method call.
func (p *peer) handleMethod(msg, ctx map[string]any) {
	method := asString(msg["method"])
	from := asString(msg["from"])
	remoteWS, remoteCID := splitPeer(from)
	to := asString(msg["to"])
	if to != "" && !strings.Contains(to, "/") {
		to = remoteWS + "/" + to
	}
	ctx["to"] = to
	sessionID := asString(msg["session"])
	parent := asString(msg["parent"])
	rawArgs, _ := msg["args"].([]any)
	ds := &decState{from: from, remoteWS: remoteWS, remoteParent: sessionID}

	p.mu.Lock()
	localWS := p.workspace
	managerID := p.managerID
	p.mu.Unlock()
	if localWS == "" || localWS == "*" {
		localWS, _ = splitPeer(to)
	}

	var resolve, reject, heartbeat *RemoteFunc
	var interval time.Duration
	switch pr := msg["promise"].(type) {
	case string:
		if pr == "*" && sessionID != "" {
			mk := func(op string) *RemoteFunc {
				return &RemoteFunc{peer: p, target: from, method: sessionID + "." + op, promise: false,
					remoteParent: sessionID, localParent: parent}
			}
			resolve, reject, heartbeat = mk("resolve"), mk("reject"), mk("heartbeat")
			if f, ok := convert.Number(msg["t"]); ok {
				interval = time.Duration(f * float64(time.Second))
			}
		}
	case map[string]any:
		pds := &decState{from: from, remoteWS: remoteWS, remoteParent: sessionID, localParent: parent}
		resolve, _ = p.decode(pr["resolve"], pds).(*RemoteFunc)
		reject, _ = p.decode(pr["reject"], pds).(*RemoteFunc)
		heartbeat, _ = p.decode(pr["heartbeat"], pds).(*RemoteFunc)
		if f, ok := convert.Number(pr["interval"]); ok {
			interval = time.Duration(f * float64(time.Second))
		}
		if pds.err != nil {
			// A promise aimed at a third peer: neither the function nor any
			// of the callbacks is called. The sender hears why through its
			// own session's reject, the compact form, which targets it.
			p.refused(pds.err, from)
			if sessionID != "" {
				go p.reply(&RemoteFunc{peer: p, target: from, method: sessionID + ".reject", promise: false,
					remoteParent: sessionID, localParent: parent}, pds.err)
			}
			return
		}
	}
	fail := func(err error) {
		if reject != nil {
			go p.reply(reject, err)
		} else {
			p.log.Debug("call failed with no one to tell", "method", method, "from", from, "err", err)
		}
	}

	lf, err := p.resolveMethod(method, from, remoteWS, remoteCID, localWS, managerID)
	if err != nil {
		fail(err)
		return
	}
	if parent != "" && !strings.HasPrefix(method, "services.") {
		p.mu.Lock()
		_, ok := p.sessions[parent]
		p.mu.Unlock()
		if !ok {
			fail(fmt.Errorf("Parent session was closed: %s", parent))
			return
		}
	}
	args := p.decode(rawArgs, ds).([]any)
	if ds.err != nil {
		p.refused(ds.err, from)
		fail(fmt.Errorf("call %s: %w", method, ds.err))
		return
	}
	if args == nil {
		args = []any{}
	}
	call := &Call{Args: args}
	if wk, _ := msg["with_kwargs"].(bool); wk && len(args) > 0 {
		if kw, ok := args[len(args)-1].(map[string]any); ok {
			call.Kwargs = kw
			call.Args = args[:len(args)-1]
		}
	}
	cc := &CallContext{From: from, To: to, WS: asString(ctx["ws"]), Raw: ctx}
	if u, ok := ctx["user"].(map[string]any); ok {
		cc.User = userFromMap(u)
	}
	call.Context = cc
	go p.run(lf, call, resolve, reject, heartbeat, interval)
}

func (p *peer) resolveMethod(method, from, remoteWS, remoteCID, localWS, managerID string) (*localFunc, error) {
	parts := strings.Split(method, ".")
	if len(parts) >= 3 && parts[0] == "services" {
		p.mu.Lock()
		svc, ok := p.services[parts[1]]
		p.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("Method not found: %s:%s at %s", from, method, p.cfg.ClientID)
		}
		v, ok := svc.lookup(parts[2:])
		lf, isFn := v.(*localFunc)
		if !ok || !isFn {
			return nil, fmt.Errorf("Method not found: %s:%s at %s", from, method, p.cfg.ClientID)
		}
		if svc.visibility == "protected" && remoteWS != localWS && !slices.Contains(svc.authorized, remoteWS) &&
			!(remoteWS == "*" && remoteCID == managerID) {
			return nil, fmt.Errorf("%w: Permission denied for invoking protected method %s, workspace mismatch: %s != %s",
				ErrPermission, method, localWS, remoteWS)
		}
		return lf, nil
	}
	if len(parts) < 2 {
		return nil, fmt.Errorf("Method not found: %s:%s at %s", from, method, p.cfg.ClientID)
	}
	sid := strings.Join(parts[:len(parts)-1], ".")
	key := parts[len(parts)-1]
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[sid]
	if !ok {
		return nil, fmt.Errorf("Session not found: %s:%s", from, method)
	}
	lf, ok := s.funcs[key]
	if !ok {
		return nil, fmt.Errorf("Method expired or not found: %s:%s", from, method)
	}
	if s.target != from {
		return nil, fmt.Errorf("%w: Access denied for method call (%s) from %s", ErrPermission, method, from)
	}
	s.touched = time.Now()
	return lf, nil
}

// run invokes a local function, heartbeating while it runs, and sends the
// result or error back. The heartbeat is a re-armed timer rather than a
// goroutine, and the handler's context is the peer's own, so that quick
// calls cost no extra goroutine, timer or context.
func (p *peer) run(lf *localFunc, call *Call, resolve, reject, heartbeat *RemoteFunc, interval time.Duration) {
	ctx := p.baseCtx
	if heartbeat != nil && interval > 0 {
		var mu sync.Mutex
		done := false
		var t *time.Timer
		beat := func() {
			if _, err := heartbeat.Call(ctx); err != nil && ctx.Err() == nil {
				p.log.Debug("heartbeat failed", "err", err)
			}
			mu.Lock()
			if !done {
				t.Reset(interval)
			}
			mu.Unlock()
		}
		mu.Lock()
		t = time.AfterFunc(interval, beat)
		mu.Unlock()
		defer func() {
			mu.Lock()
			done = true
			t.Stop()
			mu.Unlock()
		}()
	}
	var owned *ownedSeq
	if lf.generator {
		// The context of a function returning a generator ends with the
		// generator (closed, exhausted, its consumer gone), not when the
		// function returns.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		owned = &ownedSeq{cancel: cancel}
		defer func() {
			if !owned.taken.Load() {
				cancel()
			}
		}()
	}
	result, err := safeCall(ctx, lf, call)
	if owned != nil && err == nil {
		owned.v, result = result, owned
	}
	if err != nil {
		if reject != nil {
			p.reply(reject, err)
		} else {
			p.log.Debug("function failed", "name", lf.name, "err", err)
		}
		return
	}
	if resolve != nil {
		p.reply(resolve, result)
	}
}

func safeCall(ctx context.Context, lf *localFunc, call *Call) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &RemoteError{Message: fmt.Sprintf("panic in %s: %v", lf.name, r), Trace: string(debug.Stack())}
		}
	}()
	return lf.call(ctx, call)
}

func (p *peer) reply(fn *RemoteFunc, v any) {
	// Replies are fire-and-forget; they are bounded by the peer's life (and
	// large ones by the chunk calls' own timeouts), not by a timer here.
	ctx := p.baseCtx
	if _, err := fn.Call(ctx, v); err != nil {
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return
		}
		// A result that cannot be encoded is reported to the caller instead.
		if !strings.HasSuffix(fn.method, ".reject") {
			if _, err2 := (&RemoteFunc{peer: p, target: fn.target, method: strings.TrimSuffix(fn.method, "resolve") + "reject",
				promise: false, remoteParent: fn.remoteParent, localParent: fn.localParent}).Call(ctx, err); err2 == nil {
				return
			}
		}
		p.log.Debug("could not send reply", "method", fn.method, "err", err)
	}
}
