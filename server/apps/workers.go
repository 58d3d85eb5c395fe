package apps

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/convert"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
	"github.com/hypha-go/hypha/worker/hyphaworker"
)

const (
	workerType    = worker.ServiceType
	selectTimeout = 2 * time.Second
)

// SelectFunctions are the worker functions a `select:<criteria>:<fn>`
// worker_selection_mode may name. The controller calls the chosen function
// on every candidate worker as the server, so a caller must never be able
// to name another one (shutdown, stop, close_workspace, ...): only
// zero-argument, read-only load reports are listed here.
var SelectFunctions = []string{"get_load"}

// workerRef is a worker service obtained through a client of its
// workspace. Every worker call goes through w, the typed client of the
// worker API (hyphaworker.Remote).
type workerRef struct {
	id             string // "<ws>/<client_id>:<service>"
	ws             string
	clientKey      string // "<ws>/<client_id>"
	w              *hyphaworker.RemoteWorker
	reg            hyphaworker.Options // its registration, read back
	supportedTypes []string
	appID          string
	release        func() // lets go of the workspace client
}

func (w *workerRef) info() map[string]any {
	types := make([]any, len(w.supportedTypes))
	for i, t := range w.supportedTypes {
		types[i] = t
	}
	vis := string(w.reg.Visibility)
	if vis == "" {
		vis = string(hyphaworker.Protected)
	}
	p := w.w.Properties()
	name := p.Name
	if name == "" {
		name = w.id
	}
	return map[string]any{
		"id": w.id, "name": name, "description": p.Description, "supported_types": types,
		"visibility": vis, "disabled": false,
	}
}

// workerFrom builds a workerRef from a fetched service.
func workerFrom(id string, svc *rpc.RemoteService) *workerRef {
	ws, rest, _ := strings.Cut(id, "/")
	cid, _, _ := strings.Cut(rest, ":")
	rw := hyphaworker.Remote(svc)
	w := &workerRef{id: id, ws: ws, clientKey: ws + "/" + cid, w: rw,
		reg: rw.Options(), supportedTypes: rw.Properties().SupportedTypes}
	w.appID, _ = svc.Get("app_id").(string)
	return w
}

// workersIn lists the server-app-worker services of ws (through a client in
// ws) that support appType ("" = any), skipping those of app skipApp. The
// returned workers share one reference to the workspace client each.
func (c *Controller) workersIn(ctx context.Context, ws, appType, skipApp string) ([]*workerRef, error) {
	cli, release, err := c.acquire(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	q := map[string]any{"type": workerType}
	if ws == "public" {
		q["workspace"] = "public"
	}
	list, err := cli.ListServices(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []*workerRef
	for _, si := range list {
		if !strings.HasPrefix(si.ID, ws+"/") {
			continue
		}
		if skipApp != "" && si.AppID == skipApp {
			continue
		}
		svc, err := cli.GetService(ctx, si.ID)
		if err != nil {
			c.log.Debug("cannot get worker service", "id", si.ID, "err", err)
			continue
		}
		w := workerFrom(si.ID, svc)
		if appType != "" && !slices.Contains(w.supportedTypes, appType) {
			continue
		}
		out = append(out, w)
	}
	return out, nil
}

// pickWorker chooses the worker for an app type as upstream does: an
// explicit worker id, else the caller's workspace first, then public.
func (c *Controller) pickWorker(ctx context.Context, cl *caller, ws, appType, appID, workerID, mode string) (*workerRef, error) {
	if workerID != "" {
		return c.workerByID(ctx, cl, ws, appType, workerID)
	}
	// Hold the workspace client while choosing, so that the services found
	// stay usable until hold() takes the session's own reference.
	_, release, err := c.acquire(ctx, ws)
	if err != nil {
		return nil, err
	}
	defer release()
	cands, err := c.workersIn(ctx, ws, appType, appID)
	if err != nil {
		c.log.Warn("listing workspace workers failed", "workspace", ws, "err", err)
	}
	cands = c.enabledWorkers(cands) // edit.go
	if len(cands) == 0 && ws != "public" {
		cands, err = c.workersIn(ctx, "public", appType, appID)
		if err != nil {
			c.log.Warn("listing public workers failed", "err", err)
		}
		cands = c.enabledWorkers(cands)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("No server app worker found for app type: %s (no worker for type %s in workspace %s or public)", appType, appType, ws)
	}
	chosen, err := c.selectWorker(ctx, cands, appType, mode)
	if err != nil {
		return nil, err
	}
	return c.hold(ctx, chosen)
}

// hold takes a reference on the chosen worker's workspace client.
func (c *Controller) hold(ctx context.Context, w *workerRef) (*workerRef, error) {
	_, release, err := c.acquire(ctx, w.ws)
	if err != nil {
		return nil, err
	}
	w.release = release
	return w, nil
}

func (c *Controller) selectWorker(ctx context.Context, ws []*workerRef, appType, mode string) (*workerRef, error) {
	switch {
	case mode == "" || mode == "random" || mode == "min_load":
		return ws[rand.IntN(len(ws))], nil
	case mode == "first":
		return ws[0], nil
	case mode == "last":
		return ws[len(ws)-1], nil
	case mode == "exact":
		if len(ws) != 1 {
			ids := make([]string, 0, 5)
			for _, w := range ws[:min(5, len(ws))] {
				ids = append(ids, w.id)
			}
			return nil, fmt.Errorf("Multiple workers found for app_type %s, but mode is 'exact'. Found workers: %v. You can specify mode as 'random', 'first', 'last', 'min_load', or use 'select:criteria:function' format.", appType, ids)
		}
		return ws[0], nil
	case strings.HasPrefix(mode, "select:"):
		parts := strings.Split(mode, ":")
		if len(parts) != 3 || parts[2] == "" {
			return nil, fmt.Errorf("Invalid select mode format: %s. Expected 'select:criteria:function'", mode)
		}
		if !slices.Contains(SelectFunctions, parts[2]) {
			return nil, denied("worker_selection_mode %q names the worker function %q; select: may only call %s",
				mode, parts[2], strings.Join(SelectFunctions, ", "))
		}
		return c.selectByFunction(ctx, ws, parts[1], parts[2])
	}
	return nil, fmt.Errorf("Invalid selection mode: %s. Mode must be 'random', 'first', 'last', 'exact', 'min_load', or 'select:criteria:function' format (e.g., 'select:min:get_load')", mode)
}

// selectByFunction calls the zero-argument function fn of every worker
// (bounded by selectTimeout) and picks by criteria min, max or
// first_success; it falls back to a random worker when none answers.
func (c *Controller) selectByFunction(ctx context.Context, ws []*workerRef, criteria, fn string) (*workerRef, error) {
	if criteria != "min" && criteria != "max" && criteria != "first_success" {
		return nil, fmt.Errorf("Invalid selection criteria: %s. Must be 'min', 'max' or 'first_success'", criteria)
	}
	type answer struct {
		w *workerRef
		v float64
	}
	sctx, cancel := context.WithTimeout(ctx, selectTimeout)
	defer cancel()
	ch := make(chan answer, len(ws))
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// An extension method, not part of the worker API.
			v, err := w.w.Service().Call(sctx, fn)
			if err != nil {
				return
			}
			f, ok := convert.Number(v)
			if !ok && criteria != "first_success" {
				return
			}
			ch <- answer{w, f}
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	var best *answer
	for a := range ch {
		if criteria == "first_success" {
			cancel()
			return a.w, nil
		}
		if best == nil || (criteria == "min" && a.v < best.v) || (criteria == "max" && a.v > best.v) {
			best = &a
		}
	}
	if best == nil {
		return ws[rand.IntN(len(ws))], nil
	}
	return best.w, nil
}

// workerByID resolves an explicit worker id: a bare id gets "<ws>/"
// prepended; the result must be "<ws>/<client_id>:<service>".
func (c *Controller) workerByID(ctx context.Context, cl *caller, ws, appType, workerID string) (*workerRef, error) {
	if !strings.Contains(workerID, "/") {
		workerID = ws + "/" + workerID
	}
	if strings.Count(workerID, "/") != 1 || strings.Count(workerID, ":") != 1 {
		return nil, fmt.Errorf("Worker ID must be in format 'workspace/client_id:service_id', got: %s", workerID)
	}
	if c.workerDisabled(workerID) {
		return nil, fmt.Errorf("Worker %s is disabled (edit_worker)", workerID)
	}
	wws, _, _ := strings.Cut(workerID, "/")
	if wws != ws && wws != "public" {
		// Running an app on a worker of another workspace uses that
		// workspace's resources: the same permission as starting there.
		if err := c.need(cl, wws, auth.ReadWrite, "use worker "+workerID); err != nil {
			return nil, err
		}
	}
	cli, release, err := c.acquire(ctx, wws)
	if err != nil {
		return nil, err
	}
	svc, err := cli.GetService(ctx, workerID)
	if err != nil {
		release()
		return nil, fmt.Errorf("worker %s not found: %w", workerID, err)
	}
	w := workerFrom(workerID, svc)
	w.release = release
	if svc.Type != workerType {
		release()
		return nil, fmt.Errorf("service %s is not a %s (type %q)", workerID, workerType, svc.Type)
	}
	if appType != "" && !slices.Contains(w.supportedTypes, appType) {
		release()
		return nil, fmt.Errorf("Worker '%s' does not support app type '%s'. Supported types: %v", workerID, appType, w.supportedTypes)
	}
	return w, nil
}

// listWorkersParams are the parameters of list_workers, in order (schema and binding).
var listWorkersParams = []string{"app_type"}

// mListWorkers implements list_workers(app_type=None).
func (c *Controller) mListWorkers(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("list_workers", call, listWorkersParams...)
	if err != nil {
		return nil, err
	}
	appType, err := a.str("app_type")
	if err != nil {
		return nil, err
	}
	if err := c.need(cl, cl.ws, auth.Read, "list workers"); err != nil {
		return nil, err
	}
	out := []any{}
	seen := map[string]bool{}
	for _, ws := range []string{cl.ws, "public"} {
		if seen[ws] {
			continue
		}
		seen[ws] = true
		list, err := c.workersIn(ctx, ws, appType, "")
		if err != nil {
			c.log.Warn("listing workers failed", "workspace", ws, "err", err)
			continue
		}
		for _, w := range list {
			inf := w.info()
			inf["disabled"] = c.workerDisabled(w.id)
			out = append(out, inf)
		}
	}
	return out, nil
}
