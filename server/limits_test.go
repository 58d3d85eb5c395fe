package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/internal/wire"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

// mcache calls message_cache.<op> of peer `to` from a raw connection.
func mcache(ctx context.Context, r *testserver.Raw, to, op string, args ...any) error {
	_, err := r.Call(ctx, to, "services.built-in.message_cache."+op, args, nil, nil)
	return err
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got error %v, want one containing %q", err, want)
	}
}

// TestHostileChunkedMessageQuota: a client that fills its share of a peer's
// message cache (the manager's, or a Go client's) is refused with an error
// naming the per-client limit, while another client's 1 MB chunked call to
// the same peer still succeeds; the share comes back when the client leaves.
func TestHostileChunkedMessageQuota(t *testing.T) {
	limits := rpc.ChunkLimits{PerSenderMessages: 4, PerSenderBytes: 4 << 20, TotalBytes: 8 << 20}
	s := testserver.Start(t, server.Config{Chunks: limits})
	ctx := testserver.Ctx(t)
	prov := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "prov", ChunkLimits: limits})
	testserver.MustRegister(t, prov, rpc.Service{ID: "big", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{"size": func(b []byte) int { return len(b) }}})
	root := testserver.RootClient(t, s, "watcher")
	left := make(chan string, 16)
	root.On("client_disconnected", func(e rpc.Event) { left <- fmt.Sprint(e.Data["id"]) })
	// The attacker connects with a token of its own (so that it can come
	// back under the same id); the victim is anonymous.
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Permission: "read_write", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	victim := testserver.Connect(t, s, rpc.Config{})
	big, err := victim.GetService(ctx, "ws-user-root/prov:big")
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{7}, 1<<20) // over 257 KiB: sent in chunks

	for _, tc := range []struct {
		name   string
		target func(r *testserver.Raw) string
		victim func() error
	}{
		{"manager", func(r *testserver.Raw) string { return r.ManagerID() }, func() error {
			v, err := victim.Echo(ctx, payload)
			if err == nil && len(v.([]byte)) != len(payload) {
				err = fmt.Errorf("echo returned %d bytes", len(v.([]byte)))
			}
			return err
		}},
		{"go client", func(*testserver.Raw) string { return "ws-user-root/prov" }, func() error {
			v, err := big.Call(ctx, "size", payload)
			if err == nil && v != int64(len(payload)) {
				err = fmt.Errorf("size = %v", v)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "mallory-" + strings.ReplaceAll(tc.name, " ", "-")
			fill := func() *testserver.Raw {
				m := testserver.ConnectRaw(t, s, map[string]any{"client_id": id, "token": tok})
				to := tc.target(m)
				for i := range 4 {
					if err := mcache(ctx, m, to, "create", fmt.Sprint("k", i)); err != nil {
						t.Fatalf("create %d: %v", i, err)
					}
				}
				wantErr(t, mcache(ctx, m, to, "create", "k4"), "(per-client limit 4)")
				for i := range 4 {
					if err := mcache(ctx, m, to, "append", fmt.Sprint("k", i), make([]byte, 1000<<10)); err != nil {
						t.Fatalf("append %d: %v", i, err)
					}
				}
				wantErr(t, mcache(ctx, m, to, "append", "k3", make([]byte, 200<<10)), "per-client limit of 4194304 bytes")
				return m
			}
			m := fill()
			if err := tc.victim(); err != nil {
				t.Fatalf("another client's chunked call failed while the attacker holds its quota: %v", err)
			}
			// The quota is released when the attacker disconnects: it can
			// fill it again under the same id.
			_ = m.C.Close(1000, "bye")
			waitLeft(t, left, id)
			m = fill()
			_ = m.C.Close(1000, "bye")
			waitLeft(t, left, id)
		})
	}
}

// TestHostileChunkedMessageMemory: many clients pushing chunks to the
// manager far beyond their quota leave the server's heap bounded, and the
// memory comes back when they leave.
func TestHostileChunkedMessageMemory(t *testing.T) {
	const (
		attackers = 4
		perClient = 4 << 20
		attempted = 24 << 20 // per attacker
		piece     = 256 << 10
	)
	s := testserver.Start(t, server.Config{Chunks: rpc.ChunkLimits{PerSenderMessages: 8, PerSenderBytes: perClient, TotalBytes: 256 << 20}})
	ctx := testserver.Ctx(t)
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := heap()
	var raws []*testserver.Raw
	var refused int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for a := range attackers {
		m := anonRaw(t, s, fmt.Sprint("hog", a))
		raws = append(raws, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 8 {
				_ = mcache(ctx, m, m.ManagerID(), "create", fmt.Sprint("k", k))
			}
			data := make([]byte, piece)
			for i := range attempted / piece {
				if err := mcache(ctx, m, m.ManagerID(), "append", fmt.Sprint("k", i%8), data); err != nil {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	during := heap()
	// Without limits the manager would hold attackers × attempted = 96 MiB.
	if grew := during - base; grew > 40<<20 {
		t.Fatalf("heap grew by %d MiB during the attack (attackers may hold %d MiB)", grew>>20, attackers*perClient>>20)
	}
	if refused == 0 {
		t.Fatal("no append was refused")
	}
	for _, m := range raws {
		_ = m.C.Close(1000, "bye")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		after := heap()
		if after-base < 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heap still %d MiB above the start 10 s after the attackers left", (after-base)>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLeft waits for the client_disconnected event of client id.
func waitLeft(t *testing.T, left <-chan string, id string) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case got := <-left:
			if got == id {
				return
			}
		case <-timer.C:
			t.Fatalf("%s did not leave", id)
		}
	}
}

// TestHostileMalformedFrames: a flood of frames the server cannot route or
// decode yields a few log lines, not one per frame; the connection is closed
// after MaxMalformedFrames of them (or, when closing is off, stays usable).
func TestHostileMalformedFrames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limit  int
		frames int
		closed bool
	}{
		{"closed after the default limit", 0, 500, true},
		{"kept when closing is off", -1, 3000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testserver.Buffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			s := testserver.Start(t, server.Config{MaxMalformedFrames: tc.limit, Logger: log})
			ctx := testserver.Ctx(t)
			m := anonRaw(t, s, "garbage")
			toManager, _ := wire.Encode(map[string]any{"type": "method", "to": m.ManagerID(), "method": "services.default.echo"})
			noTarget, _ := wire.Encode(map[string]any{"type": "method", "method": "x"})
			kinds := [][]byte{
				{0xc1, 0x00, 0x01},            // not msgpack
				append(toManager, 0xc1, 0xff), // the manager cannot decode it
				noTarget,                      // no target
				append([]byte{0x81, 0xa2, 't', 'o'}, 0xc1), // a main segment cut short
			}
			for i := range tc.frames {
				if err := m.SendBinary(kinds[i%len(kinds)]); err != nil {
					if tc.closed {
						break
					}
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			if tc.closed {
				cl, err := m.WaitClose(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if cl.Code != 1008 || !strings.Contains(cl.Reason, "Too many malformed frames (limit 100") {
					t.Fatalf("closed with %d %q", cl.Code, cl.Reason)
				}
			} else {
				// Frames are handled in order: once this answers, all were seen.
				if v, err := m.CallManager(ctx, "echo", "still here"); err != nil || v != "still here" {
					t.Fatalf("echo after the garbage = %v, %v", v, err)
				}
			}
			testserver.WaitFor(t, 10*time.Second, "the malformed frames to be logged", func() bool {
				return len(logs.Lines("malformed")) > 0
			})
			if warns := logs.Lines("level=WARN"); len(warns) > 3 {
				t.Fatalf("%d frames gave %d warnings, want at most 3:\n%s", tc.frames, len(warns), strings.Join(warns[:5], "\n"))
			}
			if !slices.ContainsFunc(logs.Lines("malformed"), func(l string) bool { return strings.Contains(l, "suppressed=") }) {
				t.Fatalf("no line reports the count of suppressed warnings:\n%s", strings.Join(logs.Lines(""), "\n"))
			}
		})
	}

	t.Run("garbage forwarded to a Go client", func(t *testing.T) {
		s := testserver.Start(t, server.Config{})
		ctx := testserver.Ctx(t)
		logs := &testserver.Buffer{}
		prov := testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: "prov",
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		testserver.MustRegister(t, prov, rpc.Service{ID: "svc", Config: rpc.ServiceConfig{Visibility: "public"},
			Functions: map[string]any{"ping": func() string { return "pong" }}})
		m := anonRaw(t, s, "garbage")
		frame, _ := wire.Encode(map[string]any{"type": "method", "to": "ws-user-root/prov", "method": "services.svc.ping"})
		frame = append(frame, 0xc1, 0xff)
		for range 2000 {
			if err := m.SendBinary(frame); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := m.Call(ctx, "ws-user-root/prov", "services.svc.ping", []any{}, nil, nil); err != nil || v != "pong" {
			t.Fatalf("ping after the garbage = %v, %v", v, err)
		}
		if warns := logs.Lines("level=WARN"); len(warns) > 2 || len(warns) == 0 {
			t.Fatalf("2000 undecodable frames gave %d warnings, want 1 or 2:\n%s", len(warns), strings.Join(warns, "\n"))
		}
	})
}

// TestHostileSlowHTTP: connections that trickle their headers or body are
// closed by the server; bodies over the limit are refused with 413 naming
// the limit; an upgraded websocket is not subject to the HTTP timeouts.
func TestHostileSlowHTTP(t *testing.T) {
	s := testserver.Start(t, server.Config{HTTPReadHeaderTimeout: 500 * time.Millisecond,
		HTTPReadTimeout: time.Second, MaxHTTPBodyBytes: 1024})
	root := testserver.RootClient(t, s, "prov")
	testserver.MustRegister(t, root, rpc.Service{ID: "svc", Config: rpc.ServiceConfig{Visibility: "public"},
		Functions: map[string]any{
			"len":  func(s string) int { return len(s) },
			"slow": func() string { time.Sleep(1500 * time.Millisecond); return "done" },
		}})

	// trickle sends head, then one byte every 100 ms until the server closes
	// the connection; it returns once the server closed it.
	trickle := func(t *testing.T, head string) {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		if _, err := io.WriteString(c, head); err != nil {
			t.Error(err)
			return
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
		// Generous: the server's limits are 0.5 s and 1 s.
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err = io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("the server kept a trickling connection open for 15 s")
		}
	}
	t.Run("slow headers", func(t *testing.T) {
		trickle(t, "GET /health/liveness HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	})
	t.Run("slow body", func(t *testing.T) {
		trickle(t, "POST /ws-user-root/services/prov:svc/len HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
	})
	t.Run("many slow bodies", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				trickle(t, "POST /ws-user-root/services/prov:svc/len HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
			})
		}
		wg.Wait()
	})
	t.Run("body over the limit", func(t *testing.T) {
		body := `["` + strings.Repeat("a", 2000) + `"]`
		req, _ := http.NewRequest(http.MethodPost, testserver.ServiceURL(s, "ws-user-root", "prov:svc/len", nil), strings.NewReader(body))
		code, v := testserver.HTTPGetJSON(t, req)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(v), "limit of 1024 bytes") {
			t.Fatalf("got %d %v", code, v)
		}
		req, _ = http.NewRequest(http.MethodPost, testserver.ServiceURL(s, "ws-user-root", "prov:svc/len", nil), strings.NewReader(`["abc"]`))
		if code, v := testserver.HTTPGetJSON(t, req); code != http.StatusOK || v != float64(3) {
			t.Fatalf("a small body got %d %v", code, v)
		}
	})
	t.Run("a slow service call outlives the read timeout", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, testserver.ServiceURL(s, "ws-user-root", "prov:svc/slow", nil), strings.NewReader("[]"))
		if code, v := testserver.HTTPGetJSON(t, req); code != http.StatusOK || v != "done" {
			t.Fatalf("got %d %v", code, v)
		}
	})
	t.Run("websocket outlives the HTTP read timeout", func(t *testing.T) {
		c := testserver.Connect(t, s, rpc.Config{})
		time.Sleep(1500 * time.Millisecond) // past HTTPReadTimeout, on purpose
		if v, err := c.Echo(testserver.Ctx(t), "hi"); err != nil || v != "hi" {
			t.Fatalf("echo = %v, %v", v, err)
		}
	})
}

// TestHostilePendingConnections: websockets that never authenticate are
// bounded; the next one is refused with 1013 naming the limit, and
// authenticated clients are not counted.
func TestHostilePendingConnections(t *testing.T) {
	s := testserver.Start(t, server.Config{MaxPendingConnections: 3, AuthTimeout: 20 * time.Second})
	var idle []*testserver.Raw
	for range 3 {
		idle = append(idle, testserver.DialRaw(t, s, ""))
	}
	extra := testserver.DialRaw(t, s, "")
	cl, err := extra.WaitClose(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Code != 1013 || !strings.Contains(cl.Reason, "max pending connections") {
		t.Fatalf("the 4th pending connection was closed with %d %q", cl.Code, cl.Reason)
	}
	// Once one authenticates, there is room again.
	if info, err := idle[0].Hello(map[string]any{"client_id": "late"}); err != nil || info["type"] != "connection_info" {
		t.Fatalf("hello = %v, %v", info, err)
	}
	testserver.ConnectRaw(t, s, map[string]any{"client_id": "next"})
}

// TestHostileUnboundedManagerState: per-client subscriptions and the
// manager's per-workspace stores refuse growth past their limits with an
// error naming the limit, and forget a temporary workspace once its last
// client left.
func TestHostileUnboundedManagerState(t *testing.T) {
	s := testserver.Start(t, server.Config{MaxSubscriptionsPerClient: 5, MaxItemsPerWorkspace: 3, MaxItemBytes: 1024,
		MaxServicesPerClient: 2, MaxServiceInfoBytes: 2048})
	ctx := testserver.Ctx(t)
	m := anonRaw(t, s, "hoarder")
	call := func(fn string, args ...any) error {
		_, err := m.CallManager(ctx, fn, args...)
		return err
	}
	t.Run("services", func(t *testing.T) {
		svc := func(name, desc string) map[string]any {
			return map[string]any{"id": m.ID + ":" + name, "name": name, "description": desc,
				"config": map[string]any{"visibility": "protected"}}
		}
		for _, n := range []string{"s1", "s2"} {
			if err := call("register_service", svc(n, "")); err != nil {
				t.Fatal(err)
			}
		}
		wantErr(t, call("register_service", svc("s3", "")), "(limit 2, max services per client)")
		wantErr(t, call("register_service", svc("s1", strings.Repeat("d", 3000))), "over the limit of 2048 bytes (max service info bytes)")
	})
	t.Run("subscriptions", func(t *testing.T) {
		if err := call("subscribe", []any{"a", "b", "c", "d", "e"}); err != nil {
			t.Fatal(err)
		}
		wantErr(t, call("subscribe", []any{"f"}), "limit of 5 per client (max subscriptions per client)")
		if err := call("subscribe", []any{"a"}); err != nil {
			t.Fatalf("subscribing again to a type is not more: %v", err)
		}
		wantErr(t, call("subscribe", strings.Repeat("x", 300)), "longer than 256 bytes")
	})
	t.Run("env", func(t *testing.T) {
		for i := range 3 {
			if err := call("set_env", fmt.Sprint("K", i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		wantErr(t, call("set_env", "K3", "v"), "already has 3 environment variables, the limit (max items per workspace)")
		if err := call("set_env", "K0", "replaced"); err != nil {
			t.Fatalf("replacing a variable is not more: %v", err)
		}
		wantErr(t, call("set_env", "K0", strings.Repeat("v", 2000)), "over the limit of 1024 bytes (max item bytes)")
	})
	t.Run("service types", func(t *testing.T) {
		for i := range 3 {
			if err := call("register_service_type", map[string]any{"id": fmt.Sprint("t", i)}); err != nil {
				t.Fatal(err)
			}
		}
		wantErr(t, call("register_service_type", map[string]any{"id": "t3"}), "(max items per workspace)")
		wantErr(t, call("register_service_type", map[string]any{"id": "big", "doc": strings.Repeat("d", 2000)}), "(max item bytes)")
	})
	t.Run("events", func(t *testing.T) {
		wantErr(t, call("log_event", "big", map[string]any{"x": strings.Repeat("d", 2000)}), "(max item bytes)")
		for i := range 10 {
			if err := call("log_event", "e", map[string]any{"i": i}); err != nil {
				t.Fatal(err)
			}
		}
		v, err := m.CallManager(ctx, "get_events")
		if err != nil {
			t.Fatal(err)
		}
		if l, _ := v.([]any); len(l) != 3 {
			t.Fatalf("the event log holds %d events, want the newest 3", len(l))
		}
	})
	t.Run("forgotten with the temporary workspace", func(t *testing.T) {
		ws := m.Workspace()
		_ = m.C.Close(1000, "bye")
		// The same anonymous workspace is gone; a root client reading it
		// finds nothing (get_env needs the workspace: use a fresh root
		// connection there, which recreates it empty).
		u := auth.RootUser()
		u.Scope.CurrentWorkspace = ws
		tok, err := s.Issuer().Generate(u, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		testserver.WaitFor(t, 10*time.Second, "the workspace to unload", func() bool {
			r := testserver.ConnectRaw(t, s, map[string]any{"client_id": fmt.Sprint("root-", time.Now().UnixNano()),
				"token": tok, "workspace": ws})
			defer r.C.CloseNow()
			v, err := r.CallManager(ctx, "get_env")
			env, _ := v.(map[string]any)
			return err == nil && len(env) == 0
		})
	})
}

// TestHostileChunkedMessageAbandoned: a chunked message that its sender
// abandons (no chunk for Idle) is dropped and its share given back.
func TestHostileChunkedMessageAbandoned(t *testing.T) {
	s := testserver.Start(t, server.Config{Chunks: rpc.ChunkLimits{PerSenderMessages: 1, Idle: 300 * time.Millisecond}})
	ctx := testserver.Ctx(t)
	m := anonRaw(t, s, "quitter")
	if err := mcache(ctx, m, m.ManagerID(), "create", "k0"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, mcache(ctx, m, m.ManagerID(), "create", "k1"), "(per-client limit 1)")
	testserver.WaitFor(t, 10*time.Second, "the abandoned message to be dropped", func() bool {
		return mcache(ctx, m, m.ManagerID(), "create", "k1") == nil
	})
	wantErr(t, mcache(ctx, m, m.ManagerID(), "append", "k0", []byte("late")), "key not found")
}

// TestHostileClientLogFlood: the manager's log function writes a client's
// message into the server's log; a client calling it in a tight loop with
// large messages gets a few bounded lines, not one per call.
func TestHostileClientLogFlood(t *testing.T) {
	logs := &testserver.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := testserver.Start(t, server.Config{Logger: log})
	ctx := testserver.Ctx(t)
	m := anonRaw(t, s, "chatty")
	big := strings.Repeat("x", 100<<10)
	const calls = 300
	for i := range calls {
		if _, err := m.CallManager(ctx, "log", fmt.Sprintf("line %d %s", i, big)); err != nil {
			t.Fatalf("log %d: %v", i, err)
		}
	}
	lines := logs.Lines(`msg="client log"`)
	if len(lines) == 0 || len(lines) > calls/3 {
		t.Fatalf("%d calls gave %d log lines; want a few", calls, len(lines))
	}
	for _, l := range lines {
		if len(l) > 6<<10 {
			t.Fatalf("a client log line is %d bytes; want it cut to about 4 KiB", len(l))
		}
		if !strings.Contains(l, "bytes cut") {
			t.Fatalf("a cut line does not say so: %.200s", l)
		}
	}
}
