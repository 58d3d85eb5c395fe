package apps

// Editing installed apps (upstream's edit_file, remove_file, edit_app,
// validate_app_manifest) and disabled workers (edit_worker). See
// docs/apps.md, "Editing apps and workers".
//
// Edits change the committed version at once, or, with stage=True, the
// app's staged version (staged.go; the first staged edit of a committed app
// makes its staged version as a copy of the committed one). Each gives the
// version it changes a new revision, so that start no longer returns an
// instance running the previous files; running sessions keep what they
// loaded.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hypha-go/hypha/internal/atomicfile"
	"github.com/hypha-go/hypha/internal/datadir"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// controllerExtra is the state of the functions in edit.go, lazy.go and
// inactivity.go.
type controllerExtra struct {
	offHooks func() // removes the host hooks (lazy.go)

	stageMu sync.Mutex // serializes making staged versions from committed ones

	disabledMu   sync.Mutex
	disabled     map[string]bool // full worker ids "<ws>/<client_id>:<service>"
	disabledFile string
}

// initExtra loads the disabled workers. New calls it before the controller
// serves anything.
func (c *Controller) initExtra() error {
	c.extra.disabled = map[string]bool{}
	c.extra.disabledFile = filepath.Join(c.cfg.DataDir, "workers", "disabled.json")
	if b, err := os.ReadFile(c.extra.disabledFile); err == nil {
		var ids []string
		if err := json.Unmarshal(b, &ids); err != nil {
			c.log.Warn("ignoring unreadable list of disabled workers", "path", c.extra.disabledFile, "err", err)
		}
		for _, id := range ids {
			c.extra.disabled[id] = true
		}
	}
	return nil
}

// closeExtra removes the host hooks (Close).
func (c *Controller) closeExtra() {
	if c.extra.offHooks != nil {
		c.extra.offHooks()
	}
}

// extraFunctions are the server-apps functions defined in this file.
func (c *Controller) extraFunctions() map[string]any {
	return map[string]any{
		"edit_file":             c.api("edit_file", c.mEditFile, editFileParams),
		"remove_file":           c.api("remove_file", c.mRemoveFile, removeFileParams),
		"edit_app":              c.api("edit_app", c.mEditApp, editAppParams),
		"validate_app_manifest": c.api("validate_app_manifest", c.mValidateAppManifest, validateAppManifestParams),
		"edit_worker":           c.api("edit_worker", c.mEditWorker, editWorkerParams),
	}
}

// ---- edit_file, remove_file ----

// editTarget is the app version an edit changes.
type editTarget struct {
	st      *store
	ws, id  string
	staged  bool
	manfest map[string]any
}

func (c *Controller) editTarget(cl *caller, appID, what string, stage bool) (*editTarget, error) {
	ws, id, err := c.resolveApp(cl, appID, auth.ReadWrite, what)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	busy := c.installing[ws+"/"+id]
	c.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("App %s is being installed by another call", id)
	}
	t := &editTarget{st: c.store, ws: ws, id: id, staged: stage}
	if !stage {
		if t.manfest = c.appManifest(ws, id); t.manfest == nil {
			return nil, c.missingVersion(ws, id, false)
		}
		return t, nil
	}
	c.extra.stageMu.Lock()
	defer c.extra.stageMu.Unlock()
	if t.manfest = c.stagedManifest(ws, id); t.manfest != nil {
		return t, nil
	}
	if c.appManifest(ws, id) == nil {
		return nil, c.missingVersion(ws, id, true)
	}
	rev := newRevision()
	m, err := c.store.stageFromCommitted(ws, id, rev)
	if err != nil {
		return nil, fmt.Errorf("stage app %s: %w", id, err)
	}
	c.setStaged(ws, id, copyMap(m), rev)
	t.manfest = m
	return t, nil
}

// changed records an edit of the app version: a new revision.
func (c *Controller) changed(t *editTarget) {
	rev := newRevision()
	if err := c.store.writeRevision(t.ws, t.id, t.staged, rev); err != nil {
		c.log.Warn("could not write the app's revision", "workspace", t.ws, "app_id", t.id, "err", err)
	}
	c.mu.Lock()
	key := t.ws + "/" + t.id
	if v, ok := c.staged[key]; t.staged && ok {
		v.rev = rev
		c.staged[key] = v
	} else if !t.staged && c.apps[t.ws][t.id] != nil {
		c.appRev[key] = rev
	}
	c.mu.Unlock()
}

// usage counts the files and bytes of an app version.
func usage(root *os.Root) (files int, total int64, err error) {
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			files++
			total += info.Size()
		}
		return nil
	})
	return files, total, err
}

// editFileParams are the parameters of edit_file, in order (schema and binding).
var editFileParams = []string{"app_id", "file_path", "file_content", "stage"}

func (c *Controller) mEditFile(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("edit_file", call, editFileParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	p, err := a.str("file_path")
	if err != nil {
		return nil, err
	}
	var content []byte
	switch v := a["file_content"].(type) {
	case string:
		content = []byte(v)
	case []byte:
		content = v
	case nil:
		return nil, errors.New("edit_file: file_content is required")
	default:
		return nil, fmt.Errorf("argument file_content must be a string or bytes, got %T", v)
	}
	stage, err := a.boolean("stage", false)
	if err != nil {
		return nil, err
	}
	t, err := c.editTarget(cl, appID, "edit app files", stage)
	if err != nil {
		return nil, err
	}
	if _, err := cleanFilePath(p); err != nil {
		return nil, err
	}
	lim := c.cfg.Limits
	if err := lim.checkFiles(1, int64(len(content))); err != nil {
		return nil, err
	}
	root, err := t.st.openRoot(t.ws, t.id, t.staged)
	if err != nil {
		return nil, fmt.Errorf("edit_file %s: %w", p, err)
	}
	defer root.Close()
	files, total, err := usage(root)
	if err != nil {
		return nil, fmt.Errorf("edit_file %s: %w", p, err)
	}
	if st, err := root.Lstat(p); err == nil {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("edit_file: %s is a directory", p)
		}
		total -= st.Size()
	} else {
		files++
	}
	if err := lim.checkFiles(files, total+int64(len(content))); err != nil {
		return nil, err
	}
	// Every parent must be a directory (or missing).
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if st, err := root.Lstat(dir); err == nil && !st.IsDir() {
			return nil, fmt.Errorf("invalid files: %s is both a file and a directory", dir)
		}
	}
	if dir := path.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, datadir.DirMode); err != nil {
			return nil, fmt.Errorf("edit_file %s: %w", p, err)
		}
	}
	tmp := path.Join(path.Dir(p), ".tmp-edit-"+idgen.New())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, datadir.FileMode)
	if err != nil {
		return nil, fmt.Errorf("edit_file %s: %w", p, err)
	}
	_, werr := f.Write(content)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = root.Rename(tmp, p)
	}
	if werr != nil {
		_ = root.Remove(tmp)
		return nil, fmt.Errorf("edit_file %s: %w", p, werr)
	}
	c.changed(t)
	c.log.Info("app file edited", "app", t.ws+"/"+t.id, "path", p, "bytes", len(content))
	return nil, nil
}

// removeFileParams are the parameters of remove_file, in order (schema and binding).
var removeFileParams = []string{"app_id", "file_path", "stage"}

func (c *Controller) mRemoveFile(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("remove_file", call, removeFileParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	p, err := a.str("file_path")
	if err != nil {
		return nil, err
	}
	stage, err := a.boolean("stage", false)
	if err != nil {
		return nil, err
	}
	t, err := c.editTarget(cl, appID, "edit app files", stage)
	if err != nil {
		return nil, err
	}
	if _, err := cleanFilePath(p); err != nil {
		return nil, err
	}
	if entry, _ := t.manfest["entry_point"].(string); entry == p {
		return nil, fmt.Errorf("remove_file: %s is the app's entry point; set another entry_point with edit_app first", p)
	}
	root, err := t.st.openRoot(t.ws, t.id, t.staged)
	if err != nil {
		return nil, fmt.Errorf("remove_file %s: %w", p, err)
	}
	defer root.Close()
	st, err := root.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("File not found: %s", p)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("remove_file: %s is not a file", p)
	}
	if err := root.Remove(p); err != nil {
		return nil, fmt.Errorf("remove_file %s: %w", p, err)
	}
	c.changed(t)
	c.log.Info("app file removed", "app", t.ws+"/"+t.id, "path", p)
	return nil, nil
}

// ---- edit_app ----

// editAppKeys are manifest keys edit_app's manifest may not set: the
// controller owns them.
var editAppKeys = []string{"id", "services", "service_ids", "startup_context", "source_hash"}

// editAppParams are the parameters of edit_app, in order (schema and binding).
var editAppParams = []string{"app_id", "manifest", "disabled", "autoscaling_config", "autoscaling_manifest", "startup_config", "stage"}

func (c *Controller) mEditApp(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("edit_app", call, editAppParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	patch, err := a.mapping("manifest")
	if err != nil {
		return nil, err
	}
	var disabled *bool
	if a.has("disabled") {
		d, err := a.boolean("disabled", false)
		if err != nil {
			return nil, err
		}
		disabled = &d
	}
	auto, err := a.mapping("autoscaling_config")
	if err != nil {
		return nil, err
	}
	if am, err := a.mapping("autoscaling_manifest"); err != nil {
		return nil, err
	} else if am != nil {
		auto = am
	}
	sc, err := a.mapping("startup_config")
	if err != nil {
		return nil, err
	}
	for _, k := range editAppKeys {
		if _, ok := patch[k]; ok {
			return nil, fmt.Errorf("Failed to edit app '%s': the manifest field %q is set by the server and cannot be edited", appID, k)
		}
	}
	if sc != nil {
		if ak, ok := sc["additional_kwargs"]; ok && ak != nil {
			akm, ok := ak.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("additional_kwargs must be a dict, got %T", ak)
			}
			if err := checkAdditionalKwargs(akm); err != nil {
				return nil, err
			}
		}
	}
	if patch != nil {
		if ak, ok := startupKwargs(patch).(map[string]any); ok {
			if err := checkAdditionalKwargs(ak); err != nil {
				return nil, err
			}
		}
	}
	stage, err := a.boolean("stage", false)
	if err != nil {
		return nil, err
	}
	t, err := c.editTarget(cl, appID, "edit apps", stage)
	if err != nil {
		return nil, err
	}
	m := copyMap(t.manfest)
	for k, v := range patch {
		if k != "_rtype" {
			m[k] = v
		}
	}
	if a.has("startup_config") {
		if len(sc) == 0 {
			delete(m, "startup_config")
		} else {
			m["startup_config"] = copyMap(sc)
		}
	}
	if a.has("autoscaling_config") || a.has("autoscaling_manifest") {
		if len(auto) == 0 {
			m["autoscaling"] = nil
		} else {
			m["autoscaling"] = copyMap(auto)
		}
	}
	if disabled != nil {
		m["disabled"] = *disabled
	}
	if err := validateManifest(m); err != nil {
		return nil, fmt.Errorf("Failed to edit app '%s': %w", appID, err)
	}
	if entry, _ := m["entry_point"].(string); entry == "" {
		return nil, fmt.Errorf("Failed to edit app '%s': invalid manifest: entry_point is empty", appID)
	} else if !isURL(entry) {
		if _, err := cleanFilePath(entry); err != nil {
			return nil, fmt.Errorf("Failed to edit app '%s': invalid manifest: entry_point: %w", appID, err)
		}
		if !t.st.hasFile(t.ws, t.id, t.staged, entry) {
			return nil, fmt.Errorf("Failed to edit app '%s': invalid manifest: the entry point %q is not among the app's files", appID, entry)
		}
	}
	if mb, err := marshalManifest(m); err != nil {
		return nil, err
	} else if err := c.cfg.Limits.checkManifest(len(mb)); err != nil {
		return nil, err
	}
	if err := t.st.writeManifest(t.ws, t.id, t.staged, m); err != nil {
		return nil, fmt.Errorf("Failed to edit app '%s': %w", appID, err)
	}
	c.mu.Lock()
	if v, ok := c.staged[t.ws+"/"+t.id]; t.staged && ok {
		v.manifest = m
		c.staged[t.ws+"/"+t.id] = v
	} else if !t.staged && c.apps[t.ws][t.id] != nil {
		c.apps[t.ws][t.id] = m
	}
	c.mu.Unlock()
	c.changed(t)
	if disabled != nil && *disabled {
		// As upstream: disabling an app stops its instances (of the
		// version disabled: a staged edit stops the staged sessions).
		if t.staged {
			c.stopStagedSessions(ctx, t.ws, t.id)
		} else {
			c.stopAppSessions(ctx, t.ws, t.id)
		}
	}
	c.log.Info("app edited", "app", t.ws+"/"+t.id)
	return nil, nil
}

// stopAppSessions stops the live sessions of app id of ws.
func (c *Controller) stopAppSessions(ctx context.Context, ws, id string) {
	c.mu.Lock()
	var ids []string
	for sid, s := range c.sessions {
		if s.ws == ws && s.appID == id && !isEnded(s.status) {
			ids = append(ids, sid)
		}
	}
	c.mu.Unlock()
	for _, sid := range ids {
		_ = c.stopSession(ctx, sid, false)
	}
}

// ---- validate_app_manifest ----

// browserAppTypes are the app types upstream's validation knows.
var browserAppTypes = []string{"window", "web-worker", "web-python", "mcp-server", "a2a-agent"}

// validateAppManifestParams are the parameters of validate_app_manifest, in order (schema and binding).
var validateAppManifestParams = []string{"manifest"}

func (c *Controller) mValidateAppManifest(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("validate_app_manifest", call, validateAppManifestParams...)
	if err != nil {
		return nil, err
	}
	m, err := a.mapping("manifest")
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("validate_app_manifest: manifest is required")
	}
	if err := c.need(cl, cl.ws, auth.Read, "validate app manifests"); err != nil {
		return nil, err
	}
	res := validateAppManifest(m)
	// An app type no worker serves is worth a warning: the app could not
	// run here.
	if t, ok := m["type"].(string); ok && t != "" && !slices.Contains(browserAppTypes, t) {
		found, _ := c.workersIn(ctx, cl.ws, t, "")
		if len(found) == 0 && cl.ws != "public" {
			found, _ = c.workersIn(ctx, "public", t, "")
		}
		if len(found) == 0 {
			res["warnings"] = append(res["warnings"].([]any), fmt.Sprintf("Unusual application type: %s (no worker for it in workspace %s or public)", t, cl.ws))
		}
	}
	res["valid"] = len(res["errors"].([]any)) == 0
	return res, nil
}

// validateAppManifest applies upstream's checks (required fields, types,
// the mcp-server and a2a-agent sections, suggestions) and ours (the
// field types and rules install enforces).
func validateAppManifest(m map[string]any) map[string]any {
	errs, warns, sugg := []any{}, []any{}, []any{}
	for _, f := range []string{"name", "type", "version"} {
		if _, ok := m[f]; !ok {
			errs = append(errs, "Missing required field: "+f)
		}
	}
	if v, ok := m["name"]; ok {
		if _, s := v.(string); !s {
			errs = append(errs, "Field 'name' must be a string")
		}
	}
	if v, ok := m["version"]; ok {
		if _, s := v.(string); !s {
			errs = append(errs, "Field 'version' must be a string")
		}
	}
	section := func(key, what, label string, needType bool) {
		v, ok := m[key]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s applications require '%s' configuration", what, key))
			return
		}
		d, ok := v.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Sprintf("'%s' must be a dictionary", key))
			return
		}
		if len(d) == 0 {
			errs = append(errs, fmt.Sprintf("'%s' cannot be empty", key))
			return
		}
		names := make([]string, 0, len(d))
		for n := range d {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			cfg, ok := d[n].(map[string]any)
			if !ok {
				errs = append(errs, fmt.Sprintf("%s '%s' configuration must be a dictionary", label, n))
				continue
			}
			if needType {
				if _, ok := cfg["type"]; !ok {
					errs = append(errs, fmt.Sprintf("%s '%s' missing required field 'type'", label, n))
				}
				if t := cfg["type"]; t != "streamable-http" && t != "stdio" {
					warns = append(warns, fmt.Sprintf("%s '%s' has unusual type: %v", label, n, t))
				}
			}
			if _, ok := cfg["url"]; !ok {
				errs = append(errs, fmt.Sprintf("%s '%s' missing required field 'url'", label, n))
			}
			if !needType {
				if u, _ := cfg["url"].(string); !isURL(u) {
					warns = append(warns, fmt.Sprintf("%s '%s' URL should start with http:// or https://", label, n))
				}
				if h, ok := cfg["headers"]; ok {
					if _, ok := h.(map[string]any); !ok {
						errs = append(errs, fmt.Sprintf("%s '%s' headers must be a dictionary", label, n))
					}
				}
			}
		}
	}
	switch m["type"] {
	case "mcp-server":
		section("mcpServers", "MCP server", "MCP server", true)
	case "a2a-agent":
		section("a2aAgents", "A2A agent", "A2A agent", false)
	}
	if err := validateManifest(m); err != nil {
		if _, has := m["type"]; has || !strings.Contains(err.Error(), "Application type") {
			errs = append(errs, strings.TrimPrefix(err.Error(), "invalid manifest: "))
		}
	}
	for _, k := range []string{"services", "service_ids"} {
		if _, ok := m[k]; ok {
			errs = append(errs, "Services and service_ids fields are not allowed in the app manifest.")
			break
		}
	}
	if ep, ok := m["entry_point"].(string); ok {
		if !strings.HasSuffix(ep, ".html") && !strings.HasSuffix(ep, ".js") && !strings.HasSuffix(ep, ".py") {
			warns = append(warns, fmt.Sprintf("Entry point '%s' has unusual extension", ep))
		}
		if !isURL(ep) && ep != "" {
			if _, err := cleanFilePath(ep); err != nil {
				errs = append(errs, "entry_point: "+err.Error())
			}
		}
	}
	if _, ok := m["description"]; !ok {
		sugg = append(sugg, "Consider adding a description for better documentation")
	}
	if _, ok := m["tags"]; !ok {
		sugg = append(sugg, "Consider adding tags for better discoverability")
	}
	return map[string]any{"valid": len(errs) == 0, "errors": errs, "warnings": warns, "suggestions": sugg}
}

// ---- edit_worker, disabled workers ----

func (c *Controller) workerDisabled(id string) bool {
	c.extra.disabledMu.Lock()
	defer c.extra.disabledMu.Unlock()
	return c.extra.disabled[id]
}

// editWorkerParams are the parameters of edit_worker, in order (schema and binding).
var editWorkerParams = []string{"worker_id", "disabled"}

func (c *Controller) mEditWorker(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("edit_worker", call, editWorkerParams...)
	if err != nil {
		return nil, err
	}
	id, err := a.str("worker_id")
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("edit_worker: worker_id is required")
	}
	if err := c.need(cl, cl.ws, auth.ReadWrite, "edit worker "+id); err != nil {
		return nil, err
	}
	if !a.has("disabled") {
		return nil, nil
	}
	disabled, err := a.boolean("disabled", false)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(id, "/") {
		id = cl.ws + "/" + id
	}
	if strings.Count(id, "/") != 1 || strings.Count(id, ":") != 1 {
		return nil, fmt.Errorf("Worker ID must be in format 'workspace/client_id:service_id', got: %s", id)
	}
	wws, _, _ := strings.Cut(id, "/")
	if err := validWorkspace(wws); err != nil {
		return nil, err
	}
	// The worker's own workspace decides: disabling a worker changes what
	// every user of that workspace can run (public: root only).
	if err := c.need(cl, wws, auth.ReadWrite, "edit worker "+id); err != nil {
		return nil, err
	}
	c.extra.disabledMu.Lock()
	was := c.extra.disabled[id]
	if disabled {
		c.extra.disabled[id] = true
	} else {
		delete(c.extra.disabled, id)
	}
	ids := make([]string, 0, len(c.extra.disabled))
	for k := range c.extra.disabled {
		ids = append(ids, k)
	}
	c.extra.disabledMu.Unlock()
	sort.Strings(ids)
	if err := c.saveDisabled(ids); err != nil {
		c.extra.disabledMu.Lock()
		if was {
			c.extra.disabled[id] = true
		} else {
			delete(c.extra.disabled, id)
		}
		c.extra.disabledMu.Unlock()
		return nil, fmt.Errorf("edit_worker %s: %w", id, err)
	}
	c.log.Info("worker edited", "worker", id, "disabled", disabled, "by", cl.user.ID)
	if disabled {
		// As upstream: the caller's workspace's sessions on that worker stop.
		c.mu.Lock()
		var sids []string
		for sid, s := range c.sessions {
			if s.workerID == id && s.ws == cl.ws && !isEnded(s.status) {
				sids = append(sids, sid)
			}
		}
		c.mu.Unlock()
		for _, sid := range sids {
			_ = c.stopSession(ctx, sid, false)
		}
	}
	return nil, nil
}

func (c *Controller) saveDisabled(ids []string) error {
	if err := os.MkdirAll(filepath.Dir(c.extra.disabledFile), datadir.DirMode); err != nil {
		return err
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(c.extra.disabledFile, b)
}

// enabledWorkers drops the disabled workers from a candidate list,
// releasing nothing (the candidates share their workspace client).
func (c *Controller) enabledWorkers(list []*workerRef) []*workerRef {
	out := list[:0:0]
	for _, w := range list {
		if !c.workerDisabled(w.id) {
			out = append(out, w)
		}
	}
	return out
}
