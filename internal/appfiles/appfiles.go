// Package appfiles is how the built-in local workers (process, conda,
// terminal) read an app's files from the server: the paths an app may name,
// the URLs of the server's app-files endpoint, and downloads into a
// session's working directory within byte limits. One place decides what a
// safe path is, so the workers cannot drift apart.
package appfiles

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

// MaxPathLen bounds one path.
const MaxPathLen = 1024

// CheckPath checks a path an app names (what says which, for the error:
// "file path", "source", …): relative, slash-separated, no empty, "." or
// ".." element, no backslash or NUL. Paths are refused rather than cleaned,
// so that "a/../../x" never quietly becomes something else. It returns the
// cleaned path ("./a" is "a"). Errors wrap worker.ErrInvalidConfig.
func CheckPath(what, p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s %q %s", worker.ErrInvalidConfig, what, p, why)
	}
	switch {
	case p == "":
		return bad("is empty")
	case strings.ContainsAny(p, "\\\x00"):
		return bad("contains a backslash or NUL")
	case strings.HasPrefix(p, "/"):
		return bad("is absolute")
	case strings.HasSuffix(p, "/"):
		return bad("is a folder; name its files")
	case len(p) > MaxPathLen:
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

// CheckBaseURL accepts only an absolute http(s) app_files_base_url.
func CheckBaseURL(base string) error {
	if base == "" {
		return fmt.Errorf("%w: app_files_base_url is empty", worker.ErrInvalidConfig)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: app_files_base_url %q is not an http(s) URL", worker.ErrInvalidConfig, base)
	}
	return nil
}

// EscapePath escapes every element of a slash-separated path for a URL.
func EscapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// FileURL is "<base>/<escaped path>?use_proxy=true". use_proxy asks the
// upstream server's artifact endpoint to stream the content instead of
// redirecting to presigned storage, as upstream's own workers do; our
// server ignores it.
func FileURL(base, p string) string {
	return strings.TrimRight(base, "/") + "/" + EscapePath(p) + "?use_proxy=true"
}

// DirURL is "<base>/<escaped dir>/", the listing of dir ("" is the top).
func DirURL(base, dir string) string {
	u := strings.TrimRight(base, "/") + "/"
	if dir == "" {
		return u
	}
	return u + EscapePath(dir) + "/"
}

// ErrNotFound is a file or folder the server does not have (HTTP 404).
var ErrNotFound = errors.New("not found among the app's files")

// HTTPError is an answer other than 200 from the app-files endpoint.
type HTTPError struct {
	Status string // "404 Not Found"
	Code   int
	Body   string // the start of the answer
}

func (e *HTTPError) Error() string {
	if e.Body == "" {
		return "HTTP " + e.Status
	}
	return "HTTP " + e.Status + ": " + e.Body
}

// Is makes a 404 match ErrNotFound.
func (e *HTTPError) Is(target error) bool {
	return target == ErrNotFound && e.Code == http.StatusNotFound
}

// Budget is what a session's files may still take in all, shared by
// parallel downloads, so that a server announcing small sizes cannot
// deliver more than the limit.
type Budget struct {
	left  atomic.Int64
	limit int64
	hint  string
}

// NewBudget allows limit bytes; hint names the setting in the error
// (e.g. "(max app bytes)").
func NewBudget(limit int64, hint string) *Budget {
	b := &Budget{limit: limit, hint: hint}
	b.left.Store(limit)
	return b
}

// Take accounts for n more bytes; it fails once the total is over the
// limit, with an error wrapping worker.ErrInvalidConfig.
func (b *Budget) Take(n int) error {
	if b.left.Add(-int64(n)) < 0 {
		return fmt.Errorf("%w: the app's files hold more than %d bytes, over the limit of %d bytes per session %s", worker.ErrInvalidConfig, b.limit, b.limit, b.hint)
	}
	return nil
}

// Writer charges every write to w against the budget.
func (b *Budget) Writer(w io.Writer) io.Writer { return budgetWriter{w: w, b: b} }

type budgetWriter struct {
	w io.Writer
	b *Budget
}

func (bw budgetWriter) Write(p []byte) (int, error) {
	if err := bw.b.Take(len(p)); err != nil {
		return 0, err
	}
	return bw.w.Write(p)
}

// Fetcher downloads app files from the server into a working directory.
type Fetcher struct {
	Client       *http.Client
	Base         string // app_files_base_url, checked with CheckBaseURL
	Token        string // the session's token, sent as a bearer token
	MaxFileBytes int64  // one file
	Budget       *Budget
}

// Get opens u on the server with the session's token; the caller closes
// the body. A status other than 200 is an *HTTPError.
func (f Fetcher) Get(ctx context.Context, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if f.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.Token)
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		// url.Error repeats the URL (which is fine: it has no token).
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		resp.Body.Close()
		return nil, &HTTPError{Status: resp.Status, Code: resp.StatusCode, Body: strings.TrimSpace(strings.ToValidUTF8(string(snippet), "?"))}
	}
	return resp.Body, nil
}

// File downloads the app file src into dst under root (a new file, 0600,
// its folders made 0700) within MaxFileBytes and the budget. When keep is
// set it also returns the content.
func (f Fetcher) File(ctx context.Context, root *os.Root, src, dst string, keep bool) ([]byte, error) {
	body, err := f.Get(ctx, FileURL(f.Base, src))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", src, err)
	}
	defer body.Close()
	if dir := path.Dir(dst); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", src, err)
		}
	}
	// O_EXCL: two entries naming the same target is an error, not a
	// silent overwrite; the root refuses to follow a link out of it.
	out, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", src, err)
	}
	var w io.Writer = out
	var kept strings.Builder
	if keep {
		w = io.MultiWriter(out, &kept)
	}
	if f.Budget != nil {
		w = f.Budget.Writer(w)
	}
	n, err := io.Copy(w, io.LimitReader(body, f.MaxFileBytes+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > f.MaxFileBytes {
		err = fmt.Errorf("%w: larger than the limit of %d bytes per file", worker.ErrInvalidConfig, f.MaxFileBytes)
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

// Files downloads every path into root under the same name, four at a
// time; the first failure cancels the rest.
func (f Fetcher) Files(ctx context.Context, root *os.Root, paths []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, p := range paths {
		g.Go(func() error {
			_, err := f.File(gctx, root, p, p, false)
			return err
		})
	}
	return g.Wait()
}
