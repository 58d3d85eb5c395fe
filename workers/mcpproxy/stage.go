package mcpproxy

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/hypha-go/hypha/internal/appfiles"
	"github.com/hypha-go/hypha/worker"
)

// Bounds on the files staged for stdio servers.
const (
	MaxStagedFiles      = 100
	MaxStagedFileBytes  = 16 << 20
	MaxStagedTotalBytes = 64 << 20
)

// filesToStage reads manifest.files_to_stage: paths of the app's files
// that its stdio servers need in their working directory.
func filesToStage(man worker.Manifest) ([]string, error) {
	raw, ok := man["files_to_stage"]
	if !ok || raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: files_to_stage: want a list of paths, got %T", ErrManifest, raw)
	}
	if len(list) > MaxStagedFiles {
		return nil, fmt.Errorf("%w: files_to_stage: %d files (at most %d)", ErrManifest, len(list), MaxStagedFiles)
	}
	var out []string
	for i, item := range list {
		p, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("%w: files_to_stage[%d]: want a path string, got %T", ErrManifest, i, item)
		}
		c, err := appfiles.CheckPath("file path", p)
		if err != nil {
			return nil, fmt.Errorf("%w: files_to_stage[%d]: %w", ErrManifest, i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// stage makes a directory of the worker (0700, never a server's) and
// downloads the app's files_to_stage into it with the app's token, once
// per start; each stdio server's own working directory gets a copy (see
// link.stdioTransport).
func stage(ctx context.Context, cfg worker.Config, files []string) (string, error) {
	dir, err := os.MkdirTemp("", "hypha-mcp-app-")
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return dir, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	defer root.Close()
	err = appfiles.Fetcher{Client: http.DefaultClient, Base: cfg.AppFilesBaseURL, Token: cfg.Token,
		MaxFileBytes: MaxStagedFileBytes, Budget: appfiles.NewBudget(MaxStagedTotalBytes, "(files_to_stage)")}.Files(ctx, root, files)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("stage files_to_stage: %w", err)
	}
	return dir, nil
}
