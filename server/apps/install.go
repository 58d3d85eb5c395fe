package apps

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

// Installing an app, step by step (install):
//
//  1. readInstall: the arguments, the caller's permission, the input
//     limits, and the manifest prepared (defaults, source file, app id);
//  2. reserveInstall: no concurrent install of the same app, overwrite,
//     the per-workspace app limit;
//  3. compile: the chosen worker's compile step, when it has one;
//  4. finishInstall: startup_config, the stored manifest and files checked;
//  5. storeInstall: stored as the app's staged version (staged.go); unless
//     the install is staged, that version is then verified by a trial start
//     and committed (commit_app's steps); the committed version is not
//     touched until then, and stays when the trial fails.

// installRequest is one install call, read and checked.
type installRequest struct {
	ws, appID, appType string
	manifest           map[string]any
	files              []appFile
	overwrite, stage   bool
	workerID, mode     string
}

func (c *Controller) install(ctx context.Context, cl *caller, a args, pg *progress) (map[string]any, error) {
	pg.send("info", "Parsing app manifest...")
	req, err := c.readInstall(cl, a)
	if err != nil {
		return nil, err
	}
	release, err := c.reserveInstall(req)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := c.compile(ctx, cl, req, pg); err != nil {
		return nil, err
	}
	pg.send("info", "Creating application artifact...")
	data, err := c.finishInstall(cl, req, a)
	if err != nil {
		return nil, err
	}
	return c.storeInstall(ctx, cl, req, a, data, pg)
}

// readInstall reads the install arguments, checks the caller's permission
// and the input limits, and prepares the manifest: defaults, the source
// as the entry point file, and the app id.
func (c *Controller) readInstall(cl *caller, a args) (*installRequest, error) {
	ws, err := a.str("workspace")
	if err != nil {
		return nil, err
	}
	if ws == "" {
		ws = cl.ws
	}
	if err := validWorkspace(ws); err != nil {
		return nil, err
	}
	if cl.user.IsAnonymous {
		return nil, errors.New("Anonymous users cannot install apps")
	}
	if err := c.need(cl, ws, auth.ReadWrite, "install apps"); err != nil {
		return nil, err
	}
	if a.has("artifact_id") {
		return nil, errors.New("install(artifact_id=...) is not supported by this server: pass source/manifest/files")
	}
	manifest, err := a.mapping("manifest")
	if err != nil {
		return nil, err
	}
	legacy, err := a.mapping("config")
	if err != nil {
		return nil, err
	}
	if legacy != nil && manifest != nil {
		return nil, errors.New("Cannot specify both 'config' and 'manifest' parameters. Use 'manifest' (config is deprecated).")
	}
	if legacy != nil {
		manifest = legacy
	}
	req := &installRequest{ws: ws}
	if req.appID, err = a.str("app_id"); err != nil {
		return nil, err
	}
	if req.appID != "" {
		if err := validAppID(req.appID); err != nil {
			return nil, err
		}
	}
	source, err := a.str("source")
	if err != nil {
		return nil, err
	}
	if req.overwrite, err = a.boolean("overwrite", false); err != nil {
		return nil, err
	}
	if req.stage, err = a.boolean("stage", false); err != nil {
		return nil, err
	}
	if req.workerID, err = a.str("worker_id"); err != nil {
		return nil, err
	}
	if req.mode, err = a.str("worker_selection_mode"); err != nil {
		return nil, err
	}
	if req.files, err = normalizeFiles(a["files"]); err != nil {
		return nil, err
	}
	// Refuse additional_kwargs that would rewrite the worker config before
	// any worker is called (checked again after compile and at start).
	for _, v := range []any{a["additional_kwargs"], startupKwargs(manifest)} {
		if ak, ok := v.(map[string]any); ok {
			if err := checkAdditionalKwargs(ak); err != nil {
				return nil, err
			}
		}
	}
	if err := c.checkInstallInput(source, req.files, manifest); err != nil {
		return nil, err
	}
	if req.manifest, err = prepareManifest(manifest, source, &req.files); err != nil {
		return nil, err
	}
	req.appType = req.manifest["type"].(string)
	if req.appID == "" {
		if id, ok := req.manifest["id"].(string); ok && validAppID(id) == nil {
			req.appID = id
		} else {
			req.appID = idgen.Readable()
		}
	}
	return req, nil
}

// checkInstallInput refuses oversized input before any work (the stored
// result is checked again after the worker's compile step).
func (c *Controller) checkInstallInput(source string, files []appFile, manifest map[string]any) error {
	lim := c.cfg.Limits
	inBytes := int64(len(source))
	for _, f := range files {
		inBytes += f.rawSize()
	}
	if err := lim.checkFiles(len(files), inBytes); err != nil {
		return err
	}
	if manifest != nil {
		if mb, err := marshalManifest(manifest); err != nil {
			return err
		} else if err := lim.checkManifest(len(mb)); err != nil {
			return err
		}
	}
	return nil
}

// prepareManifest copies the manifest (or makes the default one), refuses
// the fields only the controller sets, defaults entry_point, and turns the
// source text into the entry point file (first in files) with its hash.
func prepareManifest(manifest map[string]any, source string, files *[]appFile) (map[string]any, error) {
	if manifest != nil {
		manifest = copyMap(manifest)
	} else {
		manifest = map[string]any{"name": "Untitled App", "version": "0.1.0", "type": "hypha"}
	}
	if _, ok := manifest["services"]; ok {
		return nil, errors.New("Services and service_ids fields are not allowed in the app manifest.")
	}
	if _, ok := manifest["service_ids"]; ok {
		return nil, errors.New("Services and service_ids fields are not allowed in the app manifest.")
	}
	if _, ok := manifest["entry_point"]; !ok || manifest["entry_point"] == nil {
		manifest["entry_point"] = "source"
	}
	if source != "" {
		h := sourceHash(source)
		if want, ok := manifest["source_hash"].(string); ok && want != "" && want != h {
			return nil, fmt.Errorf("App source code verification failed (source_hash: %s).", want)
		}
		manifest["source_hash"] = h
		entry, _ := manifest["entry_point"].(string)
		if isURL(source) {
			return nil, errors.New("installing from a URL source is not supported by this server: pass the source text or files")
		}
		cp, err := cleanFilePath(entry)
		if err != nil {
			return nil, fmt.Errorf("entry_point: %w", err)
		}
		*files = append([]appFile{{Path: cp, Name: cp[strings.LastIndexByte(cp, '/')+1:], Content: source, Format: "text"}}, *files...)
	}
	if err := validateManifest(manifest); err != nil {
		return nil, err
	}
	return manifest, nil
}

// reserveInstall marks the app as being installed (edits and commits of it
// wait) and returns the function that ends the reservation.
func (c *Controller) reserveInstall(req *installRequest) (release func(), err error) {
	key := req.ws + "/" + req.appID
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("server apps controller is closed")
	}
	if c.installing[key] {
		return nil, fmt.Errorf("App %s is being installed by another call", req.appID)
	}
	exists := c.appExistsLocked(req.ws, req.appID)
	if exists && !req.overwrite {
		return nil, fmt.Errorf("App %s already exists in workspace %s; pass overwrite=True to replace it", req.appID, req.ws)
	}
	if n := len(c.apps[req.ws]) + c.stagedOnlyLocked(req.ws); !exists && n >= c.cfg.Limits.MaxAppsPerWorkspace {
		return nil, fmt.Errorf("%w: workspace %s already has %d apps, the limit per workspace (max apps per workspace)",
			ErrLimit, req.ws, n)
	}
	c.installing[key] = true
	return func() {
		c.mu.Lock()
		delete(c.installing, key)
		c.mu.Unlock()
	}, nil
}

// compile runs the chosen worker's compile step, when it has one: its
// manifest is merged into req's and its files replace req's.
func (c *Controller) compile(ctx context.Context, cl *caller, req *installRequest, pg *progress) error {
	wk, err := c.pickWorker(ctx, cl, req.ws, req.appType, req.appID, req.workerID, req.mode)
	if err != nil {
		return err
	}
	defer wk.release()
	pg.send("info", fmt.Sprintf("Compiling app using worker %s...", wk.id))
	comp, ok := worker.AsCompiler(wk.w)
	if !ok {
		return nil
	}
	in := worker.CompileRequest{Manifest: req.manifest, Config: worker.CompileConfig{
		ServerURL: c.host.URL(), PublicURL: c.host.URL(), Workspace: req.ws, User: cl.raw,
		ProgressFunc: func(_ context.Context, p worker.Progress) error {
			pg.fromWorker(p)
			return nil
		},
	}}
	for _, f := range req.files {
		in.Files = append(in.Files, worker.File{Path: f.Path, Name: f.Name, Content: f.Content, Format: f.Format})
	}
	wctx := worker.WithCaller(ctx, cl.workerCaller(req.ws))
	res, err := comp.Compile(wctx, in)
	if err != nil {
		return fmt.Errorf("Worker compilation failed: %v", err)
	}
	for k, v := range res.Manifest {
		req.manifest[k] = v
	}
	files := make([]any, len(res.Files))
	for i, f := range res.Files {
		files[i] = f.ToMap()
	}
	if req.files, err = normalizeFiles(files); err != nil {
		return fmt.Errorf("Worker compilation failed: %v", err)
	}
	return nil
}

// finishInstall completes the manifest (id, startup context and config)
// and checks it and the files as they will be stored: limits, decoding,
// the file tree and the entry point. It returns the files' bytes.
func (c *Controller) finishInstall(cl *caller, req *installRequest, a args) (map[string][]byte, error) {
	manifest, files, lim := req.manifest, req.files, c.cfg.Limits
	manifest["id"] = req.appID
	manifest["startup_context"] = cl.contextMap(req.ws)
	sc, _ := manifest["startup_config"].(map[string]any)
	sc = copyMap(sc)
	for _, k := range []string{"timeout", "wait_for_service", "stop_after_inactive", "additional_kwargs"} {
		if v, ok := a[k]; ok && v != nil {
			if sc == nil {
				sc = map[string]any{}
			}
			sc[k] = v
		}
	}
	if sc != nil {
		if v := sc["additional_kwargs"]; v != nil {
			ak, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("additional_kwargs must be a dict, got %T", v)
			}
			if err := checkAdditionalKwargs(ak); err != nil {
				return nil, err
			}
		}
		manifest["startup_config"] = sc
	}
	delete(manifest, "services")
	delete(manifest, "_rtype")
	manifest["service_ids"] = []any{}
	if err := validateManifest(manifest); err != nil {
		return nil, err
	}
	if err := lim.checkFiles(len(files), 0); err != nil {
		return nil, err
	}
	data := make(map[string][]byte, len(files))
	var total int64
	for _, f := range files {
		b, err := f.decode()
		if err != nil {
			return nil, err
		}
		if old, dup := data[f.Path]; dup {
			total -= int64(len(old))
		}
		total += int64(len(b))
		if err := lim.checkFiles(len(files), total); err != nil {
			return nil, err
		}
		data[f.Path] = b
	}
	if mb, err := marshalManifest(manifest); err != nil {
		return nil, err
	} else if err := lim.checkManifest(len(mb)); err != nil {
		return nil, err
	}
	if err := checkTree(data); err != nil {
		return nil, err
	}
	entry, _ := manifest["entry_point"].(string)
	if entry == "" {
		return nil, errors.New("invalid manifest: entry_point is empty")
	}
	if !isURL(entry) {
		if _, err := cleanFilePath(entry); err != nil {
			return nil, fmt.Errorf("invalid manifest: entry_point: %w", err)
		}
		if _, ok := data[entry]; !ok {
			return nil, fmt.Errorf("invalid manifest: the entry point %q is not among the app's files", entry)
		}
	}
	return data, nil
}

// storeInstall stores the app as its staged version (replacing the staged
// version it may have, as upstream) and, unless the install is staged,
// verifies and commits it (commitStaged).
func (c *Controller) storeInstall(ctx context.Context, cl *caller, req *installRequest, a args, data map[string][]byte, pg *progress) (map[string]any, error) {
	ws, appID := req.ws, req.appID
	rev := newRevision()
	if err := c.store.putStaged(ws, appID, rev, req.manifest, data); err != nil {
		return nil, fmt.Errorf("store app %s: %w", appID, err)
	}
	c.setStaged(ws, appID, copyMap(req.manifest), rev)
	for _, f := range req.files {
		pg.send("info", "Uploading file "+f.Path+"...")
	}
	m := c.stagedManifest(ws, appID)
	if !req.stage {
		pg.send("info", "Committing application artifact...")
		var err error
		if m, err = c.commitStaged(ctx, cl, ws, appID, a, pg); err != nil {
			return nil, err
		}
	}
	pg.send("success", "Installation complete!")
	c.log.Info("app installed", "workspace", ws, "app_id", appID, "type", req.appType, "staged", req.stage)
	return m, nil
}
