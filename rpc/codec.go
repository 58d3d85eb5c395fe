package rpc

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/internal/wire"
)

// encState carries the session that functions found while encoding are stored
// in. The session is created on first use, so values without functions cost
// nothing.
type encState struct {
	parent string // create the session nested under this one
	target string // the peer the encoded value is sent to
	sess   *session
}

// serviceValue marks a local service being returned by built-in get_service;
// its functions encode as stable service method references.
type serviceValue struct{ svc *localService }

func (p *peer) encode(v any, st *encState) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, []byte, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
		float32, float64, wire.Raw, time.Time:
		return v, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := p.encode(e, st)
			if err != nil {
				return nil, err
			}
			out[k] = ev
		}
		return out, nil
	case Kwargs:
		return p.encode(map[string]any(x), st)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ev, err := p.encode(e, st)
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	case *RemoteFunc:
		if x.refused != nil {
			return nil, x.refused
		}
		return x.raw, nil
	case *RemoteGenerator:
		if x.next.refused != nil {
			return nil, x.next.refused
		}
		return x.raw, nil
	case *ownedSeq:
		seq, ok := seqOf(x.v)
		if !ok {
			x.cancel()
			return p.encode(x.v, st)
		}
		x.taken.Store(true)
		return p.storeGenerator(seq, x.cancel, st)
	case *RemoteService:
		return p.encode(x.Members(), st)
	case *RemoteError:
		return map[string]any{"_rtype": "error", "_rvalue": x.Message, "_rtrace": x.Trace}, nil
	case error:
		return map[string]any{"_rtype": "error", "_rvalue": x.Error(), "_rtrace": ""}, nil
	case NDArray:
		shape := make([]any, len(x.Shape))
		for i, d := range x.Shape {
			shape[i] = d
		}
		return map[string]any{"_rtype": "ndarray", "_rvalue": x.Data, "_rshape": shape, "_rdtype": x.DType}, nil
	case *NDArray:
		return p.encode(*x, st)
	case TypedArray:
		return map[string]any{"_rtype": "typedarray", "_rvalue": x.Data, "_rdtype": x.DType}, nil
	case serviceValue:
		return p.encodeService(x.svc), nil
	case HandlerFunc, *namedFunc, *docFunc:
		return p.storeFunc(v, st)
	}
	if seq, ok := seqOf(v); ok {
		return p.storeGenerator(seq, nil, st)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Func {
		if rv.IsNil() {
			return nil, nil
		}
		return p.storeFunc(v, st)
	}
	plain, err := convert.FromStruct(v)
	if err != nil {
		return nil, err
	}
	if reflect.TypeOf(plain) == reflect.TypeOf(v) {
		return nil, fmt.Errorf("rpc: cannot encode value of type %T", v)
	}
	return p.encode(plain, st)
}

// storeFunc keeps a local function in the encoding session and returns the
// method reference that lets the receiver call it back.
func (p *peer) storeFunc(v any, st *encState) (any, error) {
	if st == nil {
		return nil, fmt.Errorf("rpc: a function cannot be sent here")
	}
	lf, err := adaptFunc(v, "")
	if err != nil {
		return nil, err
	}
	name := lf.name
	if name == "" {
		name = "callback"
	}
	key := idgen.New() + "#" + name
	p.mu.Lock()
	if st.sess == nil {
		st.sess = p.newSessionLocked(st.parent, st.target)
	}
	s := st.sess
	if s.funcs == nil {
		s.funcs = map[string]*localFunc{}
	}
	s.funcs[key] = lf
	ws := p.workspace
	p.mu.Unlock()
	return map[string]any{
		"_rtype":    "method",
		"_rserver":  p.cfg.ServerBaseURL,
		"_rtarget":  ws + "/" + p.cfg.ClientID,
		"_rmethod":  s.id + "." + key,
		"_rpromise": "*",
		"_rname":    name,
		"_rdoc":     nilIfEmpty(lf.doc),
	}, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// decState says where a decoded value came from, for resolving relative
// targets and binding callbacks to the sender's session.
type decState struct {
	// from is the server-stamped sender of the frame; functions it sends
	// must be its own (see foreignErr). err records the first that is not.
	from         string
	err          error
	remoteWS     string
	remoteParent string // session in the sender's store the references belong to
	localParent  string // session in our store replies should nest under
}

func (p *peer) decode(v any, ds *decState) any {
	switch x := v.(type) {
	case map[string]any:
		if rt, ok := x["_rtype"].(string); ok {
			return p.decodeSpecial(rt, x, ds)
		}
		for k, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				x[k] = p.decode(e, ds)
			}
		}
		return x
	case []any:
		for i, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				x[i] = p.decode(e, ds)
			}
		}
		return x
	}
	return v
}

func (p *peer) decodeSpecial(rt string, x map[string]any, ds *decState) any {
	switch rt {
	case "method":
		return p.newRemoteFunc(x, ds)
	case "generator":
		return p.newRemoteGenerator(x, ds)
	case "error":
		return &RemoteError{Message: asString(x["_rvalue"]), Trace: asString(x["_rtrace"])}
	case "memoryview":
		if b, ok := x["_rvalue"].([]byte); ok {
			return b
		}
	case "ndarray":
		a := NDArray{DType: asString(x["_rdtype"]), Data: joinBytes(x["_rvalue"])}
		if sh, ok := x["_rshape"].([]any); ok {
			for _, d := range sh {
				if f, ok := convert.Number(d); ok {
					a.Shape = append(a.Shape, int64(f))
				}
			}
		}
		return a
	case "typedarray":
		return TypedArray{DType: asString(x["_rdtype"]), Data: joinBytes(x["_rvalue"])}
	case "set":
		if items, ok := x["_rvalue"].([]any); ok {
			return p.decode(items, ds)
		}
		return []any{}
	case "orderedmap":
		out := map[string]any{}
		if items, ok := x["_rvalue"].([]any); ok {
			for _, it := range items {
				if pair, ok := it.([]any); ok && len(pair) == 2 {
					out[fmt.Sprint(pair[0])] = p.decode(pair[1], ds)
				} else if k, ok := it.(string); ok {
					out[k] = nil // Python sends keys only
				}
			}
		}
		return out
	case "pydantic-model", "pydantic_model":
		// The server's own model codec: the map is the model's JSON dump.
		delete(x, "_rtype")
		if inner, ok := x["_rvalue"].(map[string]any); ok && rt == "pydantic_model" {
			x = inner
		}
	}
	for k, e := range x {
		switch e.(type) {
		case map[string]any, []any:
			x[k] = p.decode(e, ds)
		}
	}
	return x
}

func joinBytes(v any) []byte {
	switch b := v.(type) {
	case []byte:
		return b
	case []any:
		var out []byte
		for _, c := range b {
			if cb, ok := c.([]byte); ok {
				out = append(out, cb...)
			}
		}
		return out
	}
	return nil
}

// Decode converts a decoded value (a call result, an argument) into out, a
// pointer to a Go value: structs by json tag, numbers with range checks, and
// remote functions into Go func types.
func Decode(v any, out any) error {
	return convert.Into(out, v, hookOnly)
}

// hookOnly turns remote functions into Go func types when a handler or a
// result asks for one. It is set in init to break an initialisation cycle
// (makeFunc calls back into the peer).
var hookOnly *convert.Options

func init() {
	hookOnly = &convert.Options{Hook: func(src any, dst reflect.Type) (reflect.Value, bool, error) {
		if g, ok := src.(*RemoteGenerator); ok && isSeq2Type(dst) {
			return g.makeSeq(dst), true, nil
		}
		rf, ok := src.(*RemoteFunc)
		if !ok || dst.Kind() != reflect.Func {
			return reflect.Value{}, false, nil
		}
		return rf.makeFunc(dst), true, nil
	}}
}

var (
	ctxType     = reflect.TypeOf((*context.Context)(nil)).Elem()
	callCtxType = reflect.TypeOf((*CallContext)(nil))
	callType    = reflect.TypeOf((*Call)(nil))
	kwargsType  = reflect.TypeOf(Kwargs(nil))
	errType     = reflect.TypeOf((*error)(nil)).Elem()
)
