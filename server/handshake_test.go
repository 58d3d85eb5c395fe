package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

func jsonMsg(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestHandshakeRefusals: every refusal ends with the upstream close code and
// reason (and, after the first message, an error frame with the same text).
func TestHandshakeRefusals(t *testing.T) {
	s := testserver.Start(t, server.Config{AuthTimeout: 300 * time.Millisecond})
	ctx := testserver.Ctx(t)
	root := rootRaw(t, s, "root-raw")
	for _, ws := range []string{"ws-a", "ws-b"} {
		if _, err := root.CallManager(ctx, "create_workspace", map[string]any{"id": ws}); err != nil {
			t.Fatal(err)
		}
	}
	userA := &auth.UserInfo{ID: "user-a", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-a",
		Workspaces: map[string]auth.Permission{"ws-a": auth.ReadWrite}}}
	tokA, err := s.Issuer().Generate(userA, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	past := *s.Issuer()
	past.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, err := past.Generate(userA, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := auth.NewIssuer("not-the-server-secret", "").Generate(userA, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	scoped, err := s.Issuer().Generate(&auth.UserInfo{ID: "user-c", Scope: auth.Scope{CurrentWorkspace: "ws-a", ClientID: "only-me",
		Workspaces: map[string]auth.Permission{"ws-a": auth.ReadWrite}}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	noWS, err := s.Issuer().Generate(&auth.UserInfo{ID: "user-d", Scope: auth.Scope{}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		query      string
		first      []byte // nil: send nothing
		binary     bool   // send first as a binary frame
		wantCode   int
		wantReason string // prefix
	}{
		{"expired token", "", jsonMsg(map[string]any{"client_id": "c", "token": expired}), false, 1008, "Authentication error:"},
		{"forged token", "", jsonMsg(map[string]any{"client_id": "c", "token": forged}), false, 1008, "Authentication error:"},
		{"not a JWT", "", jsonMsg(map[string]any{"client_id": "c", "token": "not-a-jwt"}), false, 1008, "Authentication error:"},
		{"expired reconnection token", "", jsonMsg(map[string]any{"client_id": "c", "reconnection_token": expired}), false, 1008, "Authentication error:"},
		{"token for ws-a used with ws-b", "", jsonMsg(map[string]any{"client_id": "c", "token": tokA, "workspace": "ws-b"}), false, 1001, "Failed to establish connection"},
		{"token scoped to another client id", "", jsonMsg(map[string]any{"client_id": "c", "token": scoped}), false, 1001, "Failed to establish connection"},
		{"workspace does not exist", "", jsonMsg(map[string]any{"client_id": "c", "token": noWS, "workspace": "nope"}), false, 1001, "Failed to establish connection: Workspace nope does not exist"},
		{"anonymous into a workspace that does not exist", "", jsonMsg(map[string]any{"client_id": "c", "workspace": "no-such-ws"}), false, 1001, "Failed to establish connection"},
		{"anonymous into another user's workspace", "", jsonMsg(map[string]any{"client_id": "c", "workspace": "ws-a"}), false, 1001, "Failed to establish connection"},
		{"no client id", "", jsonMsg(map[string]any{"token": tokA}), false, 1001, "Failed to establish connection"},
		{"no first message", "", nil, false, 1008, "Authentication payload timeout"},
		{"binary frames are not a first message", "", []byte{0x80}, true, 1008, "Authentication payload timeout"},
		{"not JSON", "", []byte("hello, server"), false, 1003, "Failed to decode authentication information"},
		{"JSON, not an object", "", []byte(`[1,2]`), false, 1003, "Failed to decode authentication information"},
		{"query-string auth", "client_id=c&token=x", nil, false, 1008, "Connection rejected"},
		{"query-string workspace", "workspace=ws-a", jsonMsg(map[string]any{"client_id": "c"}), false, 1008, "Connection rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testserver.DialRaw(t, s, tc.query)
			if tc.first != nil {
				var err error
				if tc.binary {
					err = r.SendBinary(tc.first)
				} else {
					err = r.SendText(tc.first)
				}
				if err != nil && tc.query == "" {
					t.Fatal(err)
				}
			}
			cl, err := r.WaitClose(5 * time.Second)
			if err != nil {
				t.Fatalf("no close: %v", err)
			}
			if cl.Code != tc.wantCode || !strings.HasPrefix(cl.Reason, tc.wantReason) {
				t.Errorf("close %d %q, want %d %q…", cl.Code, cl.Reason, tc.wantCode, tc.wantReason)
			}
			if tc.first != nil && !tc.binary && tc.query == "" && tc.wantReason != "Authentication payload timeout" {
				if len(cl.Errors) != 1 || !strings.HasPrefix(cl.Errors[0], tc.wantReason) {
					t.Errorf("error frames %q, want one starting with %q", cl.Errors, tc.wantReason)
				}
			}
		})
	}
	// The token of ws-a works for ws-a.
	r := testserver.DialRaw(t, s, "")
	info, err := r.Hello(map[string]any{"client_id": "c", "token": tokA, "workspace": "ws-a"})
	if err != nil || info["type"] != "connection_info" || info["workspace"] != "ws-a" {
		t.Fatalf("token for ws-a: %v, %v", info, err)
	}
}

// TestDuplicateClientID: a second connection with the id of a live client is
// refused; one that presents the reconnection token supersedes the old one.
func TestDuplicateClientID(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	live := testserver.RootClient(t, s, "dup")
	r := testserver.DialRaw(t, s, "")
	reply, err := r.Hello(map[string]any{"client_id": "dup", "token": testserver.RootToken})
	if err != nil || reply["type"] != "error" || !strings.Contains(reply["message"].(string), "Client already exists and is active: ws-user-root/dup") {
		t.Fatalf("duplicate: %v, %v", reply, err)
	}
	if cl, err := r.WaitClose(5 * time.Second); err != nil || cl.Code != 1001 {
		t.Fatalf("duplicate close: %+v, %v", cl, err)
	}
	if _, err := live.Echo(ctx, "still here"); err != nil {
		t.Fatalf("the live client suffered: %v", err)
	}

	first := rootRaw(t, s, "sup")
	tok := first.Info["reconnection_token"].(string)
	// first is not reading (as a half-dead socket would): the new
	// connection must not wait for the old one's close handshake.
	t0 := time.Now()
	second := testserver.ConnectRaw(t, s, map[string]any{"client_id": "sup", "reconnection_token": tok})
	if second.ID != "ws-user-root/sup" {
		t.Fatalf("superseding connection is %s", second.ID)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("superseding took %s: it waited for the old connection", d)
	}
	cl, err := first.WaitClose(5 * time.Second)
	if err != nil || !strings.Contains(cl.Reason, "superseded") {
		t.Fatalf("old connection: %+v, %v", cl, err)
	}
	if v, err := second.CallManager(ctx, "echo", "x"); err != nil || v != "x" {
		t.Fatalf("new connection: %v, %v", v, err)
	}
	// The reconnection token only works for its own client id.
	r = testserver.DialRaw(t, s, "")
	reply, err = r.Hello(map[string]any{"client_id": "thief", "reconnection_token": tok})
	if err != nil || reply["type"] != "error" {
		t.Fatalf("reconnection token for another id: %v, %v", reply, err)
	}
}

// TestRateLimit: more binary frames than the bucket allows close the
// connection with 1008.
func TestRateLimit(t *testing.T) {
	s := testserver.Start(t, server.Config{MsgRateLimit: 1, MsgBurstLimit: 5})
	r := anonRaw(t, s, "flood")
	for range 20 {
		if err := r.Send(map[string]any{"type": "method", "to": "nobody", "method": "x"}, nil); err != nil {
			break // closed under us
		}
	}
	cl, err := r.WaitClose(5 * time.Second)
	if err != nil || cl.Code != 1008 || cl.Reason != "Rate limit exceeded: too many messages per second" {
		t.Fatalf("close %+v, %v", cl, err)
	}
}

// TestMaxMessageSize: a frame over MaxMessageSize closes that connection;
// the server keeps serving the others.
func TestMaxMessageSize(t *testing.T) {
	s := testserver.Start(t, server.Config{MaxMessageSize: 64 << 10})
	ctx := testserver.Ctx(t)
	other := testserver.RootClient(t, s, "other")
	r := anonRaw(t, s, "big")
	big := bytes.Repeat([]byte{0xc0}, 100<<10)
	_ = r.SendBinary(big)
	cl, err := r.WaitClose(5 * time.Second)
	if err != nil || cl.Code != 1009 {
		t.Fatalf("close %+v, %v; want 1009 (message too big)", cl, err)
	}
	if v, err := other.Echo(ctx, "ok"); err != nil || v != "ok" {
		t.Fatalf("other client: %v, %v", v, err)
	}
	// The closed client is cleaned up: its id can connect again.
	again := testserver.ConnectRaw(t, s, map[string]any{"client_id": "big", "workspace": r.Workspace(),
		"reconnection_token": r.Info["reconnection_token"]})
	if _, err := again.CallManager(ctx, "echo", 1); err != nil {
		t.Fatal(err)
	}
}

// TestMalformedFrames: garbage never brings down the server, the sender's
// connection, the manager or the peer it was addressed to.
func TestMalformedFrames(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	prov := testserver.RootClient(t, s, "prov")
	testserver.MustRegister(t, prov, rpc.Service{ID: "e", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"echo": func(x any) any { return x }}})
	r := anonRaw(t, s, "junk")
	mgr := r.ManagerID()
	deep := bytes.Repeat([]byte{0x91}, 10000) // 10000 nested one-element arrays
	mainTo := func(to string, rest ...byte) []byte {
		b := append([]byte{0x82, 0xa2, 't', 'o'}, byte(0xa0|len(to)))
		b = append(b, to...)
		b = append(b, 0xa4, 't', 'y', 'p', 'e', 0xa6, 'm', 'e', 't', 'h', 'o', 'd')
		return append(b, rest...)
	}
	frames := [][]byte{
		{},
		{0xc1},                         // never-used code
		{0x81},                         // truncated map
		{0xdf, 0xff, 0xff, 0xff, 0xff}, // map32 claiming 4G entries
		{0xdd, 0xff, 0xff, 0xff, 0xff}, // array32 claiming 4G items
		{0x93, 1, 2, 3},                // an array, not a map
		deep,
		append([]byte{0x81, 0xa2, 't', 'o'}, deep...), // deep value in main
		{0x81, 0xa2, 't', 'o', 0x05},                  // to is an int
		{0x81, 0xc0, 0xc0},                            // nil key
		mainTo(mgr),                                   // method call without a method
		mainTo(mgr, 0xc1, 0xc1),                       // garbage extra to the manager
		mainTo(mgr, 0xdf, 0xff, 0xff, 0xff, 0xff),     // lying extra to the manager
		mainTo("ws-user-root/prov", 0xc1),             // garbage extra to a client
		mainTo("ws-user-root/prov", deep...),
		mainTo(mgr, 0x81, 0xa4, 'a', 'r', 'g', 's', 0x05), // args is not a list
		mainTo("*", 0x92, 0x01),                           // broadcast with junk
		// 15 MiB of nesting in a main-segment value: skipping it must not
		// recurse without bound (a stack overflow kills the process).
		append(append([]byte{0x82, 0xa2, 't', 'o', 0xa1, 'x', 0xa1, 'y'}, bytes.Repeat([]byte{0x91}, 15<<20)...), 0xc0),
	}
	for _, f := range frames {
		if err := r.SendBinary(f); err != nil {
			t.Fatalf("the server closed the connection: %v", err)
		}
	}
	for _, m := range []map[string]any{
		{"type": "method", "to": mgr, "method": "services.default.register_service", "session": "s1"},
		{"type": "method", "to": mgr, "method": "services.default.get_service", "session": "s2"},
		{"type": "method", "to": mgr, "method": "services.default", "session": "s3"},
		{"type": "method", "to": mgr, "method": "s3.resolve"},
		{"type": "method", "to": "ws-user-root/prov", "method": ".....", "session": "s4"},
		{"type": "method", "to": "ws-user-root/prov", "method": "services.built-in.message_cache.process", "session": "s5"},
	} {
		extras := []map[string]any{nil, {"args": "x"}, {"args": []any{nil, 5, []byte{1}}, "with_kwargs": true},
			{"args": []any{map[string]any{"_rtype": "method"}}, "promise": map[string]any{"resolve": 5}},
			{"promise": "*", "t": "soon"}, {"promise": "*", "t": -1.0}}
		for _, x := range extras {
			if err := r.Send(m, x); err != nil {
				t.Fatalf("the server closed the connection: %v", err)
			}
		}
	}
	for _, txt := range [][]byte{[]byte("not json"), []byte(`{"type":5}`), bytes.Repeat([]byte("x"), 5000), []byte(`{"type":"refresh_token"}`)} {
		if err := r.SendText(txt); err != nil {
			t.Fatal(err)
		}
	}
	// The sender, the manager and the addressee still work.
	if v, err := r.CallManager(ctx, "echo", "alive"); err != nil || v != "alive" {
		t.Fatalf("junk sender's echo: %v, %v", v, err)
	}
	if v, err := r.Call(ctx, "ws-user-root/prov", "services.e.echo", []any{"alive"}, nil, nil); err != nil || v != "alive" {
		t.Fatalf("prov after junk: %v, %v", v, err)
	}
	fresh := testserver.Connect(t, s, rpc.Config{ClientID: "fresh"})
	if _, err := fresh.Echo(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

// TestIdleTimeout: a connection that sends nothing is closed with 1001.
func TestIdleTimeout(t *testing.T) {
	s := testserver.Start(t, server.Config{IdleTimeout: time.Second})
	quiet := anonRaw(t, s, "quiet")
	chatty := anonRaw(t, s, "chatty")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = chatty.SendText([]byte(`{"type":"ping"}`))
			}
		}
	}()
	cl, err := quiet.WaitClose(5 * time.Second)
	close(stop)
	<-done
	if err != nil || cl.Code != 1001 || cl.Reason != "Idle timeout (1s)" {
		t.Fatalf("close %+v, %v", cl, err)
	}
	if _, err := chatty.CallManager(testserver.Ctx(t), "echo", 1); err != nil {
		t.Fatalf("the pinging client was dropped: %v", err)
	}
}

// TestTextControlMessages: {"type":"ping"} is answered with a pong, and
// {"type":"refresh_token"} with a new reconnection token that reconnects the
// same client id in the same workspace.
func TestTextControlMessages(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	r := anonRaw(t, s, "texter")
	readText := func(want string) map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			typ, data, err := r.C.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if typ != websocket.MessageText {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatalf("text frame %q: %v", data, err)
			}
			if m["type"] == want {
				return m
			}
		}
	}
	if err := r.SendText([]byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	readText("pong")
	if err := r.SendText([]byte(`{"type":"refresh_token"}`)); err != nil {
		t.Fatal(err)
	}
	tok, _ := readText("reconnection_token")["reconnection_token"].(string)
	if tok == "" {
		t.Fatal("no reconnection token")
	}
	ws := r.Workspace()
	r.C.CloseNow()
	again := testserver.ConnectRaw(t, s, map[string]any{"client_id": "texter", "reconnection_token": tok})
	if again.Workspace() != ws {
		t.Fatalf("reconnected to %q, want %q", again.Workspace(), ws)
	}
	// The token is bound to its client id.
	other := testserver.DialRaw(t, s, "")
	reply, err := other.Hello(map[string]any{"client_id": "someone-else", "reconnection_token": tok})
	if err == nil && reply["type"] != "error" {
		t.Fatalf("a reconnection token worked for another client id: %v", reply)
	}
}
