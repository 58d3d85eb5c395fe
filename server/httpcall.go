package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/server/registry"
)

// httpCallTimeout bounds an HTTP call up to its result (a streamed
// generator is then bounded per item by the method timeout, and by the
// HTTP client staying connected).
const httpCallTimeout = 5 * time.Minute

// httpInput is what an HTTP call passes to the function.
type httpInput struct {
	args   []any
	kwargs map[string]any
	// query holds the raw query parameters of a GET: they are typed once
	// the function's schema is known (coerceQuery).
	query map[string]string
}

// httpCall calls a service function, as upstream's
// /{workspace}/services/{service_id}/{function} route does:
//
//   - GET: every query parameter but _mode is a keyword argument (a
//     repeated one takes its last value). Values are typed by the
//     parameter's type in the function's schema (rpc.Params declares it for
//     Go functions); without one, as upstream does: integers, floats, and
//     JSON objects and arrays are decoded, true and false are booleans, the
//     rest stays a string.
//   - POST: a JSON body (or msgpack, with Content-Type application/msgpack)
//     that is an object gives keyword arguments, an array positional ones,
//     any other value one positional argument; an empty body none.
//
// The result is JSON (msgpack when the request was msgpack). A function
// returning a generator streams its items as server-sent events
// (`data: <json>` per item, then `data: [DONE]`), or as concatenated
// msgpack values; the producer is closed when the HTTP client goes away.
func (s *Server) httpCall(w http.ResponseWriter, r *http.Request) {
	mp := isMsgpackRequest(r)
	u, callerWS, e, ok := s.httpEntry(w, r)
	if !ok {
		return
	}
	in, code, err := s.httpInput(r, mp)
	if err != nil {
		httpError(w, code, err.Error())
		return
	}
	fn := r.PathValue("function")
	ctx, cancel := context.WithTimeout(r.Context(), httpCallTimeout)
	defer cancel()
	v, release, err := s.serviceAs(ctx, u, callerWS, e)
	if err != nil {
		httpError(w, http.StatusBadGateway, err.Error())
		return
	}
	defer release()
	var member any = v
	for _, k := range strings.Split(fn, ".") {
		m, ok := member.(map[string]any)
		if !ok {
			member = nil
			break
		}
		member = m[k]
	}
	f, ok := member.(*rpc.RemoteFunc)
	if !ok {
		if member != nil {
			writeResult(w, http.StatusOK, member, mp)
			return
		}
		httpError(w, http.StatusNotFound, fmt.Sprintf("Function not found: %s in %s", fn, e.FullID()))
		return
	}
	if in.query != nil {
		if in.kwargs, err = coerceQuery(in.query, f.Schema()); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	args := in.args
	if len(in.kwargs) > 0 {
		args = append(args, rpc.Kwargs(in.kwargs))
	}
	res, err := f.Call(ctx, args...)
	if err != nil {
		httpError(w, callErrorStatus(err), err.Error())
		return
	}
	if g, ok := res.(*rpc.RemoteGenerator); ok {
		streamGenerator(w, r, g, mp)
		return
	}
	writeResult(w, http.StatusOK, res, mp)
}

// serviceAs fetches service e as the HTTP user u acting from callerWS
// (httpWorkspace), neither as the manager nor as a member of the service's
// workspace: the provider sees (and authorises) exactly who is calling. Its
// functions are called through the same short-lived peer, which release
// disconnects. The HTTP call route and the MCP endpoint (mcp.go) share it.
func (s *Server) serviceAs(ctx context.Context, u *auth.UserInfo, callerWS string, e *registry.Entry) (any, func(), error) {
	peer, release := s.userPeer(u, callerWS)
	v, err := peer.Call(ctx, e.ClientKey(), "services.built-in.get_service", e.Name)
	if err != nil {
		release()
		return nil, nil, err
	}
	return v, release, nil
}

// httpInput reads the call's arguments from the query string (GET) or the
// body (POST). On failure it returns the HTTP status to answer.
func (s *Server) httpInput(r *http.Request, mp bool) (*httpInput, int, error) {
	if r.Method == http.MethodGet {
		// ParseQuery, unlike URL.Query, reports a malformed query or one
		// with more parameters than net/url accepts (10,000) instead of
		// silently dropping parameters.
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("query string: %w", err)
		}
		in := &httpInput{query: make(map[string]string, len(q))}
		for k, vs := range q {
			if k == "_mode" || len(vs) == 0 {
				continue
			}
			in.query[k] = vs[len(vs)-1]
		}
		return in, 0, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, http.StatusRequestEntityTooLarge,
				fmt.Errorf("request body over the limit of %d bytes (max HTTP body bytes)", s.cfg.MaxHTTPBodyBytes)
		}
		return nil, http.StatusRequestTimeout, fmt.Errorf("could not read the request body: %w", err)
	}
	in := &httpInput{}
	if len(strings.TrimSpace(string(body))) == 0 {
		return in, 0, nil
	}
	var v any
	if mp {
		if v, err = wire.Decode(body); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("request body is not msgpack: %w", err)
		}
	} else {
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("request body is not JSON: %w", err)
		}
		v = normalizeNumbers(v)
	}
	switch x := v.(type) {
	case map[string]any:
		in.kwargs = x
	case []any:
		in.args = x
	default:
		in.args = []any{x}
	}
	return in, 0, nil
}

// coerceQuery types the query parameters by the parameter types of the
// function's schema (its `_rschema`); parameters it does not type are
// guessed as upstream does.
func coerceQuery(q map[string]string, schema map[string]any) (map[string]any, error) {
	props, _ := schema["parameters"].(map[string]any)
	props, _ = props["properties"].(map[string]any)
	out := make(map[string]any, len(q))
	for k, raw := range q {
		p, _ := props[k].(map[string]any)
		typ, _ := p["type"].(string)
		v, err := queryValue(raw, typ)
		if err != nil {
			return nil, fmt.Errorf("query parameter %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// queryValue converts one query value to the JSON-schema type typ ("" when
// unknown).
func queryValue(s, typ string) (any, error) {
	switch typ {
	case "string":
		return s, nil
	case "integer":
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer", quoteShort(s))
		}
		return i, nil
	case "number":
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a number", quoteShort(s))
		}
		return f, nil
	case "boolean":
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%s is not a boolean (true or false)", quoteShort(s))
		}
		return b, nil
	case "array", "object":
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("%s is not a JSON %s: %w", quoteShort(s), typ, err)
		}
		return normalizeNumbers(v), nil
	}
	return guessQueryValue(s), nil
}

func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// guessQueryValue types a query value whose parameter has no declared type.
func guessQueryValue(s string) any {
	if s == "true" {
		return true
	}
	if s == "false" {
		return false
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	if strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
		var v any
		if json.Unmarshal([]byte(s), &v) == nil {
			return normalizeNumbers(v)
		}
	}
	return s
}

// normalizeNumbers turns integral JSON numbers into int64, as msgpack would.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	case float64:
		if x == float64(int64(x)) && x < 1<<53 && x > -(1<<53) {
			return int64(x)
		}
	}
	return v
}

// callErrorStatus is the HTTP status for a failed call: as upstream,
// arguments that do not fit (Python's TypeError and ValueError, Go's
// rpc.ErrArguments, which reads the same) are the caller's fault.
func callErrorStatus(err error) int {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpc.ErrTimeout):
		return http.StatusGatewayTimeout
	case isPermissionError(err):
		return http.StatusForbidden
	case errors.Is(err, rpc.ErrArguments):
		return http.StatusBadRequest
	}
	var re *rpc.RemoteError
	if errors.As(err, &re) && (strings.Contains(re.Message, "TypeError:") || strings.Contains(re.Message, "ValueError:")) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func isMsgpackRequest(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/msgpack"
}

// writeResult answers v as JSON, or as msgpack when the request was.
func writeResult(w http.ResponseWriter, code int, v any, mp bool) {
	if !mp {
		writeJSON(w, code, v)
		return
	}
	b, err := wire.Encode(msgpackable(v))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"success": false, "detail": "result is not msgpack-serialisable: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/msgpack")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// msgpackable is jsonable with bytes kept as bytes.
func msgpackable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = msgpackable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = msgpackable(e)
		}
		return out
	case []byte, wire.Raw:
		return x
	}
	return jsonable(v)
}

// streamGenerator sends the items of g to the HTTP client as they come:
// server-sent events for JSON, concatenated msgpack values for msgpack.
// An item that fails (the producer's error, or one that cannot be
// encoded) is sent as {"error": message} and ends the stream. When the
// client goes away, the request's context ends the pending request for the
// next item and the loop's end closes the producer.
func streamGenerator(w http.ResponseWriter, r *http.Request, g *rpc.RemoteGenerator, mp bool) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	if mp {
		h.Set("Content-Type", "application/msgpack")
	} else {
		h.Set("Content-Type", "text/event-stream")
		h.Set("X-Accel-Buffering", "no") // reverse proxies: do not buffer the stream
	}
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	send := func(v any) error {
		var b []byte
		var err error
		if mp {
			b, err = wire.Encode(msgpackable(v))
		} else {
			b, err = json.Marshal(jsonable(v))
			b = append(append([]byte("data: "), b...), '\n', '\n')
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	for item, err := range g.All(ctx) {
		if err != nil {
			if ctx.Err() != nil {
				return // the client is gone; All has closed the producer
			}
			_ = send(map[string]any{"error": err.Error()})
			break
		}
		if err := send(item); err != nil {
			if ctx.Err() != nil {
				return
			}
			_ = send(map[string]any{"error": "item is not serialisable: " + err.Error()})
			break // leaving the loop closes the producer
		}
	}
	if !mp {
		_, _ = w.Write([]byte("data: [DONE]\n\n"))
		_ = rc.Flush()
	}
}
