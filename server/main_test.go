package server_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestMain fails the package if a goroutine outlives the tests (clients
// disconnected and servers closed by the cleanups).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func rootClient(t *testing.T, s *server.Server, id string) *rpc.Client {
	t.Helper()
	return testserver.Connect(t, s, rpc.Config{Token: testserver.RootToken, ClientID: id})
}

func mustRegister(t *testing.T, c *rpc.Client, svc rpc.Service) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := c.RegisterService(ctx, svc)
	if err != nil {
		t.Fatalf("register %s: %v", svc.ID, err)
	}
	return id
}

// rootRaw is a raw connection authenticated with the root token.
func rootRaw(t *testing.T, s *server.Server, id string) *testserver.Raw {
	return testserver.ConnectRaw(t, s, map[string]any{"client_id": id, "token": testserver.RootToken})
}

// anonRaw is a raw anonymous connection (in its own workspace).
func anonRaw(t *testing.T, s *server.Server, id string) *testserver.Raw {
	return testserver.ConnectRaw(t, s, map[string]any{"client_id": id})
}
