package server_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/server"
)

// TestMain fails the package if a goroutine outlives the tests (clients
// disconnected and servers closed by the cleanups).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rootRaw is a raw connection authenticated with the root token.
func rootRaw(t *testing.T, s *server.Server, id string) *testserver.Raw {
	return testserver.ConnectRaw(t, s, map[string]any{"client_id": id, "token": testserver.RootToken})
}

// anonRaw is a raw anonymous connection (in its own workspace).
func anonRaw(t *testing.T, s *server.Server, id string) *testserver.Raw {
	return testserver.ConnectRaw(t, s, map[string]any{"client_id": id})
}
