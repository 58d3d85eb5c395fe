package auth

import (
	"fmt"
	"math"
	"slices"
)

// RootUserID is the id of the root user (authenticated with the root token).
const RootUserID = "root"

// UserWorkspacePrefix prefixes a user's own workspace: "ws-user-<id>".
const UserWorkspacePrefix = "ws-user-"

// UserInfo describes an authenticated (or anonymous) user. Its wire form
// (ToMap) is what the server puts into connection_info.user and into the
// "user" field of every routed message.
type UserInfo struct {
	ID               string
	Roles            []string
	IsAnonymous      bool
	Scope            Scope
	Email            string // "" = none
	Parent           string // id of the user that minted this child token; "" = none
	ExpiresAt        int64  // unix seconds, 0 = none
	CurrentWorkspace string // "" = none

	// TokenID is the id (see TokenID) of the token this user was parsed
	// from, "" for the root token, anonymous users and users built from a
	// wire map. Chain holds the ids of the tokens that token was derived
	// from (generate_token, reconnection tokens). Both stay inside the
	// server: ToMap does not send them. Revoking any of them refuses the
	// token (Issuer.Parse).
	TokenID string
	Chain   []string
}

// Lineage is the chain a token derived from this user's token carries: the
// token's own chain and its id.
func (u *UserInfo) Lineage() []string {
	out := slices.Clone(u.Chain)
	if u.TokenID != "" {
		out = append(out, u.TokenID)
	}
	return out
}

// Workspace returns the user's own workspace, "ws-user-<id>".
func (u *UserInfo) Workspace() string { return UserWorkspacePrefix + u.ID }

// IsRoot reports whether u is the root user.
func (u *UserInfo) IsRoot() bool { return u != nil && u.ID == RootUserID }

// HasRole reports whether u has the given role.
func (u *UserInfo) HasRole(role string) bool { return u != nil && slices.Contains(u.Roles, role) }

// EffectiveID returns the parent id for child tokens and the user's own id
// otherwise (used for attribution).
func (u *UserInfo) EffectiveID() string {
	if u.Parent != "" {
		return u.Parent
	}
	return u.ID
}

// Permission returns the user's permission on workspace ws: the stronger of
// the "*" grant and the grant for ws itself. A user always has Admin on its
// own workspace (ws-user-<id>) and the root user has Admin everywhere.
func (u *UserInfo) Permission(ws string) Permission {
	if u == nil {
		return None
	}
	if u.ID == RootUserID {
		return Admin
	}
	if u.ID != "" && ws == u.Workspace() {
		return Admin
	}
	p := max(u.Scope.Workspaces["*"], u.Scope.Workspaces[ws])
	if !p.Valid() {
		return None
	}
	return p
}

// HasPermission reports whether the user holds at least min on ws
// (min should be Read, ReadWrite or Admin).
func (u *UserInfo) HasPermission(ws string, min Permission) bool {
	p := u.Permission(ws)
	return p != None && p >= min
}

// Specialized reports whether the user's scope is specialized (see
// Scope.Specialized).
func (u *UserInfo) Specialized() bool { return u != nil && u.Scope.Specialized() }

// Clone returns a deep copy of u.
func (u *UserInfo) Clone() *UserInfo {
	if u == nil {
		return nil
	}
	c := *u
	c.Roles = slices.Clone(u.Roles)
	c.Chain = slices.Clone(u.Chain)
	c.Scope = u.Scope.Clone()
	return &c
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ToMap returns the wire form of the user info, using only the decoded
// value types (string, bool, int64, nil, []any, map[string]any):
//
//	{id, roles, is_anonymous,
//	 scope: {current_workspace, workspaces: {ws: "r"|"rw"|"a"}, client_id, extra_scopes},
//	 email, parent, expires_at, current_workspace}
//
// Empty strings and a zero ExpiresAt are sent as nil.
func (u *UserInfo) ToMap() map[string]any {
	roles := make([]any, 0, len(u.Roles))
	for _, r := range u.Roles {
		roles = append(roles, r)
	}
	wss := make(map[string]any, len(u.Scope.Workspaces))
	for ws, p := range u.Scope.Workspaces {
		if p.Valid() {
			wss[ws] = p.String()
		}
	}
	extra := make([]any, 0, len(u.Scope.ExtraScopes))
	for _, e := range u.Scope.ExtraScopes {
		extra = append(extra, e)
	}
	var exp any
	if u.ExpiresAt != 0 {
		exp = u.ExpiresAt
	}
	return map[string]any{
		"id":           u.ID,
		"roles":        roles,
		"is_anonymous": u.IsAnonymous,
		"scope": map[string]any{
			"current_workspace": strOrNil(u.Scope.CurrentWorkspace),
			"workspaces":        wss,
			"client_id":         strOrNil(u.Scope.ClientID),
			"extra_scopes":      extra,
		},
		"email":             strOrNil(u.Email),
		"parent":            strOrNil(u.Parent),
		"expires_at":        exp,
		"current_workspace": strOrNil(u.CurrentWorkspace),
	}
}

// UserFromMap converts the wire form back into a UserInfo. It tolerates
// missing and nil keys (except "id", which must be a non-empty string),
// lists given as []any or []string, maps given as map[string]any or
// map[string]string, and numbers given as any Go integer or float type
// (decoded msgpack yields int64, uint64 or float64). Unknown keys are
// ignored. A value of the wrong type or an invalid permission letter is an
// error.
func UserFromMap(m map[string]any) (*UserInfo, error) {
	if m == nil {
		return nil, fmt.Errorf("user info is missing")
	}
	u := &UserInfo{}
	var err error
	if u.ID, err = optString(m, "id"); err != nil {
		return nil, err
	}
	if u.ID == "" {
		return nil, fmt.Errorf("user info has no id")
	}
	if u.Roles, err = optStrings(m["roles"], "roles"); err != nil {
		return nil, err
	}
	switch v := m["is_anonymous"].(type) {
	case nil:
	case bool:
		u.IsAnonymous = v
	default:
		return nil, fmt.Errorf("user info field is_anonymous: expected a boolean, got %T", v)
	}
	if u.Email, err = optString(m, "email"); err != nil {
		return nil, err
	}
	if u.Parent, err = optString(m, "parent"); err != nil {
		return nil, err
	}
	if u.CurrentWorkspace, err = optString(m, "current_workspace"); err != nil {
		return nil, err
	}
	if u.ExpiresAt, err = optUnix(m["expires_at"]); err != nil {
		return nil, err
	}
	switch sm := m["scope"].(type) {
	case nil:
	case map[string]any:
		if u.Scope, err = scopeFromMap(sm); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("user info field scope: expected a map, got %T", sm)
	}
	return u, nil
}

func scopeFromMap(m map[string]any) (Scope, error) {
	var sc Scope
	var err error
	if sc.CurrentWorkspace, err = optString(m, "current_workspace"); err != nil {
		return Scope{}, fmt.Errorf("scope: %w", err)
	}
	if sc.ClientID, err = optString(m, "client_id"); err != nil {
		return Scope{}, fmt.Errorf("scope: %w", err)
	}
	if sc.ExtraScopes, err = optStrings(m["extra_scopes"], "extra_scopes"); err != nil {
		return Scope{}, fmt.Errorf("scope: %w", err)
	}
	set := func(ws string, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("scope: permission for workspace %q: expected a string, got %T", ws, v)
		}
		p, err := ParsePermission(s)
		if err != nil {
			return fmt.Errorf("scope: workspace %q: %w", ws, err)
		}
		if sc.Workspaces == nil {
			sc.Workspaces = map[string]Permission{}
		}
		sc.Workspaces[ws] = p
		return nil
	}
	switch w := m["workspaces"].(type) {
	case nil:
	case map[string]any:
		for ws, v := range w {
			if err := set(ws, v); err != nil {
				return Scope{}, err
			}
		}
	case map[string]string:
		for ws, v := range w {
			if err := set(ws, v); err != nil {
				return Scope{}, err
			}
		}
	default:
		return Scope{}, fmt.Errorf("scope field workspaces: expected a map, got %T", w)
	}
	return sc, nil
}

func optString(m map[string]any, key string) (string, error) {
	switch v := m[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("field %s: expected a string, got %T", key, v)
	}
}

func optStrings(v any, key string) ([]string, error) {
	switch l := v.(type) {
	case nil:
		return nil, nil
	case []string:
		return slices.Clone(l), nil
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("field %s: expected a list of strings, found %T", key, e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("field %s: expected a list, got %T", key, v)
	}
}

// optUnix converts a numeric timestamp of any Go number type to whole unix
// seconds (fractions are truncated). nil gives 0.
func optUnix(v any) (int64, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int16:
		return int64(n), nil
	case int8:
		return int64(n), nil
	case uint64:
		if n > math.MaxInt64 {
			return 0, fmt.Errorf("field expires_at: %d is out of range", n)
		}
		return int64(n), nil
	case uint:
		if uint64(n) > math.MaxInt64 {
			return 0, fmt.Errorf("field expires_at: %d is out of range", n)
		}
		return int64(n), nil
	case uint32:
		return int64(n), nil
	case uint16:
		return int64(n), nil
	case uint8:
		return int64(n), nil
	case float64:
		return floatUnix(n)
	case float32:
		return floatUnix(float64(n))
	default:
		return 0, fmt.Errorf("field expires_at: expected a number, got %T", v)
	}
}

func floatUnix(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0, fmt.Errorf("field expires_at: %v is out of range", f)
	}
	return int64(f), nil
}
