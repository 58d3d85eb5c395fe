package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// httpClient connects a client over the HTTP streaming transport.
func httpClient(t *testing.T, s *server.Server, cfg rpc.Config) *rpc.Client {
	t.Helper()
	cfg.Transport = rpc.TransportHTTP
	return testserver.Connect(t, s, cfg)
}

// TestHTTPTransport runs a Go client over GET/POST /rpc against the
// embedded server: calls in both directions with a websocket client,
// callbacks, bytes, chunked messages both ways, the manager's functions.
func TestHTTPTransport(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	ws := testserver.RootClient(t, s, "ws-side")
	h := httpClient(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "http-side"})
	if h.Info().Workspace != ws.Info().Workspace {
		t.Fatalf("http client in %q, websocket client in %q", h.Info().Workspace, ws.Info().Workspace)
	}
	if h.Info().User.ID != "root" {
		t.Fatalf("http client is %q, want root", h.Info().User.ID)
	}
	testserver.MustRegister(t, ws, rpc.Service{ID: "wsvc", Functions: map[string]any{
		"echo": func(x any) any { return x },
		"call_back": func(ctx context.Context, cb *rpc.RemoteFunc, x string) (any, error) {
			return cb.Call(ctx, x)
		},
		"ctx": func(cc *rpc.CallContext) string { return cc.From },
	}})
	testserver.MustRegister(t, h, rpc.Service{ID: "hsvc", Functions: map[string]any{
		"add":  func(a, b int) int { return a + b },
		"echo": func(x []byte) []byte { return x },
	}})

	t.Run("http calls websocket", func(t *testing.T) {
		svc, err := h.GetService(ctx, "ws-side:wsvc")
		if err != nil {
			t.Fatal(err)
		}
		got, err := svc.Call(ctx, "echo", map[string]any{"a": "b", "n": 3})
		if m, _ := got.(map[string]any); err != nil || m["a"] != "b" || m["n"] != int64(3) {
			t.Fatalf("echo = %#v, %v", got, err)
		}
		from, err := svc.Call(ctx, "ctx")
		if err != nil || from != h.Info().Workspace+"/http-side" {
			t.Fatalf("the callee saw the caller as %v (%v), want the http client's own id", from, err)
		}
		got, err = svc.Call(ctx, "call_back", func(x string) string { return "cb:" + x }, "hi")
		if err != nil || got != "cb:hi" {
			t.Fatalf("callback through http = %v, %v", got, err)
		}
	})
	t.Run("websocket calls http", func(t *testing.T) {
		svc, err := ws.GetService(ctx, "http-side:hsvc")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := svc.Call(ctx, "add", 2, 3); err != nil || got != int64(5) {
			t.Fatalf("add = %v, %v", got, err)
		}
	})
	t.Run("bytes and chunked messages", func(t *testing.T) {
		for _, n := range []int{10, 300 << 10, 20 << 20} { // small, chunked, over the 16 MiB frame limit
			p := pattern(n, n)
			svc, err := ws.GetService(ctx, "http-side:hsvc")
			if err != nil {
				t.Fatal(err)
			}
			got, err := svc.Call(ctx, "echo", p)
			if gb, _ := got.([]byte); err != nil || !bytes.Equal(gb, p) {
				t.Fatalf("%d bytes to the http client and back: %d bytes, %v", n, len(gb), err)
			}
			svc, err = h.GetService(ctx, "ws-side:wsvc")
			if err != nil {
				t.Fatal(err)
			}
			got, err = svc.Call(ctx, "echo", p)
			if gb, _ := got.([]byte); err != nil || !bytes.Equal(gb, p) {
				t.Fatalf("%d bytes from the http client and back: %d bytes, %v", n, len(gb), err)
			}
		}
	})
	t.Run("manager", func(t *testing.T) {
		list, err := h.ListServices(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range list {
			if e.ID == h.Info().Workspace+"/http-side:hsvc" {
				found = true
			}
		}
		if !found {
			t.Fatalf("list_services does not show the http client's service: %v", list)
		}
		if _, err := h.Manager().Call(ctx, "generate_token", map[string]any{"expires_in": 60}); err != nil {
			t.Fatalf("generate_token over http: %v", err)
		}
	})
}

// TestHTTPTransportAnonymous connects without a token: the client gets its
// own anonymous workspace, and its POSTs are accepted by the stream's cookie.
func TestHTTPTransportAnonymous(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	h := httpClient(t, s, rpc.Config{ClientID: "anon-http"})
	if ws := h.Info().Workspace; ws == "public" || !h.Info().User.IsAnonymous {
		t.Fatalf("anonymous http client in %q (anonymous %v), want its own workspace", ws, h.Info().User.IsAnonymous)
	}
	testserver.MustRegister(t, h, rpc.Service{ID: "s", Functions: map[string]any{"f": func() string { return "ok" }}})
	svc, err := h.GetService(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Call(ctx, "f"); err != nil || got != "ok" {
		t.Fatalf("f = %v, %v", got, err)
	}
}

// TestHTTPTransportReconnect ends the client's stream on the server (as a
// restart or a proxy would): the client reconnects with its reconnection
// token, keeps its workspace and client id, and its services work again.
func TestHTTPTransportReconnect(t *testing.T) {
	cfg := server.Config{JWTSecret: "http-reconnect"}
	s1 := testserver.Start(t, cfg)
	ctx := testserver.Ctx(t)
	h := httpClient(t, s1, rpc.Config{ClientID: "rc"})
	back := reconnected(h)
	ws := h.Info().Workspace
	testserver.MustRegister(t, h, rpc.Service{ID: "s", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"f": func() string { return "ok" }}})
	addr := s1.Addr()
	s1.Close()
	s2 := testserver.StartAt(t, cfg, addr)
	select {
	case <-back:
	case <-time.After(60 * time.Second):
		t.Fatal("the http client did not reconnect within 60 s")
	}
	if h.Info().Workspace != ws || h.Info().ManagerID == "" {
		t.Fatalf("after reconnecting: workspace %q (was %q)", h.Info().Workspace, ws)
	}
	other := testserver.Connect(t, s2, rpc.Config{Token: testserver.RootToken})
	svc, err := other.GetService(ctx, ws+"/rc:s")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Call(ctx, "f"); err != nil || got != "ok" {
		t.Fatalf("f after reconnecting = %v, %v", got, err)
	}
}

// TestHTTPTransportRefused: a bad token is a refusal, as over a websocket.
func TestHTTPTransportRefused(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := rpc.Connect(ctx, rpc.Config{ServerURL: s.URL(), Transport: "http", Token: "not-a-token", Logger: testserver.Logger(t)})
	var refused *rpc.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("connect with a bad token: %v, want a RefusedError", err)
	}
	if _, err := rpc.Connect(ctx, rpc.Config{ServerURL: s.URL(), Transport: "carrier-pigeon"}); err == nil {
		t.Fatal("an unknown transport was accepted")
	}
}

// BenchmarkTransportCall measures one small call (an echo through the
// server to another client) over each transport of the caller.
//
//	go test ./rpc -run '^$' -bench BenchmarkTransportCall -benchtime 2000x
func BenchmarkTransportCall(b *testing.B) {
	s := testserver.Start(b, server.Config{})
	ctx := context.Background()
	provider := testserver.RootClient(b, s, "provider")
	testserver.MustRegister(b, provider, rpc.Service{ID: "e", Functions: map[string]any{"echo": func(x any) any { return x }}})
	for _, tr := range []string{rpc.TransportWebsocket, rpc.TransportHTTP} {
		b.Run(tr, func(b *testing.B) {
			c := testserver.Connect(b, s, rpc.Config{Token: testserver.RootToken, Transport: tr})
			svc, err := c.GetService(ctx, "provider:e")
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := svc.Call(ctx, "echo", "x"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
