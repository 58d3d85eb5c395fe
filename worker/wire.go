package worker

import (
	"fmt"
	"maps"
	"time"
)

// The wire shape of the worker API, both ways. The adapter
// (worker/hyphaworker, serving a Go worker) and the typed client of a remote
// worker (hyphaworker.Remote, used by the apps controller) convert through
// these functions only, so that the two sides of the contract cannot drift
// apart:
//
//	Config          ConfigFromMap / Config.ToMap        start(config)
//	Caller          CallerFromMap / Caller.ToMap        the `context` keyword
//	SessionInfo     SessionInfoFromMap / ToMap          get_session_info, list_sessions
//	LogQuery        ParseLogQuery+ParseLogFollow / Kwargs   get_logs arguments
//	LogPage         LogPageFromMap / LogPage.ToMap      get_logs result
//	CompileRequest  CompileRequestFromArgs / Args       compile arguments
//	CompileResult   CompileResultFromValue / ToList     compile result
//	Progress        ProgressFromValue / Progress.ToMap  progress_callback messages

// Names of the worker API's methods, as registered on the service (the
// optional ones are MethodCompile, MethodExecute and MethodShutdown).
const (
	MethodStart            = "start"
	MethodStop             = "stop"
	MethodListSessions     = "list_sessions"
	MethodGetSessionInfo   = "get_session_info"
	MethodGetLogs          = "get_logs"
	MethodPrepareWorkspace = "prepare_workspace"
	MethodCloseWorkspace   = "close_workspace"
)

// KeyContext is the keyword argument carrying the caller context
// ({"ws", "user"[, "from"]}) on every call to a worker.
const KeyContext = "context"

// ToMap renders the caller as the `context` keyword argument: "ws" and
// "user" always (user may be nil), "from" only when set, which is what the
// apps controller has always sent. Trusted is never rendered: trust is
// decided by the receiving adapter from the server-stamped call context,
// never from this map.
func (c Caller) ToMap() map[string]any {
	m := map[string]any{"ws": c.Workspace, "user": c.User}
	if c.User == nil {
		m["user"] = nil // a typed nil map would not compare equal to a decoded nil
	}
	if c.From != "" {
		m["from"] = c.From
	}
	return m
}

// SessionInfoFromMap reads a get_session_info (or list_sessions item)
// result. It is lenient, as results of workers in other languages vary:
// missing strings stay empty, an unparsable created_at stays zero, and only
// a value of the wrong kind for session_id, status or exit_code is an error.
func SessionInfoFromMap(m map[string]any) (SessionInfo, error) {
	var s SessionInfo
	var ok bool
	if s.SessionID, ok = wireString(m["session_id"]); !ok {
		return SessionInfo{}, badField("session_id", "string", m["session_id"])
	}
	st, ok := wireString(m["status"])
	if !ok {
		return SessionInfo{}, badField("status", "string", m["status"])
	}
	s.Status = Status(st)
	s.AppID, _ = m["app_id"].(string)
	s.Workspace, _ = m["workspace"].(string)
	s.ClientID, _ = m["client_id"].(string)
	s.AppType, _ = m["app_type"].(string)
	s.EntryPoint, _ = m["entry_point"].(string)
	s.Error, _ = m["error"].(string)
	s.Metadata, _ = m["metadata"].(map[string]any)
	if ts, _ := m["created_at"].(string); ts != "" {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02 15:04:05.999999"} {
			if t, err := time.Parse(layout, ts); err == nil {
				s.CreatedAt = t
				break
			}
		}
	}
	if v, present := m["exit_code"]; present && v != nil {
		n, ok := wireInt(v)
		if !ok {
			return SessionInfo{}, badField("exit_code", "integer", v)
		}
		code := int(n)
		s.ExitCode = &code
	}
	return s, nil
}

// Kwargs renders the query as get_logs keyword arguments: offset always,
// the others only when set (a worker that does not know wait or follower
// still serves plain reads, and an absent type or limit is the seed's
// default None).
func (q LogQuery) Kwargs() map[string]any {
	kw := map[string]any{"offset": int64(q.Offset)}
	if q.Type != "" {
		kw["type"] = string(q.Type)
	}
	if q.Limit > 0 {
		kw["limit"] = int64(q.Limit)
	}
	if q.Wait > 0 {
		kw["wait"] = q.Wait.Seconds()
	}
	if q.Follower != "" {
		kw["follower"] = q.Follower
	}
	return kw
}

// LogPageFromMap reads a get_logs result. Workers in other languages answer
// in the current server's item shape ({"items": [{"type", "content"}],
// "total", "offset", "limit"}) or only with the seed's per-type lists; the
// typed fields are filled from what is there (Items only from "items"), and
// Wire keeps the map itself so that ToMap hands it on unchanged.
func LogPageFromMap(m map[string]any) (LogPage, error) {
	p := LogPage{Wire: m}
	items, ok := wireList(m["items"])
	if !ok {
		return LogPage{}, badField("items", "list", m["items"])
	}
	for _, v := range items {
		im, ok := v.(map[string]any)
		if !ok {
			return LogPage{}, badField("items[]", "map", v)
		}
		e := LogEntry{}
		t, _ := im["type"].(string)
		e.Type = LogType(t)
		switch c := im["content"].(type) {
		case string:
			e.Content = c
		case nil:
		default:
			e.Content = fmt.Sprint(c)
		}
		e.Partial, _ = im["partial"].(bool)
		p.Items = append(p.Items, e)
	}
	num := func(key string) int64 {
		n, ok := wireInt(m[key])
		if !ok {
			return 0
		}
		return n
	}
	p.Total = int(num("total"))
	p.Query.Offset = int(num("offset"))
	p.Query.Limit = int(num("limit"))
	p.Dropped = num("dropped")
	p.FirstOffset = num("first_offset")
	p.NextOffset = num("next_offset")
	p.Missed = num("missed")
	p.Status, _ = m["status"].(string)
	return p, nil
}

// ToMap renders the compile config argument: server_url, public_url,
// workspace, user, and progress_callback when cb is not nil (the caller
// passes the wire callable it made of ProgressFunc), plus Extra.
func (c CompileConfig) ToMap(cb any) map[string]any {
	m := make(map[string]any, 5+len(c.Extra))
	maps.Copy(m, c.Extra)
	m["server_url"] = c.ServerURL
	m["public_url"] = c.PublicURL
	m["workspace"] = c.Workspace
	m["user"] = c.User
	if c.User == nil {
		m["user"] = nil
	}
	if cb != nil {
		m[keyProgressCallback] = cb
	}
	return m
}

// Args renders the compile call's positional arguments (manifest, files);
// the config goes as a keyword (CompileConfig.ToMap).
func (r CompileRequest) Args() (manifest map[string]any, files []any) {
	files = make([]any, len(r.Files))
	for i, f := range r.Files {
		files[i] = f.ToMap()
	}
	return r.Manifest.ToMap(), files
}

// CompileResultFromValue reads a compile result: the 2-element list a
// Python tuple (manifest, files) arrives as. The manifest must be a map
// (its "_rtype" marker is dropped); every file is read with FileFromMap.
func CompileResultFromValue(v any) (CompileResult, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return CompileResult{}, fmt.Errorf("%w: compile must return (manifest, files), got %T", ErrInvalidConfig, v)
	}
	if _, ok := pair[0].(map[string]any); !ok {
		return CompileResult{}, fmt.Errorf("%w: compiled manifest is %T, not a dict", ErrInvalidConfig, pair[0])
	}
	man, err := manifestFromValue("manifest", pair[0])
	if err != nil {
		return CompileResult{}, err
	}
	req, err := CompileRequestFromArgs(nil, pair[1], nil)
	if err != nil {
		return CompileResult{}, err
	}
	return CompileResult{Manifest: man, Files: req.Files}, nil
}

// ProgressFromValue reads one progress_callback message: a {"type",
// "message"} map (type defaults to info, a message that is not a string is
// printed), or any other value, which becomes an info message.
func ProgressFromValue(v any) Progress {
	m, ok := v.(map[string]any)
	if !ok {
		return Progress{Type: ProgressInfo, Message: fmt.Sprint(v)}
	}
	p := Progress{Type: ProgressInfo}
	if t, _ := m["type"].(string); t != "" {
		p.Type = ProgressType(t)
	}
	switch msg := m["message"].(type) {
	case string:
		p.Message = msg
	case nil:
	default:
		p.Message = fmt.Sprint(msg)
	}
	return p
}

// Follows reports whether a remote worker's page carries next_offset, as
// this package's LogStore pages do: such a worker takes the wait and
// follower arguments of get_logs (others may not know them).
func (p LogPage) Follows() bool { return p.Wire != nil && p.Wire["next_offset"] != nil }
