package server

import (
	"errors"
	"fmt"
	"log/slog"
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
	// CreatedBy is the id of the user who created the workspace; Principal
	// is what the per-user quota counts (the first token of the creator's
	// chain, which tokens it derived stay tied to, or its user id).
	CreatedBy string
	Principal string
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

// ErrWorkspaceExists and ErrWorkspaceReserved are returned (wrapped) when
// creating a workspace that exists, or that holds installed apps but has
// no owner record (data dirs from before workspace records were kept).
var (
	ErrWorkspaceExists   = errors.New("workspace already exists")
	ErrWorkspaceReserved = errors.New("workspace is reserved")
)

// workspaces is the set of loaded workspaces. With a store, every workspace
// but public and the user workspaces has a record on disk that is written
// before the change is visible.
type workspaces struct {
	mu    sync.Mutex
	m     map[string]*workspace
	store *wsStore // nil: in memory only
	// appCount reports how many apps are installed in a workspace (nil:
	// none). It must not be called with mu held (the apps controller asks
	// the server for permissions under its own lock).
	appCount func(ws string) int
}

func newWorkspaces(store *wsStore) (*workspaces, error) {
	w := &workspaces{m: map[string]*workspace{}, store: store}
	if store != nil {
		list, err := store.load()
		if err != nil {
			return nil, err
		}
		for _, ws := range list {
			if persisted(ws.ID) {
				w.m[ws.ID] = ws
			}
		}
	}
	w.m["public"] = &workspace{ID: "public", Name: "public", Description: "The public workspace",
		Owners: []string{auth.RootUserID}, Persistent: true, ReadOnly: true}
	return w, nil
}

func (w *workspaces) apps(id string) int {
	w.mu.Lock()
	f := w.appCount
	w.mu.Unlock()
	if f == nil {
		return 0
	}
	return f(id)
}

func (w *workspaces) setAppCount(f func(ws string) int) {
	w.mu.Lock()
	w.appCount = f
	w.mu.Unlock()
}

// dropIdle forgets the non-persistent workspaces loaded from disk that hold
// no app: after a restart nobody is connected to them, so they would have
// been unloaded (see maybeUnload).
func (w *workspaces) dropIdle(log *slog.Logger) {
	for _, ws := range w.list() {
		if ws.Persistent || !persisted(ws.ID) || w.apps(ws.ID) > 0 {
			continue
		}
		w.mu.Lock()
		delete(w.m, ws.ID)
		err := w.store.remove(ws.ID)
		w.mu.Unlock()
		if err != nil {
			log.Warn("could not remove the record of an idle workspace", "workspace", ws.ID, "err", err)
		}
	}
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

// ensure loads a workspace, creating the user's own on first use, or any
// workspace for root.
func (w *workspaces) ensure(id string, u *auth.UserInfo) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.m[id]; ok {
		return nil
	}
	if id == u.Workspace() {
		w.m[id] = &workspace{ID: id, Name: id, Owners: []string{u.ID}, Persistent: !u.IsAnonymous,
			Description: "The workspace of user " + u.ID, CreatedBy: u.ID}
		return nil
	}
	if u.IsRoot() {
		ws := &workspace{ID: id, Name: id, Owners: []string{u.ID}, Persistent: true, CreatedBy: u.ID}
		if err := w.saveLocked(ws); err != nil {
			return err
		}
		w.m[id] = ws
		return nil
	}
	return fmt.Errorf("Workspace %s does not exist or is not accessible", id)
}

func (w *workspaces) saveLocked(ws *workspace) error {
	if w.store == nil || !persisted(ws.ID) {
		return nil
	}
	return w.store.save(ws)
}

// create adds (or, with overwrite, replaces) a workspace for u. A
// workspace that holds installed apps but has no record may only be
// created by root; maxPerUser (0: none) bounds how many workspaces one
// principal may create.
func (w *workspaces) create(ws *workspace, overwrite bool, u *auth.UserInfo, maxPerUser int) error {
	apps := w.apps(ws.ID)
	w.mu.Lock()
	defer w.mu.Unlock()
	_, exists := w.m[ws.ID]
	if exists && !overwrite {
		return fmt.Errorf("%w: %s", ErrWorkspaceExists, ws.ID)
	}
	if !exists && apps > 0 && !u.IsRoot() {
		return fmt.Errorf("%w: %s holds %d installed app(s) but no owner record (it predates workspace records, or its record was removed); only root may create it, e.g. create_workspace({\"id\": %q, \"owners\": [...]}) with the root token",
			ErrWorkspaceReserved, ws.ID, apps, ws.ID)
	}
	if !exists && maxPerUser > 0 && !u.IsRoot() {
		n := 0
		for _, o := range w.m {
			if o.Principal != "" && o.Principal == ws.Principal {
				n++
			}
		}
		if n >= maxPerUser {
			return fmt.Errorf("create_workspace: user %s already created %d workspaces (the limit, --max-workspaces-per-user / HYPHA_MAX_WORKSPACES_PER_USER); delete unused ones first", u.ID, n)
		}
	}
	if err := w.saveLocked(ws); err != nil {
		return err
	}
	w.m[ws.ID] = ws
	return nil
}

// delete forgets a workspace and removes its record.
func (w *workspaces) delete(id string) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.m[id]; !ok {
		return false, nil
	}
	if w.store != nil && persisted(id) {
		if err := w.store.remove(id); err != nil {
			return false, err
		}
	}
	delete(w.m, id)
	return true, nil
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

// maybeUnload forgets a non-persistent workspace once nobody is connected,
// unless apps are installed in it: forgetting it would let anyone create
// it again and own those apps.
func (w *workspaces) maybeUnload(id string, r *router) {
	if len(r.inWorkspace(id)) > 0 {
		return
	}
	if ws, ok := w.get(id); !ok || ws.Persistent || w.apps(id) > 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ws, ok := w.m[id]; ok && !ws.Persistent {
		if w.store != nil && persisted(id) {
			if err := w.store.remove(id); err != nil {
				return // keep it loaded: its record is still on disk
			}
		}
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
	if strings.ContainsAny(id, "/\\:@* ") {
		return fmt.Errorf("invalid workspace id %q: it must not contain '/', '\\', ':', '@', '*' or spaces", id)
	}
	if strings.HasPrefix(id, ".") {
		return fmt.Errorf("invalid workspace id %q: it must not start with '.'", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("invalid workspace id %q: it must not contain control characters", id)
		}
	}
	if id != strings.ToLower(id) {
		return fmt.Errorf("invalid workspace id %q: it must be lowercase", id)
	}
	return nil
}
