package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hypha-go/hypha/internal/localproc"
	"github.com/hypha-go/hypha/worker"
)

// interpChoice is the interpreter resolved for one app type, or why there
// is none.
type interpChoice struct {
	path string
	err  error
}

// setupResult is decided once per worker (see setup).
type setupResult struct {
	// user is who apps run as (see localproc.Runner.User): with
	// per-session uids, the first uid of the range, which stands for "a
	// user that owns nothing here" in the reachability checks and
	// interpreter probes.
	user   localproc.User
	interp map[string]interpChoice // by app type
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
	// Who apps run as, the uid pool, the working directory parent and the
	// PATH apps get: the local process runner decides.
	if err := w.runner.Setup(ctx); err != nil {
		return nil, err
	}
	u := w.runner.User()
	res := &setupResult{user: u, interp: map[string]interpChoice{}}
	if u.Switch {
		for _, p := range filepath.SplitList(w.opts.NodePath) {
			if err := w.runner.CheckReachable(p, 0o5); err != nil {
				log.Warn("node-eval apps will not find the modules of this NODE_PATH entry: the app users cannot read it",
					"entry", p, "app_user", u.Name, "reason", err.Error())
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
	return su.user.Name, nil
}

// resolveInterpreter finds the interpreter for an app type. When apps run
// as another user it checks that this user can really run it (a probe
// process) and, for a bare name such as "python3", falls back to the
// standard system folders when the one on PATH is out of its reach.
func (w *Worker) resolveInterpreter(ctx context.Context, typ, name, flag string, u localproc.User) interpChoice {
	p, err := exec.LookPath(name)
	if err != nil {
		return interpChoice{err: fmt.Errorf("%w: interpreter %q for %s not found: %v", worker.ErrWorkerNotAvailable, name, typ, err)}
	}
	if !u.Switch {
		return interpChoice{path: p}
	}
	perr := w.probe(ctx, typ, p)
	if perr == nil {
		return interpChoice{path: p}
	}
	if !strings.ContainsRune(name, filepath.Separator) {
		for _, dir := range filepath.SplitList(localproc.StandardPath) {
			alt := filepath.Join(dir, name)
			if alt == p || !isExecutable(alt) {
				continue
			}
			if w.probe(ctx, typ, alt) == nil {
				w.opts.Logger.Warn(fmt.Sprintf("%s apps: %s cannot be run by %s; using %s instead (pass %s to choose)",
					typ, p, u.Name, alt, flag), "reason", perr.Error())
				return interpChoice{path: alt}
			}
		}
	}
	return interpChoice{err: fmt.Errorf("%w: %s apps cannot run: interpreter %s cannot be run by %s (%v); pass %s with an interpreter any user can run (a system install such as %s)",
		worker.ErrWorkerNotAvailable, typ, p, u.Name, perr, flag, filepath.Join("/usr/bin", filepath.Base(name)))}
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// probe runs the interpreter on an empty program as the app user.
func (w *Worker) probe(ctx context.Context, typ, interp string) error {
	flag := "-c" // python, and sh in tests
	if typ == TypeNode {
		flag = "-e"
	}
	return w.runner.Probe(ctx, interp, flag, "")
}
