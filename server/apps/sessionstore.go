package apps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/atomicfile"
	"github.com/hypha-go/hypha/internal/datadir"
)

// sessionStore keeps the controller's session records on disk, one JSON
// file per session:
//
//	<data>/sessions/<workspace>/<client_id>.json
//
// Each file is written whole and atomically (internal/atomicfile: temporary
// file, fsync, rename, fsync of the folder; mode 0600 in 0700 folders: the
// records hold the last log lines of apps, which may print secrets). A
// record is written when a session starts, runs, ends, is re-adopted, and
// when its cached last logs change; it is removed when the controller
// forgets the session. The number of files is bounded by the live sessions
// (the sessions-per-workspace limit) plus the ended ones
// (maxEndedPerWorkspace, Limits.EndedSessionTTL). docs/apps.md says why files and
// not SQLite.
type sessionStore struct {
	root string
	log  *slog.Logger
}

// sessionFileVersion is the format of sessionFile; a file of another
// version is skipped with a warning.
const sessionFileVersion = 1

// sessionFile is the on-disk form of a session. The app's token is never
// stored (a re-adopted session keeps the one it was started with).
type sessionFile struct {
	Version       int       `json:"version"`
	ID            string    `json:"id"`
	Workspace     string    `json:"workspace"`
	ClientID      string    `json:"client_id"`
	AppID         string    `json:"app_id"`
	AppType       string    `json:"app_type"`
	Daemon        bool      `json:"daemon,omitempty"`
	WorkerManaged bool      `json:"worker_managed,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason,omitempty"`
	EndedAt       time.Time `json:"ended_at,omitzero"`
	Adoptable     bool      `json:"adoptable,omitempty"`
	StopOnReturn  bool      `json:"stop_on_return,omitempty"`
	// LostAt: the record's life ended while the session awaited its
	// worker; it is kept, unlisted, until Limits.LostSessionTTL after that.
	LostAt       time.Time      `json:"lost_at,omitzero"`
	WorkerID     string         `json:"worker_id"`
	WorkerClient string         `json:"worker_client"`
	Context      map[string]any `json:"context,omitempty"`
	Revision     string         `json:"revision,omitempty"`
	Staged       bool           `json:"staged,omitempty"`
	Info         map[string]any `json:"info"`
	Tail         []any          `json:"tail,omitempty"`
	TailMissing  int64          `json:"tail_missing,omitempty"`
}

func openSessionStore(dataDir string, log *slog.Logger) (*sessionStore, error) {
	root := filepath.Join(dataDir, "sessions")
	if err := os.MkdirAll(root, datadir.DirMode); err != nil {
		return nil, fmt.Errorf("create session storage %s: %w", root, err)
	}
	return &sessionStore{root: root, log: log}, nil
}

// path is the file of session id "<ws>/<client_id>", or an error when the
// id cannot name a file under root.
func (st *sessionStore) path(id string) (dir, file string, err error) {
	ws, cid, ok := strings.Cut(id, "/")
	if !ok || validWorkspace(ws) != nil || cid == "" || strings.ContainsAny(cid, "/\\\x00") || strings.HasPrefix(cid, ".") {
		return "", "", fmt.Errorf("session id %q cannot be stored", id)
	}
	dir = filepath.Join(st.root, ws)
	return dir, filepath.Join(dir, cid+".json"), nil
}

// save writes one record.
func (st *sessionStore) save(r *sessionFile) error {
	dir, file, err := st.path(r.ID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode session %s: %w", r.ID, err)
	}
	if err := os.MkdirAll(dir, datadir.DirMode); err != nil {
		return fmt.Errorf("save session %s: %w", r.ID, err)
	}
	return atomicfile.WriteFile(file, b)
}

// remove deletes the record of session id (missing is fine).
func (st *sessionStore) remove(id string) error {
	dir, file, err := st.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(file); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove session %s: %w", id, err)
	}
	_ = atomicfile.SyncDir(dir)
	// An empty workspace folder goes too (Remove fails while it has files).
	_ = os.Remove(dir)
	return nil
}

// load reads every record. Unreadable records and temporary files a crash
// left are removed with a warning: a session record is not worth refusing
// to start for.
func (st *sessionStore) load() []*sessionFile {
	var out []*sessionFile
	wss, err := os.ReadDir(st.root)
	if err != nil {
		st.log.Warn("cannot read the session records", "dir", st.root, "err", err)
		return nil
	}
	for _, w := range wss {
		if !w.IsDir() || validWorkspace(w.Name()) != nil {
			continue
		}
		dir := filepath.Join(st.root, w.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			st.log.Warn("cannot read the session records", "dir", dir, "err", err)
			continue
		}
		for _, e := range entries {
			name := e.Name()
			p := filepath.Join(dir, name)
			if strings.HasPrefix(name, ".") {
				_ = os.Remove(p) // a temporary file a crash left
				continue
			}
			if !strings.HasSuffix(name, ".json") || !e.Type().IsRegular() {
				continue
			}
			r, err := readSessionFile(p)
			if err == nil && r.ID != w.Name()+"/"+strings.TrimSuffix(name, ".json") {
				err = fmt.Errorf("it names session %q", r.ID)
			}
			if err != nil {
				st.log.Warn("removing an unreadable session record", "path", p, "err", err)
				_ = os.Remove(p)
				continue
			}
			out = append(out, r)
		}
	}
	return out
}

func readSessionFile(p string) (*sessionFile, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var r sessionFile
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	if r.Version != sessionFileVersion {
		return nil, fmt.Errorf("format version %d, want %d", r.Version, sessionFileVersion)
	}
	if r.Info == nil {
		r.Info = map[string]any{}
	}
	r.Info = fromJSON(r.Info).(map[string]any)
	if r.Context != nil {
		r.Context = fromJSON(r.Context).(map[string]any)
	}
	for i, it := range r.Tail {
		r.Tail[i] = fromJSON(it)
	}
	return &r, nil
}

// fileOf snapshots a session for the store (c.mu held).
func (s *session) fileOf() *sessionFile {
	r := &sessionFile{
		Version: sessionFileVersion, ID: s.id, Workspace: s.ws, ClientID: s.cid, AppID: s.appID, AppType: s.appType,
		Daemon: s.daemon, WorkerManaged: s.workerManaged, CreatedAt: s.createdAt,
		Status: s.status, Reason: s.reason, EndedAt: s.endedAt, Adoptable: s.adopt, StopOnReturn: s.stopOnReturn, LostAt: s.lostAt,
		WorkerID: s.workerID, WorkerClient: s.workerClient, Revision: s.rev, Staged: s.staged,
		Info: jsonSafe(s.info).(map[string]any),
	}
	if s.context != nil {
		r.Context = jsonSafe(s.context).(map[string]any)
	}
	if s.tail != nil {
		r.Tail = jsonSafe(s.tail.items).([]any)
		r.TailMissing = s.tail.missing
	}
	return r
}

// markLocked schedules the session's record to be written (or removed,
// once the controller forgot it) by the persister (c.mu held).
func (c *Controller) markLocked(id string) {
	if c.persistOff || c.sessionStore == nil {
		return
	}
	c.dirty[id] = struct{}{}
	select {
	case c.persistKick <- struct{}{}:
	default:
	}
}

// persist writes the records marked dirty until the controller closes,
// then writes what is left once more. Writes happen outside c.mu, one
// goroutine, so that a record's writes never race and a slow disk never
// blocks an answer.
func (c *Controller) persist() {
	defer close(c.persistDone)
	for {
		select {
		case <-c.persistKick:
			c.flushDirty()
		case <-c.persistStop:
			c.flushDirty()
			return
		}
	}
}

// flushDirty writes (or removes) every record marked dirty.
func (c *Controller) flushDirty() {
	c.mu.Lock()
	dirty := c.dirty
	c.dirty = map[string]struct{}{}
	files := make(map[string]*sessionFile, len(dirty))
	for id := range dirty {
		if s := c.sessions[id]; s != nil {
			files[id] = s.fileOf()
		} else if s := c.lost[id]; s != nil {
			files[id] = s.fileOf()
		} else {
			files[id] = nil
		}
	}
	c.mu.Unlock()
	for id, r := range files {
		var err error
		if r == nil {
			err = c.sessionStore.remove(id)
		} else {
			err = c.sessionStore.save(r)
		}
		if err != nil {
			c.log.Warn("could not persist the session record", "session", id, "err", err)
		}
	}
}

// kickPersist wakes the persister (records marked before it ran).
func (c *Controller) kickPersist() {
	select {
	case c.persistKick <- struct{}{}:
	default:
	}
}

// stopPersist makes the persister write what is marked and stop; later
// marks are ignored (Close then forgets the sessions without removing
// their records).
func (c *Controller) stopPersist() {
	c.mu.Lock()
	if c.persistOff {
		c.mu.Unlock()
		return
	}
	c.persistOff = true
	c.mu.Unlock()
	close(c.persistStop)
	<-c.persistDone
}
