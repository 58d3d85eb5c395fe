package a2aproxy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hypha-go/hypha/worker"
)

// Bounds on what a manifest may ask for.
const (
	MaxAgents         = 32
	MaxHeaders        = 32
	MaxHeaderValueLen = 8 << 10
	MaxURLLen         = 2048
	MaxSourceBytes    = 1 << 20
)

// agentNameRE: an agent's name becomes its service id.
var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// headerNameRE is an HTTP token (RFC 9110 tchar).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

// Headers the transport owns; an app may not set them.
var reservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Keep-Alive", "Proxy-Connection", "Content-Type", "Accept"}

// Agent is one entry of a2aAgents.
type Agent struct {
	Name    string
	URL     string
	Headers map[string]string
}

// ParseAgents reads and checks manifest["a2aAgents"]: a map of name to
// {url, headers}. Errors wrap worker.ErrInvalidConfig and name the agent
// and field at fault.
func ParseAgents(v any) ([]Agent, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, fmt.Errorf("%w: a2aAgents configuration is required for type %q (a map of name to {url, headers})", worker.ErrInvalidConfig, Type)
	}
	if len(m) > MaxAgents {
		return nil, fmt.Errorf("%w: a2aAgents has %d agents, more than %d", worker.ErrInvalidConfig, len(m), MaxAgents)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	out := make([]Agent, 0, len(m))
	for _, name := range names {
		a, err := parseAgent(name, m[name])
		if err != nil {
			return nil, fmt.Errorf("%w: a2aAgents[%q]: %w", worker.ErrInvalidConfig, truncate(name, 80), err)
		}
		out = append(out, a)
	}
	return out, nil
}

func parseAgent(name string, v any) (Agent, error) {
	if !agentNameRE.MatchString(name) || name == "default" {
		return Agent{}, fmt.Errorf("the name must be 1-64 letters, digits, '_' or '-' (it becomes the service id), and not \"default\"")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Agent{}, fmt.Errorf("want a map {url, headers}, got %T", v)
	}
	a := Agent{Name: name}
	for k := range m {
		if k != "url" && k != "headers" {
			return Agent{}, fmt.Errorf("unknown field %q (want url and headers)", truncate(k, 80))
		}
	}
	u, _ := m["url"].(string)
	if u == "" {
		return Agent{}, fmt.Errorf("url is missing or not a string")
	}
	if len(u) > MaxURLLen {
		return Agent{}, fmt.Errorf("url is longer than %d bytes", MaxURLLen)
	}
	pu, err := url.Parse(u)
	if err != nil {
		return Agent{}, fmt.Errorf("url: %w", err)
	}
	if pu.Scheme != "http" && pu.Scheme != "https" {
		return Agent{}, fmt.Errorf("url %q: only http and https URLs are allowed", truncate(u, 200))
	}
	if pu.Host == "" || pu.User != nil || pu.Fragment != "" || pu.RawQuery != "" {
		return Agent{}, fmt.Errorf("url %q: want http(s)://host[:port][/path], without user info, query or fragment", truncate(u, 200))
	}
	a.URL = strings.TrimRight(pu.String(), "/")
	if hv, ok := m["headers"]; ok && hv != nil {
		hm, ok := hv.(map[string]any)
		if !ok {
			return Agent{}, fmt.Errorf("headers: want a map of name to string, got %T", hv)
		}
		if len(hm) > MaxHeaders {
			return Agent{}, fmt.Errorf("headers: %d headers, more than %d", len(hm), MaxHeaders)
		}
		a.Headers = make(map[string]string, len(hm))
		for k, v := range hm {
			if !headerNameRE.MatchString(k) {
				return Agent{}, fmt.Errorf("headers: %q is not a valid header name", truncate(k, 80))
			}
			if slices.ContainsFunc(reservedHeaders, func(r string) bool { return strings.EqualFold(r, k) }) {
				return Agent{}, fmt.Errorf("headers: %q is set by the proxy itself", k)
			}
			s, ok := v.(string)
			if !ok {
				return Agent{}, fmt.Errorf("headers: %q: want a string, got %T", k, v)
			}
			if len(s) > MaxHeaderValueLen {
				return Agent{}, fmt.Errorf("headers: %q: value longer than %d bytes", k, MaxHeaderValueLen)
			}
			if strings.ContainsAny(s, "\r\n\x00") {
				return Agent{}, fmt.Errorf("headers: %q: value holds a line break or NUL", k)
			}
			a.Headers[k] = s
		}
	}
	return a, nil
}

// Limits bound what the proxy reads from agents.
type Limits struct {
	// MaxCardBytes bounds an agent card (default 1 MiB).
	MaxCardBytes int64
	// MaxSkills bounds the skills of one card (default 256).
	MaxSkills int
	// CardTimeout bounds reading a card at start (default 15 s).
	CardTimeout time.Duration
	// CallTimeout bounds one message/send (default 5 min).
	CallTimeout time.Duration
	// MaxResponseBytes bounds one message/send response (default 16 MiB).
	MaxResponseBytes int64
	// MaxEventBytes bounds one event of a stream (default 1 MiB).
	MaxEventBytes int
	// MaxStreamEvents bounds the events of one stream (default 10000).
	MaxStreamEvents int
}

func (l Limits) withDefaults() Limits {
	if l.MaxCardBytes <= 0 {
		l.MaxCardBytes = 1 << 20
	}
	if l.MaxSkills <= 0 {
		l.MaxSkills = 256
	}
	if l.CardTimeout <= 0 {
		l.CardTimeout = 15 * time.Second
	}
	if l.CallTimeout <= 0 {
		l.CallTimeout = 5 * time.Minute
	}
	if l.MaxResponseBytes <= 0 {
		l.MaxResponseBytes = 16 << 20
	}
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = 1 << 20
	}
	if l.MaxStreamEvents <= 0 {
		l.MaxStreamEvents = 10000
	}
	return l
}

// compile is upstream's: a2aAgents of the manifest over those of a "source"
// file (JSON) when there is one, checked, then the final manifest written as
// the app's "source" file; wait_for_service is "default".
func compile(req worker.CompileRequest) (worker.CompileResult, error) {
	man := req.Manifest
	if man.Type() != Type {
		return worker.CompileResult{Manifest: man, Files: req.Files}, nil
	}
	agents := map[string]any{}
	for _, f := range req.Files {
		if f.Name != "source" && f.Path != "source" {
			continue
		}
		s, _ := f.Content.(string)
		if len(s) > MaxSourceBytes {
			return worker.CompileResult{}, fmt.Errorf("%w: the source file is larger than %d bytes", worker.ErrInvalidConfig, MaxSourceBytes)
		}
		var src map[string]any
		if strings.TrimSpace(s) != "" {
			if err := json.Unmarshal([]byte(s), &src); err != nil {
				return worker.CompileResult{}, fmt.Errorf("%w: the source file is not a JSON object: %w", worker.ErrInvalidConfig, err)
			}
		}
		if sa, ok := src["a2aAgents"].(map[string]any); ok {
			for k, v := range sa {
				agents[k] = v
			}
		}
	}
	if ma, ok := man["a2aAgents"].(map[string]any); ok {
		for k, v := range ma {
			agents[k] = v
		}
	} else if v, ok := man["a2aAgents"]; ok && v != nil {
		return worker.CompileResult{}, fmt.Errorf("%w: a2aAgents: want a map of name to {url, headers}, got %T", worker.ErrInvalidConfig, v)
	}
	if _, err := ParseAgents(agents); err != nil {
		return worker.CompileResult{}, err
	}
	out := worker.Manifest{}
	for k, v := range man {
		out[k] = v
	}
	out["type"] = Type
	out["a2aAgents"] = agents
	for k, def := range map[string]string{"name": "A2A Agent", "description": "A2A agent application", "version": "1.0.0"} {
		if s, _ := out[k].(string); s == "" {
			out[k] = def
		}
	}
	src, err := json.MarshalIndent(map[string]any(out), "", "  ")
	if err != nil {
		return worker.CompileResult{}, fmt.Errorf("%w: the manifest cannot be written as JSON: %w", worker.ErrInvalidConfig, err)
	}
	files := make([]worker.File, 0, len(req.Files)+1)
	for _, f := range req.Files {
		if f.Name != "source" && f.Path != "source" {
			files = append(files, f)
		}
	}
	files = append(files, worker.File{Path: "source", Name: "source", Content: string(src), Format: "text"})
	out["wait_for_service"] = "default"
	return worker.CompileResult{Manifest: out, Files: files}, nil
}
