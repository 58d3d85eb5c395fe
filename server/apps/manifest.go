package apps

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/hypha-go/hypha/internal/convert"
)

var appIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

func validAppID(id string) error {
	if id == "" || len(id) > 128 || !appIDPattern.MatchString(id) {
		return fmt.Errorf("App id %q is not a valid string, only alphanumeric characters, -, and _ are allowed", id)
	}
	return nil
}

// validWorkspace refuses workspace names that cannot be a directory name.
func validWorkspace(ws string) error {
	if ws == "" || len(ws) > 256 || strings.HasPrefix(ws, ".") || strings.ContainsAny(ws, "/\\\x00:*") {
		return fmt.Errorf("invalid workspace name %q", ws)
	}
	return nil
}

// cleanFilePath validates a file path inside an app: relative, slash
// separated, no empty, "." or ".." segments, no backslashes or NUL bytes.
func cleanFilePath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("file path is empty")
	}
	if len(p) > 1024 || !utf8.ValidString(p) {
		return "", fmt.Errorf("invalid file path %q", p)
	}
	if strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || (len(p) > 1 && p[1] == ':') {
		return "", fmt.Errorf("invalid file path %q: it must be relative, with '/' separators", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("invalid file path %q: '..', '.' and empty segments are not allowed", p)
		}
	}
	if path.Clean(p) != p {
		return "", fmt.Errorf("invalid file path %q", p)
	}
	return p, nil
}

// appFile is one file of an app, as install receives it and compile returns it.
type appFile struct {
	Path    string
	Name    string
	Content any
	Format  string
}

// normalizeFiles checks a files list ({path|name, content, format}) and
// fills path from name and name from path, as upstream does.
func normalizeFiles(v any) ([]appFile, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("files must be a list of {path, content, format}, got %T", v)
	}
	out := make([]appFile, 0, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("files[%d] must be a dict, got %T", i, e)
		}
		p, _ := m["path"].(string)
		n, _ := m["name"].(string)
		if p == "" && n == "" {
			return nil, fmt.Errorf("File %d must have 'name' or 'path' field", i)
		}
		if p == "" {
			p = n
		}
		if n == "" {
			n = path.Base(p)
		}
		cp, err := cleanFilePath(p)
		if err != nil {
			return nil, err
		}
		f := appFile{Path: cp, Name: n, Content: m["content"], Format: "text"}
		if fm, ok := m["format"].(string); ok && fm != "" {
			f.Format = fm
		} else if m["format"] != nil {
			return nil, fmt.Errorf("file %s: format must be a string", cp)
		}
		if f.Content == nil {
			return nil, fmt.Errorf("Each file must have 'name' and 'content' fields (file %s has no content)", cp)
		}
		out = append(out, f)
	}
	return out, nil
}

func (f appFile) toMap() map[string]any {
	return map[string]any{"path": f.Path, "name": f.Name, "content": f.Content, "format": f.Format}
}

func filesToList(files []appFile) []any {
	out := make([]any, len(files))
	for i, f := range files {
		out[i] = f.toMap()
	}
	return out
}

// decode returns the bytes to store for a file.
func (f appFile) decode() ([]byte, error) {
	switch f.Format {
	case "text":
		switch c := f.Content.(type) {
		case string:
			return []byte(c), nil
		case []byte:
			return c, nil
		}
		return nil, fmt.Errorf("file %s: text content must be a string, got %T", f.Path, f.Content)
	case "base64":
		s, ok := f.Content.(string)
		if !ok {
			if b, isBytes := f.Content.([]byte); isBytes {
				return b, nil
			}
			return nil, fmt.Errorf("Failed to decode base64 content for file %s: content must be a string", f.Path)
		}
		if strings.HasPrefix(s, "data:") {
			_, data, ok := strings.Cut(s, ";base64,")
			if !ok {
				return nil, fmt.Errorf("Data URL format not supported for file %s. Expected format: data:mediatype;base64,content", f.Path)
			}
			s = data
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("Failed to decode base64 content for file %s: %v", f.Path, err)
		}
		return b, nil
	case "json":
		switch c := f.Content.(type) {
		case map[string]any, []any:
			b, err := json.MarshalIndent(jsonSafe(c), "", "  ")
			if err != nil {
				return nil, fmt.Errorf("Failed to process JSON content for file %s: %v", f.Path, err)
			}
			return b, nil
		case string:
			if !json.Valid([]byte(c)) {
				return nil, fmt.Errorf("Failed to process JSON content for file %s: not valid JSON", f.Path)
			}
			return []byte(c), nil
		}
		return nil, fmt.Errorf("Failed to process JSON content for file %s: JSON content must be a dictionary, list, or valid JSON string", f.Path)
	}
	return nil, fmt.Errorf("Unsupported file format '%s' for file %s. Must be 'text', 'json', or 'base64'", f.Format, f.Path)
}

// jsonSafe converts decoded RPC values into values encoding/json accepts.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonSafe(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case string, bool, nil, int64, uint64, float64, int, float32, int32:
		return v
	}
	return fmt.Sprint(v)
}

// fromJSON turns numbers decoded by encoding/json into int64 where integral,
// so a manifest loaded from disk looks like one received over RPC.
func fromJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromJSON(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// manifestDefaults are the fields (with their defaults) of upstream's
// ApplicationManifest model, which the server dumps in full for workers.
func manifestDefaults() map[string]any {
	return map[string]any{
		"type": "application", "format_version": "0.2.1", "name": nil, "id": nil, "description": nil,
		"tags": nil, "documentation": nil, "covers": nil, "badges": nil, "authors": nil,
		"attachments": nil, "files": nil, "config": nil, "version": "0.1.0", "links": nil,
		"maintainers": nil, "license": nil, "git_repo": nil, "source": nil,
		"passive": false, "dependencies": []any{}, "requirements": []any{}, "api_version": "0.1.0",
		"icon": nil, "env": nil, "entry_point": nil, "daemon": false, "singleton": false,
		"worker_managed": false, "services": nil, "startup_config": nil, "service_selection_mode": nil,
		"startup_context": nil, "source_hash": nil, "autoscaling": nil,
	}
}

// workerManifest is the manifest as the worker receives it: every model
// field, the stored values, and the pydantic codec marker.
func workerManifest(m map[string]any) map[string]any {
	out := manifestDefaults()
	maps.Copy(out, m)
	return out // worker.Config.ToMap adds the "_rtype" marker on the wire
}

// manifest field types checked at install (upstream validates the model).
var manifestKinds = map[string]string{
	"type": "string", "entry_point": "string", "name": "string", "description": "string",
	"version": "string", "icon": "string", "api_version": "string", "source_hash": "string",
	"service_selection_mode": "string",
	"daemon":                 "bool", "singleton": "bool", "worker_managed": "bool", "passive": "bool", "disabled": "bool",
	"startup_config": "dict", "config": "dict", "autoscaling": "dict",
	"requirements": "list", "dependencies": "list", "tags": "list",
}

func validateManifest(m map[string]any) error {
	for k, kind := range manifestKinds {
		v, ok := m[k]
		if !ok || v == nil {
			continue
		}
		good := false
		switch kind {
		case "string":
			_, good = v.(string)
		case "bool":
			_, good = v.(bool)
		case "dict":
			_, good = v.(map[string]any)
		case "list":
			_, good = v.([]any)
		}
		if !good {
			return fmt.Errorf("invalid manifest: field %s must be a %s, got %T", k, kind, v)
		}
	}
	t, _ := m["type"].(string)
	if t == "" || t == "application" {
		return fmt.Errorf("invalid manifest: Application type should not be application or None (set manifest.type to the app type a worker supports)")
	}
	if m["daemon"] == true {
		if sc, _ := m["startup_config"].(map[string]any); sc != nil {
			if n, ok := convert.Number(sc["stop_after_inactive"]); ok && n > 0 {
				return fmt.Errorf("invalid manifest: Daemon apps should not have stop_after_inactive set.")
			}
		}
	}
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// sourceHash is the base58 multihash (sha2-256) of the source, as upstream
// stores in manifest.source_hash.
func sourceHash(source string) string {
	sum := sha256.Sum256([]byte(source))
	return base58(append([]byte{0x12, 0x20}, sum[:]...))
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58(b []byte) string {
	x := new(big.Int).SetBytes(b)
	mod := new(big.Int)
	radix := big.NewInt(58)
	var out []byte
	for x.Sign() > 0 {
		x.DivMod(x, radix, mod)
		out = append(out, base58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// deepCopy copies maps and lists of decoded values.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(m).(map[string]any)
}
