package apps

// Staged versions, as upstream keeps them in its artifact manager: an app
// may have, besides its committed version (what start runs), one staged
// version that install(stage=True) and the edit functions with stage=True
// write, start(stage=True) runs, commit_app verifies and makes current, and
// discard (or uninstall, as upstream) drops. See docs/apps.md, "Staged
// versions".
//
// On disk the staged version sits next to the committed one, in
// "<ws>/.stage-<app_id>" (manifest.json, revision, files/), a name no app
// id can take. Every change is written aside and renamed into place:
//
//   - replacing the staged version moves the old one to
//     ".unstage-<app_id>-<rand>" first (recover puts it back when the new
//     one never arrived);
//   - committing moves the committed version to ".old-<app_id>-<rand>",
//     then renames ".stage-<app_id>" to "<app_id>": a crash in between
//     leaves the old committed version (recover restores it) and the
//     staged one, never a mix of both.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypha-go/hypha/internal/atomicfile"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

const (
	stagePrefix   = ".stage-"
	unstagePrefix = ".unstage-"
)

// stagedVersion is an app's staged version in memory.
type stagedVersion struct {
	manifest map[string]any
	rev      string
}

// errNoStaged: the app has no staged version.
var errNoStaged = errors.New("no staged version")

// ---- storage ----

func (s *store) stageDir(ws, id string) string { return filepath.Join(s.wsDir(ws), stagePrefix+id) }

// loadStaged reads every staged version ("<ws>/<app_id>" → version); load
// has recovered the workspaces before.
func (s *store) loadStaged() map[string]stagedVersion {
	out := map[string]stagedVersion{}
	wss, err := os.ReadDir(s.root)
	if err != nil {
		return out
	}
	for _, w := range wss {
		if !w.IsDir() || validWorkspace(w.Name()) != nil {
			continue
		}
		ws := w.Name()
		entries, err := os.ReadDir(s.wsDir(ws))
		if err != nil {
			continue
		}
		for _, e := range entries {
			id, ok := strings.CutPrefix(e.Name(), stagePrefix)
			if !ok || !e.IsDir() || validAppID(id) != nil {
				continue
			}
			dir := s.stageDir(ws, id)
			m, err := s.readManifest(dir)
			if err != nil {
				s.log.Warn("skipping unreadable staged app version", "workspace", ws, "app_id", id, "err", err)
				continue
			}
			m["id"] = id
			out[ws+"/"+id] = stagedVersion{manifest: m, rev: s.revision(dir, ws, id)}
		}
	}
	return out
}

// recoverStaged finishes or undoes a replacement of a staged version that
// a crash interrupted (name is a ".unstage-" entry of ws).
func (s *store) recoverStaged(ws, name string) {
	dir := s.wsDir(ws)
	id := strings.TrimPrefix(name, unstagePrefix)
	if i := strings.LastIndexByte(id, '-'); i > 0 {
		id = id[:i]
	}
	if _, err := os.Stat(s.stageDir(ws, id)); err == nil || validAppID(id) != nil {
		_ = os.RemoveAll(filepath.Join(dir, name))
	} else if err := os.Rename(filepath.Join(dir, name), s.stageDir(ws, id)); err != nil {
		s.log.Warn("could not restore a staged app version", "path", filepath.Join(dir, name), "err", err)
	}
}

// putStaged writes a new staged version of app id (replacing the staged
// version it may have; the committed version is not touched).
func (s *store) putStaged(ws, id, rev string, manifest map[string]any, files map[string][]byte) error {
	tmp, err := s.writeTemp(ws, id, rev, manifest, files)
	if err != nil {
		return err
	}
	if err := s.replaceStaged(ws, id, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return nil
}

// replaceStaged renames the complete version in src to the app's staged
// version, moving an existing one aside first and dropping it after.
func (s *store) replaceStaged(ws, id, src string) error {
	dir, final := s.wsDir(ws), s.stageDir(ws, id)
	backup := ""
	if _, err := os.Stat(final); err == nil {
		backup = filepath.Join(dir, unstagePrefix+id+"-"+idgen.New())
		if err := os.Rename(final, backup); err != nil {
			return err
		}
	}
	if err := os.Rename(src, final); err != nil {
		if backup != "" {
			_ = os.Rename(backup, final)
		}
		return err
	}
	syncDir(dir)
	if backup != "" {
		_ = os.RemoveAll(backup)
	}
	return nil
}

// stageFromCommitted makes a staged version that is a copy of the committed
// one (with revision rev), for the first staged edit of a committed app.
func (s *store) stageFromCommitted(ws, id, rev string) (map[string]any, error) {
	src := s.appDir(ws, id)
	m, err := s.readManifest(src)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	root, err := os.OpenRoot(filepath.Join(src, filesDir))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(p)] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	m["id"] = id
	if err := s.putStaged(ws, id, rev, m, files); err != nil {
		return nil, err
	}
	return m, nil
}

// commitStaged makes the staged version the committed one (see the top of
// this file for why a crash never leaves a mix of both).
func (s *store) commitStaged(ws, id string) error {
	dir, final, staged := s.wsDir(ws), s.appDir(ws, id), s.stageDir(ws, id)
	if _, err := os.Stat(staged); err != nil {
		return fmt.Errorf("%w: %v", errNoStaged, err)
	}
	backup := ""
	if _, err := os.Stat(final); err == nil {
		backup = filepath.Join(dir, ".old-"+id+"-"+idgen.New())
		if err := os.Rename(final, backup); err != nil {
			return err
		}
	}
	if err := os.Rename(staged, final); err != nil {
		if backup != "" {
			_ = os.Rename(backup, final)
		}
		return err
	}
	syncDir(dir)
	if backup != "" {
		_ = os.RemoveAll(backup)
	}
	return nil
}

// discardStaged deletes the staged version (renamed first, so that a crash
// leaves nothing half-deleted).
func (s *store) discardStaged(ws, id string) error {
	trash := filepath.Join(s.wsDir(ws), ".del-stage-"+id+"-"+idgen.New())
	if err := os.Rename(s.stageDir(ws, id), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	syncDir(s.wsDir(ws))
	return os.RemoveAll(trash)
}

// writeRevision gives an app version a new revision.
func (s *store) writeRevision(ws, id string, staged bool, rev string) error {
	return atomicfile.WriteFile(filepath.Join(s.versionDir(ws, id, staged), revisionFile), []byte(rev+"\n"))
}

// ---- controller state ----

// stagedManifest returns a copy of the staged manifest of ws/id, or nil.
func (c *Controller) stagedManifest(ws, id string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.staged[ws+"/"+id]; ok {
		return copyMap(v.manifest)
	}
	return nil
}

// versionManifest returns a copy of the committed or the staged manifest.
func (c *Controller) versionManifest(ws, id string, staged bool) map[string]any {
	if staged {
		return c.stagedManifest(ws, id)
	}
	return c.appManifest(ws, id)
}

// appExistsLocked reports whether ws/id has a committed or a staged version.
func (c *Controller) appExistsLocked(ws, id string) bool {
	_, st := c.staged[ws+"/"+id]
	return c.apps[ws][id] != nil || st
}

// stagedOnlyLocked counts the apps of ws that have only a staged version.
func (c *Controller) stagedOnlyLocked(ws string) int {
	n := 0
	for key := range c.staged {
		if w, id, _ := strings.Cut(key, "/"); w == ws && c.apps[ws][id] == nil {
			n++
		}
	}
	return n
}

// setStaged records the staged version of ws/id (nil m: there is none).
func (c *Controller) setStaged(ws, id string, m map[string]any, rev string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m == nil {
		delete(c.staged, ws+"/"+id)
		return
	}
	c.staged[ws+"/"+id] = stagedVersion{manifest: m, rev: rev}
}

// missingVersion is the error of a start or an edit of a version the app
// does not have.
func (c *Controller) missingVersion(ws, id string, staged bool) error {
	c.mu.Lock()
	committed := c.apps[ws][id] != nil
	_, hasStaged := c.staged[ws+"/"+id]
	c.mu.Unlock()
	switch {
	case staged && committed:
		return fmt.Errorf("App %s has no staged version (install it with stage=True first)", id)
	case !staged && hasStaged:
		return fmt.Errorf("App %s has only a staged version, not committed yet: pass stage=True, or make it current with commit_app", id)
	}
	return fmt.Errorf("App not found: %s (workspace %s)", id, ws)
}

// ---- commit, discard ----

// commitStaged verifies the staged version of ws/id with a trial start and
// makes it the committed one. When the trial fails the staged version is
// discarded, as upstream's commit_app does (through uninstall); the
// committed version, if any, stays. The caller holds the app's
// reservation (installing).
func (c *Controller) commitStaged(ctx context.Context, cl *caller, ws, id string, a args, pg *progress) (map[string]any, error) {
	if c.stagedManifest(ws, id) == nil {
		return nil, c.missingVersion(ws, id, true)
	}
	if err := c.verify(ctx, cl, ws, id, a, pg); err != nil {
		c.stopStagedSessions(ctx, ws, id)
		if derr := c.store.discardStaged(ws, id); derr != nil {
			c.log.Error("could not discard the staged version after a failed commit", "workspace", ws, "app_id", id, "err", derr)
		}
		c.setStaged(ws, id, nil, "")
		return nil, fmt.Errorf("Failed to install app '%s': %s", id, err.Error())
	}
	if err := c.store.commitStaged(ws, id); err != nil {
		return nil, fmt.Errorf("commit app %s: %w", id, err)
	}
	c.mu.Lock()
	v := c.staged[ws+"/"+id]
	delete(c.staged, ws+"/"+id)
	if c.apps[ws] == nil {
		c.apps[ws] = map[string]map[string]any{}
	}
	c.apps[ws][id] = v.manifest
	c.appRev[ws+"/"+id] = v.rev
	c.mu.Unlock()
	c.log.Info("staged app version committed", "workspace", ws, "app_id", id)
	return c.appManifest(ws, id), nil
}

// discard drops the staged version of ws/id and stops its staged sessions.
func (c *Controller) discard(ctx context.Context, ws, id string) error {
	key := ws + "/" + id
	c.mu.Lock()
	_, ok := c.staged[key]
	busy := c.installing[key]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("No staged changes to discard: app %s (workspace %s) has no staged version", id, ws)
	}
	if busy {
		return fmt.Errorf("App %s is being installed by another call", id)
	}
	c.stopStagedSessions(ctx, ws, id)
	if err := c.store.discardStaged(ws, id); err != nil {
		return fmt.Errorf("discard the staged version of %s: %w", id, err)
	}
	c.setStaged(ws, id, nil, "")
	c.log.Info("staged app version discarded", "workspace", ws, "app_id", id)
	return nil
}

// stopStagedSessions stops the live sessions that run the staged version.
func (c *Controller) stopStagedSessions(ctx context.Context, ws, id string) {
	c.mu.Lock()
	var ids []string
	for sid, s := range c.sessions {
		if s.ws == ws && s.appID == id && s.staged && !isEnded(s.status) {
			ids = append(ids, sid)
		}
	}
	c.mu.Unlock()
	for _, sid := range ids {
		_ = c.stopSession(ctx, sid, false)
	}
}

// discardParams are the parameters of discard, in order (schema and binding).
var discardParams = []string{"artifact_id"}

// mDiscard implements artifact-manager.discard(artifact_id): the staged
// version goes, the committed one (if any) stays. It answers
// {status: "discarded", artifact_id} (upstream answers the artifact's
// record, which this server does not keep).
func (c *Controller) mDiscard(ctx context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("discard", call, discardParams...)
	if err != nil {
		return nil, err
	}
	artifactID, err := a.str("artifact_id")
	if err != nil {
		return nil, err
	}
	ws, id, err := c.resolveApp(cl, artifactID, auth.ReadWrite, "discard staged app versions")
	if err != nil {
		return nil, err
	}
	if err := c.discard(ctx, ws, id); err != nil {
		return nil, err
	}
	return map[string]any{"status": "discarded", "artifact_id": ws + "/" + id}, nil
}

// tokenSession returns the live session of ws whose client the token of
// u is scoped to, or nil (the files route's rule, files.go).
func (c *Controller) tokenSession(u *auth.UserInfo, ws string) *session {
	cid := u.Scope.ClientID
	if cid == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ws+"/"+cid]
	if s == nil || isEnded(s.status) {
		return nil
	}
	return s
}

// reserveCommit marks ws/id as being installed for the time of a commit:
// installs, edits and other commits of it are refused meanwhile.
func (c *Controller) reserveCommit(ws, id string) (release func(), err error) {
	key := ws + "/" + id
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("server apps controller is closed")
	}
	if c.installing[key] {
		return nil, fmt.Errorf("App %s is being installed by another call", id)
	}
	c.installing[key] = true
	return func() {
		c.mu.Lock()
		delete(c.installing, key)
		c.mu.Unlock()
	}, nil
}

// mergeStartupConfig writes the startup settings given to commit_app
// (timeout, wait_for_service, stop_after_inactive, additional_kwargs) into
// the staged manifest's startup_config, as upstream does before its trial.
func (c *Controller) mergeStartupConfig(ws, id string, a args) error {
	m := c.stagedManifest(ws, id)
	if m == nil {
		return c.missingVersion(ws, id, true)
	}
	sc, _ := m["startup_config"].(map[string]any)
	sc = copyMap(sc)
	changed := false
	for _, k := range []string{"timeout", "wait_for_service", "stop_after_inactive", "additional_kwargs"} {
		if v, ok := a[k]; ok && v != nil {
			if sc == nil {
				sc = map[string]any{}
			}
			sc[k] = v
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if ak, ok := sc["additional_kwargs"].(map[string]any); ok {
		if err := checkAdditionalKwargs(ak); err != nil {
			return err
		}
	} else if sc["additional_kwargs"] != nil {
		return fmt.Errorf("additional_kwargs must be a dict, got %T", sc["additional_kwargs"])
	}
	m["startup_config"] = sc
	if err := validateManifest(m); err != nil {
		return err
	}
	if mb, err := marshalManifest(m); err != nil {
		return err
	} else if err := c.cfg.Limits.checkManifest(len(mb)); err != nil {
		return err
	}
	if err := c.store.writeManifest(ws, id, true, m); err != nil {
		return fmt.Errorf("commit app %s: %w", id, err)
	}
	c.mu.Lock()
	if v, ok := c.staged[ws+"/"+id]; ok {
		v.manifest = m
		c.staged[ws+"/"+id] = v
	}
	c.mu.Unlock()
	return nil
}

// versionRevLocked is the revision of the committed or the staged version.
func (c *Controller) versionRevLocked(ws, id string, staged bool) string {
	if staged {
		return c.staged[ws+"/"+id].rev
	}
	return c.appRev[ws+"/"+id]
}

// filesRoute is the path, after "/<ws>/artifacts/<app_id>", of the files
// of the committed or the staged version (files.go).
func filesRoute(staged bool) string {
	if staged {
		return "/stage/files"
	}
	return "/files"
}

// readVersion chooses the version a read (get_app_info, list_files,
// read_file) looks at: the staged one when asked for, or when the app has
// only a staged version; else the committed one. ok is false when the app
// has no such version.
func (c *Controller) readVersion(ws, id string, stage bool) (staged, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, hasStaged := c.staged[ws+"/"+id]
	committed := c.apps[ws][id] != nil
	switch {
	case stage:
		return true, hasStaged
	case committed:
		return false, true
	default:
		return true, hasStaged
	}
}
