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
	"strings"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/datadir"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
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
	// Pprof serves Go's profiler under /debug/pprof/ (for measurements;
	// never expose it publicly).
	Pprof bool
	// MaxServicesPerClient bounds registrations per client (default 1000).
	MaxServicesPerClient int
	// ReconnectionTokenLife is the lifetime of reconnection tokens (default 2 days).
	ReconnectionTokenLife time.Duration

	// DataDir, when set, enables the server-apps controller (public/server-apps,
	// public/artifact-manager, /{ws}/artifacts/{app}/files/...) and stores
	// installed apps under DataDir/apps. See apps_hook.go and docs/apps.md.
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
	manager   *rpc.Peer
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

	ext   extensions // server-apps hook (apps_hook.go)
	extra extraState // manager_extra.go
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
	if cfg.ReconnectionTokenLife <= 0 {
		cfg.ReconnectionTokenLife = 48 * time.Hour
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
	s.work = newWorkspaces()
	s.router = newRouter(s)
	s.manager = s.newManagerPeer()
	s.mux = http.NewServeMux()
	s.routes()
	// server-apps hook (apps_hook.go): started once the manager exists.
	if err := s.startExtensions(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Handler serves every endpoint of the server.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen binds addr and serves until ctx ends or Close is called. It returns
// the bound address as soon as the server listens, through ready.
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
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
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
		s.stopExtensions() // server-apps hook (apps_hook.go)
		s.mu.Lock()
		s.closed = true
		hs := s.httpSrv
		s.mu.Unlock()
		close(s.done)
		s.cancel()
		s.router.closeAll(1001, "Server is shutting down")
		if hs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = hs.Shutdown(ctx)
			cancel()
		}
		s.manager.Close()
		s.wg.Wait()
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
	return rpc.Connect(ctx, cfg)
}
