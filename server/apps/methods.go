package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker"
)

func readableID() string { return auth.ReadableID() }

// childToken mints a token for a child of the caller (as generate_token
// does): a new user id whose parent is the caller, limited to ws.
func (c *Controller) childToken(cl *caller, ws string, perm auth.Permission, clientID string, life time.Duration) (string, error) {
	child := cl.user.Clone()
	if child.Parent == "" {
		child.Parent = cl.user.ID
	}
	child.ID = auth.ReadableID()
	child.Scope = auth.Scope{CurrentWorkspace: ws, Workspaces: map[string]auth.Permission{ws: perm}, ClientID: clientID}
	child.CurrentWorkspace = ws
	child.ExpiresAt = 0
	// The lifetime derives from user input (start's timeout, get_file_url's
	// expires_in): never longer than the server's token lifetime cap.
	return c.host.Issuer().Generate(child, c.host.Issuer().ClampLifetime(life))
}

// appToken is the app client's token: read_write on ws, only for client id cid.
func (c *Controller) appToken(cl *caller, ws, cid string, timeout time.Duration) (string, error) {
	tok, err := c.childToken(cl, ws, auth.ReadWrite, cid, max(appTokenLife, 2*timeout))
	if err != nil {
		return "", fmt.Errorf("generate the app token: %w", err)
	}
	return tok, nil
}

// appManifest returns a copy of an installed app's manifest.
func (c *Controller) appManifest(ws, id string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyMap(c.apps[ws][id])
}

// resolveApp splits "<ws>/<app_id>" or "<app_id>" (the caller's workspace)
// and checks the caller's permission on that workspace.
func (c *Controller) resolveApp(cl *caller, appID string, p auth.Permission, what string) (ws, id string, err error) {
	ws, id = cl.ws, appID
	if w, a, ok := strings.Cut(appID, "/"); ok {
		ws, id = w, a
	}
	if err := validAppID(id); err != nil {
		return "", "", err
	}
	if err := validWorkspace(ws); err != nil {
		return "", "", err
	}
	if err := c.need(cl, ws, p, what); err != nil {
		return "", "", err
	}
	return ws, id, nil
}

var installParams = []string{
	"source", "manifest", "app_id", "config", "files", "stop_after_inactive", "wait_for_service",
	"workspace", "overwrite", "timeout", "version", "stage", "progress_callback", "additional_kwargs",
	"worker_id", "worker_selection_mode", "artifact_id",
}

func (c *Controller) mInstall(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("install", call, installParams...)
	if err != nil {
		return nil, err
	}
	cb, err := a.fn("progress_callback")
	if err != nil {
		return nil, err
	}
	pg := c.newProgress(cb)
	defer pg.close()
	m, err := c.install(ctx, cl, a, pg)
	if err != nil {
		pg.send("error", err.Error())
		return nil, err
	}
	return m, nil
}

// startupKwargs is manifest.startup_config.additional_kwargs, or nil.
func startupKwargs(manifest map[string]any) any {
	sc, _ := manifest["startup_config"].(map[string]any)
	return sc["additional_kwargs"]
}

// checkTree refuses file sets where one path is a directory of another.
func checkTree(data map[string][]byte) error {
	for p := range data {
		for i := range len(p) {
			if p[i] == '/' {
				if _, clash := data[p[:i]]; clash {
					return fmt.Errorf("invalid files: %s is both a file and a directory", p[:i])
				}
			}
		}
	}
	return nil
}

// setApp records an app's manifest and revision (nil m: the app is gone).
// A new revision (new files or manifest) means that running sessions
// started from the previous ones are no longer returned by start's
// instance reuse; restoring the previous version restores its revision.
func (c *Controller) setApp(ws, id string, m map[string]any, rev string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.appRev[ws+"/"+id] = rev
	if m == nil {
		delete(c.appRev, ws+"/"+id)
		delete(c.apps[ws], id)
		if len(c.apps[ws]) == 0 {
			delete(c.apps, ws)
		}
		return
	}
	if c.apps[ws] == nil {
		c.apps[ws] = map[string]map[string]any{}
	}
	c.apps[ws][id] = m
}

// verify starts the app once and stops it (upstream's commit step).
func (c *Controller) verify(ctx context.Context, cl *caller, ws, appID string, a args, pg *progress) error {
	o, err := startOptionsFrom(a, pg)
	if err != nil {
		return err
	}
	o.appID = appID
	o.fresh = true
	o.stage = true
	info, err := c.startApp(ctx, cl, ws, o)
	if err != nil {
		return err
	}
	id, _ := info["id"].(string)
	if err := c.stopSession(ctx, id, true); err != nil && !errors.Is(err, errStopPending) {
		return err
	}
	pg.send("success", "Application tested successfully!")
	return nil
}

// startOptionsFrom reads the startup arguments shared by install, start and
// commit_app.
func startOptionsFrom(a args, pg *progress) (startOptions, error) {
	o := startOptions{progress: pg}
	var err error
	if o.timeout, o.hasTimeout, err = a.seconds("timeout"); err != nil {
		return o, err
	}
	if o.hasTimeout && o.timeout == 0 {
		o.hasTimeout = false
	}
	o.waitForService = a["wait_for_service"]
	if o.additionalKwargs, err = a.mapping("additional_kwargs"); err != nil {
		return o, err
	}
	if o.workerID, err = a.str("worker_id"); err != nil {
		return o, err
	}
	if o.selectionMode, err = a.str("worker_selection_mode"); err != nil {
		return o, err
	}
	if _, err = a.integer("stop_after_inactive", 0); err != nil {
		return o, err
	}
	o.stopAfterInactive = a["stop_after_inactive"]
	if o.version, err = a.str("version"); err != nil {
		return o, err
	}
	if o.stage, err = a.boolean("stage", false); err != nil {
		return o, err
	}
	return o, nil
}

// startParams are the parameters of start, in order (schema and binding).
var startParams = []string{"app_id", "timeout", "version", "wait_for_service", "stop_after_inactive", "stage", "progress_callback", "additional_kwargs", "worker_id", "worker_selection_mode"}

func (c *Controller) mStart(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("start", call, startParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	if appID == "" {
		return nil, errors.New("start: app_id is required")
	}
	cb, err := a.fn("progress_callback")
	if err != nil {
		return nil, err
	}
	pg := c.newProgress(cb)
	defer pg.close()
	o, err := startOptionsFrom(a, pg)
	if err != nil {
		return nil, err
	}
	o.appID = appID
	return c.startApp(ctx, cl, cl.ws, o)
}

// commitAppParams are the parameters of commit_app, in order (schema and binding).
var commitAppParams = []string{"app_id", "timeout", "version", "stop_after_inactive", "wait_for_service", "additional_kwargs", "progress_callback", "worker_id"}

// mCommitApp verifies the app's staged version with a trial start and
// makes it current (staged.go); a failed trial discards it, as upstream.
func (c *Controller) mCommitApp(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("commit_app", call, commitAppParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	ws, id, err := c.resolveApp(cl, appID, auth.ReadWrite, "commit apps")
	if err != nil {
		return nil, err
	}
	cb, err := a.fn("progress_callback")
	if err != nil {
		return nil, err
	}
	if _, err := startOptionsFrom(a, nil); err != nil {
		return nil, err
	}
	release, err := c.reserveCommit(ws, id)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := c.mergeStartupConfig(ws, id, a); err != nil {
		return nil, err
	}
	pg := c.newProgress(cb)
	defer pg.close()
	m, err := c.commitStaged(ctx, cl, ws, id, a, pg)
	if err != nil {
		pg.send("error", err.Error())
		return nil, err
	}
	return m, nil
}

// stopParams are the parameters of stop, in order (schema and binding).
var stopParams = []string{"session_id", "raise_exception"}

func (c *Controller) mStop(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("stop", call, stopParams...)
	if err != nil {
		return nil, err
	}
	id, err := a.str("session_id")
	if err != nil {
		return nil, err
	}
	raise, err := a.boolean("raise_exception", true)
	if err != nil {
		return nil, err
	}
	if _, err := c.sessionWorkspace(cl, id, auth.ReadWrite, "stop app "+id); err != nil {
		return nil, err
	}
	err = c.stopSession(ctx, id, raise)
	if errors.Is(err, errStopPending) {
		// The session's worker is away: the call succeeds and says so (a
		// plain stop returns None, as upstream).
		return map[string]any{"id": id, "stop_pending": true, "detail": err.Error()}, nil
	}
	return nil, err
}

// getLogsParams are the parameters of get_logs, in order (schema and binding).
var getLogsParams = []string{"session_id", "type", "offset", "limit", "wait", "follower"}

func (c *Controller) mGetLogs(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("get_logs", call, getLogsParams...)
	if err != nil {
		return nil, err
	}
	id, err := a.str("session_id")
	if err != nil {
		return nil, err
	}
	typ := a["type"]
	if _, err := a.str("type"); err != nil {
		return nil, err
	}
	offset, err := a.integer("offset", 0)
	if err != nil {
		return nil, err
	}
	var limit any
	if a.has("limit") {
		l, err := a.integer("limit", 0)
		if err != nil {
			return nil, err
		}
		if l < 0 {
			return nil, fmt.Errorf("get_logs: limit must be a non-negative integer (0: no limit), got %d", l)
		}
		limit = l
	}
	// wait (a long poll) and follower (back-pressure) are only passed on
	// when given (LogQuery.Kwargs), so that a worker that does not know
	// them still serves plain reads.
	if a.has("wait") {
		switch v := a["wait"].(type) {
		case int64, float64, uint64:
		default:
			return nil, fmt.Errorf("argument wait must be a number of seconds, got %T", v)
		}
	}
	if _, err := a.str("follower"); err != nil {
		return nil, err
	}
	q, err := worker.ParseLogQuery(typ, offset, limit)
	if err == nil {
		q, err = worker.ParseLogFollow(q, a["wait"], a["follower"])
	}
	if err != nil {
		return nil, fmt.Errorf("get_logs: %w", err)
	}
	if _, err := c.sessionWorkspace(cl, id, auth.Read, "get logs of "+id); err != nil {
		return nil, err
	}
	if q.Follower != "" {
		// A follower holds the app back while it reads: only someone who
		// could stop the session may do that.
		if _, err := c.sessionWorkspace(cl, id, auth.ReadWrite, "hold back the output of "+id+" (get_logs follower)"); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	s := c.sessions[id]
	var tail *logTail
	var gone, canFollow bool
	if s != nil {
		tail, gone, canFollow = s.tail, s.workerGone, s.logFollow
	}
	c.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("Server app instance not found: %s", id)
	}
	// A session whose worker disconnected is answered from the logs the
	// controller kept; so is one whose worker fails to answer.
	if gone {
		return tail.page(typ, offset, limit), nil
	}
	lctx, cancel := context.WithTimeout(ctx, workerCallTimeout)
	defer cancel()
	var page worker.LogPage
	if (q.Wait > 0 || q.Follower != "") && !canFollow {
		page, err = c.readWorkerLogs(s.workerCtx(lctx), s, q)
	} else {
		page, err = s.worker.GetLogs(s.workerCtx(lctx), id, q)
	}
	if err != nil {
		// The cache answers for a worker that cannot be reached, not for
		// one that refused the request (bad arguments, permission): that
		// refusal is the truth the caller must see.
		var re *rpc.RemoteError
		if tail != nil && !errors.As(err, &re) {
			return tail.page(typ, offset, limit), nil
		}
		return nil, err
	}
	if typ == nil && offset == 0 && limit == nil {
		c.keepTail(s, page) // a whole log: its end is the freshest tail
	}
	return page.ToMap(), nil
}

// listRunningParams are the parameters of list_running, in order (schema and binding).
var listRunningParams = []string{}

func (c *Controller) mListRunning(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	if _, err := bind("list_running", call, listRunningParams...); err != nil {
		return nil, err
	}
	if err := c.need(cl, cl.ws, auth.Read, "list running apps"); err != nil {
		return nil, err
	}
	// Ask the workers first whether the running sessions still run, so
	// that an app that ended is not listed.
	c.mu.Lock()
	running := c.runningLocked(func(s *session) bool { return s.ws == cl.ws })
	c.mu.Unlock()
	c.refreshAll(ctx, running, false)
	c.mu.Lock()
	var recs []map[string]any
	for _, s := range c.sessions {
		if s.ws == cl.ws && !isEnded(s.status) {
			recs = append(recs, s.record())
		}
	}
	c.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool {
		return fmt.Sprint(recs[i]["created_at"], recs[i]["id"]) < fmt.Sprint(recs[j]["created_at"], recs[j]["id"])
	})
	out := make([]any, len(recs))
	for i, r := range recs {
		out[i] = r
	}
	return out, nil
}

// getSessionInfoParams are the parameters of get_session_info, in order (schema and binding).
var getSessionInfoParams = []string{"session_id"}

func (c *Controller) mGetSessionInfo(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("get_session_info", call, getSessionInfoParams...)
	if err != nil {
		return nil, err
	}
	id, err := a.str("session_id")
	if err != nil {
		return nil, err
	}
	if _, err := c.sessionWorkspace(cl, id, auth.Read, "get session info of "+id); err != nil {
		return nil, err
	}
	c.mu.Lock()
	s := c.sessions[id]
	c.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("Session not found: %s", id)
	}
	// The worker knows when an app ended by itself (a script that
	// completed or crashed, a process killed outside the controller); its
	// answer is recorded first.
	c.refresh(ctx, s, false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.record(), nil
}

// listAppsParams are the parameters of list_apps, in order (schema and binding).
var listAppsParams = []string{}

// mListApps lists the committed apps of the caller's workspace and, marked
// "staged": true, those that have only a staged version.
func (c *Controller) mListApps(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	if _, err := bind("list_apps", call, listAppsParams...); err != nil {
		return nil, err
	}
	if err := c.need(cl, cl.ws, auth.Read, "list apps"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	byID := map[string]map[string]any{}
	for id, m := range c.apps[cl.ws] {
		byID[id] = m
	}
	staged := map[string]bool{}
	for key, v := range c.staged {
		if ws, id, _ := strings.Cut(key, "/"); ws == cl.ws && byID[id] == nil {
			byID[id], staged[id] = v.manifest, true
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		m := copyMap(byID[id])
		m["id"] = id
		if staged[id] {
			m["staged"] = true
		}
		out = append(out, m)
	}
	c.mu.Unlock()
	return out, nil
}

// getAppInfoParams are the parameters of get_app_info, in order (schema and binding).
var getAppInfoParams = []string{"app_id", "version", "stage"}

func (c *Controller) mGetAppInfo(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("get_app_info", call, getAppInfoParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	ws, id, err := c.resolveApp(cl, appID, auth.Read, "read apps")
	if err != nil {
		return nil, fmt.Errorf("Failed to get app info for %s: %w", appID, err)
	}
	stage, err := a.boolean("stage", false)
	if err != nil {
		return nil, err
	}
	stage, ok := c.readVersion(ws, id, stage)
	m := c.versionManifest(ws, id, stage)
	if !ok || m == nil {
		return nil, fmt.Errorf("Failed to get app info for %s: %w", appID, c.missingVersion(ws, id, stage))
	}
	m["id"] = id
	files, _ := c.store.list(ws, id, stage, "")
	fl := make([]any, len(files))
	for i, f := range files {
		fl[i] = f.toMap()
	}
	info := map[string]any{
		"id": ws + "/" + id, "alias": id, "workspace": ws, "type": "application",
		"manifest": m, "files": fl,
	}
	if stage {
		info["staged"] = true
	}
	return info, nil
}

// uninstallParams are the parameters of uninstall, in order (schema and binding).
var uninstallParams = []string{"app_id"}

func (c *Controller) mUninstall(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("uninstall", call, uninstallParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	ws, id, err := c.resolveApp(cl, appID, auth.ReadWrite, "uninstall apps")
	if err != nil {
		return nil, err
	}
	return nil, c.uninstall(ctx, cl, ws, id)
}

// uninstall removes an app, or, as upstream, only its staged version when it
// has one (the committed version, if any, stays; a second uninstall removes
// it).
func (c *Controller) uninstall(ctx context.Context, _ *caller, ws, id string) error {
	key := ws + "/" + id
	if c.stagedManifest(ws, id) != nil {
		return c.discard(ctx, ws, id)
	}
	c.mu.Lock()
	if c.apps[ws][id] == nil {
		c.mu.Unlock()
		return fmt.Errorf("App not found: %s (workspace %s)", id, ws)
	}
	var sessions []string
	for _, m := range []map[string]*session{c.sessions, c.lost} {
		// Lost ones too: stopped when their worker comes back.
		for sid, s := range m {
			if s.ws == ws && s.appID == id {
				sessions = append(sessions, sid)
			}
		}
	}
	c.mu.Unlock()
	if err := c.store.remove(ws, id); err != nil {
		return fmt.Errorf("uninstall %s: %w", id, err)
	}
	c.mu.Lock()
	delete(c.apps[ws], id)
	delete(c.appRev, key)
	if len(c.apps[ws]) == 0 {
		delete(c.apps, ws)
	}
	c.mu.Unlock()
	for _, sid := range sessions {
		_ = c.stopSession(ctx, sid, false)
	}
	c.log.Info("app uninstalled", "app", key)
	return nil
}

// listFilesParams are the parameters of list_files, in order (schema and binding).
var listFilesParams = []string{"app_id", "dir_path"}

func (c *Controller) mListFiles(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("list_files", call, listFilesParams...)
	if err != nil {
		return nil, err
	}
	appID, err := a.str("app_id")
	if err != nil {
		return nil, err
	}
	dir, err := a.str("dir_path")
	if err != nil {
		return nil, err
	}
	return c.listFiles(cl, appID, dir, false)
}

// listFiles lists a directory of the committed or the staged version.
func (c *Controller) listFiles(cl *caller, appID, dir string, stage bool) (any, error) {
	ws, id, err := c.resolveApp(cl, appID, auth.Read, "read apps")
	if err != nil {
		return nil, err
	}
	stage, ok := c.readVersion(ws, id, stage)
	if !ok {
		return nil, c.missingVersion(ws, id, stage)
	}
	dir = strings.Trim(dir, "/")
	if dir != "" {
		if _, err := cleanFilePath(dir); err != nil {
			return nil, err
		}
	}
	list, err := c.store.list(ws, id, stage, dir)
	if err != nil {
		return nil, fmt.Errorf("list files of %s: directory %q not found", id, dir)
	}
	out := make([]any, len(list))
	for i, e := range list {
		out[i] = e.toMap()
	}
	return out, nil
}

// readFileParams are the parameters of read_file, in order (schema and binding).
var readFileParams = []string{"app_id", "file_path", "format", "stage"}

func (c *Controller) mReadFile(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("read_file", call, readFileParams...)
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
	format, err := a.str("format")
	if err != nil {
		return nil, err
	}
	stage, err := a.boolean("stage", false)
	if err != nil {
		return nil, err
	}
	ws, id, err := c.resolveApp(cl, appID, auth.Read, "read apps")
	if err != nil {
		return nil, err
	}
	stage, ok := c.readVersion(ws, id, stage)
	if !ok {
		return nil, c.missingVersion(ws, id, stage)
	}
	if _, err := cleanFilePath(p); err != nil {
		return nil, err
	}
	root, err := c.store.openRoot(ws, id, stage)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(p)
	if err != nil {
		return nil, fmt.Errorf("File not found: %s", p)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, err
	}
	switch format {
	case "", "text":
		return string(b), nil
	case "binary":
		return b, nil
	case "json":
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("file %s is not JSON: %w", p, err)
		}
		return fromJSONFloat(v), nil
	}
	return nil, fmt.Errorf("invalid format %q: text, json or binary", format)
}

// fromJSONFloat turns integral float64s from encoding/json into int64.
func fromJSONFloat(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSONFloat(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromJSONFloat(e)
		}
	case float64:
		if x == float64(int64(x)) && x < 1<<53 && x > -(1<<53) {
			return int64(x)
		}
	}
	return v
}
