// Package apps is the server-apps controller: upstream Hypha's
// `public/server-apps` service (install, start, stop, logs of server apps run
// by server-app-worker services), a minimal `public/artifact-manager` for app
// files, and the HTTP endpoint serving those files.
//
// The controller is an ordinary RPC client of the embedded server, connected
// in-process as the root user in the `public` workspace. Calls to workers in
// other workspaces go through short-lived clients in those workspaces (a
// protected worker only answers callers of its own workspace). See
// docs/apps.md.
package apps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// Host is what the controller needs from the embedded server.
type Host interface {
	// Connect opens an in-process client connection.
	Connect(ctx context.Context, cfg rpc.Config) (*rpc.Client, error)
	// URL is the server's public base URL.
	URL() string
	// Issuer mints and verifies tokens.
	Issuer() *auth.Issuer
	// Permission is a user's effective permission on a workspace.
	Permission(u *auth.UserInfo, ws string) auth.Permission
	// Observe calls fn synchronously for every workspace event.
	Observe(fn func(ws, typ string, data map[string]any)) (off func())
}

// Config configures the controller.
type Config struct {
	// DataDir holds installed apps under DataDir/apps.
	DataDir string
	Logger  *slog.Logger
	// Limits bound installs (zero fields take the defaults).
	Limits Limits
}

// ClientID is the client id of the controller's connection in `public`.
const ClientID = "server-apps-controller"

const (
	defaultStartTimeout = 60 * time.Second
	appTokenLife        = time.Hour
	workerCallTimeout   = 30 * time.Second
	// stopOnCloseTimeout bounds Close's last fetch of the running
	// sessions' logs.
	stopOnCloseTimeout = 5 * time.Second
)

// Controller is a running server-apps controller.
type Controller struct {
	host   Host
	cfg    Config
	log    *slog.Logger
	store  *store
	client *rpc.Client

	baseCtx    context.Context
	cancelBase context.CancelFunc
	wg         sync.WaitGroup
	offObserve func()

	mu         sync.Mutex
	closed     bool
	apps       map[string]map[string]map[string]any // ws → app id → manifest
	installing map[string]bool                      // "<ws>/<app_id>"
	appRev     map[string]string                    // "<ws>/<app_id>" → its revision (store.go)
	staged     map[string]stagedVersion             // "<ws>/<app_id>" → its staged version (staged.go)
	sessions   map[string]*session                  // "<ws>/<client_id>"
	// lost: sessions whose record outlived Limits.EndedSessionTTL while they
	// awaited their worker; not listed, kept (bounded) so that a worker
	// coming back later still has them re-adopted or stopped (restart.go).
	lost    map[string]*session
	waiters map[string]*waiter // by session id

	wsMu      sync.Mutex
	wsClients map[string]*wsClient

	// Persistence of the session records (sessionstore.go, restart.go).
	sessionStore *sessionStore
	dirty        map[string]struct{} // session ids whose record must be written or removed
	persistKick  chan struct{}
	persistStop  chan struct{}
	persistDone  chan struct{}
	persistOff   bool            // set at Close: forgetting sessions then keeps their records
	resumeKick   chan struct{}   // a worker appeared: try re-adoptions and daemon starts
	daemons      map[string]bool // "<ws>/<app_id>" of daemon apps still to start
	startedAt    time.Time

	extra controllerExtra // edit.go, lazy.go, inactivity.go
}

// New loads the installed apps, connects to the server and registers
// `server-apps` and `artifact-manager` in `public`.
func New(ctx context.Context, host Host, cfg Config) (*Controller, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("apps: DataDir is empty")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.Limits = cfg.Limits.withDefaults()
	st, err := openStore(cfg.DataDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	loaded, revs, err := st.load()
	if err != nil {
		return nil, fmt.Errorf("load apps: %w", err)
	}
	sst, err := openSessionStore(cfg.DataDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		host: host, cfg: cfg, log: cfg.Logger, store: st,
		apps: loaded, installing: map[string]bool{}, appRev: revs, staged: st.loadStaged(), sessions: map[string]*session{}, lost: map[string]*session{},
		waiters: map[string]*waiter{}, wsClients: map[string]*wsClient{},
		sessionStore: sst, dirty: map[string]struct{}{}, persistKick: make(chan struct{}, 1),
		persistStop: make(chan struct{}), persistDone: make(chan struct{}), resumeKick: make(chan struct{}, 1), daemons: map[string]bool{},
		startedAt: time.Now(),
	}
	if err := c.initExtra(); err != nil {
		return nil, err
	}
	c.restoreSessions(sst.load())
	for ws, m := range loaded {
		for id, man := range m {
			if man["daemon"] == true {
				c.daemons[ws+"/"+id] = true
			}
		}
	}
	c.baseCtx, c.cancelBase = context.WithCancel(context.Background())
	go c.persist()
	c.kickPersist()
	c.offObserve = host.Observe(c.onEvent)
	cli, err := c.connect(ctx, "public", ClientID)
	if err != nil {
		c.offObserve()
		c.cancelBase()
		c.stopPersist()
		return nil, err
	}
	c.client = cli
	if err := c.register(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.installHostHooks()
	c.wg.Add(1)
	go c.watch()
	c.wg.Add(1)
	go c.watchInactivity()
	c.kickResume()
	n := 0
	for _, m := range loaded {
		n += len(m)
	}
	c.log.Info("server apps ready", "apps", n, "data_dir", cfg.DataDir)
	return c, nil
}

// connect opens an in-process root connection in workspace ws.
func (c *Controller) connect(ctx context.Context, ws, clientID string) (*rpc.Client, error) {
	root := auth.RootUser()
	root.Scope.CurrentWorkspace = ws
	root.CurrentWorkspace = ws
	tok, err := c.host.Issuer().Generate(root, 30*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("apps: token for workspace %s: %w", ws, err)
	}
	cli, err := c.host.Connect(ctx, rpc.Config{Workspace: ws, ClientID: clientID, Token: tok, Logger: c.log})
	if err != nil {
		return nil, fmt.Errorf("apps: connect to workspace %s: %w", ws, err)
	}
	return cli, nil
}

func (c *Controller) register(ctx context.Context) error {
	fns := map[string]any{
		"install":          c.api("install", c.mInstall, installParams),
		"uninstall":        c.api("uninstall", c.mUninstall, uninstallParams),
		"start":            c.api("start", c.mStart, startParams),
		"stop":             c.api("stop", c.mStop, stopParams),
		"list_apps":        c.api("list_apps", c.mListApps, listAppsParams),
		"list_running":     c.api("list_running", c.mListRunning, listRunningParams),
		"list_workers":     c.api("list_workers", c.mListWorkers, listWorkersParams),
		"get_logs":         c.api("get_logs", c.mGetLogs, getLogsParams),
		"get_app_info":     c.api("get_app_info", c.mGetAppInfo, getAppInfoParams),
		"get_session_info": c.api("get_session_info", c.mGetSessionInfo, getSessionInfoParams),
		"commit_app":       c.api("commit_app", c.mCommitApp, commitAppParams),
		"list_files":       c.api("list_files", c.mListFiles, listFilesParams),
		"read_file":        c.api("read_file", c.mReadFile, readFileParams),
		"execute":          c.api("execute", c.mExecute, executeParams),
		"take_screenshot":  c.api("take_screenshot", c.mTakeScreenshot, takeScreenshotParams),
	}
	maps.Copy(fns, c.extraFunctions())    // edit.go
	maps.Copy(fns, c.terminalFunctions()) // terminal.go
	if _, err := c.client.RegisterService(ctx, rpc.Service{
		ID: "server-apps", Name: "Server Apps", Type: "server-apps",
		Description: "Install, start and stop server apps run by server-app-worker services.",
		Config:      rpc.ServiceConfig{Visibility: "public", RequireContext: true},
		Functions:   fns,
	}); err != nil {
		return err
	}
	_, err := c.client.RegisterService(ctx, rpc.Service{
		ID: "artifact-manager", Name: "Artifact Manager", Type: "artifact-manager",
		Description: "Read access to the files of installed server apps.",
		Config:      rpc.ServiceConfig{Visibility: "public", RequireContext: true},
		Functions: map[string]any{
			"get_file":   c.api("get_file", c.mGetFile, getFileParams),
			"list_files": c.api("list_files", c.mArtifactListFiles, artifactListFilesParams),
			"discard":    c.api("discard", c.mDiscard, discardParams),
		},
	})
	return err
}

// opContext bounds an operation by ctx and by the controller's life.
func (c *Controller) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.baseCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Close records every session for the next start (it does not stop them:
// a session on a worker that outlives the server is re-adopted when the
// server comes back, see restart.go), then disconnects the controller's
// clients. The running sessions' last logs are fetched first (bounded),
// so that a session that dies with the server keeps them.
func (c *Controller) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	running := c.runningLocked(func(*session) bool { return true })
	c.mu.Unlock()
	c.closeExtra()

	ctx, cancel := context.WithTimeout(context.Background(), stopOnCloseTimeout)
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for _, s := range running {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.fetchTail(ctx, s)
		}()
	}
	wg.Wait()
	cancel()
	if c.offObserve != nil {
		c.offObserve()
	}
	c.cancelBase()
	c.mu.Lock()
	for id := range c.sessions {
		c.markLocked(id)
	}
	for id := range c.lost {
		c.markLocked(id)
	}
	c.mu.Unlock()
	c.stopPersist()
	c.mu.Lock()
	for id, s := range c.sessions {
		c.dropLocked(id, s)
	}
	for id, s := range c.lost {
		c.forgetLostLocked(id, s, "")
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.wsMu.Lock()
	var clients []*wsClient
	for ws, e := range c.wsClients {
		clients = append(clients, e)
		delete(c.wsClients, ws)
	}
	c.wsMu.Unlock()
	for _, e := range clients {
		<-e.ready
		if e.c != nil {
			e.c.Close()
		}
	}
	if c.client != nil {
		c.client.Close()
	}
	c.wg.Wait()
}

// wsClient is a root connection in one workspace, shared by the
// operations and sessions that need it and closed when the last lets go.
type wsClient struct {
	c     *rpc.Client
	err   error
	refs  int
	ready chan struct{}
}

// acquire returns a client in workspace ws (the controller's own for
// public) and a function releasing it.
func (c *Controller) acquire(ctx context.Context, ws string) (*rpc.Client, func(), error) {
	if ws == "public" {
		return c.client, func() {}, nil
	}
	c.wsMu.Lock()
	e := c.wsClients[ws]
	if e != nil {
		e.refs++
		c.wsMu.Unlock()
		<-e.ready
		if e.err != nil {
			c.release(ws, e)
			return nil, nil, e.err
		}
		return e.c, c.releaser(ws, e), nil
	}
	if c.baseCtx.Err() != nil {
		c.wsMu.Unlock()
		return nil, nil, errors.New("server apps controller is closed")
	}
	e = &wsClient{refs: 1, ready: make(chan struct{})}
	c.wsClients[ws] = e
	c.wsMu.Unlock()
	e.c, e.err = c.connect(ctx, ws, "server-apps-"+idgen.New())
	close(e.ready)
	if e.err != nil {
		c.release(ws, e)
		return nil, nil, e.err
	}
	return e.c, c.releaser(ws, e), nil
}

func (c *Controller) releaser(ws string, e *wsClient) func() {
	var once sync.Once
	return func() { once.Do(func() { c.release(ws, e) }) }
}

func (c *Controller) release(ws string, e *wsClient) {
	c.wsMu.Lock()
	e.refs--
	if e.refs > 0 {
		c.wsMu.Unlock()
		return
	}
	if c.wsClients[ws] == e {
		delete(c.wsClients, ws)
	}
	c.wsMu.Unlock()
	if e.c != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			e.c.Close()
		}()
	}
}

// onEvent observes workspace events in every workspace. It runs on the
// server's goroutine: it only updates state and starts goroutines.
func (c *Controller) onEvent(ws, typ string, data map[string]any) {
	if data == nil {
		return
	}
	id, _ := data["id"].(string)
	if id == "" {
		return
	}
	switch typ {
	case "service_added":
		sid, svc, ok := strings.Cut(id, ":")
		if !ok {
			return
		}
		if data["type"] == workerType {
			// A worker (back after a restart, or new): sessions awaiting
			// it and daemon apps waiting for a worker may go on.
			c.kickResume()
		}
		c.mu.Lock()
		if w := c.waiters[sid]; w != nil {
			w.serviceAdded(svc, data)
		}
		c.mu.Unlock()
	case "client_connected":
		if !strings.Contains(id, "/") {
			id = ws + "/" + id
		}
		c.mu.Lock()
		if w := c.waiters[id]; w != nil {
			w.clientConnected()
		}
		c.mu.Unlock()
	case "client_disconnected":
		if !strings.Contains(id, "/") {
			id = ws + "/" + id
		}
		c.clientGone(id)
	}
}
