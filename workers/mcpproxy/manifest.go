package mcpproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/hypha-go/hypha/worker"
)

// Transport types a server entry may name.
const (
	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
	TransportStdio          = "stdio"
)

// Bounds on a manifest: a manifest is user input.
const (
	MaxServers      = 32
	MaxHeaders      = 64
	MaxHeaderBytes  = 16 << 10 // all of one server's header names and values
	MaxURLBytes     = 4 << 10
	MaxArgs         = 256
	MaxEnv          = 256
	MaxCommandBytes = 64 << 10 // command, args and env together
)

// ErrManifest is wrapped by every manifest error.
var ErrManifest = fmt.Errorf("%w: mcp-server manifest", worker.ErrInvalidConfig)

// ServerSpec is one entry of manifest.mcpServers.
type ServerSpec struct {
	Name    string
	Type    string
	URL     string
	Headers map[string]string
	Command string
	Args    []string
	Env     map[string]string
}

var serverName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// headers that the transport itself owns: a manifest setting them would
// break or smuggle requests.
var reservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade",
	"Mcp-Session-Id", "Mcp-Protocol-Version", "Content-Type", "Accept", "Te", "Trailer", "Last-Event-Id"}

// ParseServers reads and validates manifest.mcpServers. Errors name the
// server and the field.
func ParseServers(man map[string]any) ([]ServerSpec, error) {
	raw, ok := man["mcpServers"]
	if !ok || raw == nil {
		return nil, fmt.Errorf("%w: mcpServers is required for type mcp-server", ErrManifest)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: mcpServers must be an object {name: {type, url, headers} | {type: stdio, command, args, env}}, got %T", ErrManifest, raw)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: mcpServers is empty", ErrManifest)
	}
	if len(m) > MaxServers {
		return nil, fmt.Errorf("%w: mcpServers has %d servers (at most %d)", ErrManifest, len(m), MaxServers)
	}
	var out []ServerSpec
	for _, name := range slices.Sorted(maps.Keys(m)) {
		s, err := parseServer(name, m[name])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseServer(name string, raw any) (ServerSpec, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: mcpServers.%s: %s", ErrManifest, name, fmt.Sprintf(format, a...))
	}
	if !serverName.MatchString(name) || name == "default" {
		return ServerSpec{}, fmt.Errorf("%w: mcpServers: server name %q must be 1-64 letters, digits, '-' or '_' (not \"default\"): it becomes a service id", ErrManifest, name)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return ServerSpec{}, bad("must be an object, got %T", raw)
	}
	s := ServerSpec{Name: name}
	str := func(k string) (string, error) {
		v, ok := m[k]
		if !ok || v == nil {
			return "", nil
		}
		x, ok := v.(string)
		if !ok {
			return "", bad("%s must be a string, got %T", k, v)
		}
		return x, nil
	}
	var err error
	if s.Type, err = str("type"); err != nil {
		return s, err
	}
	if s.URL, err = str("url"); err != nil {
		return s, err
	}
	if s.Command, err = str("command"); err != nil {
		return s, err
	}
	if s.Type == "" {
		s.Type = TransportStreamableHTTP // upstream's default
		if s.Command != "" && s.URL == "" {
			s.Type = TransportStdio
		}
	}
	switch s.Type {
	case TransportStreamableHTTP, TransportSSE:
		if err := checkURL(s.URL); err != nil {
			return s, bad("url: %v", err)
		}
		if s.Headers, err = stringMap(m["headers"], MaxHeaders); err != nil {
			return s, bad("headers: %v", err)
		}
		if err := checkHeaders(s.Headers); err != nil {
			return s, bad("headers: %v", err)
		}
		if s.Command != "" || m["args"] != nil || m["env"] != nil {
			return s, bad("command, args and env are for type stdio, not %s", s.Type)
		}
	case TransportStdio:
		if s.Command == "" {
			return s, bad("command is required for type stdio")
		}
		if s.URL != "" || m["headers"] != nil {
			return s, bad("url and headers are for the HTTP types, not stdio")
		}
		if s.Args, err = stringList(m["args"], MaxArgs); err != nil {
			return s, bad("args: %v", err)
		}
		if s.Env, err = stringMap(m["env"], MaxEnv); err != nil {
			return s, bad("env: %v", err)
		}
		n := len(s.Command)
		for _, a := range s.Args {
			n += len(a)
		}
		for k, v := range s.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return s, bad("env: bad variable name %q", k)
			}
			n += len(k) + len(v)
		}
		if n > MaxCommandBytes || strings.ContainsRune(s.Command, 0) {
			return s, bad("command, args and env exceed %d bytes or hold a NUL", MaxCommandBytes)
		}
	default:
		return s, bad("type %q is not one of streamable-http, sse, stdio", s.Type)
	}
	return s, nil
}

func checkURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	if len(raw) > MaxURLBytes {
		return fmt.Errorf("longer than %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	if u.User != nil {
		return errors.New("must not carry credentials (use headers)")
	}
	return nil
}

func checkHeaders(h map[string]string) error {
	n := 0
	for k, v := range h {
		if k == "" || !validHeaderName(k) {
			return fmt.Errorf("bad header name %q", k)
		}
		if slices.Contains(reservedHeaders, textproto.CanonicalMIMEHeaderKey(k)) {
			return fmt.Errorf("header %q is set by the transport", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("header %q: value holds CR, LF or NUL", k)
		}
		n += len(k) + len(v)
	}
	if n > MaxHeaderBytes {
		return fmt.Errorf("%d bytes (at most %d)", n, MaxHeaderBytes)
	}
	return nil
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(k string) bool {
	for _, c := range []byte(k) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func stringMap(v any, max int) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("must be an object of strings, got %T", v)
	}
	if len(m) > max {
		return nil, fmt.Errorf("%d entries (at most %d)", len(m), max)
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%q must be a string, got %T", k, x)
		}
		out[k] = s
	}
	return out, nil
}

func stringList(v any, max int) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("must be a list of strings, got %T", v)
	}
	if len(l) > max {
		return nil, fmt.Errorf("%d entries (at most %d)", len(l), max)
	}
	out := make([]string, len(l))
	for i, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("entry %d must be a string, got %T", i, x)
		}
		if strings.ContainsRune(s, 0) {
			return nil, fmt.Errorf("entry %d holds a NUL", i)
		}
		out[i] = s
	}
	return out, nil
}

// sourceServers reads mcpServers from the app's "source" file (JSON), as
// upstream accepts the spec there.
func sourceServers(files []worker.File) (map[string]any, error) {
	for _, f := range files {
		if f.Name != "source" && f.Path != "source" {
			continue
		}
		var doc map[string]any
		switch c := f.Content.(type) {
		case map[string]any:
			doc = c
		case string:
			if strings.TrimSpace(c) == "" {
				return nil, nil
			}
			if err := json.Unmarshal([]byte(c), &doc); err != nil {
				return nil, fmt.Errorf("%w: the source file is not JSON: %v", ErrManifest, err)
			}
		default:
			return nil, fmt.Errorf("%w: the source file must be JSON text, got %T", ErrManifest, f.Content)
		}
		m, _ := doc["mcpServers"].(map[string]any)
		return m, nil
	}
	return nil, nil
}
