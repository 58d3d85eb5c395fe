// Package testserver starts the embedded server on a free loopback port for
// integration tests.
package testserver

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// RootToken is the root token of servers started by Start.
const RootToken = "test-root-token-0123456789abcdef"

// Logger returns a logger for tests: quiet unless HYPHA_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("HYPHA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start runs a server on 127.0.0.1:0 until the test ends.
func Start(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	return StartAt(t, cfg, "127.0.0.1:0")
}

// Connect opens a websocket client to s and closes it when the test ends.
func Connect(t testing.TB, s *server.Server, cfg rpc.Config) *rpc.Client {
	t.Helper()
	if cfg.ServerURL == "" {
		cfg.ServerURL = s.URL()
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rpc.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Ctx returns a context that ends after 20 s or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond every 10 ms until it holds, failing the test after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RootClient connects a client with the root token and the given client id.
func RootClient(t testing.TB, s *server.Server, id string) *rpc.Client {
	t.Helper()
	return Connect(t, s, rpc.Config{Token: RootToken, ClientID: id})
}

// MustRegister registers svc on c or fails the test.
func MustRegister(t testing.TB, c *rpc.Client, svc rpc.Service) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := c.RegisterService(ctx, svc)
	if err != nil {
		t.Fatalf("register %s: %v", svc.ID, err)
	}
	return id
}

// NeedOrSkip skips the test with a message when a requirement is missing,
// except in CI (CI=true), where the requirement must be met: there a missing
// requirement fails the test instead of passing it silently.
func NeedOrSkip(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (.ci/run installs it)", what)
	}
	t.Skipf("%s is missing; skipping (CI=true makes this a failure)", what)
}
