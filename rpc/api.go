package rpc

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// RemoteService is a service obtained from the server: its description and
// its members (remote functions and plain values).
type RemoteService struct {
	ID          string
	Name        string
	Type        string
	Description string
	Config      map[string]any
	members     map[string]any
}

func newRemoteService(m map[string]any) *RemoteService {
	s := &RemoteService{members: m}
	s.ID = asString(m["id"])
	s.Name = asString(m["name"])
	s.Type = asString(m["type"])
	s.Description = asString(m["description"])
	s.Config, _ = m["config"].(map[string]any)
	return s
}

// Members returns the whole service map as received.
func (s *RemoteService) Members() map[string]any { return s.members }

// Get returns a member by dotted path (e.g. "supported_types" or "ns.fn").
func (s *RemoteService) Get(path string) any {
	var cur any = s.members
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// Func returns the remote function at path, or nil.
func (s *RemoteService) Func(path string) *RemoteFunc {
	f, _ := s.Get(path).(*RemoteFunc)
	return f
}

// Call calls the function at path (see RemoteFunc.Call).
func (s *RemoteService) Call(ctx context.Context, path string, args ...any) (any, error) {
	f := s.Func(path)
	if f == nil {
		return nil, fmt.Errorf("%w: service %s has no function %q", ErrNotFound, s.ID, path)
	}
	return f.Call(ctx, args...)
}

// CallInto calls the function at path and decodes the result into out.
func (s *RemoteService) CallInto(ctx context.Context, out any, path string, args ...any) error {
	v, err := s.Call(ctx, path, args...)
	if err != nil {
		return err
	}
	return Decode(v, out)
}

// RegisterOption changes how a service is registered.
type RegisterOption func(*registerOptions)

type registerOptions struct{ overwrite bool }

// Overwrite replaces a local service with the same id instead of failing.
func Overwrite() RegisterOption { return func(o *registerOptions) { o.overwrite = true } }

// RegisterService registers svc with the server and returns its full id
// ("<workspace>/<client_id>:<id>"). Functions may be any Go func: parameters
// of type context.Context, *CallContext (the trusted caller), *Call and
// Kwargs are filled in; the others receive the positional arguments,
// converted to their types; results are (), (T), (error) or (T, error).
// The service is registered again after every reconnection.
func (c *Client) RegisterService(ctx context.Context, svc Service, opts ...RegisterOption) (string, error) {
	var o registerOptions
	for _, opt := range opts {
		opt(&o)
	}
	info, err := c.peer.AddService(svc, o.overwrite)
	if err != nil {
		return "", err
	}
	if _, err := c.Manager().Call(ctx, "register_service", info); err != nil {
		c.peer.RemoveService(svc.ID)
		return "", fmt.Errorf("register service %s: %w", svc.ID, err)
	}
	return asString(info["id"]), nil
}

// UnregisterService removes a service registered by this client; id may be
// the short or the full id.
func (c *Client) UnregisterService(ctx context.Context, id string) error {
	short := id
	if i := strings.LastIndexByte(short, ':'); i >= 0 {
		short = short[i+1:]
	}
	if !c.peer.RemoveService(short) {
		return fmt.Errorf("%w: service %s is not registered by this client", ErrNotFound, id)
	}
	full := c.peer.ID() + ":" + short
	if _, err := c.Manager().Call(ctx, "unregister_service", full); err != nil {
		return fmt.Errorf("unregister service %s: %w", id, err)
	}
	return nil
}

// GetServiceOption tunes GetService.
type GetServiceOption func(map[string]any)

// Mode selects among several matching services: "exact" (default),
// "random", "first", "last".
func Mode(mode string) GetServiceOption { return func(m map[string]any) { m["mode"] = mode } }

// CaseConversion asks the server to rename the keys of the service it
// returns (its functions, nested ones and config included): "camel"
// (hello_world → helloWorld), "snake" (HelloWorld → hello_world), or
// "camel+snake" for both names. Calls through a renamed function reach the
// provider's function as registered.
func CaseConversion(kind string) GetServiceOption {
	return func(m map[string]any) { m["case_conversion"] = kind }
}

// GetService fetches a service by id: "svc", "ws/svc", "client:svc",
// "ws/client:svc", each optionally with "@app_id".
func (c *Client) GetService(ctx context.Context, id string, opts ...GetServiceOption) (*RemoteService, error) {
	cfg := map[string]any{}
	for _, o := range opts {
		o(cfg)
	}
	args := []any{id}
	if len(cfg) > 0 {
		args = append(args, Kwargs{"config": cfg})
	}
	v, err := c.Manager().Call(ctx, "get_service", args...)
	if err != nil {
		return nil, fmt.Errorf("get service %s: %w", id, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("get service %s: got %T, not a service", id, v)
	}
	return newRemoteService(m), nil
}

// ServiceInfo is one entry of ListServices.
type ServiceInfo struct {
	ID          string
	Name        string
	Type        string
	Description string
	AppID       string
	Config      map[string]any
	Raw         map[string]any
}

// ListServices lists services. query is nil (the current workspace), a
// string ("ws", "ws/client:svc", "*"), or a map with keys such as type,
// visibility, workspace, client_id, service_id, app_id.
func (c *Client) ListServices(ctx context.Context, query any) ([]ServiceInfo, error) {
	args := []any{}
	if query != nil {
		args = append(args, query)
	}
	v, err := c.Manager().Call(ctx, "list_services", args...)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	list, _ := v.([]any)
	out := make([]ServiceInfo, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		si := ServiceInfo{ID: asString(m["id"]), Name: asString(m["name"]), Type: asString(m["type"]),
			Description: asString(m["description"]), AppID: asString(m["app_id"]), Raw: m}
		si.Config, _ = m["config"].(map[string]any)
		out = append(out, si)
	}
	return out, nil
}

// TokenConfig is the argument of GenerateToken.
type TokenConfig struct {
	Workspace  string        // default: the current workspace
	Permission string        // "read", "read_write" or "admin"
	ExpiresIn  time.Duration // default: the server's
	ClientID   string        // restrict the token to one client id
	Extra      map[string]any
}

// GenerateToken asks the server for a token.
func (c *Client) GenerateToken(ctx context.Context, tc TokenConfig) (string, error) {
	cfg := map[string]any{}
	for k, v := range tc.Extra {
		cfg[k] = v
	}
	if tc.Workspace != "" {
		cfg["workspace"] = tc.Workspace
	}
	if tc.Permission != "" {
		cfg["permission"] = tc.Permission
	}
	if tc.ExpiresIn > 0 {
		cfg["expires_in"] = tc.ExpiresIn.Seconds()
	}
	if tc.ClientID != "" {
		cfg["client_id"] = tc.ClientID
	}
	v, err := c.Manager().Call(ctx, "generate_token", cfg)
	if err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("generate token: got %T, not a string", v)
	}
	return s, nil
}

// Event is a server or client event (client_connected, service_added, …).
type Event struct {
	Type string
	Data map[string]any
	Raw  map[string]any
}

// Subscribe asks the server to deliver these event types to this client.
// Subscriptions are restored after a reconnection.
func (c *Client) Subscribe(ctx context.Context, types ...string) error {
	args := make([]any, len(types))
	for i, t := range types {
		args[i] = t
	}
	if _, err := c.Manager().Call(ctx, "subscribe", args); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	c.mu.Lock()
	for _, t := range types {
		c.subscribed[t] = true
	}
	c.mu.Unlock()
	return nil
}

// Unsubscribe stops the delivery of these event types.
func (c *Client) Unsubscribe(ctx context.Context, types ...string) error {
	args := make([]any, len(types))
	for i, t := range types {
		args[i] = t
	}
	if _, err := c.Manager().Call(ctx, "unsubscribe", args); err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	c.mu.Lock()
	for _, t := range types {
		delete(c.subscribed, t)
	}
	c.mu.Unlock()
	return nil
}

// On calls fn for every event of this type received (subscribe first for
// server events). It returns a function that removes the handler.
func (c *Client) On(eventType string, fn func(Event)) (off func()) {
	return c.peer.On(eventType, func(m map[string]any) {
		ev := Event{Type: eventType, Raw: m}
		ev.Data, _ = m["data"].(map[string]any)
		fn(ev)
	})
}

// Emit broadcasts a custom event to this client's workspace: every client
// there that subscribed to its type (Subscribe, then On) receives it,
// including this one. The server refuses broadcasts from read-only
// connections and never delivers them to other workspaces.
func (c *Client) Emit(ctx context.Context, eventType string, data map[string]any) error {
	main := map[string]any{"type": eventType, "to": "*", "from": c.peer.ID(), "data": data}
	return c.peer.sendMessage(ctx, main, nil, "")
}

// Echo calls the manager's echo (a cheap round trip through the server).
func (c *Client) Echo(ctx context.Context, v any) (any, error) {
	return c.Manager().Call(ctx, "echo", v)
}

// Func returns a reference to the method path on another peer; calling it
// sends a request and waits for the result.
func (p *peer) Func(target, method string) *RemoteFunc {
	return &RemoteFunc{peer: p, target: target, method: method, promise: "*",
		raw: map[string]any{"_rtype": "method", "_rtarget": target, "_rmethod": method, "_rpromise": "*"}}
}

// ServiceValue returns a value that encodes as the local service id (its
// description with method references), as built-in get_service returns it.
func (p *peer) ServiceValue(id string) (any, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.services[id]
	if !ok {
		return nil, false
	}
	return serviceValue{s}, true
}
