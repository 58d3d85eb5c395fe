package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/hypha-go/hypha/worker"
	"golang.org/x/sync/errgroup"
)

// safePath checks an app file path: relative, slash-separated, no empty,
// "." or ".." element, no backslash or NUL. It returns the cleaned path.
// Paths are refused rather than cleaned so that "a/../../x" never becomes
// something else quietly.
func safePath(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: file path %q %s", worker.ErrInvalidConfig, p, why)
	}
	switch {
	case p == "":
		return bad("is empty")
	case strings.ContainsAny(p, "\\\x00"):
		return bad("contains a backslash or NUL")
	case strings.HasPrefix(p, "/"):
		return bad("is absolute")
	case len(p) > 1024:
		return bad("is too long")
	}
	for _, el := range strings.Split(strings.TrimPrefix(p, "./"), "/") {
		switch el {
		case "..":
			return bad("leaves the working directory")
		case "", ".":
			return bad("has an empty or '.' element")
		}
	}
	return path.Clean(p), nil
}

// appFiles lists the files to fetch: the entry point first, then the
// manifest's "files" entries (strings, or maps with "path" or "name"),
// without duplicates. Every path is checked with safePath.
func appFiles(entry string, man worker.Manifest, max int) ([]string, error) {
	e, err := safePath(entry)
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
		c, err := safePath(p)
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

// fileURL is "<base>/<escaped path>?use_proxy=true". use_proxy asks Hypha's
// artifact endpoint to stream the content instead of redirecting to
// presigned storage, as upstream's python-eval worker does.
func fileURL(base, p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimRight(base, "/") + "/" + strings.Join(segs, "/") + "?use_proxy=true"
}

// checkBaseURL accepts only absolute http(s) URLs.
func checkBaseURL(base string) error {
	if base == "" {
		return fmt.Errorf("%w: app_files_base_url is empty", worker.ErrInvalidConfig)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: app_files_base_url %q is not an http(s) URL", worker.ErrInvalidConfig, base)
	}
	return nil
}

// fetchFiles downloads every path into root, four at a time, within
// MaxTotalBytes in all.
func (w *Worker) fetchFiles(ctx context.Context, client *http.Client, root *os.Root, base, token string, paths []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	budget := newByteBudget(w.opts.MaxTotalBytes)
	for _, p := range paths {
		g.Go(func() error { return w.fetchOne(gctx, client, root, base, token, p, budget) })
	}
	return g.Wait()
}

func (w *Worker) fetchOne(ctx context.Context, client *http.Client, root *os.Root, base, token, p string, budget *byteBudget) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fileURL(base, p), nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL (which is fine: it has no token).
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		msg := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?"))
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("fetch %s: HTTP %s%s", p, resp.Status, msg)
	}
	if dir := path.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("fetch %s: %w", p, err)
		}
	}
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	n, err := io.Copy(budgetWriter{w: f, b: budget}, io.LimitReader(resp.Body, w.opts.MaxFileBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > w.opts.MaxFileBytes {
		err = fmt.Errorf("larger than the limit of %d bytes", w.opts.MaxFileBytes)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	return nil
}
