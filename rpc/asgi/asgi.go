// Package asgi serves a Go http.Handler as a Hypha service of type "asgi":
// the server answers HTTP requests at /{workspace}/apps/{service_id}/... by
// calling the service's serve function with an ASGI scope and receive/send
// callbacks, as it does for Python ASGI apps (hypha-rpc's
// register_asgi_service). See docs/apps.md ("Apps over HTTP").
//
//	svc := asgi.Service("my-app", mux)
//	_, err := client.RegisterService(ctx, svc)
//	// GET {server}/{workspace}/apps/my-app/hello → mux's /hello
package asgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/hypha-go/hypha/rpc"
)

// flushSize is how much response body is buffered before it is sent as one
// http.response.body event (a Flush sends earlier).
const flushSize = 64 << 10

// Option tunes Service.
type Option func(*rpc.Service)

// Visibility sets the service's visibility ("public" by default, as
// upstream's register_asgi_service).
func Visibility(v string) Option { return func(s *rpc.Service) { s.Config.Visibility = v } }

// Name sets the service's name (the id by default).
func Name(n string) Option { return func(s *rpc.Service) { s.Name = n } }

// Service returns a service of type asgi that serves h.
func Service(id string, h http.Handler, opts ...Option) rpc.Service {
	s := rpc.Service{ID: id, Name: id, Type: "asgi",
		Config:    rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"serve": rpc.HandlerFunc(func(ctx context.Context, c *rpc.Call) (any, error) { return nil, Serve(ctx, c, h) })}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

type callerKey struct{}

// Caller returns the context of the call that carried the request: the
// caller as the server stamped it (for an HTTP request, the HTTP caller).
func Caller(r *http.Request) *rpc.CallContext {
	c, _ := r.Context().Value(callerKey{}).(*rpc.CallContext)
	return c
}

// Serve handles one serve call: c's first argument is
// {"scope", "receive", "send"}.
func Serve(ctx context.Context, c *rpc.Call, h http.Handler) error {
	arg, _ := c.Arg(0, "args").(map[string]any)
	scope, _ := arg["scope"].(map[string]any)
	receive, _ := arg["receive"].(*rpc.RemoteFunc)
	send, _ := arg["send"].(*rpc.RemoteFunc)
	if scope == nil || receive == nil || send == nil {
		return errors.New("asgi: serve needs {scope, receive, send}")
	}
	if t, _ := scope["type"].(string); t != "http" {
		return fmt.Errorf("asgi: scope type %q is not supported (only http)", t)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := request(ctx, scope, receive)
	if err != nil {
		return err
	}
	r = r.WithContext(context.WithValue(ctx, callerKey{}, c.Context))
	w := &writer{ctx: ctx, send: send, header: http.Header{}}
	var panicked any
	func() {
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				panicked = p
			}
		}()
		h.ServeHTTP(w, r)
	}()
	if panicked != nil {
		if !w.started {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_ = w.end()
		return fmt.Errorf("asgi: handler panicked: %v", panicked)
	}
	return w.end()
}

func text(v any) string {
	switch s := v.(type) {
	case []byte:
		return string(s)
	case string:
		return s
	}
	return ""
}

// request builds the http.Request of scope; its body pulls receive().
func request(ctx context.Context, scope map[string]any, receive *rpc.RemoteFunc) (*http.Request, error) {
	method := text(scope["method"])
	if method == "" {
		method = http.MethodGet
	}
	u := &url.URL{Path: text(scope["path"]), RawQuery: text(scope["query_string"])}
	if u.Path == "" {
		u.Path = "/"
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("asgi: bad request in scope: %w", err)
	}
	r.URL = u
	r.RequestURI = u.RequestURI()
	hl, _ := scope["headers"].([]any)
	for _, p := range hl {
		pair, _ := p.([]any)
		if len(pair) != 2 {
			continue
		}
		k, v := text(pair[0]), text(pair[1])
		if http.CanonicalHeaderKey(k) == "Host" {
			r.Host = v
			continue
		}
		r.Header.Add(k, v)
	}
	if cl := r.Header.Get("Content-Length"); cl != "" {
		r.ContentLength, _ = strconv.ParseInt(cl, 10, 64)
	} else {
		r.ContentLength = -1
	}
	if c, _ := scope["client"].([]any); len(c) == 2 {
		port, _ := c[1].(int64)
		r.RemoteAddr = net.JoinHostPort(text(c[0]), strconv.FormatInt(port, 10))
	}
	switch text(scope["http_version"]) {
	case "1.0":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
	case "2":
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	}
	r.Body = &body{ctx: ctx, receive: receive}
	return r, nil
}

// body reads the request body from http.request events.
type body struct {
	ctx     context.Context
	receive *rpc.RemoteFunc
	buf     []byte
	done    bool
}

func (b *body) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.done {
			return 0, io.EOF
		}
		v, err := b.receive.Call(b.ctx)
		if err != nil {
			return 0, fmt.Errorf("asgi: receive: %w", err)
		}
		ev, _ := v.(map[string]any)
		switch text(ev["type"]) {
		case "http.request":
			b.buf, _ = ev["body"].([]byte)
			if more, _ := ev["more_body"].(bool); !more {
				b.done = true
			}
		case "http.disconnect":
			b.done = true
			return 0, io.ErrUnexpectedEOF
		default:
			return 0, fmt.Errorf("asgi: unexpected event %v", ev["type"])
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *body) Close() error { return nil }

// writer is the http.ResponseWriter whose output goes out through send().
type writer struct {
	ctx     context.Context
	send    *rpc.RemoteFunc
	header  http.Header
	mu      sync.Mutex
	started bool
	status  int
	buf     bytes.Buffer
	err     error
}

func (w *writer) Header() http.Header { return w.header }

func (w *writer) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started, w.status = true, code
	headers := []any{}
	for k, vs := range w.header {
		for _, v := range vs {
			headers = append(headers, []any{[]byte(http.CanonicalHeaderKey(k)), []byte(v)})
		}
	}
	w.emitLocked(map[string]any{"type": "http.response.start", "status": int64(code), "headers": headers})
}

func (w *writer) emitLocked(ev map[string]any) {
	if w.err != nil {
		return
	}
	if _, err := w.send.Call(w.ctx, ev); err != nil {
		w.err = fmt.Errorf("asgi: send: %w", err)
	}
}

func (w *writer) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.buf.Write(p)
	if w.buf.Len() >= flushSize {
		w.flushLocked()
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *writer) flushLocked() {
	if w.buf.Len() == 0 {
		return
	}
	b := bytes.Clone(w.buf.Bytes())
	w.buf.Reset()
	w.emitLocked(map[string]any{"type": "http.response.body", "body": b, "more_body": true})
}

// Flush sends the buffered body now (http.Flusher).
func (w *writer) Flush() {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
}

// end sends the last body event.
func (w *writer) end() error {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	defer w.mu.Unlock()
	b := bytes.Clone(w.buf.Bytes())
	w.buf.Reset()
	w.emitLocked(map[string]any{"type": "http.response.body", "body": b, "more_body": false})
	return w.err
}
