package apps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hypha-go/hypha/internal/atomicfile"
	"github.com/hypha-go/hypha/internal/datadir"
	"github.com/hypha-go/hypha/internal/idgen"
)

// store keeps installed apps on disk:
//
//	<data>/apps/<workspace>/<app_id>/manifest.json
//	<data>/apps/<workspace>/<app_id>/revision
//	<data>/apps/<workspace>/<app_id>/files/<path>
//
// revision is a random id written with every install: sessions record the
// revision they run, so that start returns only an instance of the app's
// current files, also after a restart (a failed re-install restores the
// previous directory, and with it the previous revision).
//
// An app is written completely into a temporary sibling directory
// (".tmp-<app_id>-<rand>") and renamed into place, so a crash never leaves a
// half-written app. Replacing an app first renames the old one to
// ".old-<app_id>-<rand>"; deleting renames it to ".del-<app_id>-<rand>".
// Dot-prefixed names can never be app ids; openStore cleans them up.
//
// Everything is private to the server's user (datadir.DirMode and
// datadir.FileMode): manifests may hold env secrets.
type store struct {
	root string
	log  *slog.Logger
}

const (
	manifestFile = "manifest.json"
	revisionFile = "revision"
	filesDir     = "files"
)

func openStore(dataDir string, log *slog.Logger) (*store, error) {
	root := filepath.Join(dataDir, "apps")
	if err := os.MkdirAll(root, datadir.DirMode); err != nil {
		return nil, fmt.Errorf("create app storage %s: %w", root, err)
	}
	return &store{root: root, log: log}, nil
}

func (s *store) wsDir(ws string) string      { return filepath.Join(s.root, ws) }
func (s *store) appDir(ws, id string) string { return filepath.Join(s.root, ws, id) }

// versionDir is the directory of the app's committed version, or of its
// staged version (staged.go).
func (s *store) versionDir(ws, id string, staged bool) string {
	if staged {
		return s.stageDir(ws, id)
	}
	return s.appDir(ws, id)
}

// load reads every app and its revision ("<ws>/<app_id>" → revision),
// after recovering from interrupted writes. An app stored without a
// revision (by an older version) gets one.
func (s *store) load() (map[string]map[string]map[string]any, map[string]string, error) {
	out := map[string]map[string]map[string]any{}
	revs := map[string]string{}
	wss, err := os.ReadDir(s.root)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range wss {
		if !w.IsDir() || validWorkspace(w.Name()) != nil {
			continue
		}
		ws := w.Name()
		s.recover(ws)
		entries, err := os.ReadDir(s.wsDir(ws))
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			if !e.IsDir() || validAppID(e.Name()) != nil {
				continue
			}
			m, err := s.readManifest(s.appDir(ws, e.Name()))
			if err != nil {
				s.log.Warn("skipping unreadable app", "workspace", ws, "app_id", e.Name(), "err", err)
				continue
			}
			m["id"] = e.Name()
			if out[ws] == nil {
				out[ws] = map[string]map[string]any{}
			}
			out[ws][e.Name()] = m
			revs[ws+"/"+e.Name()] = s.revision(s.appDir(ws, e.Name()), ws, e.Name())
		}
	}
	return out, revs, nil
}

// newRevision is the revision of a new install.
func newRevision() string { return idgen.New() }

// revision reads the revision of the app version in dir, writing a new one
// when it has none.
func (s *store) revision(dir, ws, id string) string {
	p := filepath.Join(dir, revisionFile)
	if b, err := os.ReadFile(p); err == nil {
		if r := strings.TrimSpace(string(b)); r != "" && len(r) <= 64 {
			return r
		}
	}
	r := newRevision()
	if err := atomicfile.WriteFile(p, []byte(r+"\n")); err != nil {
		s.log.Warn("could not write the app's revision", "workspace", ws, "app_id", id, "err", err)
	}
	return r
}

// recover finishes or undoes operations a crash interrupted in ws.
func (s *store) recover(ws string) {
	dir := s.wsDir(ws)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"), strings.HasPrefix(name, ".del-"):
			_ = os.RemoveAll(filepath.Join(dir, name))
		case strings.HasPrefix(name, unstagePrefix):
			s.recoverStaged(ws, name)
		case strings.HasPrefix(name, ".old-"):
			id := strings.TrimPrefix(name, ".old-")
			if i := strings.LastIndexByte(id, '-'); i > 0 {
				id = id[:i]
			}
			if _, err := os.Stat(filepath.Join(dir, id)); err == nil || validAppID(id) != nil {
				_ = os.RemoveAll(filepath.Join(dir, name))
			} else if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, id)); err != nil {
				s.log.Warn("could not restore app backup", "path", filepath.Join(dir, name), "err", err)
			}
		}
	}
}

// readManifest reads the manifest of the app version in dir.
func (s *store) readManifest(dir string) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%s is not an object", manifestFile)
	}
	return fromJSON(m).(map[string]any), nil
}

func writeFileSync(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, datadir.FileMode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename in dir durable; a failure only weakens durability
// after a crash, so it is not reported.
func syncDir(dir string) { _ = atomicfile.SyncDir(dir) }

func marshalManifest(m map[string]any) ([]byte, error) {
	b, err := json.MarshalIndent(jsonSafe(m), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b, nil
}

// writeTemp writes an app version completely into a new temporary
// directory of ws (".tmp-<app_id>-<rand>", removed by recover after a
// crash) and returns its path.
func (s *store) writeTemp(ws, id, rev string, manifest map[string]any, files map[string][]byte) (tmp string, err error) {
	if err := validWorkspace(ws); err != nil {
		return "", err
	}
	dir := s.wsDir(ws)
	if err := os.MkdirAll(dir, datadir.DirMode); err != nil {
		return "", err
	}
	tmp = filepath.Join(dir, ".tmp-"+id+"-"+idgen.New())
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.MkdirAll(filepath.Join(tmp, filesDir), datadir.DirMode); err != nil {
		return "", err
	}
	mb, err := marshalManifest(manifest)
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, manifestFile), mb); err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(tmp, revisionFile), []byte(rev+"\n")); err != nil {
		return "", err
	}
	for p, data := range files {
		if _, err := cleanFilePath(p); err != nil {
			return "", err
		}
		full := filepath.Join(tmp, filesDir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), datadir.DirMode); err != nil {
			return "", err
		}
		if err := writeFileSync(full, data); err != nil {
			return "", err
		}
	}
	syncDir(tmp)
	return tmp, nil
}

// remove deletes an app (rename first, so a crash leaves nothing half-deleted).
func (s *store) remove(ws, id string) error {
	final := s.appDir(ws, id)
	trash := filepath.Join(s.wsDir(ws), ".del-"+id+"-"+idgen.New())
	if err := os.Rename(final, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	syncDir(s.wsDir(ws))
	return os.RemoveAll(trash)
}

// writeManifest replaces the manifest.json of an app version atomically.
func (s *store) writeManifest(ws, id string, staged bool, m map[string]any) error {
	dir := s.versionDir(ws, id, staged)
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	b, err := marshalManifest(m)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, manifestFile), b)
}

// fileEntry is one entry of list_files.
type fileEntry struct {
	Name string
	Dir  bool
	Size int64
}

func (e fileEntry) toMap() map[string]any {
	t := "file"
	if e.Dir {
		t = "directory"
	}
	return map[string]any{"name": e.Name, "type": t, "size": e.Size}
}

// openRoot opens the files directory of an app version, confined to it.
func (s *store) openRoot(ws, id string, staged bool) (*os.Root, error) {
	return os.OpenRoot(filepath.Join(s.versionDir(ws, id, staged), filesDir))
}

// list returns the direct children of dir ("" = the app's top level).
func (s *store) list(ws, id string, staged bool, dir string) ([]fileEntry, error) {
	root, err := s.openRoot(ws, id, staged)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	name := "."
	if dir != "" {
		name = dir
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]fileEntry, 0, len(des))
	for _, de := range des {
		info, err := de.Info()
		if err != nil {
			continue
		}
		e := fileEntry{Name: de.Name(), Dir: de.IsDir()}
		if !e.Dir {
			e.Size = info.Size()
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// hasFile reports whether the app version has a regular file at p.
func (s *store) hasFile(ws, id string, staged bool, p string) bool {
	root, err := s.openRoot(ws, id, staged)
	if err != nil {
		return false
	}
	defer root.Close()
	st, err := root.Stat(path.Clean(p))
	return err == nil && st.Mode().IsRegular()
}
