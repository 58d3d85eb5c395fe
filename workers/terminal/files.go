package terminal

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
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/hypha-go/hypha/worker"
)

// splitCommand splits a command line as a POSIX shell would split words
// (upstream uses Python's shlex.split): blanks separate words, single
// quotes keep everything, double quotes keep everything but \" \\ \$ \`,
// a backslash outside quotes escapes the next character. No expansion.
func splitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash ends the command")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// safePath checks an app file path: relative, no "..", no empty element.
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
	case strings.HasSuffix(p, "/"):
		return bad("is a folder; list the folder's files one by one")
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

// stagedFiles lists the files to fetch into the working directory: the
// entry point (when given) and manifest.files_to_stage (paths of the app's
// files, strings).
func stagedFiles(cfg worker.Config, max int) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p, what string) error {
		c, err := safePath(p)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
		return nil
	}
	entry := cfg.EntryPoint
	if entry == "" {
		entry = cfg.Manifest.EntryPoint()
	}
	if entry != "" {
		if err := add(entry, "entry point"); err != nil {
			return nil, err
		}
	}
	raw, ok := cfg.Manifest["files_to_stage"]
	if ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			return nil, fmt.Errorf("%w: manifest.files_to_stage: want a list of paths, got %T", worker.ErrInvalidConfig, raw)
		}
		for i, item := range list {
			p, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("%w: manifest.files_to_stage[%d]: want a path string, got %T", worker.ErrInvalidConfig, i, item)
			}
			if err := add(p, fmt.Sprintf("manifest.files_to_stage[%d]", i)); err != nil {
				return nil, err
			}
		}
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: %d files to stage, more than the limit of %d", worker.ErrInvalidConfig, len(out), max)
	}
	return out, nil
}

func checkBaseURL(base string) error {
	if base == "" {
		return fmt.Errorf("%w: app_files_base_url is empty (the manifest names files to stage)", worker.ErrInvalidConfig)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: app_files_base_url %q is not an http(s) URL", worker.ErrInvalidConfig, base)
	}
	return nil
}

func fileURL(base, p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimRight(base, "/") + "/" + strings.Join(segs, "/") + "?use_proxy=true"
}

// fetchFiles downloads every path into dir, four at a time, within the
// file and total limits.
func (w *Worker) fetchFiles(ctx context.Context, client *http.Client, dir, base, token string, paths []string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open working directory: %w", err)
	}
	defer root.Close()
	var total atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, p := range paths {
		g.Go(func() error { return w.fetchOne(gctx, client, root, base, token, p, &total) })
	}
	return g.Wait()
}

func (w *Worker) fetchOne(ctx context.Context, client *http.Client, root *os.Root, base, token, p string, total *atomic.Int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fileURL(base, p), nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("fetch %s: HTTP %s: %s", p, resp.Status, strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?")))
	}
	if d := path.Dir(p); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("fetch %s: %w", p, err)
		}
	}
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, w.opts.MaxFileBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("fetch %s: %w", p, err)
	case n > w.opts.MaxFileBytes:
		return fmt.Errorf("fetch %s: larger than the limit of %d bytes", p, w.opts.MaxFileBytes)
	case total.Add(n) > w.opts.MaxTotalBytes:
		return fmt.Errorf("fetch %s: the files exceed the limit of %d bytes in all", p, w.opts.MaxTotalBytes)
	}
	return nil
}
