package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypha-go/hypha/internal/atomicfile"
)

// wsStore keeps workspace records on disk, one JSON file per workspace:
//
//	<data>/workspaces/<id>.json
//
// Each record is written atomically (temporary file, fsync, rename, fsync of
// the folder) with mode 0600 in a 0700 folder, so that after a restart the
// owners of a workspace are those recorded, and nobody else can create it.
// User workspaces (ws-user-<id>) have no record: their owner is implied by
// their name.
type wsStore struct {
	dir string
}

// wsRecord is the on-disk form of a workspace.
type wsRecord struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Owners      []string `json:"owners"`
	Persistent  bool     `json:"persistent"`
	ReadOnly    bool     `json:"read_only"`
	CreatedBy   string   `json:"created_by,omitempty"`
	Principal   string   `json:"principal,omitempty"`
}

const wsRecordExt = ".json"

// openWSStore creates (or tightens to 0700) the record folder under dataDir.
func openWSStore(dataDir string) (*wsStore, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("workspaces: create data dir: %w", err)
	}
	dir := filepath.Join(dataDir, "workspaces")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("workspaces: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("workspaces: %w", err)
	}
	return &wsStore{dir: dir}, nil
}

// persisted reports whether a workspace gets a record.
func persisted(id string) bool {
	return id != "public" && !strings.HasPrefix(id, "ws-user-")
}

func (st *wsStore) path(id string) string { return filepath.Join(st.dir, id+wsRecordExt) }

func (st *wsStore) save(w *workspace) error {
	if err := validWorkspaceID(w.ID); err != nil {
		return fmt.Errorf("workspaces: %w", err)
	}
	b, err := json.MarshalIndent(wsRecord{ID: w.ID, Name: w.Name, Description: w.Description, Owners: w.Owners,
		Persistent: w.Persistent, ReadOnly: w.ReadOnly, CreatedBy: w.CreatedBy, Principal: w.Principal}, "", "  ")
	if err != nil {
		return fmt.Errorf("workspaces: encode %s: %w", w.ID, err)
	}
	if err := atomicfile.WriteFile(st.path(w.ID), append(b, '\n')); err != nil {
		return fmt.Errorf("workspaces: save %s: %w", w.ID, err)
	}
	return nil
}

func (st *wsStore) remove(id string) error {
	if err := os.Remove(st.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("workspaces: remove %s: %w", id, err)
	}
	return atomicfile.SyncDir(st.dir)
}

// load reads every record. An unreadable record is an error: starting
// without it would let anyone claim that workspace.
func (st *wsStore) load() ([]*workspace, error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, fmt.Errorf("workspaces: %w", err)
	}
	var out []*workspace
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			_ = os.Remove(filepath.Join(st.dir, name)) // a temporary file a crash left
			continue
		}
		if !strings.HasSuffix(name, wsRecordExt) || !e.Type().IsRegular() {
			continue
		}
		id := strings.TrimSuffix(name, wsRecordExt)
		b, err := os.ReadFile(filepath.Join(st.dir, name))
		if err != nil {
			return nil, fmt.Errorf("workspaces: read the record of %s: %w", id, err)
		}
		var r wsRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("workspaces: the record %s is unreadable (%v); repair or remove it", filepath.Join(st.dir, name), err)
		}
		if r.ID != id || validWorkspaceID(id) != nil {
			return nil, fmt.Errorf("workspaces: the record %s names workspace %q; repair or remove it", filepath.Join(st.dir, name), r.ID)
		}
		out = append(out, &workspace{ID: r.ID, Name: r.Name, Description: r.Description, Owners: r.Owners,
			Persistent: r.Persistent, ReadOnly: r.ReadOnly, CreatedBy: r.CreatedBy, Principal: r.Principal})
	}
	return out, nil
}
