package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
)

const fuzzRoot = "fuzz-root-token"

func fuzzFrame(main map[string]any, extra map[string]any) []byte {
	var b []byte
	if extra == nil {
		b, _ = wire.Encode(main)
	} else {
		b, _ = wire.Encode(main, extra)
	}
	return b
}

// FuzzHandshake feeds an arbitrary first message and three arbitrary frames
// to the server's connection handling (through the in-process pipe). The
// server must not panic, must close refused connections with a proper code
// (1001, 1003 or 1008, after an error frame once it has read the first
// message), and must end the connection when the client goes.
//
// Frames whose main segment has to: "MANAGER" are sent to the manager (its
// id is random), so that the fuzzer reaches the manager's functions.
func FuzzHandshake(f *testing.F) {
	anon := []byte(`{"client_id":"c","workspace":null,"token":null,"reconnection_token":null}`)
	root := []byte(`{"client_id":"c","token":"` + fuzzRoot + `"}`)
	call := func(method string, args ...any) []byte {
		return fuzzFrame(map[string]any{"type": "method", "to": "MANAGER", "method": "services.default." + method, "session": "s1"},
			map[string]any{"args": args, "promise": "*", "t": 1.0})
	}
	info := map[string]any{"id": "c:svc", "name": "svc", "type": "generic", "config": map[string]any{"visibility": "public"}}
	f.Add(anon, call("echo", "hi"), call("register_service", info), call("get_service", "c:svc"))
	f.Add(root, call("generate_token", map[string]any{"permission": "read"}), call("create_workspace", map[string]any{"id": "ws-x"}), call("list_services", map[string]any{"type": "x"}))
	f.Add(root, call("subscribe", []any{"client_connected", "a/b"}), call("unregister_service", "c:svc"), call("get_service_info", "nope"))
	f.Add(anon, fuzzFrame(map[string]any{"type": "evt", "to": "*", "data": map[string]any{}}, nil),
		fuzzFrame(map[string]any{"type": "method", "to": "ghost", "method": "x.y", "session": "s"}, map[string]any{"args": []any{}}),
		fuzzFrame(map[string]any{"type": "method", "to": "MANAGER", "method": "services.built-in.message_cache.create", "session": "s"},
			map[string]any{"args": []any{"k", false}, "promise": "*"}))
	f.Add(anon, fuzzFrame(map[string]any{"type": "method", "to": "MANAGER", "method": "services.built-in.get_service", "session": "s"},
		map[string]any{"args": []any{"default"}, "promise": map[string]any{"resolve": map[string]any{"_rtype": "method", "_rtarget": "c", "_rmethod": "s.resolve"}}}),
		[]byte{0x81, 0xa2, 't', 'o', 0xc1}, []byte{})
	f.Add([]byte(`{"client_id":"c","reconnection_token":"eyJhbGciOiJIUzI1NiJ9.e30.x"}`), []byte{}, []byte{}, []byte{})
	f.Add([]byte(`not json`), []byte{}, []byte{}, []byte{})
	f.Add([]byte(``), []byte{}, []byte{}, []byte{})
	f.Add([]byte(`{"client_id":"a/b"}`), []byte{}, []byte{}, []byte{})
	f.Add([]byte(`{"client_id":5}`), []byte{}, []byte{}, []byte{})
	f.Add([]byte(`{"client_id":"c","workspace":"public"}`), call("register_service", info), []byte{}, []byte{})

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, first, f1, f2, f3 []byte) {
		s, err := New(Config{AuthTimeout: 200 * time.Millisecond, RootToken: fuzzRoot, JWTSecret: "fuzz-secret",
			Logger: logger, PublicBaseURL: "http://fuzz.invalid"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		client, srv := newPipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(srv, "fuzz")
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.Write(ctx, rpc.Text, first); err != nil {
			t.Fatalf("write first message: %v", err)
		}
		typ, data, err := client.Read(ctx)
		refused := err != nil
		if err == nil && typ == rpc.Text {
			var m map[string]any
			if json.Unmarshal(data, &m) != nil {
				t.Fatalf("handshake reply is not JSON: %q", data)
			}
			switch m["type"] {
			case "connection_info":
			case "error":
				refused = true
				if msg, _ := m["message"].(string); msg == "" {
					t.Fatalf("error frame without a message: %q", data)
				}
			default:
				t.Fatalf("unexpected handshake reply %q", data)
			}
		} else if err == nil {
			t.Fatalf("binary frame before connection_info")
		}
		if refused {
			for err == nil {
				_, _, err = client.Read(ctx)
			}
			var ce *rpc.CloseError
			if !errors.As(err, &ce) || (ce.Code != 1001 && ce.Code != 1003 && ce.Code != 1008) {
				t.Fatalf("refused connection closed with %v", err)
			}
		} else {
			for _, fr := range [][]byte{f1, f2, f3} {
				if m, tail, err := wire.DecodeMain(fr); err == nil && m["to"] == "MANAGER" {
					m["to"] = "*/" + s.managerID
					fr, _ = wire.AppendEncode(m, tail)
				}
				if err := client.Write(ctx, rpc.Binary, fr); err != nil {
					break // the server closed the connection (e.g. rate limit)
				}
			}
			_ = client.Close("fuzz client leaves")
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("serveConn did not return after the connection ended")
		}
	})
}
