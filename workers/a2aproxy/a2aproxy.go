// Package a2aproxy is the A2A proxy worker (app type "a2a-agent"): an app
// is a set of remote A2A agents, and each session connects to the server as
// the app and registers one service per agent whose functions send
// messages to it (a function per skill, run, stream), then "default".
package a2aproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/worker"
)

// Type is the app type this worker runs.
const Type = "a2a-agent"

// ServiceType is the type of each agent's service, as upstream's.
const ServiceType = "a2a-agent-proxy"

// DefaultMaxSessions caps concurrent sessions when Options.MaxSessions is 0.
const DefaultMaxSessions = 100

var (
	// ErrAgent marks a failure of the remote agent (unreachable, HTTP or
	// JSON-RPC error, malformed answer).
	ErrAgent = errors.New("a2a agent error")
	// ErrTooLarge marks an agent answer over one of the Limits.
	ErrTooLarge = errors.New("a2a agent answer too large")
	// ErrNoAgents: no configured agent could be reached at start.
	ErrNoAgents = errors.New("failed to connect to any A2A agents")
)

// Options configure the worker.
type Options struct {
	// MaxSessions caps concurrent sessions (default DefaultMaxSessions).
	MaxSessions int
	// Logs bounds each session's log.
	Logs worker.LogLimits
	// Limits bound what is read from agents.
	Limits Limits
	// Transport is the HTTP transport to agents (default: one that never
	// connects to link-local, multicast or unspecified addresses, see
	// newTransport).
	Transport http.RoundTripper
	// DenyPrivateNetworks makes the default transport also refuse
	// loopback and private addresses (for a worker that serves apps of
	// users who should not reach the worker's own network).
	DenyPrivateNetworks bool
	// DialServer replaces the app's websocket to the server (the embedded
	// server connects in process); nil dials cfg.ServerURL.
	DialServer func(ctx context.Context, cfg rpc.Config) (*rpc.Client, error)
	Logger     *slog.Logger
}

// Worker is the A2A proxy worker.
type Worker struct {
	worker.Base
	opts Options
}

// session is a running session's handle.
type session struct {
	client *rpc.Client
	http   *http.Client

	mu      sync.Mutex
	closed  bool
	streams sync.WaitGroup
}

// openStream counts a stream that starts reading, unless the session is
// closing.
func (h *session) openStream() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.streams.Add(1)
	return true
}

// New returns a worker with opts.
func New(opts Options) *Worker {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Limits = opts.Limits.withDefaults()
	if opts.Transport == nil {
		opts.Transport = newTransport(opts.DenyPrivateNetworks)
	}
	w := &Worker{opts: opts}
	w.Base = worker.Base{Sessions: worker.NewRegistry(worker.RegistryOptions{MaxSessions: opts.MaxSessions, Logs: opts.Logs, Logger: opts.Logger}), Stopper: w}
	return w
}

// Options returns the effective options.
func (w *Worker) Options() Options { return w.opts }

// Properties implements worker.Worker.
func (w *Worker) Properties() worker.Properties {
	return worker.Properties{Name: "A2A Proxy Worker", Description: "A2A proxy worker for connecting to A2A agents",
		SupportedTypes: []string{Type}, RequireContext: true}
}

// Compile implements worker.Compiler (see compile).
func (w *Worker) Compile(_ context.Context, req worker.CompileRequest) (worker.CompileResult, error) {
	return compile(req)
}

// Shutdown stops every session.
func (w *Worker) Shutdown(ctx context.Context) error { return w.StopAll(ctx) }

// Stop implements worker.Worker: it closes the app's connection (the
// server drops every service of the app with it) and waits for the
// session's open streams to end.
func (w *Worker) Stop(ctx context.Context, id string) error {
	return w.Sessions.StopSession(ctx, id, func(ctx context.Context, s *worker.Session) error {
		h, ok := worker.HandleOf[*session](s)
		if !ok {
			return nil
		}
		w.close(h)
		return nil
	})
}

func (w *Worker) close(h *session) {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	if h.client != nil {
		_ = h.client.Close()
	}
	h.streams.Wait() // the session context is cancelled: streams end
	h.http.CloseIdleConnections()
}

// Start implements worker.Worker.
func (w *Worker) Start(ctx context.Context, cfg worker.Config) (string, error) {
	progress := worker.NewReporter(cfg.ProgressFunc, worker.ReporterOptions{})
	defer progress.Close(ctx)
	s, err := w.Sessions.CreateFromConfig(cfg, nil)
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		progress.Error(err.Error())
		s.Log(worker.LogError, err.Error())
		return "", w.Sessions.Discard(s, err)
	}
	agents, err := ParseAgents(cfg.Manifest["a2aAgents"])
	if err != nil {
		return fail(err)
	}
	// The session's work ends with the session or with this start call.
	sctx, cancel := context.WithCancel(s.Context())
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()

	tr := w.opts.Transport
	if cfg.DisableSSL {
		if t, ok := tr.(*http.Transport); ok {
			t = t.Clone()
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the server's --disable-ssl
			tr = t
		}
	}
	h := &session{http: &http.Client{Transport: tr, CheckRedirect: sameHostRedirects}}
	progress.Info("Connecting to Hypha server...")
	rc := rpc.Config{ServerURL: cfg.ServerURL, Workspace: cfg.Workspace, ClientID: cfg.ClientID, Token: cfg.Token,
		Logger: w.opts.Logger.With("session", s.ID()), InsecureSkipVerify: cfg.DisableSSL}
	dial := w.opts.DialServer
	if dial == nil {
		dial = rpc.Connect
	}
	h.client, err = dial(sctx, rc)
	if err != nil {
		h.http.CloseIdleConnections()
		return fail(fmt.Errorf("connect to the server as the app: %w", err))
	}
	s.SetHandle(h)
	fail = func(err error) (string, error) {
		progress.Error(err.Error())
		s.Log(worker.LogError, err.Error())
		w.close(h)
		return "", w.Sessions.Discard(s, err)
	}
	progress.Info(fmt.Sprintf("Connecting to %d A2A agent(s)...", len(agents)))
	connected := 0
	var last error
	for _, a := range agents {
		progress.Info("Connecting to A2A agent: " + a.Name + "...")
		if err := w.register(sctx, s, h, a); err != nil {
			last = fmt.Errorf("failed to connect to A2A agent %s: %w", a.Name, err)
			if len(agents) == 1 {
				return fail(last)
			}
			s.Log(worker.LogError, last.Error())
			progress.Error(last.Error())
			continue
		}
		connected++
		msg := "Successfully connected to A2A agent: " + a.Name
		s.Log(worker.LogInfo, msg)
		progress.Info(msg)
	}
	if connected == 0 {
		return fail(fmt.Errorf("%w; last error: %w", ErrNoAgents, last))
	}
	progress.Info("Registering default service...")
	if _, err := h.client.RegisterService(sctx, rpc.Service{ID: "default", Name: "default", Description: "Default service",
		Functions: map[string]any{"setup": func() {}}}, rpc.Overwrite()); err != nil {
		return fail(fmt.Errorf("register the default service: %w", err))
	}
	if err := s.SetStatus(worker.StatusRunning); err != nil {
		w.close(h)
		return "", err
	}
	go watch(s, h.client)
	progress.Success(fmt.Sprintf("A2A proxy initialized successfully with %d agent(s)", connected))
	return s.ID(), nil
}

// watch fails the session when the app's connection ends for good (the
// client reconnects by itself after a dropped connection; Done means it
// gave up, or the server refused it): its services are gone with it.
func watch(s *worker.Session, c *rpc.Client) {
	select {
	case <-s.Context().Done():
	case <-c.Done():
		_ = s.Fail(fmt.Errorf("the app's connection to the server ended: %w", c.Err()))
	}
}

// sameHostRedirects follows at most 5 redirects, and only on the same
// host: an agent's headers often carry its credentials.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if req.URL.Host != via[0].URL.Host || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return fmt.Errorf("refusing a redirect to another host (%s)", req.URL.Host)
	}
	return nil
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// skillKey turns a skill's id (or name) into a function name.
func skillKey(sk skill, used map[string]bool) string {
	base := sk.ID
	if base == "" {
		base = sk.Name
	}
	base = strings.Trim(nonIdent.ReplaceAllString(base, "_"), "_")
	if len(base) > 64 {
		base = base[:64]
	}
	if base == "" || (base[0] >= '0' && base[0] <= '9') {
		base = "skill_" + base
	}
	k := base
	for i := 2; used[k]; i++ {
		k = fmt.Sprintf("%s_%d", base, i)
	}
	used[k] = true
	return k
}

// register reads a's card and registers its service.
func (w *Worker) register(ctx context.Context, s *worker.Session, h *session, a Agent) error {
	hdr := http.Header{}
	for k, v := range a.Headers {
		hdr.Set(k, v)
	}
	ac := &agentClient{url: a.URL, rpcURL: a.URL, headers: hdr, http: h.http, limits: w.opts.Limits}
	c, _, err := ac.fetchCard(ctx)
	if err != nil {
		return err
	}
	if u, err := parseAgent(a.Name, map[string]any{"url": c.URL}); c.URL != "" && err == nil {
		ac.rpcURL = u.URL
		if !strings.EqualFold(hostOf(u.URL), hostOf(a.URL)) {
			// The card may not send the app's headers to another host.
			ac.rpcURL = a.URL
		}
	}
	s.Log(worker.LogInfo, fmt.Sprintf("Agent %s: found %d skills", a.Name, len(c.Skills)))
	sessCtx := s.Context()
	skills := map[string]any{}
	used := map[string]bool{}
	var cardSkills []any
	for _, sk := range c.Skills {
		key := skillKey(sk, used)
		doc := truncate(sk.Description, maxText)
		skills[key] = rpc.Doc(rpc.Params(func(ctx context.Context, text string) (string, error) {
			ctx, cancel := joinCtx(ctx, sessCtx)
			defer cancel()
			v, err := ac.send(ctx, textMessage(text))
			if err != nil {
				return "", err
			}
			return resultText(v), nil
		}, "text?"), doc)
		cardSkills = append(cardSkills, map[string]any{"id": truncate(sk.ID, maxName), "name": truncate(sk.Name, maxName),
			"description": doc, "function": key, "tags": anyStrings(sk.Tags)})
	}
	run := func(ctx context.Context, message any) (string, error) {
		m, err := toMessage(message)
		if err != nil {
			return "", err
		}
		ctx, cancel := joinCtx(ctx, sessCtx)
		defer cancel()
		v, err := ac.send(ctx, m)
		if err != nil {
			return "", err
		}
		return resultText(v), nil
	}
	fns := map[string]any{
		"skills": skills,
		"run":    rpc.Doc(rpc.Params(run, "message"), "Send a message (text, or {parts: [...]}) to the agent; its answer's text"),
		"agent_card": map[string]any{
			"name": truncate(c.Name, maxName), "description": truncate(c.Description, maxText), "version": truncate(c.Version, maxName),
			"capabilities":         map[string]any{"streaming": c.Capabilities.Streaming, "push_notifications": c.Capabilities.PushNotifications},
			"default_input_modes":  anyStrings(c.DefaultInputModes),
			"default_output_modes": anyStrings(c.DefaultOutputModes),
			"skills":               cardSkills,
		},
	}
	if c.Capabilities.Streaming {
		fns["stream"] = rpc.Doc(rpc.Params(func(ctx context.Context, message any) (iter.Seq2[map[string]any, error], error) {
			m, err := toMessage(message)
			if err != nil {
				return nil, err
			}
			return func(yield func(map[string]any, error) bool) {
				if !h.openStream() {
					yield(nil, fmt.Errorf("%w: the session is stopping", ErrAgent))
					return
				}
				defer h.streams.Done()
				ctx, cancel := joinCtx(ctx, sessCtx)
				defer cancel()
				for v, err := range ac.stream(ctx, m) {
					if !yield(v, err) {
						return
					}
				}
			}, nil
		}, "message"), "Send a message with message/stream; a generator of the agent's events (message, task, status-update, artifact-update)")
	}
	_, err = h.client.RegisterService(ctx, rpc.Service{
		ID: a.Name, Name: "A2A Agent: " + a.Name, Description: "A2A agent service for " + a.Name, Type: ServiceType,
		Functions: fns,
	}, rpc.Overwrite())
	if err != nil {
		return fmt.Errorf("register the service: %w", err)
	}
	return nil
}

func hostOf(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// What agent_card keeps of a card's texts and lists (a card may be up to
// Limits.MaxCardBytes; the service registration should stay small).
const (
	maxName  = 200
	maxText  = 4000
	maxItems = 32
)

func anyStrings(ss []string) []any {
	if len(ss) > maxItems {
		ss = ss[:maxItems]
	}
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = truncate(s, maxName)
	}
	return out
}

// joinCtx is ctx, also ended when the session's context ends (a stop
// ends the session's calls and streams).
func joinCtx(ctx, session context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(session, cancel)
	return c, func() { stop(); cancel() }
}

func textMessage(text string) map[string]any {
	return map[string]any{"kind": "message", "messageId": newID(), "role": "user",
		"parts": []any{map[string]any{"kind": "text", "text": text}}}
}

// toMessage reads run's argument: a string (one text part) or an A2A
// message map with parts (role, messageId and kind filled in when absent).
func toMessage(v any) (map[string]any, error) {
	switch m := v.(type) {
	case string:
		return textMessage(m), nil
	case map[string]any:
		parts, ok := m["parts"].([]any)
		if !ok || len(parts) == 0 {
			return nil, fmt.Errorf("%w: message: want a string or {parts: [...]}", rpc.ErrArguments)
		}
		out := make(map[string]any, len(m)+3)
		for k, x := range m {
			out[k] = x
		}
		out["kind"] = "message"
		if _, ok := out["messageId"].(string); !ok {
			out["messageId"] = newID()
		}
		if _, ok := out["role"].(string); !ok {
			out["role"] = "user"
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: message: want a string or {parts: [...]}, got %T", rpc.ErrArguments, v)
}
