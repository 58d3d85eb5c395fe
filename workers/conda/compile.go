package conda

import (
	"context"
	"fmt"
	"maps"

	"github.com/hypha-go/hypha/internal/condaenv"
	"github.com/hypha-go/hypha/worker"
)

// Compile normalises the manifest at install time, as upstream's compile
// does: entry_point defaults to main.py; dependencies becomes a list (the
// kernel packages pip, ipykernel, jupyter_client and pyzmq added when
// missing, and Options.CompilePip, hypha-rpc by default, as one
// {"pip": [...]} entry); channels becomes a list (default conda-forge).
// Unlike upstream it also checks the spec, the env map and files_to_stage,
// so that a bad app is refused when it is installed, with an error naming
// what is wrong, rather than when it starts. The files are returned as
// given.
func (w *Worker) Compile(ctx context.Context, req worker.CompileRequest) (worker.CompileResult, error) {
	man := maps.Clone(map[string]any(req.Manifest))
	if man == nil {
		man = map[string]any{}
	}
	spec, err := condaenv.SpecFromManifest(man["dependencies"], man["channels"])
	if err != nil {
		return worker.CompileResult{}, fmt.Errorf("%w: manifest: %w", worker.ErrInvalidConfig, err)
	}
	spec = spec.Normalize()
	if len(w.opts.CompilePip) > 0 {
		spec = spec.WithPip(w.opts.CompilePip...)
	}
	if err := spec.Validate(); err != nil {
		return worker.CompileResult{}, fmt.Errorf("%w: manifest: %w", worker.ErrInvalidConfig, err)
	}
	entry, _ := man["entry_point"].(string)
	if _, present := man["entry_point"]; !present || man["entry_point"] == nil {
		entry = DefaultEntryPoint
	} else if entry == "" {
		return worker.CompileResult{}, fmt.Errorf("%w: manifest.entry_point: want a file name, got %v", worker.ErrInvalidConfig, man["entry_point"])
	}
	if _, err := safePath("manifest.entry_point", entry); err != nil {
		return worker.CompileResult{}, err
	}
	man["entry_point"] = entry
	if _, err := parseStage(man["files_to_stage"], w.opts.MaxFiles); err != nil {
		return worker.CompileResult{}, err
	}
	if v, ok := man["env"]; ok && v != nil {
		em, ok := v.(map[string]any)
		if !ok {
			return worker.CompileResult{}, fmt.Errorf("%w: manifest.env: want a map of strings, got %T", worker.ErrInvalidConfig, v)
		}
		for k, val := range em {
			if _, ok := val.(string); !ok {
				return worker.CompileResult{}, fmt.Errorf("%w: manifest.env.%s: want a string, got %T", worker.ErrInvalidConfig, k, val)
			}
		}
	}
	man["dependencies"] = spec.ManifestDependencies()
	channels := make([]any, len(spec.Channels))
	for i, c := range spec.Channels {
		channels[i] = c
	}
	man["channels"] = channels
	return worker.CompileResult{Manifest: man, Files: req.Files}, nil
}
