package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server/auth"
)

// fileURL is the HTTP address of an app file.
func (c *Controller) fileURL(ws, id, p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.host.URL() + "/" + url.PathEscape(ws) + "/artifacts/" + url.PathEscape(id) + "/files/" + strings.Join(segs, "/")
}

// getFileParams are the parameters of get_file, in order (schema and binding).
var getFileParams = []string{"artifact_id", "file_path", "silent", "version", "stage", "branch", "use_proxy", "use_local_url", "expires_in"}

// mGetFile implements artifact-manager.get_file(artifact_id, file_path, ...):
// the URL of the file, carrying a read-only token for the app's workspace
// (valid expires_in seconds) so that it works without other credentials,
// like upstream's presigned URLs. file_path may be a list (→ {path: url}).
func (c *Controller) mGetFile(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("get_file", call, getFileParams...)
	if err != nil {
		return nil, err
	}
	artifactID, err := a.str("artifact_id")
	if err != nil {
		return nil, err
	}
	expires, err := a.integer("expires_in", 3600)
	if err != nil {
		return nil, err
	}
	if expires < 60 || expires > 604800 {
		return nil, fmt.Errorf("expires_in must be between 60 and 604800 seconds")
	}
	ws, id, err := c.resolveApp(cl, artifactID, auth.Read, "read app files")
	if err != nil {
		return nil, err
	}
	if stage, err := a.boolean("stage", false); err != nil {
		return nil, err
	} else if stage {
		return nil, fmt.Errorf("get_file(stage=True): the files of a staged version are served only to its staged sessions (at their app_files_base_url); read them with server-apps read_file(app_id, file_path, stage=True)")
	}
	var paths []string
	single := true
	switch v := a["file_path"].(type) {
	case string:
		paths = []string{v}
	case []any:
		single = false
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("file_path must be a string or a list of strings")
			}
			paths = append(paths, s)
		}
	default:
		return nil, fmt.Errorf("file_path must be a string or a list of strings")
	}
	if len(paths) > c.cfg.Limits.MaxFiles {
		return nil, fmt.Errorf("%w: get_file asks for %d files, over the limit of %d files per app (max install files)",
			ErrLimit, len(paths), c.cfg.Limits.MaxFiles)
	}
	if c.appManifest(ws, id) == nil {
		return nil, fmt.Errorf("Artifact not found: %s/%s", ws, id)
	}
	tok, err := c.childToken(cl, ws, auth.Read, "", time.Duration(expires)*time.Second)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, p := range paths {
		p = strings.TrimPrefix(p, "/")
		if _, err := cleanFilePath(p); err != nil {
			return nil, err
		}
		if !c.store.hasFile(ws, id, false, p) {
			return nil, fmt.Errorf("File not found: %s", p)
		}
		out[p] = c.fileURL(ws, id, p) + "?token=" + url.QueryEscape(tok)
	}
	if single {
		return out[paths[0]], nil
	}
	return out, nil
}

// artifactListFilesParams are the parameters of list_files, in order (schema and binding).
var artifactListFilesParams = []string{"artifact_id", "dir_path", "limit", "version", "stage", "branch", "include_pending", "offset"}

// mArtifactListFiles implements artifact-manager.list_files(artifact_id, dir_path=None, ...).
func (c *Controller) mArtifactListFiles(_ context.Context, cl *caller, call *rpc.Call) (any, error) {
	a, err := bind("list_files", call, artifactListFilesParams...)
	if err != nil {
		return nil, err
	}
	artifactID, err := a.str("artifact_id")
	if err != nil {
		return nil, err
	}
	dir, err := a.str("dir_path")
	if err != nil {
		return nil, err
	}
	stage, err := a.boolean("stage", false)
	if err != nil {
		return nil, err
	}
	v, err := c.listFiles(cl, artifactID, dir, stage)
	if err != nil {
		return nil, err
	}
	list := v.([]any)
	offset, err := a.integer("offset", 0)
	if err != nil {
		return nil, err
	}
	limit, err := a.integer("limit", 1000)
	if err != nil {
		return nil, err
	}
	start := min(max(int(offset), 0), len(list))
	end := min(start+max(int(limit), 0), len(list))
	return list[start:end], nil
}

// httpUser authenticates a file request: a Bearer token, a token query
// parameter (as in get_file URLs) or an access_token cookie; none is an
// anonymous user.
func (c *Controller) httpUser(r *http.Request) (*auth.UserInfo, error) {
	tok := r.Header.Get("Authorization")
	if tok == "" {
		tok = r.URL.Query().Get("token")
	}
	if tok == "" {
		if ck, err := r.Cookie("access_token"); err == nil {
			tok = ck.Value
		}
	}
	if tok == "" {
		return c.host.Issuer().NewAnonymous(), nil
	}
	u, err := c.host.Issuer().Parse(tok)
	if err != nil {
		return nil, err
	}
	if u.Specialized() {
		return nil, errors.New("specialized tokens cannot read app files")
	}
	return u, nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"success": false, "detail": msg})
	_, _ = w.Write(b)
}

// ServeFiles serves GET /{workspace}/artifacts/{app_id}/files/{path...}:
// the file, or a JSON listing for a directory (or no path). It needs read
// permission on the workspace.
func (c *Controller) ServeFiles(w http.ResponseWriter, r *http.Request) {
	ws, id, p := r.PathValue("workspace"), r.PathValue("app_id"), r.PathValue("path")
	if validWorkspace(ws) != nil || validAppID(id) != nil {
		httpError(w, http.StatusBadRequest, "invalid workspace or app id")
		return
	}
	p = strings.TrimSuffix(p, "/")
	if p != "" {
		if _, err := cleanFilePath(p); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	u, err := c.httpUser(r)
	if err != nil {
		httpError(w, http.StatusUnauthorized, err.Error())
		return
	}
	if c.host.Permission(u, ws) < auth.Read {
		code := http.StatusForbidden
		if u.IsAnonymous {
			code = http.StatusUnauthorized
		}
		httpError(w, code, fmt.Sprintf("Permission denied: read permission on workspace %s is required", ws))
		return
	}
	// The committed version's route and the staged version's route each
	// serve their own sessions only: a session's token is scoped to its
	// client id, which names the session.
	staged := strings.Contains(r.Pattern, "/stage/files")
	s := c.tokenSession(u, ws)
	switch {
	case staged && (s == nil || !s.staged || s.appID != id):
		httpError(w, http.StatusForbidden, fmt.Sprintf("Permission denied: the staged version of app %s is served only to its staged sessions", id))
		return
	case !staged && s != nil && s.staged:
		httpError(w, http.StatusForbidden, fmt.Sprintf("Permission denied: session %s runs the staged version of app %s and reads only its files (its app_files_base_url)", s.id, s.appID))
		return
	}
	if c.versionManifest(ws, id, staged) == nil {
		httpError(w, http.StatusNotFound, fmt.Sprintf("Artifact not found: %s/%s%s", ws, id, map[bool]string{true: " (staged version)"}[staged]))
		return
	}
	root, err := c.store.openRoot(ws, id, staged)
	if err != nil {
		httpError(w, http.StatusNotFound, fmt.Sprintf("Artifact not found: %s/%s", ws, id))
		return
	}
	defer root.Close()
	name := p
	if name == "" {
		name = "."
	}
	f, err := root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			httpError(w, http.StatusNotFound, "File not found: "+p)
		} else {
			httpError(w, http.StatusBadRequest, "cannot open "+p)
		}
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		httpError(w, http.StatusNotFound, "File not found: "+p)
		return
	}
	if st.IsDir() {
		list, err := c.store.list(ws, id, staged, p)
		if err != nil {
			httpError(w, http.StatusNotFound, "Directory not found: "+p)
			return
		}
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = e.toMap()
		}
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(out)
		_, _ = w.Write(b)
		return
	}
	if !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, "File not found: "+p)
		return
	}
	if ct := mime.TypeByExtension(path.Ext(p)); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	http.ServeContent(w, r, path.Base(p), st.ModTime(), f)
}
