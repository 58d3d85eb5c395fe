package apps

import (
	"context"

	"github.com/hypha-go/hypha/server"
)

// ForServer is the server.Config.Apps hook of a host that runs the apps
// controller with its server (internal/embedded, the test servers): the
// controller keeps its apps in the server's data dir and logs through the
// server's logger. Zero limits take the defaults.
func ForServer(limits Limits) server.AppsHook {
	return func(s *server.Server) (server.Apps, error) {
		return New(context.Background(), s, Config{
			DataDir: s.DataDir(), Logger: s.Logger().With("component", "server-apps"), Limits: limits,
		})
	}
}
