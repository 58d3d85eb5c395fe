package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

func connectWith(ctx context.Context, t *testing.T, s *server.Server, cfg rpc.Config) (*rpc.Client, error) {
	t.Helper()
	cfg.ServerURL = s.URL()
	cfg.Logger = testserver.Logger(t)
	c, err := rpc.Connect(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// TestGeneratedTokens: create a workspace, mint tokens for it and join it:
// read_write may register services and broadcast, read may do neither; a
// client-scoped token admits that client id only; expiry is honoured.
func TestGeneratedTokens(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "root-client")
	if _, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": "ws-team", "description": "test"}); err != nil {
		t.Fatal(err)
	}
	gen := func(tc rpc.TokenConfig) string {
		t.Helper()
		tc.Workspace = "ws-team"
		tok, err := root.GenerateToken(ctx, tc)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rwTok := gen(rpc.TokenConfig{Permission: "read_write"})
	rTok := gen(rpc.TokenConfig{Permission: "read"})

	// A subscriber in the workspace records the broadcasts it receives.
	subTap := testserver.NewTap(s.URL())
	sub, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-team", Token: rwTok, ClientID: "sub", Dialer: subTap.Dial})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	subTap.OnFrame(func(main map[string]any) {
		if main["type"] == "team-event" {
			mu.Lock()
			seen = append(seen, main["from"].(string))
			mu.Unlock()
		}
	})
	if err := sub.Subscribe(ctx, "team-event"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name         string
		tok          string
		canRegister  bool
		canBroadcast bool
	}{
		{"read_write", rwTok, true, true},
		{"read", rTok, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-team", Token: tc.tok, ClientID: "c-" + tc.name})
			if err != nil {
				t.Fatal(err)
			}
			if c.Info().Workspace != "ws-team" {
				t.Fatalf("workspace %s", c.Info().Workspace)
			}
			_, err = c.RegisterService(ctx, rpc.Service{ID: "s", Functions: map[string]any{"f": func() string { return tc.name }}})
			if tc.canRegister != (err == nil) {
				t.Errorf("register: %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), "Permission denied") {
				t.Errorf("register refused with %v", err)
			}
			if tc.canRegister {
				// A protected service: callable from its own workspace.
				svc, err := sub.GetService(ctx, "c-"+tc.name+":s")
				if err != nil {
					t.Fatal(err)
				}
				if v, err := svc.Call(ctx, "f"); err != nil || v != tc.name {
					t.Errorf("call: %v, %v", v, err)
				}
			}
			// Broadcast, in both spellings; the echo round trips make sure
			// the server routed it and the subscriber read it.
			mu.Lock()
			seen = nil
			mu.Unlock()
			if err := c.Emit(ctx, "team-event", map[string]any{"n": 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Echo(ctx, "sync"); err != nil {
				t.Fatal(err)
			}
			r := testserver.ConnectRaw(t, s, map[string]any{"client_id": "raw-" + tc.name, "workspace": "ws-team", "token": tc.tok})
			if err := r.Send(map[string]any{"type": "team-event", "to": "ws-team/*", "data": map[string]any{}}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := r.CallManager(ctx, "echo", "sync"); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.Echo(ctx, "sync"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			n := len(seen)
			mu.Unlock()
			if want := map[bool]int{true: 2, false: 0}[tc.canBroadcast]; n != want {
				t.Errorf("subscriber saw %d broadcasts, want %d", n, want)
			}
			// Both may read.
			if _, err := c.ListServices(ctx, nil); err != nil {
				t.Errorf("list: %v", err)
			}
		})
	}

	t.Run("client-scoped token", func(t *testing.T) {
		tok := gen(rpc.TokenConfig{ClientID: "only-me"})
		_, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-team", Token: tok, ClientID: "someone-else", NoReconnect: true})
		var refused *rpc.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(refused.Message, "Failed to establish connection") {
			t.Fatalf("another client id: %v", err)
		}
		if _, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-team", Token: tok, ClientID: "only-me"}); err != nil {
			t.Fatalf("the scoped id: %v", err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		tok := gen(rpc.TokenConfig{ExpiresIn: 2 * time.Second})
		c, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-team", Token: tok, ClientID: "short-lived"})
		if err != nil {
			t.Fatalf("fresh token: %v", err)
		}
		c.Close()
		var lastErr error
		attempt := 0
		testserver.WaitFor(t, 6*time.Second, "the token to expire", func() bool {
			attempt++
			var c *rpc.Client
			c, lastErr = connectWith(ctx, t, s, rpc.Config{Workspace: "ws-team", Token: tok,
				ClientID: fmt.Sprintf("short-lived-%d", attempt), NoReconnect: true})
			if c != nil {
				c.Close()
			}
			return lastErr != nil
		})
		var refused *rpc.RefusedError
		if !errors.As(lastErr, &refused) || !strings.HasPrefix(refused.Message, "Authentication error:") {
			t.Fatalf("expired token: %v", lastErr)
		}
	})

	t.Run("only admins mint tokens", func(t *testing.T) {
		c, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-team", Token: rwTok, ClientID: "minter"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GenerateToken(ctx, rpc.TokenConfig{Workspace: "ws-team", Permission: "admin"}); err == nil {
			t.Fatal("a read_write user minted an admin token")
		}
	})
}

// TestCreateWorkspaceThenConnect creates a workspace and joins it with a
// token generated for it; the workspace's services are reachable from it.
func TestCreateWorkspaceThenConnect(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ctx := testserver.Ctx(t)
	root := testserver.RootClient(t, s, "root-client")
	v, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": "ws-fresh", "description": "d"})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := v.(map[string]any); m["id"] != "ws-fresh" {
		t.Fatalf("create_workspace returned %v", v)
	}
	if _, err := root.Manager().Call(ctx, "create_workspace", map[string]any{"id": "ws-fresh"}); err == nil {
		t.Fatal("created the same workspace twice")
	}
	tok, err := root.GenerateToken(ctx, rpc.TokenConfig{Workspace: "ws-fresh", Permission: "read_write"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-fresh", Token: tok, ClientID: "member"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Info().Workspace != "ws-fresh" {
		t.Fatalf("joined %s", c.Info().Workspace)
	}
	testserver.MustRegister(t, c, rpc.Service{ID: "svc", Functions: map[string]any{"ws": func(cc *rpc.CallContext) string { return cc.WS }}})
	svc, err := c.GetService(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := svc.Call(ctx, "ws"); err != nil || v != "ws-fresh" {
		t.Fatalf("call: %v, %v", v, err)
	}
	// The same token does not open another workspace.
	if _, err := connectWith(ctx, t, s, rpc.Config{Workspace: "ws-user-root", Token: tok, ClientID: "member2", NoReconnect: true}); err == nil {
		t.Fatal("the ws-fresh token opened ws-user-root")
	}
}
