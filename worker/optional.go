package worker

import (
	"context"
	"maps"
	"math"
	"time"
)

// Optional abilities are separate small interfaces, detected with AsCompiler,
// AsExecutor and AsShutdowner (not with a bare type assertion, see
// MethodSupporter).

// Names of the optional methods, as registered on the service.
const (
	MethodCompile  = "compile"
	MethodExecute  = "execute"
	MethodShutdown = "shutdown"
)

// Compiler processes an app's manifest and files at install time. The server
// merges the returned manifest into its own and replaces the files.
type Compiler interface {
	Compile(ctx context.Context, req CompileRequest) (CompileResult, error)
}

// Executor runs a script in a running session. Clients call it on the worker
// service directly; the server never does.
type Executor interface {
	// Execute returns a wire-encodable result (nil, bool, numbers, string,
	// []byte, []any, map[string]any); its shape is the worker's own, e.g.
	// {"status": "ok"|"error", "outputs": [...], "error": {...}}.
	Execute(ctx context.Context, req ExecuteRequest) (any, error)
}

// Shutdowner releases the whole worker (stops every session) when the
// process or the adapter shuts down.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// MethodSupporter lets a type that has an optional method in its method set
// say that it does not really provide it. Funcs-made workers have all three
// methods but only provide the ones whose func is set.
type MethodSupporter interface {
	SupportsMethod(name string) bool
}

func supports(w any, method string) bool {
	s, ok := w.(MethodSupporter)
	return !ok || s.SupportsMethod(method)
}

// AsCompiler returns w as a Compiler if it provides compile.
func AsCompiler(w Worker) (Compiler, bool) {
	c, ok := w.(Compiler)
	return c, ok && supports(w, MethodCompile)
}

// AsExecutor returns w as an Executor if it provides execute.
func AsExecutor(w Worker) (Executor, bool) {
	e, ok := w.(Executor)
	return e, ok && supports(w, MethodExecute)
}

// AsShutdowner returns w as a Shutdowner if it provides shutdown.
func AsShutdowner(w Worker) (Shutdowner, bool) {
	s, ok := w.(Shutdowner)
	return s, ok && supports(w, MethodShutdown)
}

// File is one application file in a compile request or result:
// {"path"/"name", "content", "format"}. The server fills whichever of path
// and name is missing from the other; FileFromMap does the same.
type File struct {
	Path string
	Name string
	// Content is a string for the text and base64 formats, and a decoded map
	// or list for json.
	Content any
	// Format is "text" (the default when empty), "json" or "base64".
	Format string
	// Extra keeps any other keys.
	Extra map[string]any
}

// FileFromMap converts one decoded file map.
func FileFromMap(m map[string]any) (File, error) {
	var f File
	var ok bool
	if f.Path, ok = wireString(m["path"]); !ok {
		return File{}, badField("files[].path", "string", m["path"])
	}
	if f.Name, ok = wireString(m["name"]); !ok {
		return File{}, badField("files[].name", "string", m["name"])
	}
	if f.Format, ok = wireString(m["format"]); !ok {
		return File{}, badField("files[].format", "string", m["format"])
	}
	if f.Path == "" {
		f.Path = f.Name
	}
	if f.Name == "" {
		f.Name = f.Path
	}
	f.Content = m["content"]
	for k, v := range m {
		switch k {
		case "path", "name", "format", "content":
		default:
			if f.Extra == nil {
				f.Extra = make(map[string]any)
			}
			f.Extra[k] = v
		}
	}
	return f, nil
}

// ToMap renders the file in wire shape (format omitted when empty).
func (f File) ToMap() map[string]any {
	m := make(map[string]any, 4+len(f.Extra))
	maps.Copy(m, f.Extra)
	m["path"] = f.Path
	m["name"] = f.Name
	m["content"] = f.Content
	if f.Format != "" {
		m["format"] = f.Format
	}
	return m
}

// CompileConfig is the compile call's config argument (worker-contract §1.7).
type CompileConfig struct {
	// ServerURL is the server's local base URL; PublicURL its public one.
	ServerURL string
	PublicURL string
	Workspace string
	User      map[string]any
	// ProgressCallback and ProgressFunc work as in Config.
	ProgressCallback any
	ProgressFunc     ProgressFunc
	Extra            map[string]any
}

// CompileRequest is compile(manifest, files, config).
type CompileRequest struct {
	Manifest Manifest
	Files    []File
	Config   CompileConfig
}

// CompileResult is what compile returns: (manifest, files).
type CompileResult struct {
	Manifest Manifest
	Files    []File
}

// CompileRequestFromArgs converts the decoded compile arguments. The
// manifest's "_rtype" marker is dropped as in ConfigFromMap; config may be
// nil. The adapter sets Config.ProgressFunc afterwards.
func CompileRequestFromArgs(manifest, files, config any) (CompileRequest, error) {
	var req CompileRequest
	man, err := manifestFromValue("manifest", manifest)
	if err != nil {
		return CompileRequest{}, err
	}
	req.Manifest = man
	list, ok := wireList(files)
	if !ok {
		return CompileRequest{}, badField("files", "list", files)
	}
	for _, v := range list {
		fm, ok := v.(map[string]any)
		if !ok {
			return CompileRequest{}, badField("files[]", "map", v)
		}
		f, err := FileFromMap(fm)
		if err != nil {
			return CompileRequest{}, err
		}
		req.Files = append(req.Files, f)
	}
	cm, ok := wireMap(config)
	if !ok {
		return CompileRequest{}, badField("config", "map", config)
	}
	c := &req.Config
	for key, dst := range map[string]*string{"server_url": &c.ServerURL, "public_url": &c.PublicURL, "workspace": &c.Workspace} {
		if *dst, ok = wireString(cm[key]); !ok {
			return CompileRequest{}, badField("config."+key, "string", cm[key])
		}
	}
	if c.User, ok = wireMap(cm["user"]); !ok {
		return CompileRequest{}, badField("config.user", "map", cm["user"])
	}
	c.ProgressCallback = cm[keyProgressCallback]
	for k, v := range cm {
		switch k {
		case "server_url", "public_url", "workspace", "user", keyProgressCallback:
		default:
			if c.Extra == nil {
				c.Extra = make(map[string]any)
			}
			c.Extra[k] = v
		}
	}
	return req, nil
}

// ToList renders the result as the 2-element list a Python tuple
// (manifest, files) arrives as.
func (r CompileResult) ToList() []any {
	files := make([]any, len(r.Files))
	for i, f := range r.Files {
		files[i] = f.ToMap()
	}
	var man any
	if r.Manifest != nil {
		man = r.Manifest.ToMap()
	}
	return []any{man, files}
}

// ExecuteRequest is execute(session_id, script, config, progress_callback).
type ExecuteRequest struct {
	SessionID string
	Script    string
	// Config is the worker-specific execution config, as decoded (e.g.
	// {"timeout": 30}).
	Config map[string]any
	// ProgressCallback and ProgressFunc work as in Config.
	ProgressCallback any
	ProgressFunc     ProgressFunc
	// Extra holds other keyword arguments (e.g. conda's output_callback).
	Extra map[string]any
}

// Timeout reads Config["timeout"] (seconds, integer or float), or returns
// def when it is absent, not a number or not positive.
func (r ExecuteRequest) Timeout(def time.Duration) time.Duration {
	secs, ok := wireFloat(r.Config["timeout"])
	if !ok || secs <= 0 || secs > math.MaxInt64/float64(time.Second) {
		return def
	}
	return time.Duration(secs * float64(time.Second))
}
