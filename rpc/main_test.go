package rpc_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
)

// TestMain fails the package if any goroutine outlives the tests: every
// client is closed and every server stopped by the tests' cleanups.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recv waits for a value on ch matching ok.
func recv[T any](t *testing.T, ch <-chan T, d time.Duration, what string, ok func(T) bool) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case v := <-ch:
			if ok == nil || ok(v) {
				return v
			}
		case <-timer.C:
			var zero T
			t.Fatalf("timed out after %s waiting for %s", d, what)
			return zero
		}
	}
}

// events delivers every event of the given types received by c.
func events(c *rpc.Client, types ...string) <-chan rpc.Event {
	ch := make(chan rpc.Event, 256)
	for _, typ := range types {
		c.On(typ, func(e rpc.Event) {
			select {
			case ch <- e:
			default:
			}
		})
	}
	return ch
}

func eventID(e rpc.Event) string {
	id, _ := e.Data["id"].(string)
	return id
}

// tapClient connects a client through a Tap (to kill, freeze or observe its transport).
func tapClient(t *testing.T, s *server.Server, cfg rpc.Config) (*rpc.Client, *testserver.Tap) {
	t.Helper()
	tp := testserver.NewTap(s.URL())
	cfg.Dialer = tp.Dial
	return testserver.Connect(t, s, cfg), tp
}

// isDisconnectError reports whether err says the peer went away (the
// client_disconnected event or the server's immediate "not connected" reject).
func isDisconnectError(err error) bool {
	return errors.Is(err, rpc.ErrClientDisconnect) ||
		(err != nil && strings.Contains(err.Error(), "is not connected"))
}
