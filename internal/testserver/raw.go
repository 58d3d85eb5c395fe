package testserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/apps"
)

// StartAt runs a server on addr (e.g. the address of a server that was just
// closed, to simulate a restart) until the test ends.
func StartAt(t testing.TB, cfg server.Config, addr string) *server.Server {
	t.Helper()
	if cfg.JWTSecret == "" {
		cfg.JWTSecret = "test-secret"
	}
	if cfg.RootToken == "" {
		cfg.RootToken = RootToken
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(t)
	}
	if cfg.DataDir != "" && cfg.Apps == nil {
		// As the embedded system composes it: a data dir brings the
		// apps controller.
		cfg.Apps = apps.ForServer(apps.Limits{})
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The port was just released; give the kernel a moment if it is still busy.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err = s.Start(addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// WSURL is the websocket endpoint of s.
func WSURL(s *server.Server) string {
	u, _ := rpc.WebsocketURL(s.URL())
	return u
}

// Raw is a hand-driven websocket connection to the server: it sends exactly
// the frames a test crafts and shows exactly what the server sends back.
type Raw struct {
	t    testing.TB
	C    *websocket.Conn
	Net  net.Conn // the TCP connection under C
	Info map[string]any
	// ID is "<workspace>/<client_id>" once Hello succeeded.
	ID string

	seq atomic.Int64
}

// DialRaw opens a websocket to s (with an optional raw query string) without
// sending anything. It is closed when the test ends.
func DialRaw(t testing.TB, s *server.Server, query string) *Raw {
	t.Helper()
	u := WSURL(s)
	if query != "" {
		u += "?" + query
	}
	return DialRawURL(t, u)
}

// DialRawURL opens a websocket to the websocket URL u of any Hypha server
// (ours or upstream) without sending anything. It is closed when the test ends.
func DialRawURL(t testing.TB, u string) *Raw {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var nc net.Conn
	var mu sync.Mutex
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		mu.Lock()
		nc = c
		mu.Unlock()
		return c, err
	}}}
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	c.SetReadLimit(64 << 20)
	r := &Raw{t: t, C: c}
	mu.Lock()
	r.Net = nc
	mu.Unlock()
	t.Cleanup(func() { _ = c.CloseNow() })
	return r
}

// ConnectRaw dials and performs the handshake with hello (client_id,
// workspace, token, reconnection_token); it fails the test if the server
// refuses.
func ConnectRaw(t testing.TB, s *server.Server, hello map[string]any) *Raw {
	t.Helper()
	r := DialRaw(t, s, "")
	info, err := r.Hello(hello)
	if err != nil {
		t.Fatalf("raw handshake: %v", err)
	}
	if info["type"] != "connection_info" {
		t.Fatalf("raw handshake: got %v", info)
	}
	return r
}

func (r *Raw) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// SendText writes a text frame.
func (r *Raw) SendText(b []byte) error {
	ctx, cancel := r.ctx()
	defer cancel()
	return r.C.Write(ctx, websocket.MessageText, b)
}

// SendBinary writes a binary frame.
func (r *Raw) SendBinary(b []byte) error {
	ctx, cancel := r.ctx()
	defer cancel()
	return r.C.Write(ctx, websocket.MessageBinary, b)
}

// Hello sends the first message and returns the server's first text reply
// (connection_info or error).
func (r *Raw) Hello(hello map[string]any) (map[string]any, error) {
	b, _ := json.Marshal(hello)
	if err := r.SendText(b); err != nil {
		return nil, err
	}
	ctx, cancel := r.ctx()
	defer cancel()
	for {
		typ, data, err := r.C.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageText {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("handshake reply %q: %w", data, err)
		}
		if m["type"] == "connection_info" {
			r.Info = m
			r.ID = fmt.Sprint(m["workspace"]) + "/" + fmt.Sprint(m["client_id"])
		}
		return m, nil
	}
}

// Workspace is the workspace of the connection.
func (r *Raw) Workspace() string { return fmt.Sprint(r.Info["workspace"]) }

// ManagerID is the "*/manager-<id>" peer id.
func (r *Raw) ManagerID() string { return "*/" + fmt.Sprint(r.Info["manager_id"]) }

// Close is the outcome of a connection closed by the server.
type Close struct {
	Code   int
	Reason string
	// Errors are the {"type":"error"} text frames seen before the close.
	Errors []string
}

// WaitClose reads until the connection ends and reports the close frame.
func (r *Raw) WaitClose(d time.Duration) (Close, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out Close
	for {
		typ, data, err := r.C.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				out.Code, out.Reason = int(ce.Code), ce.Reason
				return out, nil
			}
			return out, err
		}
		if typ == websocket.MessageText {
			var m map[string]any
			if json.Unmarshal(data, &m) == nil && m["type"] == "error" {
				out.Errors = append(out.Errors, fmt.Sprint(m["message"]))
			}
		}
	}
}

// Send encodes and writes a binary frame main(+extra).
func (r *Raw) Send(main, extra map[string]any) error {
	var b []byte
	var err error
	if extra != nil {
		b, err = wire.Encode(main, extra)
	} else {
		b, err = wire.Encode(main)
	}
	if err != nil {
		return err
	}
	return r.SendBinary(b)
}

// Frame is one decoded binary frame.
type Frame struct {
	Main, Extra map[string]any
}

// Read returns the next binary frame (text frames are skipped).
func (r *Raw) Read(ctx context.Context) (Frame, error) {
	for {
		typ, data, err := r.C.Read(ctx)
		if err != nil {
			return Frame{}, err
		}
		if typ != websocket.MessageBinary {
			continue
		}
		main, extra, err := wire.DecodeFrame(data)
		if err != nil {
			return Frame{}, err
		}
		return Frame{main, extra}, nil
	}
}

// Call sends a method call with promise "*" to `to` and waits for its
// resolve or reject, skipping heartbeats and unrelated frames. A reject
// returns an error holding the remote message. main and extra add or
// override fields of the two segments (e.g. a spoofed "from").
func (r *Raw) Call(ctx context.Context, to, method string, args []any, main, extra map[string]any) (any, error) {
	sid := fmt.Sprintf("rawsess%d", r.seq.Add(1))
	m := map[string]any{"type": "method", "from": r.ID, "to": to, "method": method, "session": sid}
	for k, v := range main {
		m[k] = v
	}
	x := map[string]any{"promise": "*", "t": 15.0}
	if args != nil {
		x["args"] = args
	}
	for k, v := range extra {
		x[k] = v
	}
	if err := r.Send(m, x); err != nil {
		return nil, err
	}
	for {
		f, err := r.Read(ctx)
		if err != nil {
			return nil, err
		}
		meth, _ := f.Main["method"].(string)
		if !strings.HasPrefix(meth, sid+".") {
			continue
		}
		var v any
		if a, ok := f.Extra["args"].([]any); ok && len(a) > 0 {
			v = a[0]
		}
		switch strings.TrimPrefix(meth, sid+".") {
		case "resolve":
			return v, nil
		case "reject":
			if e, ok := v.(map[string]any); ok {
				return nil, fmt.Errorf("remote error: %v", e["_rvalue"])
			}
			return nil, fmt.Errorf("remote error: %v", v)
		}
	}
}

// CallManager calls services.default.<fn> on the manager.
func (r *Raw) CallManager(ctx context.Context, fn string, args ...any) (any, error) {
	if args == nil {
		args = []any{}
	}
	return r.Call(ctx, r.ManagerID(), "services.default."+fn, args, nil, nil)
}

// HTTPGetJSON is a small helper for HTTP tests: it performs req and decodes the JSON body.
func HTTPGetJSON(t testing.TB, req *http.Request) (int, any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, v
}

// ServiceURL builds <base>/<ws>/services/<rest> with query values.
func ServiceURL(s *server.Server, ws, rest string, q url.Values) string {
	u := s.URL() + "/" + ws + "/services/" + rest
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}
