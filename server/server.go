// Package server is the embedded Hypha-compatible server: the /ws endpoint,
// the message router, workspaces, the workspace manager and HTTP endpoints.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hypha-go/hypha/internal/datadir"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/internal/netpoll"
	"github.com/hypha-go/hypha/internal/rpcengine"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/server/mcpserve"
	"github.com/hypha-go/hypha/server/registry"
)

// Version is reported as hypha_version.
const Version = "0.21.135-go"

// Config configures a Server. Zero values give upstream's defaults.
type Config struct {
	// PublicBaseURL is the URL clients use (http://host:port); set from the
	// listener when empty.
	PublicBaseURL string
	// JWTSecret signs tokens; random when empty (tokens then die with the server).
	JWTSecret string
	// RootToken, when set, authenticates as the root user.
	RootToken string
	Logger    *slog.Logger

	// AuthTimeout bounds the wait for the first message (default 5 s).
	AuthTimeout time.Duration
	// IdleTimeout closes connections that sent nothing (default 600 s).
	IdleTimeout time.Duration
	// MaxMessageSize bounds one incoming frame (default 16 MiB).
	MaxMessageSize int64
	// MsgRateLimit and MsgBurstLimit are the per-connection token bucket on
	// binary frames (defaults 2000/s and 20000: generous, as the issue asks).
	MsgRateLimit  float64
	MsgBurstLimit float64
	// PollLoops is the number of poller loops reading the websocket
	// connections over plain TCP (Linux; polled.go): 0 for one per
	// processor up to 4, negative for a goroutine per connection instead.
	PollLoops int
	// Pprof serves Go's profiler under /debug/pprof/ (for measurements;
	// never expose it publicly).
	Pprof bool
	// MaxServicesPerClient bounds registrations per client (default 1000).
	MaxServicesPerClient int
	// MaxServiceInfoBytes bounds the description of one registered service
	// (its encoded info: functions, docs, config; default 256 KiB).
	MaxServiceInfoBytes int
	// ReconnectionTokenLife is the lifetime of reconnection tokens (default 2 days).
	ReconnectionTokenLife time.Duration
	// MaxTokenLifetime caps expires_in of generate_token and the lifetime
	// of tokens the apps controller mints for users (default 30 days).
	// The server's internal tokens are not capped (see docs/security.md).
	MaxTokenLifetime time.Duration
	// MaxRevokedTokens bounds the live entries of the revocation list
	// (default 100000); root's revocations are always recorded.
	MaxRevokedTokens int
	// MaxWorkspacesPerUser bounds how many workspaces one user (the first
	// token of its chain) may create (default 100, as upstream's
	// HYPHA_MAX_WORKSPACES_PER_USER); root is not bounded.
	MaxWorkspacesPerUser int

	// Chunks bounds the chunked messages (frames over 257 KiB) being
	// reassembled by the manager and the server's own clients, per sending
	// client: see rpc.ChunkLimits (defaults: 32 messages and 256 MiB per
	// client, 1 GiB in all, dropped after 2 min without a chunk).
	Chunks rpc.ChunkLimits

	// HTTPReadHeaderTimeout bounds the reading of a request's headers,
	// including a websocket upgrade (default 10 s).
	HTTPReadHeaderTimeout time.Duration
	// HTTPReadTimeout bounds the reading of a whole request, body included
	// (default 60 s); a websocket is exempt once upgraded.
	HTTPReadTimeout time.Duration
	// HTTPIdleTimeout closes kept-alive HTTP connections idle that long
	// (default 120 s).
	HTTPIdleTimeout time.Duration
	// MaxHTTPBodyBytes bounds a request body (default 16 MiB).
	MaxHTTPBodyBytes int64
	// MaxMalformedFrames closes a connection after that many frames the
	// server cannot route or decode (default 100; negative: never). They are
	// logged once per 10 s per connection, with the count of the others.
	MaxMalformedFrames int
	// MaxPendingConnections bounds connections accepted but not yet
	// authenticated (websocket upgraded, first message not yet received;
	// default 1000): more are refused with 1013 "try again later".
	MaxPendingConnections int
	// MaxSubscriptionsPerClient bounds the event types one client subscribes
	// to (default 256).
	MaxSubscriptionsPerClient int
	// MaxItemsPerWorkspace bounds the entries of each per-workspace store of
	// the manager: environment variables, service types, logged events, and
	// each user's bookmarks (default 1000; the event log drops its oldest).
	MaxItemsPerWorkspace int
	// MaxItemBytes bounds one such entry, encoded (default 64 KiB).
	MaxItemBytes int

	// MaxMCPSessionsPerCaller bounds the open MCP sessions of one caller
	// (one user; anonymous callers per network address) on the MCP endpoint
	// /{workspace}/mcp/{service_id}/mcp (default 16).
	MaxMCPSessionsPerCaller int
	// MCPSessionIdleTimeout closes an MCP session without a request for
	// that long (default 10 min).
	MCPSessionIdleTimeout time.Duration

	// Login configures the login service public/hypha-login and its page
	// (login.go, login_page.go).
	Login LoginConfig
	// MaxRPCStreamsPerCaller bounds the open HTTP RPC streams (GET /rpc,
	// hypha-rpc's transport="http") of one caller: one user, or for
	// anonymous callers one network address (default 64).
	MaxRPCStreamsPerCaller int
	// MaxAppRequestsPerCaller bounds the requests one caller (one user;
	// anonymous callers per network address) has in flight on the app
	// routes /{workspace}/apps/{service_id}/... (default 32; asgi.go).
	MaxAppRequestsPerCaller int
	// AppResponseTimeout bounds how long an app service may stay silent:
	// before it starts its response (then 504) and between two of its
	// events or writes to a slow client (then the connection is cut)
	// (default 2 min).
	AppResponseTimeout time.Duration

	// Apps builds the apps controller (public/server-apps,
	// public/artifact-manager, /{ws}/artifacts/{app}/files/...) when DataDir
	// is set: the host passes server/apps.ForServer(limits). Nil means no
	// apps controller. See extensions.go.
	Apps AppsHook

	// DataDir, when set, stores workspace records under DataDir/workspaces,
	// revoked tokens in DataDir/tokens/revoked.jsonl and (through Apps)
	// installed apps under DataDir/apps. See wsstore.go and docs/apps.md.
	// Without it, workspaces and revocations live in memory only and there
	// are no apps.
	// The folder and everything in it are made private to the server's user
	// (folders 0700, files 0600; see internal/datadir).
	DataDir string
}

// Server is a running embedded server. Create it with New, serve its Handler
// (or call Serve), and Close it.
type Server struct {
	cfg       Config
	log       *slog.Logger
	issuer    *auth.Issuer
	serverID  string
	managerID string
	registry  *registry.Registry
	router    *router
	manager   rpcengine.Peer
	work      *workspaces
	mux       *http.ServeMux

	mu        sync.Mutex
	baseURL   string
	addr      string
	closed    bool
	closeOnce sync.Once
	done      chan struct{}
	ctx       context.Context // cancelled when Close begins
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	httpSrv   *http.Server

	// pending counts websocket connections waiting for their first message.
	pending atomic.Int64
	revoked *auth.Revocations // revoked tokens (manager_extra.go)

	ext   extensions        // the apps controller and event observers (extensions.go)
	hooks appHooks          // apps controller hooks (apphooks.go)
	extra extraState        // manager_extra.go
	mcp   *mcpserve.Handler // the MCP endpoint (mcp.go)

	poller      *netpoll.Poller // reads websocket connections (polled.go)
	loopBatches []peerBatch     // one per poller loop: its peers to flush
	// stalledFrames counts the frames a poller loop handed to a goroutine
	// because their peer's queue was full (polled.go).
	stalledFrames atomic.Int64

	loginSvc *loginService // public/hypha-login (login.go)
	streams  rpcStreams    // the HTTP streaming transport (httprpc.go)
	appLimit callerCounts  // app requests in flight per caller (asgi.go)
}

// New creates a server.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 5 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 600 * time.Second
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 16 << 20
	}
	if cfg.MsgRateLimit <= 0 {
		cfg.MsgRateLimit = 2000
	}
	if cfg.MsgBurstLimit <= 0 {
		cfg.MsgBurstLimit = 20000
	}
	if cfg.MaxServicesPerClient <= 0 {
		cfg.MaxServicesPerClient = 1000
	}
	if cfg.MaxServiceInfoBytes <= 0 {
		cfg.MaxServiceInfoBytes = 256 << 10
	}
	if cfg.HTTPReadHeaderTimeout <= 0 {
		cfg.HTTPReadHeaderTimeout = 10 * time.Second
	}
	if cfg.HTTPReadTimeout <= 0 {
		cfg.HTTPReadTimeout = 60 * time.Second
	}
	if cfg.HTTPIdleTimeout <= 0 {
		cfg.HTTPIdleTimeout = 120 * time.Second
	}
	if cfg.MaxHTTPBodyBytes <= 0 {
		cfg.MaxHTTPBodyBytes = 16 << 20
	}
	if cfg.MaxAppRequestsPerCaller <= 0 {
		cfg.MaxAppRequestsPerCaller = DefaultMaxAppRequestsPerCaller
	}
	if cfg.AppResponseTimeout <= 0 {
		cfg.AppResponseTimeout = DefaultAppResponseTimeout
	}
	if cfg.MaxMalformedFrames == 0 {
		cfg.MaxMalformedFrames = 100
	}
	if cfg.MaxPendingConnections <= 0 {
		cfg.MaxPendingConnections = 1000
	}
	if cfg.MaxSubscriptionsPerClient <= 0 {
		cfg.MaxSubscriptionsPerClient = 256
	}
	if cfg.MaxItemsPerWorkspace <= 0 {
		cfg.MaxItemsPerWorkspace = 1000
	}
	if cfg.MaxItemBytes <= 0 {
		cfg.MaxItemBytes = 64 << 10
	}
	if cfg.ReconnectionTokenLife <= 0 {
		cfg.ReconnectionTokenLife = 48 * time.Hour
	}
	perClient := cfg.Chunks.PerSenderBytes
	if perClient <= 0 {
		perClient = rpc.DefaultChunkedBytesPerSender
	}
	if t := cfg.Chunks.TotalBytes; t > 0 && t < 2*perClient {
		return nil, fmt.Errorf("server: the total limit of chunked bytes (%d) must be at least twice the per-client limit (%d), so that no client reaches it alone",
			t, perClient)
	}
	if cfg.PollLoops > maxPollLoops {
		return nil, fmt.Errorf("server: %d poll loops is more than %d (--poll-loops)", cfg.PollLoops, maxPollLoops)
	}
	if cfg.MaxTokenLifetime <= 0 {
		cfg.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if cfg.MaxRevokedTokens <= 0 {
		cfg.MaxRevokedTokens = 100000
	}
	if cfg.MaxRPCStreamsPerCaller <= 0 {
		cfg.MaxRPCStreamsPerCaller = DefaultMaxRPCStreamsPerCaller
	}
	if cfg.MaxWorkspacesPerUser <= 0 {
		cfg.MaxWorkspacesPerUser = 100
	}
	if cfg.DataDir != "" {
		// Private before anything is read or written there (manifests
		// hold env secrets); an older, looser data dir is tightened.
		if err := datadir.Prepare(cfg.DataDir, cfg.Logger); err != nil {
			return nil, err
		}
	}
	if cfg.JWTSecret == "" {
		cfg.Logger.Warn("no JWT secret set (--jwt-secret / HYPHA_JWT_SECRET): using a random one, tokens will not survive a restart")
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		issuer:   auth.NewIssuer(cfg.JWTSecret, cfg.RootToken),
		serverID: idgen.New(),
		registry: registry.New(),
		done:     make(chan struct{}),
		baseURL:  strings.TrimSuffix(cfg.PublicBaseURL, "/"),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.managerID = "manager-" + s.serverID
	s.extra.init()
	if err := s.openState(); err != nil {
		s.cancel()
		return nil, err
	}
	s.router = newRouter(s)
	s.manager = s.newManagerPeer()
	s.startPoller() // polled.go
	s.mux = http.NewServeMux()
	s.routes()
	// The apps controller (extensions.go): built once the manager exists.
	if err := s.startExtensions(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startLogin(); err != nil { // login.go
		s.Close()
		return nil, err
	}
	s.checkOrphans()
	return s, nil
}

// Handler serves every endpoint of the server. Request bodies are bounded
// by MaxHTTPBodyBytes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxHTTPBodyBytes)
		}
		s.mux.ServeHTTP(w, r)
	})
}

// DefaultMaxTokenLifetime is the default of Config.MaxTokenLifetime.
const DefaultMaxTokenLifetime = 30 * 24 * time.Hour

// openState loads the workspace records and the revocation list from the
// data dir (in memory without one) and arms the issuer with them.
func (s *Server) openState() error {
	s.issuer.MaxLifetime = s.cfg.MaxTokenLifetime
	if s.cfg.DataDir == "" {
		s.revoked = auth.NewRevocations(s.cfg.MaxRevokedTokens)
		s.issuer.Revoked = s.revoked
		s.work, _ = newWorkspaces(nil)
		return nil
	}
	store, err := openWSStore(s.cfg.DataDir)
	if err != nil {
		return err
	}
	if s.work, err = newWorkspaces(store); err != nil {
		return err
	}
	if s.revoked, err = auth.OpenRevocations(filepath.Join(s.cfg.DataDir, "tokens", "revoked.jsonl"), s.cfg.MaxRevokedTokens); err != nil {
		return err
	}
	s.issuer.Revoked = s.revoked
	s.log.Info("workspace records loaded", "workspaces", len(s.work.list())-1, "revoked_tokens", s.revoked.Len())
	return nil
}

// checkOrphans drops idle non-persistent workspaces and reports the
// workspaces that hold installed apps but have no owner record (data dirs
// from before workspace records were kept): only root may create those.
func (s *Server) checkOrphans() {
	s.ext.mu.Lock()
	ctl := s.ext.apps
	s.ext.mu.Unlock()
	if ctl == nil || s.work.store == nil {
		return
	}
	s.work.dropIdle(s.log)
	for _, ws := range ctl.AppWorkspaces() {
		if _, ok := s.work.get(ws); ok || !persisted(ws) {
			continue
		}
		s.log.Warn("workspace has installed apps but no owner record; it is reserved for root, who may create it with its owners",
			"workspace", ws, "apps", ctl.AppCount(ws))
	}
}

// Listen binds addr and records the bound address (and, unless configured,
// the public base URL from it); serving on the listener is the caller's
// (Start does both).
func (s *Server) Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	if s.baseURL == "" {
		s.baseURL = "http://" + s.addr
	}
	s.mu.Unlock()
	return ln, nil
}

// Addr is the address the server listens on ("" before Listen).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve serves HTTP on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       s.cfg.HTTPReadTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.httpSrv = hs
	s.mu.Unlock()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := s.Listen(addr)
	if err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.Serve(ln); err != nil {
			s.log.Error("server stopped", "err", err)
		}
	}()
	return nil
}

// URL is the public base URL (http://host:port).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// ServerID is this server's id (the manager is "manager-<id>").
func (s *Server) ServerID() string { return s.serverID }

// Issuer gives access to token generation (for tests and the CLI).
func (s *Server) Issuer() *auth.Issuer { return s.issuer }

// track counts one connection handler in wg, unless Close has begun: a
// connection accepted while the server shuts down would otherwise miss
// closeAll and keep Close waiting on a server whose manager is gone.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// closing reports whether Close has begun.
func (s *Server) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Close disconnects every client ("Server is shutting down") and stops serving.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopExtensions() // the apps controller (extensions.go)
		s.stopLogin()      // login.go
		s.mu.Lock()
		s.closed = true
		hs := s.httpSrv
		s.mu.Unlock()
		close(s.done)
		s.cancel()
		if s.mcp != nil {
			s.mcp.Close() // its sessions, before the clients their calls go to
		}
		s.router.closeAll(1001, "Server is shutting down")
		if hs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = hs.Shutdown(ctx)
			cancel()
		}
		s.manager.Close()
		s.wg.Wait()
		if s.poller != nil {
			_ = s.poller.Close() // every connection has ended
		}
		if s.revoked != nil {
			if err := s.revoked.Close(); err != nil {
				s.log.Warn("closing the revocation list", "err", err)
			}
		}
	})
	return nil
}

// Connect opens an in-process client connection (no socket), authenticated
// with cfg.Token like any other client.
func (s *Server) Connect(ctx context.Context, cfg rpc.Config) (*rpc.Client, error) {
	cfg.Dialer = func(ctx context.Context) (rpc.Conn, error) {
		if !s.track() {
			return nil, errors.New("server is shutting down")
		}
		client, server := newPipe()
		go func() {
			defer s.wg.Done()
			s.serveConn(server, "in-process")
		}()
		return client, nil
	}
	if cfg.ServerURL == "" {
		cfg.ServerURL = s.URL()
	}
	if cfg.ChunkLimits == (rpc.ChunkLimits{}) {
		cfg.ChunkLimits = s.cfg.Chunks
	}
	return rpc.Connect(ctx, cfg)
}
