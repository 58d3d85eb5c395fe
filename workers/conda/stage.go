package conda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"github.com/hypha-go/hypha/worker"
)

// Staging: the entry point and the manifest's files_to_stage are copied
// from the app's files (config.app_files_base_url) into the session's
// working directory before the kernel starts, as upstream does. Every path
// is checked before anything is fetched, a folder is walked through the
// file server's listing, and the number and bytes of the files are
// bounded like the process worker's.

// maxListingBytes bounds one directory listing read from the file server.
const maxListingBytes = 8 << 20

// stageItem is one files_to_stage entry: src in the app's files, dst in
// the working directory; dir when it names a folder ("models/").
type stageItem struct {
	src, dst string
	dir      bool
}

// safePath checks an app file path: relative, slash-separated, no empty,
// "." or ".." element, no backslash or NUL. Paths are refused rather than
// cleaned, so that "a/../../x" never quietly becomes something else.
func safePath(what, p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s %q %s", worker.ErrInvalidConfig, what, p, why)
	}
	switch {
	case p == "":
		return bad("is empty")
	case strings.ContainsAny(p, "\\\x00:"):
		return bad("contains a backslash, NUL or colon")
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

// parseStage reads manifest.files_to_stage: a list of "file", "folder/",
// "src:dst" and "srcfolder/:dstfolder/" strings.
func parseStage(v any, maxFiles int) ([]stageItem, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: manifest.files_to_stage: want a list of strings, got %T", worker.ErrInvalidConfig, v)
	}
	if len(list) > maxFiles {
		return nil, fmt.Errorf("%w: manifest.files_to_stage has %d entries, more than the limit of %d", worker.ErrInvalidConfig, len(list), maxFiles)
	}
	out := make([]stageItem, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%w: manifest.files_to_stage[%d]: want a string, got %T", worker.ErrInvalidConfig, i, e)
		}
		it, err := parseStageItem(s)
		if err != nil {
			return nil, fmt.Errorf("manifest.files_to_stage[%d]: %w", i, err)
		}
		out = append(out, it)
	}
	return out, nil
}

func parseStageItem(s string) (stageItem, error) {
	if strings.TrimSpace(s) == "" {
		return stageItem{}, fmt.Errorf("%w: the entry is empty", worker.ErrInvalidConfig)
	}
	src, dst, renamed := strings.Cut(s, ":")
	if !renamed {
		dst = src
	}
	srcDir, dstDir := strings.HasSuffix(src, "/"), strings.HasSuffix(dst, "/")
	if renamed && srcDir != dstDir {
		return stageItem{}, fmt.Errorf("%w: %q stages a folder as a file or a file as a folder (end both or neither with /)", worker.ErrInvalidConfig, s)
	}
	cs, err := safePath("source", strings.TrimSuffix(src, "/"))
	if err != nil {
		return stageItem{}, err
	}
	cd, err := safePath("target", strings.TrimSuffix(dst, "/"))
	if err != nil {
		return stageItem{}, err
	}
	return stageItem{src: cs, dst: cd, dir: srcDir}, nil
}

// fileURL is "<base>/<escaped path>?use_proxy=true". use_proxy asks
// Hypha's artifact endpoint to stream the content instead of redirecting
// to presigned storage, as upstream's workers do.
func fileURL(base, p string) string {
	return strings.TrimRight(base, "/") + "/" + escapePath(p) + "?use_proxy=true"
}

// dirURL is "<base>/<escaped dir>/", the listing of dir.
func dirURL(base, dir string) string {
	return strings.TrimRight(base, "/") + "/" + escapePath(dir) + "/"
}

func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
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

// stager fetches one session's files into its working directory within
// the limits.
type stager struct {
	client   *http.Client
	root     *os.Root
	base     string
	token    string
	maxFile  int64
	maxFiles int
	budget   atomic.Int64 // bytes still allowed
	limit    int64
	files    int // files and folders staged so far
	log      func(string)
}

// file fetches src to dst and returns its content when keep is set (the
// entry point, which also runs in the kernel).
func (st *stager) file(ctx context.Context, src, dst string, keep bool) ([]byte, error) {
	if st.files++; st.files > st.maxFiles {
		return nil, fmt.Errorf("%w: more than %d files and folders to stage, over the limit per session", worker.ErrInvalidConfig, st.maxFiles)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fileURL(st.base, src), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", src, err)
	}
	if st.token != "" {
		req.Header.Set("Authorization", "Bearer "+st.token)
	}
	resp, err := st.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		msg := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?"))
		if msg != "" {
			msg = ": " + msg
		}
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: file not found in the app's files: %s (HTTP %s%s)", worker.ErrInvalidConfig, src, resp.Status, msg)
		}
		return nil, fmt.Errorf("fetch %s: HTTP %s%s", src, resp.Status, msg)
	}
	if dir := path.Dir(dst); dir != "." {
		if err := st.root.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("stage %s: %w", dst, err)
		}
	}
	// O_EXCL: two entries staging to the same target is an error, not a
	// silent overwrite; the root refuses to follow a link out of it.
	f, err := st.root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", dst, err)
	}
	var kept strings.Builder
	var w io.Writer = budgetWriter{st, f}
	if keep {
		w = io.MultiWriter(w, &kept)
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, st.maxFile+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > st.maxFile {
		err = fmt.Errorf("%w: larger than the limit of %d bytes per file", worker.ErrInvalidConfig, st.maxFile)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("fetch %s: %w", src, err)
	}
	if keep {
		return []byte(kept.String()), nil
	}
	return nil, nil
}

type budgetWriter struct {
	st *stager
	w  io.Writer
}

func (bw budgetWriter) Write(p []byte) (int, error) {
	if bw.st.budget.Add(-int64(len(p))) < 0 {
		return 0, fmt.Errorf("%w: the staged files hold more than %d bytes, over the limit per session", worker.ErrInvalidConfig, bw.st.limit)
	}
	return bw.w.Write(p)
}

// listingEntry is one entry of a directory listing: the artifact files
// endpoint answers GET <base>/<dir>/ with [{name, type, size}, ...].
type listingEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// folder stages every file under src (walked through the listings) into
// dst.
func (st *stager) folder(ctx context.Context, src, dst string) (int, error) {
	if err := st.root.MkdirAll(dst, 0o700); err != nil {
		return 0, fmt.Errorf("stage %s/: %w", dst, err)
	}
	type pair struct{ src, dst string }
	queue := []pair{{src, dst}}
	n := 0
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if st.files++; st.files > st.maxFiles {
			return n, fmt.Errorf("%w: more than %d files and folders to stage, over the limit per session", worker.ErrInvalidConfig, st.maxFiles)
		}
		list, err := st.list(ctx, d.src)
		if err != nil {
			return n, err
		}
		for _, e := range list {
			switch {
			case e.Name == "", e.Name == ".", e.Name == "..", strings.ContainsAny(e.Name, "/\\\x00"):
				return n, fmt.Errorf("%w: the listing of folder %q names %q, which is not a plain file name", worker.ErrInvalidConfig, d.src, e.Name)
			}
			s, t := d.src+"/"+e.Name, d.dst+"/"+e.Name
			switch e.Type {
			case "directory":
				if err := st.root.MkdirAll(t, 0o700); err != nil {
					return n, fmt.Errorf("stage %s/: %w", t, err)
				}
				queue = append(queue, pair{s, t})
			case "file", "":
				if _, err := st.file(ctx, s, t, false); err != nil {
					return n, err
				}
				n++
			default:
				return n, fmt.Errorf("%w: the listing of folder %q gives %q the type %q (want file or directory)", worker.ErrInvalidConfig, d.src, e.Name, e.Type)
			}
		}
	}
	return n, nil
}

func (st *stager) list(ctx context.Context, dir string) ([]listingEntry, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dirURL(st.base, dir), nil)
	if err != nil {
		return nil, fmt.Errorf("list folder %s: %w", dir, err)
	}
	if st.token != "" {
		req.Header.Set("Authorization", "Bearer "+st.token)
	}
	resp, err := st.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list folder %s: %w", dir, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: folder not found in the app's files: %s", worker.ErrInvalidConfig, dir)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list folder %s: HTTP %s", dir, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListingBytes+1))
	if err != nil {
		return nil, fmt.Errorf("list folder %s: %w", dir, err)
	}
	if len(body) > maxListingBytes {
		return nil, fmt.Errorf("%w: the listing of folder %s is larger than %d bytes", worker.ErrInvalidConfig, dir, maxListingBytes)
	}
	var list []listingEntry
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("%w: the listing of folder %s is not a JSON list of files: %v", worker.ErrInvalidConfig, dir, err)
	}
	return list, nil
}
