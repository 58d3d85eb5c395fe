package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hypha-go/hypha/server/auth"
)

// ListQuery is a normalised list_services query. Every field is a pattern
// in which '*' matches any run of characters (other characters are
// literal); an empty field means "*", except Workspace, where it means the
// caller's workspace.
type ListQuery struct {
	Visibility string
	Workspace  string // "*" = public services of every workspace plus the caller's own
	ClientID   string
	ServiceID  string // the service name
	Type       string
	AppID      string
}

var listKeys = []string{"visibility", "workspace", "client_id", "service_id", "id", "type", "app_id"}

// ParseListQuery converts the query argument of list_services:
//
//   - nil or "": every service of the caller's workspace;
//   - a string "ws/client:svc", "client:svc", "ws/svc" or "ws" (each
//     service part optionally "svc@app"); a workspace of "*" means all
//     workspaces;
//   - a map with any of visibility, workspace, client_id, service_id (or
//     its alias id, not both), type and app_id, all strings; any other key
//     is an error. A service_id "svc@app" sets the app id, which must then
//     agree with an explicit app_id.
func ParseListQuery(raw any, callerWS string) (ListQuery, error) {
	q := ListQuery{Workspace: callerWS}
	switch v := raw.(type) {
	case nil:
	case string:
		if err := q.parseString(v, callerWS); err != nil {
			return ListQuery{}, err
		}
	case map[string]any:
		for k := range v {
			if !slices.Contains(listKeys, k) {
				return ListQuery{}, queryErr("invalid query key %q (allowed: visibility, workspace, client_id, service_id, id, type, app_id)", k)
			}
		}
		if _, hasID := v["id"]; hasID {
			if _, hasSID := v["service_id"]; hasSID {
				return ListQuery{}, queryErr("cannot specify both 'id' and 'service_id' in the query")
			}
		}
		for _, f := range []struct {
			key string
			dst *string
		}{
			{"visibility", &q.Visibility}, {"workspace", &q.Workspace}, {"client_id", &q.ClientID},
			{"service_id", &q.ServiceID}, {"id", &q.ServiceID}, {"type", &q.Type}, {"app_id", &q.AppID},
		} {
			switch s := v[f.key].(type) {
			case nil:
			case string:
				*f.dst = s
			default:
				return ListQuery{}, queryErr("query key %q must be a string, got %T", f.key, s)
			}
		}
		if q.Workspace == "" {
			q.Workspace = callerWS
		}
	default:
		return ListQuery{}, queryErr("query must be null, a string or a map, got %T", raw)
	}
	if svc, app, ok := strings.Cut(q.ServiceID, "@"); ok {
		if q.AppID != "" && q.AppID != app {
			return ListQuery{}, queryErr("app id mismatch: %s != %s", q.AppID, app)
		}
		q.ServiceID, q.AppID = svc, app
	}
	return q.withDefaults(callerWS), nil
}

func (q *ListQuery) parseString(s, callerWS string) error {
	if s == "" {
		return nil
	}
	for _, c := range []string{"/", ":", "@"} {
		if strings.Count(s, c) > 1 {
			return queryErr("query %q must contain at most one '%s'", s, c)
		}
	}
	ws, rest, hasSlash := strings.Cut(s, "/")
	if !hasSlash {
		rest = s
		ws = callerWS
	} else if strings.Contains(ws, ":") {
		return queryErr("query %q: the '/' must come before the ':'", s)
	}
	cid, svc, hasColon := strings.Cut(rest, ":")
	switch {
	case hasColon:
		q.ClientID, q.ServiceID = cid, svc
	case hasSlash:
		q.ServiceID = rest
	default:
		// A bare word names a workspace.
		ws = s
	}
	q.Workspace = ws
	return nil
}

func (q ListQuery) withDefaults(callerWS string) ListQuery {
	for _, f := range []*string{&q.Visibility, &q.ClientID, &q.ServiceID, &q.Type, &q.AppID} {
		if *f == "" {
			*f = "*"
		}
	}
	if q.Workspace == "" {
		q.Workspace = callerWS
	}
	return q
}

// List implements list_services for a caller in workspace callerWS with
// permissions callerPerm. Results are in registration order.
//
//   - Workspace "*": the public services of every workspace plus the
//     caller's own workspace's services matching Visibility. Visibility
//     "protected" or "unlisted" and includeUnlisted are errors there.
//   - includeUnlisted is only allowed for the caller's own workspace (where
//     it needs read permission) and "public" (where it has no effect);
//     unlisted services appear only with includeUnlisted and only from the
//     caller's workspace.
//   - Protected services appear when the caller has read permission on
//     their workspace, or when callerWS is in their authorized_workspaces
//     (the list is then removed from the returned copy, see ViewFor).
//   - Built-in services are public and are listed like any other service
//     (as upstream does); ask for Type "built-in" to get only them.
//
// Errors wrap ErrInvalidQuery or ErrPermission.
func (r *Registry) List(q ListQuery, callerWS string, callerPerm func(ws string) auth.Permission, includeUnlisted bool) ([]*Entry, error) {
	q = q.withDefaults(callerWS)
	ws, vis := q.Workspace, q.Visibility
	allWS := ws == "*"
	if allWS {
		if vis == Protected || vis == Unlisted {
			return nil, queryErr("cannot list protected or unlisted services in all workspaces")
		}
		if includeUnlisted {
			return nil, fmt.Errorf("%w: cannot include unlisted services when searching all workspaces", ErrPermission)
		}
	} else if includeUnlisted && ws != callerWS && ws != "public" {
		return nil, fmt.Errorf("%w: cannot include unlisted services from workspace %s, only services from your current workspace (%s) can include unlisted services", ErrPermission, ws, callerWS)
	}
	if includeUnlisted && ws == callerWS && permOf(callerPerm, callerWS) < auth.Read {
		return nil, fmt.Errorf("%w: cannot include unlisted services without read permission for workspace %s", ErrPermission, callerWS)
	}
	if !allWS && vis == Unlisted && permOf(callerPerm, ws) < auth.Read {
		vis = Public
	}

	fieldsMatch := func(e *Entry) bool {
		return globMatch(q.ClientID, e.ClientID) && globMatch(q.ServiceID, e.Name) &&
			globMatch(q.Type, e.Type) && globMatch(q.AppID, e.AppID)
	}
	selected := func(e *Entry) bool {
		if !fieldsMatch(e) {
			return false
		}
		if allWS {
			return e.Visibility == Public || (e.Workspace == callerWS && globMatch(vis, e.Visibility))
		}
		return globMatch(ws, e.Workspace) && globMatch(vis, e.Visibility)
	}

	r.mu.RLock()
	var found []*Entry
	if !allWS && !strings.Contains(ws, "*") {
		for _, e := range r.byWS[ws] {
			if selected(e) {
				found = append(found, e)
			}
		}
	} else {
		for _, e := range r.byID {
			if selected(e) {
				found = append(found, e)
			}
		}
	}
	r.mu.RUnlock()
	sortBySeq(found)

	out := make([]*Entry, 0, len(found))
	for _, e := range found {
		switch e.Visibility {
		case Public:
		case Unlisted:
			if !includeUnlisted || e.Workspace != callerWS {
				continue
			}
		default:
			if permOf(callerPerm, e.Workspace) < auth.Read && !authorized(e, callerWS) {
				continue
			}
		}
		out = append(out, ViewFor(e, callerWS, callerPerm))
	}
	return out, nil
}

// globMatch reports whether s matches pattern, where '*' matches any run
// of characters (including none) and every other character is literal.
func globMatch(pattern, s string) bool {
	if pattern == "*" {
		return true
	}
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
