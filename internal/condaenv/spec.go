package condaenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalidSpec is wrapped by every error about a bad environment spec.
var ErrInvalidSpec = errors.New("invalid environment spec")

// Bounds on a spec: an environment is a handful of packages, never thousands,
// and a package string is short; anything larger is refused before it
// reaches a solver or an index file.
const (
	MaxPackages    = 256
	MaxChannels    = 16
	MaxPackageLen  = 200
	MaxPipLen      = 400
	MaxChannelLen  = 200
	DefaultChannel = "conda-forge"
)

// KernelPackages are the conda packages every environment gets so that a
// Jupyter kernel can run in it, as upstream's compile step adds them (pip
// first, then the kernel trio).
var KernelPackages = []string{"pip", "ipykernel", "jupyter_client", "pyzmq"}

// HyphaRPC is the pip package upstream's compile step adds so that the app
// can connect back; the worker adds it with Spec.WithPip.
const HyphaRPC = "hypha-rpc"

// Spec is a conda environment specification: conda package specs, pip
// requirements and channels. The zero value is an empty spec; Normalize
// gives the form that is built and hashed.
type Spec struct {
	Channels     []string `json:"channels"`
	Dependencies []string `json:"dependencies"`
	Pip          []string `json:"pip,omitempty"`
}

// SpecFromManifest reads a manifest's `dependencies` (a string or a list of
// strings and {"pip": [...]} / {"pip": "..."} entries) and `channels` (a
// string or a list). Types are checked here; package strings are checked by
// Validate.
func SpecFromManifest(dependencies, channels any) (Spec, error) {
	var s Spec
	switch d := dependencies.(type) {
	case nil:
	case string:
		s.Dependencies = []string{d}
	case []string:
		s.Dependencies = append([]string(nil), d...)
	case []any:
		if len(d) > MaxPackages {
			return Spec{}, fmt.Errorf("%w: dependencies has %d entries, at most %d", ErrInvalidSpec, len(d), MaxPackages)
		}
		for i, e := range d {
			switch v := e.(type) {
			case string:
				s.Dependencies = append(s.Dependencies, v)
			case map[string]any:
				pips, err := pipEntry(v, i)
				if err != nil {
					return Spec{}, err
				}
				s.Pip = append(s.Pip, pips...)
			default:
				return Spec{}, fmt.Errorf("%w: dependencies[%d] is a %T; want a package string or {\"pip\": [...]}", ErrInvalidSpec, i, e)
			}
		}
	default:
		return Spec{}, fmt.Errorf("%w: dependencies is a %T; want a string or a list", ErrInvalidSpec, dependencies)
	}
	switch c := channels.(type) {
	case nil:
	case string:
		s.Channels = []string{c}
	case []string:
		s.Channels = append([]string(nil), c...)
	case []any:
		if len(c) > MaxChannels {
			return Spec{}, fmt.Errorf("%w: channels has %d entries, at most %d", ErrInvalidSpec, len(c), MaxChannels)
		}
		for i, e := range c {
			v, ok := e.(string)
			if !ok {
				return Spec{}, fmt.Errorf("%w: channels[%d] is a %T; want a string", ErrInvalidSpec, i, e)
			}
			s.Channels = append(s.Channels, v)
		}
	default:
		return Spec{}, fmt.Errorf("%w: channels is a %T; want a string or a list", ErrInvalidSpec, channels)
	}
	return s, nil
}

func pipEntry(m map[string]any, i int) ([]string, error) {
	if len(m) != 1 {
		return nil, fmt.Errorf("%w: dependencies[%d] is a map with %d keys; only {\"pip\": [...]} is allowed", ErrInvalidSpec, i, len(m))
	}
	v, ok := m["pip"]
	if !ok {
		for k := range m {
			return nil, fmt.Errorf("%w: dependencies[%d] has key %q; only \"pip\" is allowed", ErrInvalidSpec, i, k)
		}
	}
	switch p := v.(type) {
	case string:
		return []string{p}, nil
	case []string:
		return append([]string(nil), p...), nil
	case []any:
		if len(p) > MaxPackages {
			return nil, fmt.Errorf("%w: dependencies[%d].pip has %d entries, at most %d", ErrInvalidSpec, i, len(p), MaxPackages)
		}
		out := make([]string, 0, len(p))
		for j, e := range p {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: dependencies[%d].pip[%d] is a %T; want a string", ErrInvalidSpec, i, j, e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: dependencies[%d].pip is a %T; want a string or a list", ErrInvalidSpec, i, v)
	}
}

// Normalize returns the spec that is built and hashed: channels default to
// conda-forge; the kernel packages are added when no dependency names them
// (upstream compares whole strings, we compare package names so that
// "ipykernel>=6" does not get a second, bare "ipykernel"); exact duplicates
// are dropped; the order is otherwise kept, because the hash sorts. Python
// is not added: like upstream we let pip and ipykernel pull it in.
func (s Spec) Normalize() Spec {
	out := Spec{
		Channels:     dedupe(s.Channels),
		Dependencies: dedupe(s.Dependencies),
		Pip:          dedupe(s.Pip),
	}
	if len(out.Channels) == 0 {
		out.Channels = []string{DefaultChannel}
	}
	for _, k := range KernelPackages {
		if !out.hasConda(k) {
			out.Dependencies = append(out.Dependencies, k)
		}
	}
	return out
}

// WithPip returns the spec with the pip requirements added whose package
// name is not already asked for (pip or conda side), as upstream's compile
// adds hypha-rpc.
func (s Spec) WithPip(reqs ...string) Spec {
	out := Spec{
		Channels:     append([]string(nil), s.Channels...),
		Dependencies: append([]string(nil), s.Dependencies...),
		Pip:          append([]string(nil), s.Pip...),
	}
	for _, r := range reqs {
		n := pipName(r)
		found := out.hasConda(n)
		for _, p := range out.Pip {
			if pipName(p) == n {
				found = true
			}
		}
		if !found {
			out.Pip = append(out.Pip, r)
		}
	}
	return out
}

// ManifestDependencies returns the dependencies in the manifest's shape:
// conda strings, then one {"pip": [...]} entry when there are pip packages.
func (s Spec) ManifestDependencies() []any {
	out := make([]any, 0, len(s.Dependencies)+1)
	for _, d := range s.Dependencies {
		out = append(out, d)
	}
	if len(s.Pip) > 0 {
		pips := make([]any, len(s.Pip))
		for i, p := range s.Pip {
			pips[i] = p
		}
		out = append(out, map[string]any{"pip": pips})
	}
	return out
}

func (s Spec) hasConda(name string) bool {
	for _, d := range s.Dependencies {
		if condaName(d) == name {
			return true
		}
	}
	return false
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, v := range in {
		v = strings.TrimSpace(v)
		if seen[v] {
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	return out
}

// Hash is the cache key of the spec, computed as upstream computes its key:
// SHA-256 of the canonical JSON of {"channels": sorted, "dependencies":
// sorted by each entry's JSON}, with the pip packages as one {"pip": [...]}
// entry. Call it on a normalised spec.
func (s Spec) Hash() string {
	var deps []string
	for _, d := range s.Dependencies {
		deps = append(deps, pyJSONString(d))
	}
	if len(s.Pip) > 0 {
		var b strings.Builder
		b.WriteString(`{"pip": [`)
		for i, p := range s.Pip {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyJSONString(p))
		}
		b.WriteString("]}")
		deps = append(deps, b.String())
	}
	sort.Strings(deps)
	chans := make([]string, 0, len(s.Channels))
	for _, c := range s.Channels {
		chans = append(chans, pyJSONString(c))
	}
	sort.Strings(chans)
	canon := `{"channels": [` + strings.Join(chans, ", ") + `], "dependencies": [` + strings.Join(deps, ", ") + `]}`
	sum := sha256.Sum256([]byte(canon))
	return hex.EncodeToString(sum[:])
}

// pyJSONString quotes a string as Python's json.dumps does for the ASCII
// strings Validate lets through.
func pyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r > 0x7e:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Validate checks every package string and channel. The rules are a
// whitelist, because these strings end up in a solver's input file and in
// pip's requirement lines: a conda spec is a package name (optionally
// "channel::name") followed by version and build constraints; a pip
// requirement is a name with extras and version constraints, or
// "name @ https://..."; a channel is a name ("conda-forge",
// "nvidia/label/x") or an https URL. Refused: option-like strings ("-c x",
// "--index-url"), paths and file URLs, shell and YAML metacharacters,
// control characters, and oversized lists and strings.
func (s Spec) Validate() error {
	if n := len(s.Dependencies) + len(s.Pip); n > MaxPackages {
		return fmt.Errorf("%w: %d packages, at most %d", ErrInvalidSpec, n, MaxPackages)
	}
	if len(s.Channels) > MaxChannels {
		return fmt.Errorf("%w: %d channels, at most %d", ErrInvalidSpec, len(s.Channels), MaxChannels)
	}
	for i, d := range s.Dependencies {
		if err := checkConda(d); err != nil {
			return fmt.Errorf("%w: dependencies[%d] %q: %v", ErrInvalidSpec, i, clip(d), err)
		}
	}
	for i, p := range s.Pip {
		if err := checkPip(p); err != nil {
			return fmt.Errorf("%w: pip[%d] %q: %v", ErrInvalidSpec, i, clip(p), err)
		}
	}
	for i, c := range s.Channels {
		if err := checkChannel(c); err != nil {
			return fmt.Errorf("%w: channels[%d] %q: %v", ErrInvalidSpec, i, clip(c), err)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isNameChar(c byte) bool { return isAlnum(c) || c == '_' || c == '-' || c == '.' }

// versionChars may follow a package name in a conda spec: version
// operators, wildcards, build strings, "|" alternatives and single spaces.
const condaVersionChars = "._-+=<>!~*,| "

func checkConda(d string) error {
	if d == "" {
		return errors.New("empty package spec")
	}
	if len(d) > MaxPackageLen {
		return fmt.Errorf("%d bytes, at most %d", len(d), MaxPackageLen)
	}
	if d[0] == '-' {
		return errors.New("a package spec cannot start with '-' (options are not allowed)")
	}
	rest := d
	if i := strings.Index(d, "::"); i >= 0 {
		if err := checkChannel(d[:i]); err != nil {
			return fmt.Errorf("channel before '::': %v", err)
		}
		rest = d[i+2:]
	}
	if rest == "" || !isAlnum(rest[0]) && rest[0] != '_' {
		return errors.New("a package spec must start with a package name")
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if isAlnum(c) || strings.IndexByte(condaVersionChars, c) >= 0 {
			continue
		}
		return badChar(c, "a conda package spec")
	}
	return nil
}

const pipChars = "._-+=<>!~*,[] "

func checkPip(p string) error {
	if p == "" {
		return errors.New("empty requirement")
	}
	if len(p) > MaxPipLen {
		return fmt.Errorf("%d bytes, at most %d", len(p), MaxPipLen)
	}
	if p[0] == '-' {
		return errors.New("a pip requirement cannot start with '-' (pip options such as --index-url or -r are not allowed)")
	}
	if !isAlnum(p[0]) {
		return errors.New("a pip requirement must start with a package name (paths and URLs alone are not allowed)")
	}
	req, url, direct := strings.Cut(p, "@")
	for i := 0; i < len(req); i++ {
		c := req[i]
		if isAlnum(c) || strings.IndexByte(pipChars, c) >= 0 {
			continue
		}
		return badChar(c, "a pip requirement")
	}
	if direct {
		url = strings.TrimSpace(url)
		if err := checkURL(strings.TrimPrefix(url, "git+")); err != nil {
			return fmt.Errorf("direct reference: %v", err)
		}
	}
	return nil
}

// checkURL accepts https URLs made of unreserved characters; no
// credentials, no query, no file: or http: schemes.
func checkURL(u string) error {
	rest, ok := strings.CutPrefix(u, "https://")
	if !ok {
		return errors.New("only https:// URLs are allowed")
	}
	if rest == "" || !isAlnum(rest[0]) {
		return errors.New("URL has no host")
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if isAlnum(c) || strings.IndexByte("._-~/%+=:", c) >= 0 {
			continue
		}
		return badChar(c, "a URL")
	}
	return nil
}

func checkChannel(c string) error {
	if c == "" {
		return errors.New("empty channel")
	}
	if len(c) > MaxChannelLen {
		return fmt.Errorf("%d bytes, at most %d", len(c), MaxChannelLen)
	}
	if strings.HasPrefix(c, "https://") {
		return checkURL(c)
	}
	if strings.Contains(c, "://") {
		return errors.New("only https:// channel URLs are allowed")
	}
	for _, part := range strings.Split(c, "/") {
		if part == "" || part == "." || part == ".." || !isAlnum(part[0]) {
			return errors.New("a channel is a name (letters, digits, '._-', '/'-separated labels) or an https URL; paths are not allowed")
		}
		for i := 0; i < len(part); i++ {
			if !isNameChar(part[i]) {
				return badChar(part[i], "a channel name")
			}
		}
	}
	return nil
}

func badChar(c byte, what string) error {
	if c < 0x20 || c >= 0x7f {
		return fmt.Errorf("control or non-ASCII byte 0x%02x is not allowed in %s", c, what)
	}
	return fmt.Errorf("character %q is not allowed in %s", c, what)
}

// condaName is the lower-cased package name of a conda spec: without a
// "channel::" prefix and without version or build constraints.
func condaName(d string) string {
	if i := strings.Index(d, "::"); i >= 0 {
		d = d[i+2:]
	}
	i := 0
	for i < len(d) && isNameChar(d[i]) {
		i++
	}
	return strings.ToLower(d[:i])
}

// condaConstraint is what follows the name: "=3.11", ">=3.9,<3.13", "3.11.*".
func condaConstraint(d string) string {
	if i := strings.Index(d, "::"); i >= 0 {
		d = d[i+2:]
	}
	i := 0
	for i < len(d) && isNameChar(d[i]) {
		i++
	}
	return strings.TrimSpace(d[i:])
}

// pipName is a pip requirement's normalised project name (PEP 503: lower
// case, runs of "-_." as "-").
func pipName(r string) string {
	i := 0
	for i < len(r) && isNameChar(r[i]) {
		i++
	}
	n := strings.ToLower(r[:i])
	var b bytes.Buffer
	prevSep := false
	for j := 0; j < len(n); j++ {
		c := n[j]
		if c == '-' || c == '_' || c == '.' {
			if !prevSep {
				b.WriteByte('-')
			}
			prevSep = true
			continue
		}
		prevSep = false
		b.WriteByte(c)
	}
	return b.String()
}

// environmentYAML renders the spec as a conda environment file. Every
// scalar is written double-quoted with JSON escapes (valid YAML), so no
// package string can change the file's structure.
func (s Spec) environmentYAML() []byte {
	var b bytes.Buffer
	b.WriteString("channels:\n")
	for _, c := range s.Channels {
		b.WriteString("  - " + pyJSONString(c) + "\n")
	}
	b.WriteString("dependencies:\n")
	for _, d := range s.Dependencies {
		b.WriteString("  - " + pyJSONString(d) + "\n")
	}
	if len(s.Pip) > 0 {
		b.WriteString("  - pip:\n")
		for _, p := range s.Pip {
			b.WriteString("      - " + pyJSONString(p) + "\n")
		}
	}
	return b.Bytes()
}
