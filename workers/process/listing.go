package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hypha-go/hypha/internal/appfiles"
	"github.com/hypha-go/hypha/worker"
)

// maxListingBytes bounds one directory listing read from the file server.
const maxListingBytes = 8 << 20

// errNoListing: the file server gave no listing of the app's top level
// (an HTTP error status). Start then fetches the entry point and the
// manifest's files only, as before listings were used.
var errNoListing = errors.New("no file listing")

// listedFile is a file of the app's listing with the size the server
// announced (only used to refuse an app over the limits before fetching).
type listedFile struct {
	path string
	size int64
}

// listingEntry is one entry of a directory listing: the artifact files
// endpoint answers GET <base>/<dir>/ with [{name, type, size}, …], type
// "file" or "directory" (the shape of our server and of upstream Hypha).
type listingEntry struct {
	Name string  `json:"name"`
	Type string  `json:"type"`
	Size float64 `json:"size"`
}

// checkListedName accepts a listing entry's name only when it is one plain
// path element: a server (or whoever answers at app_files_base_url) cannot
// steer a file out of the working directory through its listing.
func checkListedName(dir, name string) error {
	switch {
	case name == "", name == ".", name == "..",
		strings.ContainsAny(name, "/\\\x00"):
		where := "the top level"
		if dir != "" {
			where = fmt.Sprintf("folder %q", dir)
		}
		return fmt.Errorf("%w: the app file listing of %s names %q, which is not a plain file name", worker.ErrInvalidConfig, where, name)
	}
	return nil
}

// listFiles walks the app's file listing from the top level and returns
// every file, paths slash-separated and checked like manifest paths. It
// refuses an app with more than MaxFiles files and folders, or whose files
// announce more than MaxTotalBytes, before anything is fetched. It returns
// errNoListing when the top level gives an HTTP error status.
func (w *Worker) listFiles(ctx context.Context, client *http.Client, base, token string) ([]listedFile, error) {
	var out []listedFile
	var total int64
	entries := 0
	seen := map[string]bool{}
	dirs := []string{""}
	for len(dirs) > 0 {
		dir := dirs[0]
		dirs = dirs[1:]
		list, err := w.listDir(ctx, client, base, token, dir)
		if err != nil {
			return nil, err
		}
		for _, e := range list {
			if err := checkListedName(dir, e.Name); err != nil {
				return nil, err
			}
			p := e.Name
			if dir != "" {
				p = dir + "/" + e.Name
			}
			if _, err := appfiles.CheckPath("file path", p); err != nil {
				return nil, fmt.Errorf("app file listing: %w", err)
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			if entries++; entries > w.opts.MaxFiles {
				return nil, fmt.Errorf("%w: the app has more than %d files and folders, over the limit of %d per session (max app files)",
					worker.ErrInvalidConfig, w.opts.MaxFiles, w.opts.MaxFiles)
			}
			switch e.Type {
			case "directory":
				dirs = append(dirs, p)
			case "file":
				size := int64(max(e.Size, 0))
				if total += size; total > w.opts.MaxTotalBytes {
					return nil, fmt.Errorf("%w: the app's files hold more than %d bytes, over the limit of %d bytes per session (max app bytes)",
						worker.ErrInvalidConfig, w.opts.MaxTotalBytes, w.opts.MaxTotalBytes)
				}
				out = append(out, listedFile{path: p, size: size})
			default:
				return nil, fmt.Errorf("%w: the app file listing gives %q the type %q (want file or directory)", worker.ErrInvalidConfig, p, e.Type)
			}
		}
	}
	return out, nil
}

// listDir reads one directory listing.
func (w *Worker) listDir(ctx context.Context, client *http.Client, base, token, dir string) ([]listingEntry, error) {
	what := "the app's files"
	if dir != "" {
		what = fmt.Sprintf("app folder %s", dir)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, appfiles.DirURL(base, dir), nil)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if dir == "" {
			return nil, fmt.Errorf("%w (HTTP %s)", errNoListing, resp.Status)
		}
		return nil, fmt.Errorf("list %s: HTTP %s", what, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListingBytes+1))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	if len(body) > maxListingBytes {
		return nil, fmt.Errorf("%w: the listing of %s is larger than %d bytes", worker.ErrInvalidConfig, what, maxListingBytes)
	}
	var list []listingEntry
	if err := json.Unmarshal(body, &list); err != nil {
		if dir == "" {
			// Not a listing (a server that answers the folder URL
			// with something else): fall back as for an error status.
			return nil, fmt.Errorf("%w (the answer is not a JSON list: %v)", errNoListing, err)
		}
		return nil, fmt.Errorf("%w: the listing of %s is not a JSON list of files: %v", worker.ErrInvalidConfig, what, err)
	}
	return list, nil
}

// mergeFiles is want (the entry point first, then the manifest's files)
// followed by the listed files it does not hold yet.
func mergeFiles(want []string, listed []listedFile) []string {
	seen := make(map[string]bool, len(want))
	for _, p := range want {
		seen[p] = true
	}
	out := want
	for _, f := range listed {
		if !seen[f.path] {
			seen[f.path] = true
			out = append(out, f.path)
		}
	}
	return out
}
