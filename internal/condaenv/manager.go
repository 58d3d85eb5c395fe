package condaenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoManager is returned by Detect when no conda-compatible environment
// manager is found.
var ErrNoManager = errors.New("no environment manager found (micromamba, mamba or conda)")

// Manager names. PipVenv is the pip-only path's name in the cache index.
const (
	Micromamba = "micromamba"
	Mamba      = "mamba"
	Conda      = "conda"
	PipVenv    = "pip-venv"
	UVVenv     = "uv-venv"
)

// DetectOrder is the order in which managers are looked up on PATH: the
// fastest solver first.
var DetectOrder = []string{Micromamba, Mamba, Conda}

// Options configure Detect.
type Options struct {
	// CondaPath, when set, is the manager to use (the worker's --conda-path
	// flag); its kind is taken from its file name.
	CondaPath string
	// LookPath finds a program on PATH; exec.LookPath when nil.
	LookPath func(string) (string, error)
}

// Manager is a conda-compatible environment manager.
type Manager struct {
	Name    string // micromamba, mamba or conda
	Path    string
	Version string // first line of `<manager> --version`
}

// Detect finds the environment manager: Options.CondaPath if set, otherwise
// the first of micromamba, mamba, conda on PATH whose `--version` works.
func Detect(ctx context.Context, opts Options) (Manager, error) {
	look := opts.LookPath
	if look == nil {
		look = exec.LookPath
	}
	if opts.CondaPath != "" {
		p := opts.CondaPath
		if !strings.Contains(p, "/") {
			found, err := look(p)
			if err != nil {
				return Manager{}, fmt.Errorf("conda path %q: %w", p, err)
			}
			p = found
		}
		m := Manager{Name: kindOf(p), Path: p}
		v, err := version(ctx, p)
		if err != nil {
			return Manager{}, fmt.Errorf("conda path %q: %w", opts.CondaPath, err)
		}
		m.Version = v
		return m, nil
	}
	var tried []string
	for _, name := range DetectOrder {
		p, err := look(name)
		if err != nil {
			continue
		}
		v, err := version(ctx, p)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		return Manager{Name: name, Path: p, Version: v}, nil
	}
	if len(tried) > 0 {
		return Manager{}, fmt.Errorf("%w (%s)", ErrNoManager, strings.Join(tried, "; "))
	}
	return Manager{}, ErrNoManager
}

// kindOf tells the manager's kind from its file name ("micromamba",
// "mamba.exe", "conda"); anything else is taken as conda-compatible.
func kindOf(path string) string {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.Contains(base, Micromamba):
		return Micromamba
	case strings.Contains(base, Mamba):
		return Mamba
	default:
		return Conda
	}
}

func version(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if len(line) > 200 {
		line = line[:200]
	}
	return line, nil
}

// CreateArgs is the argv that creates an environment at prefix from an
// environment file: `micromamba create -y -p PREFIX -f FILE` (micromamba's
// create reads environment files), `<mamba|conda> env create -p PREFIX -f
// FILE -y` as upstream runs it.
func (m Manager) CreateArgs(prefix, file string) []string {
	if m.Name == Micromamba {
		return []string{m.Path, "create", "-y", "-p", prefix, "-f", file}
	}
	return []string{m.Path, "env", "create", "-p", prefix, "-f", file, "-y"}
}

// Create builds the environment for spec at prefix: it writes the spec as an
// environment.yml in a temporary directory and runs the manager on it,
// streaming its output to progress. On failure the half-built prefix is
// removed and the error carries the manager's last lines.
func (m Manager) Create(ctx context.Context, prefix string, spec Spec, progress Progress) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "hypha-condaenv-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, "environment.yml")
	if err := os.WriteFile(file, spec.environmentYAML(), 0o600); err != nil {
		return err
	}
	// Solvers must never wait for an answer nobody will give.
	env := append(cleanEnv(), "CONDA_ALWAYS_YES=true")
	if _, err := runStreaming(ctx, m.CreateArgs(prefix, file), env, prefixed(m.Name, progress)); err != nil {
		_ = os.RemoveAll(prefix)
		return fmt.Errorf("%s create %s: %w", m.Name, prefix, err)
	}
	return nil
}
