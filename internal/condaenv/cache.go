package condaenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hypha-go/hypha/internal/atomicfile"
)

// Cache defaults, as upstream's: ten environments, thirty days.
const (
	DefaultMaxEnvs = 10
	DefaultMaxAge  = 30 * 24 * time.Hour
	// ReadyMarker is the file, inside a prefix, written only once the
	// environment is proven (upstream's name).
	ReadyMarker = ".hypha_env_ready"
)

// ErrNoBuilder is returned when a spec needs conda but no manager was found
// (and the pip-only path does not apply).
var ErrNoBuilder = errors.New("no environment manager to build this spec (it needs conda packages)")

// Cache is a directory of environments keyed by the hash of their
// normalised spec. Layout under Dir:
//
//	index.json        the index (hash -> entry), written atomically, 0600
//	index.lock        flock guarding index read-modify-write
//	locks/NAME.build  flock held while an environment is checked or built
//	locks/NAME.use    shared flock held by every user of an environment
//	envs/NAME/        the prefix (NAME: first 16 hex digits of the hash)
//	envs/NAME/.hypha_env_ready  written last, after the proof
//
// Directories are 0755 and environment files are made readable (never
// writable) by group and others, so that per-session app uids can run the
// environment's Python but cannot change it; the cache is written only by
// the worker's user.
type Cache struct {
	Dir     string        // absolute
	MaxEnvs int           // at most this many environments are kept (not counting ones in use); DefaultMaxEnvs when 0
	MaxAge  time.Duration // environments created longer ago are removed when unused; DefaultMaxAge when 0
	Logger  *slog.Logger

	// Manager builds specs with conda packages; nil when none was found.
	Manager *Manager
	// Pip configures the pip-only fast path.
	Pip PipOptions
	// Prove checks that an environment works; by default its python
	// imports ipykernel. It runs after every build and, unless
	// TrustReadyMarker, on every hit.
	Prove            func(ctx context.Context, python string) error
	TrustReadyMarker bool
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time

	mu       sync.Mutex
	inflight map[string]*flight
}

type flight struct {
	done chan struct{}
	mgr  string
	err  error
}

// Env is an environment handed out by the cache. It is leased: it is never
// evicted or rebuilt under its user until Release.
type Env struct {
	Prefix  string
	Python  string
	Hash    string
	Manager string // micromamba, mamba, conda, pip-venv or uv-venv
	lease   *lease
}

type lease struct {
	once sync.Once
	f    *os.File
}

// Release ends the lease; the environment may then be evicted. Safe to call
// more than once and on the zero Env.
func (e Env) Release() {
	if e.lease == nil {
		return
	}
	e.lease.once.Do(func() { e.lease.f.Close() })
}

// IndexEntry is one environment in the index.
type IndexEntry struct {
	Name         string    `json:"name"`
	Path         string    `json:"path"`
	Manager      string    `json:"manager"`
	Channels     []string  `json:"channels"`
	Dependencies []string  `json:"dependencies"`
	Pip          []string  `json:"pip,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	LastAccessed time.Time `json:"last_accessed"`
}

type indexFile struct {
	Version int                    `json:"version"`
	Envs    map[string]*IndexEntry `json:"envs"`
}

type readyMarker struct {
	Hash    string    `json:"hash"`
	Manager string    `json:"manager"`
	Created time.Time `json:"created"`
}

func (c *Cache) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) maxEnvs() int {
	if c.MaxEnvs > 0 {
		return c.MaxEnvs
	}
	return DefaultMaxEnvs
}

func (c *Cache) maxAge() time.Duration {
	if c.MaxAge > 0 {
		return c.MaxAge
	}
	return DefaultMaxAge
}

func (c *Cache) envsDir() string  { return filepath.Join(c.Dir, "envs") }
func (c *Cache) locksDir() string { return filepath.Join(c.Dir, "locks") }

func (c *Cache) prepare() error {
	if c.Dir == "" {
		return errors.New("condaenv: Cache.Dir is empty")
	}
	// Prefixes are written into installed files and handed to solvers that
	// resolve relative ones differently: they are absolute from the start.
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("condaenv: Cache.Dir %q is not an absolute path", c.Dir)
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{c.Dir, 0o755}, {c.envsDir(), 0o755}, {c.locksDir(), 0o700}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("condaenv: %w", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("condaenv: %w", err)
		}
	}
	return nil
}

// Get returns a ready environment for spec, building it when the cache has
// none. The spec is normalised and validated first. Output of a build
// streams to progress. Two Gets of one spec, in this process or in other
// processes sharing Dir, build it once; the others wait and reuse it. The
// caller must Release the Env when its session ends.
func (c *Cache) Get(ctx context.Context, spec Spec, progress Progress) (Env, error) {
	spec = spec.Normalize()
	if err := spec.Validate(); err != nil {
		return Env{}, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	if err := c.prepare(); err != nil {
		return Env{}, err
	}
	h := spec.Hash()
	name := h[:16]
	prefix := filepath.Join(c.envsDir(), name)

	// The use lease first: once held, no evictor can remove the prefix,
	// whatever happens between the build and the caller's session.
	useF, err := lockFile(ctx, filepath.Join(c.locksDir(), name+".use"), syscall.LOCK_SH, nil)
	if err != nil {
		return Env{}, fmt.Errorf("condaenv: lease %s: %w", name, err)
	}
	mgr, err := c.ensureOnce(ctx, spec, h, name, prefix, progress)
	if err != nil {
		useF.Close()
		return Env{}, err
	}
	c.evict(ctx)
	return Env{
		Prefix:  prefix,
		Python:  filepath.Join(prefix, "bin", "python"),
		Hash:    h,
		Manager: mgr,
		lease:   &lease{f: useF},
	}, nil
}

// ensureOnce runs ensure once per hash in this process; the others wait for
// it. A waiter whose leader gave up because of the leader's own context
// tries again itself.
func (c *Cache) ensureOnce(ctx context.Context, spec Spec, h, name, prefix string, progress Progress) (string, error) {
	for {
		c.mu.Lock()
		if c.inflight == nil {
			c.inflight = map[string]*flight{}
		}
		if f, ok := c.inflight[h]; ok {
			c.mu.Unlock()
			progress("waiting for the build of this environment already in progress")
			select {
			case <-f.done:
			case <-ctx.Done():
				return "", fmt.Errorf("condaenv: %w", ctx.Err())
			}
			if f.err != nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue
			}
			return f.mgr, f.err
		}
		f := &flight{done: make(chan struct{})}
		c.inflight[h] = f
		c.mu.Unlock()
		f.mgr, f.err = c.ensure(ctx, spec, h, name, prefix, progress)
		c.mu.Lock()
		delete(c.inflight, h)
		c.mu.Unlock()
		close(f.done)
		return f.mgr, f.err
	}
}

// ensure makes prefix a ready environment for spec, under the build lock.
func (c *Cache) ensure(ctx context.Context, spec Spec, h, name, prefix string, progress Progress) (string, error) {
	log := c.logger().With("env", name)
	buildF, err := lockFile(ctx, filepath.Join(c.locksDir(), name+".build"), syscall.LOCK_EX, func() {
		progress("waiting for another worker process building this environment")
	})
	if err != nil {
		return "", fmt.Errorf("condaenv: build lock %s: %w", name, err)
	}
	defer buildF.Close()

	if mgr, ok := c.ready(ctx, prefix, h, log); ok {
		progress("using cached environment " + name + " (" + mgr + ")")
		if err := c.updateIndex(ctx, func(idx *indexFile) {
			e := idx.Envs[h]
			if e == nil {
				e = c.newEntry(spec, name, prefix, mgr)
				idx.Envs[h] = e
			}
			e.LastAccessed = c.now()
		}); err != nil {
			log.Warn("index update failed", "err", err)
		}
		return mgr, nil
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("condaenv: %w", ctx.Err())
	}
	if _, err := os.Lstat(prefix); err == nil {
		progress("removing incomplete or broken environment " + name)
		log.Info("removing incomplete environment")
		if err := removeTree(prefix); err != nil {
			return "", fmt.Errorf("condaenv: remove %s: %w", prefix, err)
		}
	}
	start := c.now()
	mgr, err := c.build(ctx, spec, prefix, progress)
	if err != nil {
		_ = removeTree(prefix)
		log.Warn("build failed", "err", err)
		return "", fmt.Errorf("condaenv: %w", err)
	}
	if err := makeShared(prefix); err != nil {
		_ = removeTree(prefix)
		return "", fmt.Errorf("condaenv: permissions of %s: %w", prefix, err)
	}
	progress("checking the environment")
	if err := c.prove(ctx, filepath.Join(prefix, "bin", "python")); err != nil {
		_ = removeTree(prefix)
		if ctx.Err() != nil {
			return "", fmt.Errorf("condaenv: %w", ctx.Err())
		}
		return "", fmt.Errorf("condaenv: %w: the new environment does not work: %v", ErrBuildFailed, err)
	}
	mk, _ := json.Marshal(readyMarker{Hash: h, Manager: mgr, Created: c.now()})
	if err := atomicfile.WriteFile(filepath.Join(prefix, ReadyMarker), mk); err != nil {
		_ = removeTree(prefix)
		return "", fmt.Errorf("condaenv: %w", err)
	}
	if err := c.updateIndex(ctx, func(idx *indexFile) {
		idx.Envs[h] = c.newEntry(spec, name, prefix, mgr)
	}); err != nil {
		log.Warn("index update failed", "err", err)
	}
	log.Info("environment built", "manager", mgr, "took", c.now().Sub(start).Round(time.Millisecond))
	progress(fmt.Sprintf("environment %s ready (%s)", name, mgr))
	return mgr, nil
}

func (c *Cache) newEntry(spec Spec, name, prefix, mgr string) *IndexEntry {
	now := c.now()
	return &IndexEntry{
		Name: name, Path: prefix, Manager: mgr,
		Channels: spec.Channels, Dependencies: spec.Dependencies, Pip: spec.Pip,
		CreatedAt: now, LastAccessed: now,
	}
}

// ready reports whether prefix holds a proven environment for hash h: its
// marker names h, its python exists, and (unless TrustReadyMarker) the
// proof passes.
func (c *Cache) ready(ctx context.Context, prefix, h string, log *slog.Logger) (string, bool) {
	data, err := os.ReadFile(filepath.Join(prefix, ReadyMarker))
	if err != nil {
		return "", false
	}
	var mk readyMarker
	if json.Unmarshal(data, &mk) != nil || mk.Hash != h {
		log.Warn("ready marker does not match", "want", h)
		return "", false
	}
	py := filepath.Join(prefix, "bin", "python")
	if _, err := os.Stat(py); err != nil {
		log.Warn("environment has no python", "err", err)
		return "", false
	}
	if !c.TrustReadyMarker {
		if err := c.prove(ctx, py); err != nil {
			log.Warn("cached environment fails its proof", "err", err)
			return "", false
		}
	}
	return mk.Manager, true
}

func (c *Cache) prove(ctx context.Context, python string) error {
	if c.Prove != nil {
		return c.Prove(ctx, python)
	}
	return ProveIPyKernel(ctx, python)
}

// ProveIPyKernel is the default proof: the environment's python imports
// ipykernel.
func ProveIPyKernel(ctx context.Context, python string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := runStreaming(ctx, []string{python, "-c", "import ipykernel"}, cleanEnv(), nil)
	return err
}

// build runs the pip-only path when the spec allows it and a Python
// matches, else the manager.
func (c *Cache) build(ctx context.Context, spec Spec, prefix string, progress Progress) (string, error) {
	if !c.Pip.Disabled {
		if cons, ok := spec.PipOnly(); ok {
			py, ver, err := findPython(ctx, c.Pip.candidates(), cons)
			if err == nil {
				progress(fmt.Sprintf("pip-only environment over Python %s (%s)", ver, py))
				return buildVenv(ctx, prefix, py, spec, c.Pip, progress)
			}
			if c.Manager == nil {
				return "", fmt.Errorf("%w: %v", ErrNoBuilder, err)
			}
			progress("no local Python for the pip-only path (" + err.Error() + "); using " + c.Manager.Name)
		}
	}
	if c.Manager == nil {
		return "", ErrNoBuilder
	}
	progress(fmt.Sprintf("creating the environment with %s (this may take several minutes)", c.Manager.Name))
	if err := c.Manager.Create(ctx, prefix, spec, progress); err != nil {
		return "", err
	}
	return c.Manager.Name, nil
}

func (c *Cache) readIndex() *indexFile {
	idx := &indexFile{Version: 1, Envs: map[string]*IndexEntry{}}
	data, err := os.ReadFile(filepath.Join(c.Dir, "index.json"))
	if err != nil {
		return idx
	}
	var got indexFile
	if json.Unmarshal(data, &got) != nil || got.Envs == nil {
		// A corrupt index is rebuilt from what is on disk: entries come
		// back on their next hit, orphans are swept by eviction.
		c.logger().Warn("ignoring unreadable cache index")
		return idx
	}
	for h, e := range got.Envs {
		// The name becomes a path: only a hex hash may name an entry.
		if e == nil || len(h) != 64 || !isHex(h) || e.Name != h[:16] {
			continue
		}
		e.Path = filepath.Join(c.envsDir(), e.Name)
		idx.Envs[h] = e
	}
	return idx
}

func (c *Cache) updateIndex(ctx context.Context, fn func(*indexFile)) error {
	f, err := lockFile(ctx, filepath.Join(c.Dir, "index.lock"), syscall.LOCK_EX, nil)
	if err != nil {
		return err
	}
	defer f.Close()
	idx := c.readIndex()
	fn(idx)
	return c.writeIndex(idx)
}

func (c *Cache) writeIndex(idx *indexFile) error {
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.Dir, "index.json"), data)
}

// Entries returns the index, oldest access first (for tools and tests).
func (c *Cache) Entries() []IndexEntry {
	idx := c.readIndex()
	out := make([]IndexEntry, 0, len(idx.Envs))
	for _, e := range idx.Envs {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastAccessed.Before(out[j].LastAccessed) })
	return out
}

// evict removes, best effort, environments created more than MaxAge ago,
// then the least recently used ones while more than MaxEnvs remain, and
// prefixes no index entry names (left by a crash). An environment in use
// (a lease is held) or being built is skipped.
func (c *Cache) evict(ctx context.Context) {
	log := c.logger()
	f, err := lockFile(ctx, filepath.Join(c.Dir, "index.lock"), syscall.LOCK_EX, nil)
	if err != nil {
		return
	}
	defer f.Close()
	idx := c.readIndex()
	changed := false
	now := c.now()
	remove := func(h string, why string) {
		e := idx.Envs[h]
		if c.tryRemove(e.Name) {
			log.Info("evicted environment", "env", e.Name, "why", why)
			delete(idx.Envs, h)
			changed = true
		}
	}
	for h, e := range idx.Envs {
		if now.Sub(e.CreatedAt) > c.maxAge() {
			remove(h, "age")
		}
	}
	if len(idx.Envs) > c.maxEnvs() {
		hs := make([]string, 0, len(idx.Envs))
		for h := range idx.Envs {
			hs = append(hs, h)
		}
		sort.Slice(hs, func(i, j int) bool { return idx.Envs[hs[i]].LastAccessed.Before(idx.Envs[hs[j]].LastAccessed) })
		for _, h := range hs {
			if len(idx.Envs) <= c.maxEnvs() {
				break
			}
			remove(h, "count")
		}
	}
	known := map[string]bool{}
	for _, e := range idx.Envs {
		known[e.Name] = true
	}
	ents, _ := os.ReadDir(c.envsDir())
	for _, d := range ents {
		n := d.Name()
		switch {
		case strings.HasPrefix(n, ".trash-"):
			_ = os.RemoveAll(filepath.Join(c.envsDir(), n))
		case !known[n] && len(n) == 16:
			if c.tryRemove(n) {
				log.Info("removed environment missing from the index", "env", n)
			}
		}
	}
	if changed {
		if err := c.writeIndex(idx); err != nil {
			log.Warn("index write failed", "err", err)
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// tryRemove deletes an environment if nobody uses or builds it.
func (c *Cache) tryRemove(name string) bool {
	u, ok := tryLock(filepath.Join(c.locksDir(), name+".use"), syscall.LOCK_EX)
	if !ok {
		return false
	}
	defer u.Close()
	b, ok := tryLock(filepath.Join(c.locksDir(), name+".build"), syscall.LOCK_EX)
	if !ok {
		return false
	}
	defer b.Close()
	return removeTree(filepath.Join(c.envsDir(), name)) == nil
}

// removeTree moves a prefix aside first, so that a half-removed tree never
// sits at an environment's path, then deletes it.
func removeTree(prefix string) error {
	if _, err := os.Lstat(prefix); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	trash := filepath.Join(filepath.Dir(prefix), ".trash-"+filepath.Base(prefix)+"-"+hex.EncodeToString(r[:]))
	if err := os.Rename(prefix, trash); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// makeShared makes an environment usable but not changeable by other uids:
// directories 0755, files readable by all and never group/other-writable,
// executable by all when executable by the owner.
func makeShared(prefix string) error {
	return filepath.WalkDir(prefix, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := info.Mode().Perm()
		var want fs.FileMode
		if d.IsDir() {
			want = 0o755 | m&0o700
		} else {
			want = m&^0o022 | 0o444
			if m&0o100 != 0 {
				want |= 0o111
			}
		}
		if want != m {
			return os.Chmod(p, want)
		}
		return nil
	})
}
