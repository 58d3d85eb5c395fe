package registry

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Registry holds the registered services of all workspaces. The zero value
// is not usable; call New.
type Registry struct {
	mu   sync.RWMutex
	seq  uint64
	byID map[string]*Entry            // full id -> entry
	byWS map[string]map[string]*Entry // workspace -> full id -> entry
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{
		byID: map[string]*Entry{},
		byWS: map[string]map[string]*Entry{},
	}
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// SplitFullID splits "<ws>/<cid>:<name>" into its parts. Each part must be
// non-empty; the id has exactly one '/', before exactly one ':'; no part may
// contain '@' or the wildcard '*'.
func SplitFullID(id string) (ws, cid, name string, err error) {
	ws, rest, ok := strings.Cut(id, "/")
	if !ok || strings.Contains(rest, "/") {
		return "", "", "", invalidf("service id %q must have the form <workspace>/<client_id>:<service_id> (exactly one '/')", id)
	}
	cid, name, ok = strings.Cut(rest, ":")
	if !ok || strings.Contains(name, ":") || strings.Contains(ws, ":") {
		return "", "", "", invalidf("service id %q must have the form <workspace>/<client_id>:<service_id> (exactly one ':' after the '/')", id)
	}
	for _, p := range []struct{ what, v string }{{"workspace", ws}, {"client id", cid}, {"service name", name}} {
		if p.v == "" {
			return "", "", "", invalidf("service id %q has an empty %s", id, p.what)
		}
		if strings.ContainsAny(p.v, "@*") {
			return "", "", "", invalidf("service id %q: the %s must not contain '@' or '*'", id, p.what)
		}
	}
	return ws, cid, name, nil
}

func optString(m map[string]any, key, what string) (string, error) {
	switch v := m[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", invalidf("%s must be a string, got %T", what, v)
	}
}

func stringList(v any, what string) ([]string, error) {
	switch l := v.(type) {
	case nil:
		return nil, nil
	case []string:
		return slices.Clone(l), nil
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			s, ok := x.(string)
			if !ok {
				return nil, invalidf("%s must be a list of strings, found %T", what, x)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, invalidf("%s must be a list of strings, got %T", what, v)
	}
}

func toAnyList(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// buildEntry validates and normalises a service_info map.
func buildEntry(info map[string]any) (*Entry, error) {
	if info == nil {
		return nil, invalidf("service info is missing")
	}
	id, ok := info["id"].(string)
	if !ok {
		return nil, invalidf("service info must have a string id")
	}
	ws, cid, svc, err := SplitFullID(id)
	if err != nil {
		return nil, err
	}
	e := &Entry{Workspace: ws, ClientID: cid, Name: svc}

	var cfg map[string]any
	switch c := info["config"].(type) {
	case nil:
		cfg = map[string]any{}
	case map[string]any:
		cfg = maps.Clone(c)
	default:
		return nil, invalidf("service config must be a map, got %T", c)
	}

	vis, err := optString(cfg, "visibility", "config.visibility")
	if err != nil {
		return nil, err
	}
	switch vis {
	case "":
		vis = Protected
	case Public, Protected, Unlisted:
	default:
		return nil, invalidf("invalid visibility %q (expected public, protected or unlisted)", vis)
	}
	e.Visibility = vis

	if e.Type, err = optString(info, "type", "service type"); err != nil {
		return nil, err
	}
	if e.Type == "" {
		e.Type = DefaultType
	}
	if e.AppID, err = optString(info, "app_id", "app_id"); err != nil {
		return nil, err
	}
	if e.AppID == "" {
		e.AppID = AnyApp
	}
	if strings.ContainsAny(e.AppID, "/@:") {
		return nil, invalidf("app id %q must not contain '/', ':' or '@'", e.AppID)
	}
	name, err := optString(info, "name", "service name")
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = svc
	}
	desc, err := optString(info, "description", "description")
	if err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(desc) > MaxDescriptionLength {
		return nil, invalidf("description is longer than %d characters", MaxDescriptionLength)
	}
	if _, err := optString(info, "docs", "docs"); err != nil {
		return nil, err
	}

	if aw, present := cfg["authorized_workspaces"]; present && aw != nil {
		if vis != Protected {
			return nil, invalidf("authorized_workspaces can only be set when visibility is 'protected', got visibility='%s'", vis)
		}
		if e.AuthorizedWorkspaces, err = stringList(aw, "config.authorized_workspaces"); err != nil {
			return nil, err
		}
		cfg["authorized_workspaces"] = toAnyList(e.AuthorizedWorkspaces)
	} else {
		cfg["authorized_workspaces"] = nil
	}
	switch s := cfg["singleton"].(type) {
	case nil:
		cfg["singleton"] = false
	case bool:
		e.singleton = s
	default:
		return nil, invalidf("config.singleton must be a boolean, got %T", s)
	}
	switch f := cfg["flags"].(type) {
	case nil:
		cfg["flags"] = []any{}
	case []any, []string:
	default:
		return nil, invalidf("config.flags must be a list, got %T", f)
	}
	if _, ok := cfg["require_context"]; !ok {
		cfg["require_context"] = false
	}
	if _, ok := cfg["created_by"]; !ok {
		cfg["created_by"] = nil
	}
	cfg["visibility"] = vis
	cfg["workspace"] = ws

	out := maps.Clone(info)
	out["id"] = id
	out["name"] = name
	out["type"] = e.Type
	out["app_id"] = e.AppID
	out["config"] = cfg
	for _, k := range []string{"description", "docs", "service_schema"} {
		if _, ok := out[k]; !ok {
			out[k] = nil
		}
	}
	e.Info = out
	return e, nil
}

// Register validates and stores a service_info map (as sent to
// register_service, after the caller has made the id absolute and set
// config.created_by):
//
//   - id must be "<ws>/<cid>:<name>" (see SplitFullID);
//   - config.visibility defaults to "protected" and must be public,
//     protected or unlisted;
//   - type defaults to "generic", app_id to "*", name to the service name;
//   - description is at most 1024 characters;
//   - config.authorized_workspaces (a list of strings) is only allowed with
//     protected visibility;
//   - singleton: a service whose config.singleton is true must be the only
//     service of that name in its workspace, and no service may join a name
//     held by a singleton (re-registering the same full id is allowed).
//
// The stored Info is a normalised copy: id, name, type, app_id, description,
// docs and service_schema are always present, and config always carries
// visibility, workspace, require_context, flags, singleton, created_by and
// authorized_workspaces (as upstream's model dump does). Values below the
// top-level and config maps are shared with the argument.
//
// A service with the same full id is replaced (whatever its app id); the
// old entry is returned so the caller can emit service_removed.
func (r *Registry) Register(info map[string]any) (replaced *Entry, err error) {
	e, err := buildEntry(info)
	if err != nil {
		return nil, err
	}
	full := e.FullID()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, other := range r.byWS[e.Workspace] {
		if id == full || other.Name != e.Name {
			continue
		}
		if e.singleton || other.singleton {
			return nil, fmt.Errorf("%w: a singleton service with the same name (%s) already exists in the workspace (%s), please remove it first or use a different name", ErrSingleton, e.Name, e.Workspace)
		}
	}
	replaced = r.byID[full]
	if replaced != nil {
		r.removeLocked(replaced)
	}
	r.seq++
	e.seq = r.seq
	r.byID[full] = e
	ws := r.byWS[e.Workspace]
	if ws == nil {
		ws = map[string]*Entry{}
		r.byWS[e.Workspace] = ws
	}
	ws[full] = e
	return replaced, nil
}

func (r *Registry) removeLocked(e *Entry) {
	full := e.FullID()
	delete(r.byID, full)
	if ws := r.byWS[e.Workspace]; ws != nil {
		delete(ws, full)
		if len(ws) == 0 {
			delete(r.byWS, e.Workspace)
		}
	}
}

// Unregister removes the service with the given full id
// ("<ws>/<cid>:<name>", optionally followed by "@<app_id>", which must then
// match). It returns the removed entry or an error wrapping ErrNotFound.
func (r *Registry) Unregister(fullID string) (*Entry, error) {
	id, app, hasApp := strings.Cut(fullID, "@")
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byID[id]
	if e == nil || (hasApp && app != AnyApp && e.AppID != app) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, fullID)
	}
	r.removeLocked(e)
	return e, nil
}

// Get returns the service with the given full id "<ws>/<cid>:<name>".
func (r *Registry) Get(fullID string) (*Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byID[fullID]
	return e, ok
}

func sortBySeq(es []*Entry) []*Entry {
	slices.SortFunc(es, func(a, b *Entry) int { return cmp.Compare(a.seq, b.seq) })
	return es
}

// RemoveClient removes every service of client <ws>/<cid>, including its
// built-in service, and returns them in registration order.
func (r *Registry) RemoveClient(ws, cid string) []*Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Entry
	for _, e := range r.byWS[ws] {
		if e.ClientID == cid {
			out = append(out, e)
		}
	}
	for _, e := range out {
		r.removeLocked(e)
	}
	return sortBySeq(out)
}

// ClientsOf returns the ids of the clients that have at least one service
// (built-in included) in workspace ws, ordered by their earliest
// registration still present.
func (r *Registry) ClientsOf(ws string) []string {
	r.mu.RLock()
	first := map[string]uint64{}
	for _, e := range r.byWS[ws] {
		if s, ok := first[e.ClientID]; !ok || e.seq < s {
			first[e.ClientID] = e.seq
		}
	}
	r.mu.RUnlock()
	out := slices.Collect(maps.Keys(first))
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(first[a], first[b]) })
	return out
}

// Workspaces returns the workspaces that have at least one service, sorted.
func (r *Registry) Workspaces() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.byWS))
}

// HasService reports whether service <ws>/<cid>:<name> is registered.
func (r *Registry) HasService(ws, cid, name string) bool {
	_, ok := r.Get(ws + "/" + cid + ":" + name)
	return ok
}

// Count returns how many services client <ws>/<cid> has registered, not
// counting its built-in service (the per-client quota rule).
func (r *Registry) Count(ws, cid string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, e := range r.byWS[ws] {
		if e.ClientID == cid && e.Name != BuiltIn {
			n++
		}
	}
	return n
}

// Len returns the total number of registered services.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

// Find returns the services matching a get_service query, in registration
// order. A field equal to "*" matches anything; other values must match
// exactly; an empty AppID means "*". A Manager query matches nothing (the caller serves "~" itself).
func (r *Registry) Find(q ServiceQuery) []*Entry {
	if q.Manager {
		return nil
	}
	if q.AppID == "" {
		q.AppID = AnyApp
	}
	match := func(pat, v string) bool { return pat == "*" || pat == v }
	r.mu.RLock()
	var out []*Entry
	if q.Workspace != "*" && q.ClientID != "*" && q.Name != "*" {
		if e := r.byID[q.Workspace+"/"+q.ClientID+":"+q.Name]; e != nil && match(q.AppID, e.AppID) {
			out = append(out, e)
		}
		r.mu.RUnlock()
		return out
	}
	scan := func(m map[string]*Entry) {
		for _, e := range m {
			if match(q.ClientID, e.ClientID) && match(q.Name, e.Name) && match(q.AppID, e.AppID) {
				out = append(out, e)
			}
		}
	}
	if q.Workspace == "*" {
		for _, m := range r.byWS {
			scan(m)
		}
	} else {
		scan(r.byWS[q.Workspace])
	}
	r.mu.RUnlock()
	return sortBySeq(out)
}
