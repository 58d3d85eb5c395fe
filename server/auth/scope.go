package auth

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Scope is the permission scope of a user or token.
//
// Its string form (the JWT "scope" claim) is a space-separated list of
// items: "ws:<workspace>#<r|rw|a>" grants a permission on a workspace ("*"
// means every workspace), "cid:<client id>" restricts the token to a client
// id, "wid:<workspace>" names the current workspace, and any other item is an
// extra scope.
type Scope struct {
	CurrentWorkspace string
	Workspaces       map[string]Permission
	ClientID         string
	ExtraScopes      []string
}

// ParseScope parses a scope string. Empty items (repeated spaces) are
// ignored. A "ws:" item must have exactly one '#' followed by a valid
// permission letter.
func ParseScope(s string) (Scope, error) {
	var sc Scope
	for _, item := range strings.Split(s, " ") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		switch {
		case strings.HasPrefix(item, "ws:"):
			name, mode, ok := strings.Cut(item[len("ws:"):], "#")
			if !ok || strings.Contains(mode, "#") {
				return Scope{}, fmt.Errorf("invalid workspace scope %q: expected ws:<workspace>#<permission>", item)
			}
			p, err := ParsePermission(mode)
			if err != nil || mode != p.String() {
				return Scope{}, fmt.Errorf("invalid permission %q in workspace scope (expected r, rw or a)", mode)
			}
			if sc.Workspaces == nil {
				sc.Workspaces = map[string]Permission{}
			}
			sc.Workspaces[name] = p
		case strings.HasPrefix(item, "cid:"):
			sc.ClientID = item[len("cid:"):]
		case strings.HasPrefix(item, "wid:"):
			sc.CurrentWorkspace = item[len("wid:"):]
		default:
			sc.ExtraScopes = append(sc.ExtraScopes, item)
		}
	}
	return sc, nil
}

// String formats the scope string: workspace grants sorted by workspace
// name, then cid:, wid: and the extra scopes in order. Grants of None are
// omitted.
func (s Scope) String() string {
	var parts []string
	for _, ws := range slices.Sorted(maps.Keys(s.Workspaces)) {
		p := s.Workspaces[ws]
		if !p.Valid() {
			continue
		}
		parts = append(parts, "ws:"+ws+"#"+p.String())
	}
	if s.ClientID != "" {
		parts = append(parts, "cid:"+s.ClientID)
	}
	if s.CurrentWorkspace != "" {
		parts = append(parts, "wid:"+s.CurrentWorkspace)
	}
	for _, e := range s.ExtraScopes {
		if e = strings.TrimSpace(e); e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, " ")
}

// SpecializedScopes returns the extra scopes in "resource:action" form
// (those containing ':'). Plain OAuth-style scopes such as "openid" are not
// specialized.
func (s Scope) SpecializedScopes() []string {
	var out []string
	for _, e := range s.ExtraScopes {
		if strings.Contains(e, ":") {
			out = append(out, e)
		}
	}
	return out
}

// Specialized reports whether the scope carries a specialized extra scope.
// Specialized tokens may only be used for their specific purpose, never for
// WebSocket connections or general service calls.
func (s Scope) Specialized() bool { return len(s.SpecializedScopes()) > 0 }

// HasScope reports whether extra is one of the extra scopes.
func (s Scope) HasScope(extra string) bool { return slices.Contains(s.ExtraScopes, extra) }

// Clone returns a deep copy of s.
func (s Scope) Clone() Scope {
	c := s
	if s.Workspaces != nil {
		c.Workspaces = maps.Clone(s.Workspaces)
	}
	if s.ExtraScopes != nil {
		c.ExtraScopes = slices.Clone(s.ExtraScopes)
	}
	return c
}
