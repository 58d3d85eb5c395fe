package apps

// What the controller adds to the server's workspace manager (through the
// host's hooks, found by interface assertion so that the server need not
// know this package):
//
//   - the services installed apps declare, for list_services with
//     include_app_services=True;
//   - the lazy start of an installed app on get_service("svc@app_id");
//   - the start of daemon apps when a workspace is loaded (upstream's
//     prepare_workspace).

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
	"github.com/hypha-go/hypha/server/auth"
)

// appHookHost is implemented by the embedded server (server/apphooks.go).
type appHookHost interface {
	SetAppHooks(declared func(ws string) []map[string]any,
		lazyStart func(ctx context.Context, u *auth.UserInfo, ws, appID, service string) (string, error),
		prepare func(ws string)) (off func())
}

// lazyStartTimeout bounds a lazy start when the app's manifest names no
// timeout of its own.
const lazyStartTimeout = defaultStartTimeout

// installHostHooks registers the hooks when the host offers them.
func (c *Controller) installHostHooks() {
	h, ok := c.host.(appHookHost)
	if !ok {
		return
	}
	c.extra.offHooks = h.SetAppHooks(c.declaredServices, c.lazyStart, c.PrepareWorkspace)
}

// declaredServices lists the services the apps of ws declare (the manifest's
// services, written after each start), in upstream's shape:
// {id: "<ws>/*:<name>@<app_id>", name, type, description, config, app_id,
// _source: "app_manifest"}. Disabled apps declare nothing.
func (c *Controller) declaredServices(ws string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.apps[ws]))
	for id := range c.apps[ws] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []map[string]any
	for _, id := range ids {
		m := c.apps[ws][id]
		if m["disabled"] == true {
			continue
		}
		list, _ := m["services"].([]any)
		for _, v := range list {
			sv, _ := v.(map[string]any)
			name := declaredName(sv)
			if name == "" || name == "built-in" {
				continue
			}
			cfg, _ := sv["config"].(map[string]any)
			out = append(out, map[string]any{
				"id": ws + "/*:" + name + "@" + id, "name": sv["name"], "type": sv["type"],
				"description": sv["description"], "config": copyMap(cfg), "app_id": id,
				"_source": "app_manifest",
			})
		}
	}
	return out
}

// declaredName is the service name of a manifest service entry
// ("<ws>/*:<name>", possibly with "@<app_id>").
func declaredName(sv map[string]any) string {
	id, _ := sv["id"].(string)
	if _, after, ok := strings.Cut(id, ":"); ok {
		id = after
	}
	id, _, _ = strings.Cut(id, "@")
	return id
}

// declares reports whether app id of ws declares service name, and the
// visibility it declared it with ("protected" when none).
func (c *Controller) declares(ws, id, name string) (bool, string) {
	for _, d := range c.declaredServices(ws) {
		if d["app_id"] == id && strings.HasSuffix(d["id"].(string), ":"+name+"@"+id) {
			cfg, _ := d["config"].(map[string]any)
			vis, _ := cfg["visibility"].(string)
			if vis == "" {
				vis = "protected"
			}
			return true, vis
		}
	}
	return false, ""
}

// errNotDeclared is returned by lazyStart for an app that does not declare
// the service asked for (or is not installed): nothing is started.
var errNotDeclared = errors.New("no installed app declares this service")

// lazyStart starts app id of ws so that service name is registered, for u
// who asked get_service("name@id"). As upstream, it runs as the app's
// installer (the manifest's startup_context, with the permission that user
// has now), so that the asker needs no right to run code; but only for an
// asker who may use the service once it runs: one with read permission on
// ws, or anyone when the app declared the service public (or unlisted).
// A running instance is reused as start does.
func (c *Controller) lazyStart(ctx context.Context, u *auth.UserInfo, ws, id, name string) (string, error) {
	if validAppID(id) != nil || validWorkspace(ws) != nil {
		return "", errNotDeclared
	}
	ok, vis := c.declares(ws, id, name)
	if !ok {
		return "", fmt.Errorf("%w: app %s of workspace %s declares no service %q (it must have run once)", errNotDeclared, id, ws, name)
	}
	if vis != "public" && vis != "unlisted" && c.host.Permission(u, ws) < auth.Read {
		return "", denied("user %s needs read permission on workspace %s to start app %s for service %s", u.ID, ws, id, name)
	}
	m := c.appManifest(ws, id)
	if m == nil {
		return "", errNotDeclared
	}
	inst, err := installer(m, ws)
	if err != nil {
		return "", fmt.Errorf("app %s cannot be started on demand: %w", id, err)
	}
	timeout := lazyStartTimeout
	if sc, _ := m["startup_config"].(map[string]any); sc != nil {
		if f, ok := convert.Number(sc["timeout"]); ok && f > 0 {
			timeout = time.Duration(f * float64(time.Second))
		}
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel2()
	pg := c.newProgress(nil)
	defer pg.close()
	c.log.Info("starting app on demand", "app", ws+"/"+id, "service", name, "asked_by", u.ID)
	rec, err := c.startApp(ctx, inst, ws, startOptions{appID: id, progress: pg, waitForService: name})
	if err != nil {
		return "", err
	}
	sid, _ := rec["id"].(string)
	return sid, nil
}

// PrepareWorkspace starts the daemon apps of ws that do not run, as their
// installers (upstream does this when a workspace is loaded). The server
// calls it when a workspace is loaded; the restart path covers the start of
// the server. It returns at once: the starts run on the controller's
// watcher, each once a worker for its type is there.
func (c *Controller) PrepareWorkspace(ws string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	n := 0
	for id, m := range c.apps[ws] {
		if m["daemon"] == true && m["disabled"] != true {
			c.daemons[ws+"/"+id] = true
			n++
		}
	}
	c.mu.Unlock()
	if n > 0 {
		c.kickResume()
	}
}
