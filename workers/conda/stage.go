package conda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/hypha-go/hypha/internal/appfiles"
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

// safePath checks a path of files_to_stage or the entry point with
// appfiles.CheckPath, and refuses a colon too: in files_to_stage it
// separates a source from its target.
func safePath(what, p string) (string, error) {
	if strings.Contains(p, ":") {
		return "", fmt.Errorf("%w: %s %q contains a colon", worker.ErrInvalidConfig, what, p)
	}
	return appfiles.CheckPath(what, p)
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

// stager fetches one session's files into its working directory within
// the limits.
type stager struct {
	fetch    appfiles.Fetcher
	root     *os.Root
	maxFiles int
	files    int // files and folders staged so far
}

// file fetches src to dst and returns its content when keep is set (the
// entry point, which also runs in the kernel).
func (st *stager) file(ctx context.Context, src, dst string, keep bool) ([]byte, error) {
	if st.files++; st.files > st.maxFiles {
		return nil, fmt.Errorf("%w: more than %d files and folders to stage, over the limit per session", worker.ErrInvalidConfig, st.maxFiles)
	}
	b, err := st.fetch.File(ctx, st.root, src, dst, keep)
	if errors.Is(err, appfiles.ErrNotFound) {
		return nil, fmt.Errorf("%w: file not found in the app's files: %s (%w)", worker.ErrInvalidConfig, src, err)
	}
	return b, err
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, appfiles.DirURL(st.fetch.Base, dir), nil)
	if err != nil {
		return nil, fmt.Errorf("list folder %s: %w", dir, err)
	}
	if st.fetch.Token != "" {
		req.Header.Set("Authorization", "Bearer "+st.fetch.Token)
	}
	resp, err := st.fetch.Client.Do(req)
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
