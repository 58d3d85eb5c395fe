package server

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hypha-go/hypha/server/auth"
)

// workspace is what the server knows of one workspace.
type workspace struct {
	ID          string
	Name        string
	Description string
	Owners      []string
	Persistent  bool
	ReadOnly    bool
}

func (w *workspace) toMap() map[string]any {
	owners := make([]any, len(w.Owners))
	for i, o := range w.Owners {
		owners[i] = o
	}
	return map[string]any{
		"id": w.ID, "name": w.Name, "description": w.Description, "owners": owners,
		"persistent": w.Persistent, "read_only": w.ReadOnly,
	}
}

type workspaces struct {
	mu sync.Mutex
	m  map[string]*workspace
}

func newWorkspaces() *workspaces {
	w := &workspaces{m: map[string]*workspace{}}
	w.m["public"] = &workspace{ID: "public", Name: "public", Description: "The public workspace",
		Owners: []string{auth.RootUserID}, Persistent: true, ReadOnly: true}
	return w
}

func (w *workspaces) get(id string) (*workspace, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws, ok := w.m[id]
	if !ok {
		return nil, false
	}
	c := *ws
	c.Owners = slices.Clone(ws.Owners)
	return &c, true
}

// ensure loads a workspace, creating the user's own on first use.
func (w *workspaces) ensure(id string, u *auth.UserInfo) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.m[id]; ok {
		return nil
	}
	if id == u.Workspace() {
		w.m[id] = &workspace{ID: id, Name: id, Owners: []string{u.ID}, Persistent: !u.IsAnonymous,
			Description: "The workspace of user " + u.ID}
		return nil
	}
	if u.IsRoot() {
		w.m[id] = &workspace{ID: id, Name: id, Owners: []string{u.ID}, Persistent: true}
		return nil
	}
	return fmt.Errorf("Workspace %s does not exist or is not accessible", id)
}

func (w *workspaces) create(ws *workspace, overwrite bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.m[ws.ID]; ok && !overwrite {
		return fmt.Errorf("workspace already exists: %s", ws.ID)
	}
	w.m[ws.ID] = ws
	return nil
}

func (w *workspaces) delete(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.m[id]; !ok {
		return false
	}
	delete(w.m, id)
	return true
}

func (w *workspaces) list() []*workspace {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*workspace, 0, len(w.m))
	for _, ws := range w.m {
		c := *ws
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// maybeUnload forgets a non-persistent workspace once nobody is connected.
func (w *workspaces) maybeUnload(id string, r *router) {
	if len(r.inWorkspace(id)) > 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ws, ok := w.m[id]; ok && !ws.Persistent {
		delete(w.m, id)
	}
}

// owned reports whether u itself owns the workspace. A child token (one
// minted by generate_token, whose Parent is the minter) does not inherit its
// parent's ownership: its scope is the permission it was minted with.
func (w *workspaces) owned(id string, u *auth.UserInfo) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws, ok := w.m[id]
	if !ok {
		return false
	}
	return slices.Contains(ws.Owners, u.ID)
}

// permission is a user's effective permission on a workspace: the token's
// grant, ownership, and read access to public for everyone.
func (s *Server) permission(u *auth.UserInfo, ws string) auth.Permission {
	p := u.Permission(ws)
	if p < auth.Admin && s.work.owned(ws, u) {
		p = auth.Admin
	}
	if ws == "public" && p < auth.Read {
		p = auth.Read
	}
	return p
}

func validWorkspaceID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("invalid workspace id %q", id)
	}
	if strings.ContainsAny(id, "/:@* ") {
		return fmt.Errorf("invalid workspace id %q: it must not contain '/', ':', '@', '*' or spaces", id)
	}
	if id != strings.ToLower(id) {
		return fmt.Errorf("invalid workspace id %q: it must be lowercase", id)
	}
	return nil
}
