package condaenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PipOptions configure the pip-only fast path: a spec that asks conda for
// nothing but python and the kernel packages is built as a virtual
// environment over a local Python instead of being solved by conda.
type PipOptions struct {
	// Disabled turns the fast path off: every spec goes to the manager.
	Disabled bool
	// Pythons are the candidate interpreters, in order of preference; when
	// empty: /usr/bin/python3, then python3.13 … python3.8 and python3 on
	// PATH.
	Pythons []string
	// FindLinks and NoIndex are passed to pip (and uv) as
	// --find-links/--no-index: offline installs from a wheel directory.
	FindLinks []string
	NoIndex   bool
	// UV is the uv binary to install with; when empty, "uv" on PATH is used
	// if present, unless NoUV.
	UV   string
	NoUV bool
}

// kernelPipPackages are what the venv needs for a kernel when the base
// Python does not already provide them.
var kernelPipPackages = []string{"ipykernel", "jupyter_client", "pyzmq"}

// PipOnly reports whether the spec can take the pip-only path: its conda
// dependencies are only python (with an optional version constraint) and
// the bare kernel packages. It returns python's constraint ("" for any).
func (s Spec) PipOnly() (pythonConstraint string, ok bool) {
	for _, d := range s.Dependencies {
		if strings.Contains(d, "::") {
			return "", false
		}
		name := condaName(d)
		cons := condaConstraint(d)
		switch name {
		case "python":
			pythonConstraint = cons
		case "pip", "ipykernel", "jupyter_client", "pyzmq":
			if cons != "" {
				return "", false
			}
		default:
			return "", false
		}
	}
	if _, err := matchVersion([3]int{3, 0, 0}, pythonConstraint); err != nil {
		return "", false
	}
	return pythonConstraint, true
}

// matchVersion checks a Python version against a conda version constraint
// of the simple kinds: "3.11" / "=3.11" (prefix), "==3.11.4", ">=3.9",
// "<3.13", "!=3.10", "3.11.*", comma-joined. Anything else is an error,
// which sends the spec to conda.
func matchVersion(v [3]int, constraint string) (bool, error) {
	constraint = strings.ReplaceAll(strings.TrimSpace(constraint), " ", "")
	if constraint == "" {
		return true, nil
	}
	for _, part := range strings.Split(constraint, ",") {
		op := ""
		for _, o := range []string{"==", ">=", "<=", "!=", ">", "<", "="} {
			if strings.HasPrefix(part, o) {
				op = o
				break
			}
		}
		ver := strings.TrimPrefix(part, op)
		wild := strings.HasSuffix(ver, ".*")
		ver = strings.TrimSuffix(ver, ".*")
		nums, err := parseVersion(ver)
		if err != nil {
			return false, err
		}
		prefix := op == "" || op == "=" || wild
		c := compareVersion(v, nums, prefix)
		var ok bool
		switch op {
		case "", "=":
			ok = c == 0
		case "==":
			ok = c == 0
		case "!=":
			ok = c != 0
		case ">=":
			ok = c >= 0
		case "<=":
			ok = c <= 0
		case ">":
			ok = c > 0
		case "<":
			ok = c < 0
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func parseVersion(s string) ([]int, error) {
	if s == "" {
		return nil, errors.New("empty version")
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return nil, fmt.Errorf("version %q", s)
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("version %q", s)
		}
		out[i] = n
	}
	return out, nil
}

// compareVersion compares v with want; with prefix only want's components
// count (3.11 matches 3.11.4).
func compareVersion(v [3]int, want []int, prefix bool) int {
	n := 3
	if prefix {
		n = len(want)
	}
	for i := 0; i < n; i++ {
		w := 0
		if i < len(want) {
			w = want[i]
		}
		if v[i] != w {
			if v[i] < w {
				return -1
			}
			return 1
		}
	}
	return 0
}

func (o PipOptions) candidates() []string {
	if len(o.Pythons) > 0 {
		return o.Pythons
	}
	out := []string{"/usr/bin/python3"}
	for minor := 13; minor >= 8; minor-- {
		if p, err := exec.LookPath(fmt.Sprintf("python3.%d", minor)); err == nil {
			out = append(out, p)
		}
	}
	if p, err := exec.LookPath("python3"); err == nil {
		out = append(out, p)
	}
	return out
}

// findPython returns the first candidate whose version satisfies the
// constraint and that has the venv module.
func findPython(ctx context.Context, candidates []string, constraint string) (string, string, error) {
	seen := map[string]bool{}
	for _, p := range candidates {
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Stat(p); err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := exec.CommandContext(cctx, p, "-c",
			"import sys, venv; print('%d.%d.%d' % sys.version_info[:3])").Output()
		cancel()
		if err != nil {
			continue
		}
		nums, err := parseVersion(strings.TrimSpace(string(out)))
		if err != nil || len(nums) != 3 {
			continue
		}
		if ok, _ := matchVersion([3]int{nums[0], nums[1], nums[2]}, constraint); ok {
			return p, strings.TrimSpace(string(out)), nil
		}
	}
	return "", "", fmt.Errorf("no local Python matches %q", constraint)
}

// buildVenv builds the pip-only environment at prefix: `python -m venv
// --without-pip --system-site-packages` (the base Python's packages, such as
// Debian's ipykernel, stay visible, so the kernel needs no download), then
// the pip packages with uv when present, else with pip. It returns the
// manager name for the index.
func buildVenv(ctx context.Context, prefix, python string, spec Spec, opts PipOptions, progress Progress) (string, error) {
	env := cleanEnv()
	fwd := prefixed("venv", progress)
	if _, err := runStreaming(ctx, []string{python, "-m", "venv", "--without-pip", "--system-site-packages", prefix}, env, fwd); err != nil {
		return "", err
	}
	py := filepath.Join(prefix, "bin", "python")
	reqs := append([]string(nil), spec.Pip...)
	if _, err := runStreaming(ctx, []string{py, "-c", "import ipykernel, jupyter_client, zmq"}, env, nil); err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		reqs = append(append([]string(nil), kernelPipPackages...), reqs...)
	}
	name := PipVenv
	if len(reqs) == 0 {
		return name, nil
	}
	var index []string
	if opts.NoIndex {
		index = append(index, "--no-index")
	}
	for _, l := range opts.FindLinks {
		index = append(index, "--find-links", l)
	}
	uv := opts.UV
	if uv == "" && !opts.NoUV {
		uv, _ = exec.LookPath("uv")
	}
	var argv []string
	if uv != "" {
		name = UVVenv
		argv = append([]string{uv, "pip", "install", "--python", py}, index...)
		fwd = prefixed("uv", progress)
	} else {
		if _, err := runStreaming(ctx, []string{py, "-m", "pip", "--version"}, env, nil); err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			// The base Python has no pip of its own to lend: bootstrap the
			// bundled one (offline).
			if _, err := runStreaming(ctx, []string{py, "-m", "ensurepip", "--default-pip"}, env, prefixed("ensurepip", progress)); err != nil {
				return "", err
			}
		}
		argv = append([]string{py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"}, index...)
		fwd = prefixed("pip", progress)
	}
	// "--" ends the options: a requirement can never be read as one.
	argv = append(append(argv, "--"), reqs...)
	if _, err := runStreaming(ctx, argv, env, fwd); err != nil {
		return "", err
	}
	return name, nil
}

// cleanEnv is the worker's environment without the variables that would
// make a build or a proof use another Python's packages.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PYTHONNOUSERSITE=1", "PIP_NO_INPUT=1", "PIP_DISABLE_PIP_VERSION_CHECK=1")
}

func prefixed(label string, p Progress) Progress {
	if p == nil {
		return nil
	}
	return func(line string) { p(label + ": " + line) }
}
