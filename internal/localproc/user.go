package localproc

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

// StandardPath is where system programs live: the PATH apps get when the
// worker's own has nothing they can search, and where a worker looks for a
// program the app user can run when the one on its PATH is out of that
// user's reach (typically a per-user install under root's 0700 home).
const StandardPath = "/usr/local/bin:/usr/bin:/bin"

// runAs says who app processes run as.
type runAs struct {
	switchUser bool // false: the worker's own user
	uid, gid   int
	name       string // e.g. "app user nobody (uid 65534)"
}

// appUser decides who apps run as. perSession: each session gets its own
// uid from the range (u is then the first uid of the range).
func (r *Runner) appUser() (u runAs, perSession bool, err error) {
	log := r.opts.Logger
	self := runAs{uid: os.Geteuid(), gid: os.Getegid()}
	self.name = describeUser(self.uid)
	if !canSwitchUser {
		return self, false, nil
	}
	if os.Geteuid() != 0 {
		// Said plainly: nothing separates apps from the worker then.
		msg := "the worker is not root: apps run as its own user and can read and signal whatever it can (its files, the server's data dir and secret files when it runs in the server, the other sessions; see docs/security.md)"
		if r.opts.AppUser != "" {
			log.Warn("app user ignored: "+msg, "app_user", r.opts.AppUser, "worker_user", self.name)
		} else {
			log.Info(msg, "worker_user", self.name)
		}
		return self, false, nil
	}
	if r.opts.RunAsWorkerUser {
		log.Error("APPS RUN AS ROOT (explicit opt-out of the app user): app code can read the server's secrets, its data dir and everything on this host")
		return self, false, nil
	}
	name := r.opts.AppUser
	if name == "" && perSessionUIDs {
		base, count := r.opts.AppUIDBase, r.opts.AppUIDCount
		if err := checkUIDRange(base, count); err != nil {
			return runAs{}, false, fmt.Errorf("%w: --app-uids (HYPHA_APP_UIDS): %w", worker.ErrWorkerNotAvailable, err)
		}
		if count-1 < r.opts.MaxSessions {
			return runAs{}, false, fmt.Errorf("%w: %w: the app uid range %s has %d uids for sessions (its first is kept for start-up checks), fewer than the %d sessions allowed (--max-sessions); widen --app-uids (HYPHA_APP_UIDS) or lower --max-sessions",
				worker.ErrWorkerNotAvailable, ErrAppUIDs, rangeName(base, count), count-1, r.opts.MaxSessions)
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
		if r.appUIDsSet {
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

// probe runs a program as u, in "/" with a minimal environment.
func probe(ctx context.Context, path string, args []string, u runAs) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"PATH=" + StandardPath, "HOME=/"}
	cmd.Dir = "/"
	cmd.Stderr = &stderr
	cmd.SysProcAttr = sysProcAttr(u)
	err := runCmd(cmd)
	if err == nil {
		return nil
	}
	if u.switchUser {
		if why := reachable(path, u, 0o1); why != nil {
			return why
		}
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
		return StandardPath
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}
