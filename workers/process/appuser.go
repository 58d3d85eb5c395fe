package process

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hypha-go/hypha/worker"
)

// When the worker runs as root and Options.AppUser is empty, every session
// runs as its own uid from Options.AppUIDBase/AppUIDCount (Linux). Where
// per-session uids are not available (other systems), sessions share one
// app user: DedicatedAppUser when that account exists, otherwise
// FallbackAppUser.
const (
	DedicatedAppUser = "hypha-app"
	FallbackAppUser  = "nobody"
)

// standardPath is where system interpreters live; it is searched when the
// interpreter found on the worker's PATH cannot be run by the app user
// (typically a per-user install under root's 0700 home folder).
const standardPath = "/usr/local/bin:/usr/bin:/bin"

// runAs says who app processes run as.
type runAs struct {
	switchUser bool // false: the worker's own user
	uid, gid   int
	name       string // e.g. "app user nobody (uid 65534)"
}

// interpChoice is the interpreter resolved for one app type, or why there
// is none.
type interpChoice struct {
	path string
	err  error
}

// setupResult is decided once per worker (see setup).
type setupResult struct {
	// user is who apps run as; with per-session uids (uids not nil) it is
	// the first uid of the range, which stands for "a user that owns
	// nothing here" in the reachability checks and interpreter probes. That
	// uid is reserved for them: never leased to a session and never swept
	// as an orphan, so that a probe of one worker is neither taken for a
	// session's leftover by another worker nor run as a live session's uid.
	user    runAs
	uids    *uidPool
	workDir string                  // parent of the session working directories
	path    string                  // PATH given to apps
	interp  map[string]interpChoice // by app type
}

// setup decides, once, who apps run as and which interpreters they use, and
// logs it. Register calls it so that problems show at start-up; Start calls
// it on first use. It fails only when apps cannot run at all (the app user
// does not exist, the working directory is out of its reach); a missing or
// unusable interpreter fails the starts of that app type only, with the
// reason.
func (w *Worker) setup(ctx context.Context) (*setupResult, error) {
	w.setupMu.Lock()
	defer w.setupMu.Unlock()
	if w.setupDone != nil || w.setupErr != nil {
		return w.setupDone, w.setupErr
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := w.doSetup(ctx)
	if ctx.Err() != nil {
		// Probes cut short prove nothing: decide again next time.
		return nil, fmt.Errorf("%w: process worker setup: %w", worker.ErrWorkerNotAvailable, ctx.Err())
	}
	w.setupDone, w.setupErr = res, err
	if err != nil {
		w.opts.Logger.Error("the process worker cannot run apps", "err", err)
	}
	return res, err
}

func (w *Worker) doSetup(ctx context.Context) (*setupResult, error) {
	log := w.opts.Logger
	u, perSession, err := w.appUser()
	if err != nil {
		return nil, err
	}
	res := &setupResult{user: u, workDir: w.opts.WorkDir, interp: map[string]interpChoice{}}
	if perSession {
		res.uids = newUIDPool(w.opts.AppUIDBase+1, w.opts.AppUIDCount-1, w.opts.WorkDir, log)
	}
	switch {
	case w.supervised():
		log.Debug("each app session runs under a supervisor that ends all of its processes")
	case canSupervise && !w.opts.NoSupervisor:
		log.Warn("app sessions run without a supervisor (the program does not call process.MaybeSupervise): " +
			"a process an app detaches can outlive its session")
	}
	res.path = os.Getenv("PATH")
	if res.path == "" {
		res.path = standardPath
	}
	if u.switchUser {
		if perSession {
			log.Info("each app session runs as its own unprivileged uid", "app_uids", rangeName(w.opts.AppUIDBase, w.opts.AppUIDCount))
		} else {
			log.Info("app sessions run as an unprivileged user", "app_user", u.name)
		}
		err := reachable(res.workDir, u, 0o1)
		if err != nil && w.opts.workDirDefault && res.workDir != "/tmp" && reachable("/tmp", u, 0o1) == nil {
			// A private TMPDIR is common; /tmp is there for everyone.
			log.Info("the temp dir is out of reach of the app users: app working directories go to /tmp",
				"temp_dir", res.workDir, "app_user", u.name, "reason", err.Error())
			res.workDir, err = "/tmp", nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: the working directory parent %s is out of reach of %s: %v; choose another --work-dir (HYPHA_WORK_DIR)",
				worker.ErrWorkerNotAvailable, w.opts.WorkDir, u.name, err)
		}
		// Entries the app user cannot search would only make its own
		// lookups fail later with a confusing "permission denied".
		res.path = filterPath(res.path, u)
		for _, p := range filepath.SplitList(w.opts.NodePath) {
			if err := reachable(p, u, 0o5); err != nil {
				log.Warn("node-eval apps will not find the modules of this NODE_PATH entry: the app users cannot read it",
					"entry", p, "app_user", u.name, "reason", err.Error())
			}
		}
	}
	for _, c := range []struct{ typ, name, flag string }{
		{TypePython, w.opts.Python, "--python"},
		{TypeNode, w.opts.Node, "--node"},
	} {
		ch := w.resolveInterpreter(ctx, c.typ, c.name, c.flag, u)
		res.interp[c.typ] = ch
		switch {
		case ch.err != nil:
			log.Warn("app type unavailable", "type", c.typ, "err", ch.err.Error())
		default:
			log.Debug("interpreter", "type", c.typ, "path", ch.path)
		}
	}
	// Working directories of this user whose worker and supervisor were
	// both killed (those of range uids: newUIDPool).
	if n := removeUnlockedWorkDirs(res.workDir, os.Geteuid(), log); n > 0 {
		log.Info("removed the working directories of app sessions of an earlier run", "dir", res.workDir, "entries", n)
	}
	return res, nil
}

// Check decides, once, who apps run as and which interpreters they use, and
// logs it; Register and the first Start call it too. Call it before a
// server starts listening so that the worker registers without delay. It
// fails only when no app can run (unknown app user, working directory out
// of its reach).
func (w *Worker) Check(ctx context.Context) error {
	_, err := w.setup(ctx)
	return err
}

// Interpreter returns the interpreter the worker runs apps of appType with
// (resolved on the worker's PATH; when apps run as the app user, one that
// user can run), or why there is none.
func (w *Worker) Interpreter(ctx context.Context, appType string) (string, error) {
	if _, err := w.interpreter(appType); err != nil {
		return "", err
	}
	su, err := w.setup(ctx)
	if err != nil {
		return "", err
	}
	ch := su.interp[appType]
	return ch.path, ch.err
}

// AppUser describes who apps run as, e.g. "the per-session app uids
// 2000000000-2000065535" or "app user nobody (uid 65534)".
func (w *Worker) AppUser(ctx context.Context) (string, error) {
	su, err := w.setup(ctx)
	if err != nil {
		return "", err
	}
	return su.user.name, nil
}

// appUser decides who apps run as. perSession: each session gets its own
// uid from the range (u is then the first uid of the range).
func (w *Worker) appUser() (u runAs, perSession bool, err error) {
	log := w.opts.Logger
	self := runAs{uid: os.Geteuid(), gid: os.Getegid()}
	self.name = describeUser(self.uid)
	if !canSwitchUser {
		return self, false, nil
	}
	if os.Geteuid() != 0 {
		// Said plainly: nothing separates apps from the worker then.
		msg := "the worker is not root: apps run as its own user and can read and signal whatever it can (its files, the server's data dir and secret files when it runs in the server, the other sessions; see docs/security.md)"
		if w.opts.AppUser != "" {
			log.Warn("app user ignored: "+msg, "app_user", w.opts.AppUser, "worker_user", self.name)
		} else {
			log.Info(msg, "worker_user", self.name)
		}
		return self, false, nil
	}
	if w.opts.RunAsWorkerUser {
		log.Error("APPS RUN AS ROOT (explicit opt-out of the app user): app code can read the server's secrets, its data dir and everything on this host")
		return self, false, nil
	}
	name := w.opts.AppUser
	if name == "" && perSessionUIDs {
		base, count := w.opts.AppUIDBase, w.opts.AppUIDCount
		if err := checkUIDRange(base, count); err != nil {
			return runAs{}, false, fmt.Errorf("%w: --app-uids (HYPHA_APP_UIDS): %w", worker.ErrWorkerNotAvailable, err)
		}
		if count-1 < w.opts.MaxSessions {
			return runAs{}, false, fmt.Errorf("%w: %w: the app uid range %s has %d uids for sessions (its first is kept for start-up checks), fewer than the %d sessions allowed (--max-sessions); widen --app-uids (HYPHA_APP_UIDS) or lower --max-sessions",
				worker.ErrWorkerNotAvailable, ErrAppUIDs, rangeName(base, count), count-1, w.opts.MaxSessions)
		}
		if err := checkUIDRangeFree(base, count); err != nil {
			return runAs{}, false, fmt.Errorf("%w: %w", worker.ErrWorkerNotAvailable, err)
		}
		return runAs{switchUser: true, uid: base, gid: base, name: "the per-session app uids " + rangeName(base, count)}, true, nil
	}
	explicit := name != ""
	if name == "" {
		name = FallbackAppUser
		if _, err := user.Lookup(DedicatedAppUser); err == nil {
			name = DedicatedAppUser
		}
	}
	usr, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			usr, err = user.LookupId(name)
		}
	}
	if err != nil {
		return runAs{}, false, fmt.Errorf("%w: app user %q: %v; create it or pass --app-user (HYPHA_APP_USER) with an existing unprivileged user",
			worker.ErrWorkerNotAvailable, name, err)
	}
	uid, err1 := strconv.Atoi(usr.Uid)
	gid, err2 := strconv.Atoi(usr.Gid)
	if err1 != nil || err2 != nil {
		return runAs{}, false, fmt.Errorf("%w: app user %q has a non-numeric uid %q or gid %q", worker.ErrWorkerNotAvailable, name, usr.Uid, usr.Gid)
	}
	if uid == 0 {
		log.Error("APPS RUN AS ROOT (app user has uid 0): app code can read the server's secrets, its data dir and everything on this host", "app_user", name)
		return self, false, nil
	}
	u = runAs{switchUser: true, uid: uid, gid: gid, name: fmt.Sprintf("app user %s (uid %d)", usr.Username, uid)}
	msg := "every app session runs as the same app user: app code of one session can read another session's environment (its token, which acts in that session's workspace) and files, and signal or trace it"
	if explicit && perSessionUIDs {
		log.Warn(msg+"; leave --app-user (HYPHA_APP_USER) unset for a uid per session", "app_user", u.name)
		if w.opts.appUIDsSet {
			log.Warn("--app-uids ignored: --app-user names one user for every session", "app_user", u.name)
		}
	} else {
		log.Warn(msg+" (per-session uids need Linux)", "app_user", u.name)
	}
	return u, false, nil
}

func describeUser(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// resolveInterpreter finds the interpreter for an app type. When apps run
// as another user it checks that this user can really run it (a probe
// process) and, for a bare name such as "python3", falls back to the
// standard system folders when the one on PATH is out of its reach.
func (w *Worker) resolveInterpreter(ctx context.Context, typ, name, flag string, u runAs) interpChoice {
	p, err := exec.LookPath(name)
	if err != nil {
		return interpChoice{err: fmt.Errorf("%w: interpreter %q for %s not found: %v", worker.ErrWorkerNotAvailable, name, typ, err)}
	}
	if !u.switchUser {
		return interpChoice{path: p}
	}
	perr := probe(ctx, typ, p, u)
	if perr == nil {
		return interpChoice{path: p}
	}
	if !strings.ContainsRune(name, filepath.Separator) {
		for _, dir := range filepath.SplitList(standardPath) {
			alt := filepath.Join(dir, name)
			if alt == p || !isExecutable(alt) {
				continue
			}
			if probe(ctx, typ, alt, u) == nil {
				w.opts.Logger.Warn(fmt.Sprintf("%s apps: %s cannot be run by %s; using %s instead (pass %s to choose)",
					typ, p, u.name, alt, flag), "reason", perr.Error())
				return interpChoice{path: alt}
			}
		}
	}
	return interpChoice{err: fmt.Errorf("%w: %s apps cannot run: interpreter %s cannot be run by %s (%v); pass %s with an interpreter any user can run (a system install such as %s)",
		worker.ErrWorkerNotAvailable, typ, p, u.name, perr, flag, filepath.Join("/usr/bin", filepath.Base(name)))}
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// probe runs the interpreter on an empty program as the app user.
func probe(ctx context.Context, typ, interp string, u runAs) error {
	flag := "-c" // python, and sh in tests
	if typ == TypeNode {
		flag = "-e"
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, interp, flag, "")
	cmd.Env = []string{"PATH=" + standardPath, "HOME=/"}
	cmd.Dir = "/"
	cmd.Stderr = &stderr
	cmd.SysProcAttr = sysProcAttr(u)
	err := runCmd(cmd)
	if err == nil {
		return nil
	}
	if why := reachable(interp, u, 0o1); why != nil {
		return why
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// reachable checks that u can reach path and has the permission bits need
// (0o4 read, 0o2 write, 0o1 execute/search) on it: search permission on
// every folder above it, as written and after resolving symbolic links. It
// names the first obstacle.
func reachable(path string, u runAs, need uint32) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := searchable(filepath.Dir(abs), u); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	if err := searchable(filepath.Dir(real), u); err != nil {
		return err
	}
	return allows(real, u, need)
}

// searchable checks search permission on dir and every folder above it.
func searchable(dir string, u runAs) error {
	cur := "/"
	if err := allows(cur, u, 0o1); err != nil {
		return err
	}
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		if err := allows(cur, u, 0o1); err != nil {
			return err
		}
	}
	return nil
}

// allows checks u's permission bits on one path (owner, then group, then
// others, as the kernel does; supplementary groups are not given to apps).
func allows(p string, u runAs, need uint32) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	uid, gid, ok := owner(st)
	if !ok {
		return nil
	}
	perm := uint32(st.Mode().Perm())
	var bits uint32
	switch {
	case uid == u.uid:
		bits = perm >> 6
	case gid == u.gid:
		bits = perm >> 3
	default:
		bits = perm
	}
	if bits&need != need {
		return fmt.Errorf("%s (mode %v, owner %s) is not %s by %s", p, st.Mode(), describeUser(uid), permWord(need), u.name)
	}
	return nil
}

func permWord(need uint32) string {
	switch need {
	case 0o1:
		return "searchable"
	case 0o4:
		return "readable"
	case 0o5:
		return "readable and searchable"
	}
	return fmt.Sprintf("accessible (%o)", need)
}

// filterPath keeps the PATH entries u can search.
func filterPath(list string, u runAs) string {
	var keep []string
	for _, p := range filepath.SplitList(list) {
		if p != "" && filepath.IsAbs(p) && reachable(p, u, 0o1) == nil {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return standardPath
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}
