package process

import (
	"fmt"

	"github.com/hypha-go/hypha/internal/appfiles"
	"github.com/hypha-go/hypha/worker"
)

// appFiles lists the files to fetch: the entry point first, then the
// manifest's "files" entries (strings, or maps with "path" or "name"),
// without duplicates. Every path is checked with appfiles.CheckPath.
func appFiles(entry string, man worker.Manifest, max int) ([]string, error) {
	e, err := appfiles.CheckPath("file path", entry)
	if err != nil {
		return nil, fmt.Errorf("entry point: %w", err)
	}
	out := []string{e}
	seen := map[string]bool{e: true}
	raw, present := man["files"]
	if !present || raw == nil {
		return out, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: manifest.files: want a list, got %T", worker.ErrInvalidConfig, raw)
	}
	for i, item := range list {
		var p string
		switch x := item.(type) {
		case string:
			p = x
		case map[string]any:
			p, _ = x["path"].(string)
			if p == "" {
				p, _ = x["name"].(string)
			}
		}
		if p == "" {
			return nil, fmt.Errorf("%w: manifest.files[%d]: want a path string or a map with path/name, got %T", worker.ErrInvalidConfig, i, item)
		}
		c, err := appfiles.CheckPath("file path", p)
		if err != nil {
			return nil, fmt.Errorf("manifest.files[%d]: %w", i, err)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: the app has %d files, more than the limit of %d", worker.ErrInvalidConfig, len(out), max)
	}
	return out, nil
}
