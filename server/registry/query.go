package registry

import (
	"fmt"
	"strings"

	"github.com/hypha-go/hypha/server/auth"
)

// ServiceQuery is a normalised get_service query.
type ServiceQuery struct {
	Workspace string
	ClientID  string // "*" = any client
	Name      string
	AppID     string // "*" = any app
	// Manager is set for "~" and "<ws>/~": the workspace manager's own
	// service, which the caller serves itself (Workspace is then the
	// caller's workspace or the given one; the other fields are empty).
	Manager bool
}

// String formats the query as "<ws>/<cid>:<name>@<app>".
func (q ServiceQuery) String() string {
	if q.Manager {
		return q.Workspace + "/~"
	}
	return q.Workspace + "/" + q.ClientID + ":" + q.Name + "@" + q.AppID
}

func queryErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidQuery, fmt.Sprintf(format, args...))
}

// ParseServiceID normalises a get_service query string:
//
//	svc            -> <callerWS>/*:svc
//	ws/svc         -> ws/*:svc
//	client:svc     -> <callerWS>/client:svc
//	ws/client:svc  -> ws/client:svc
//
// each optionally followed by "@<app_id>" (default "*"). At most one '/',
// one ':' and one '@' are allowed, the '/' must come before the ':', and
// the workspace may not be "*" (list_services is the way to search all
// workspaces). "~" and "<ws>/~" return a query with Manager set.
func ParseServiceID(query, callerWS string) (ServiceQuery, error) {
	if query == "" {
		return ServiceQuery{}, queryErr("empty service id")
	}
	for _, c := range []string{"/", ":", "@"} {
		if strings.Count(query, c) > 1 {
			return ServiceQuery{}, queryErr("service id %q must contain at most one '%s'", query, c)
		}
	}
	if query == "~" {
		if callerWS == "" {
			return ServiceQuery{}, queryErr("no current workspace to resolve %q", query)
		}
		return ServiceQuery{Workspace: callerWS, Manager: true}, nil
	}
	if ws, ok := strings.CutSuffix(query, "/~"); ok {
		if ws == "" {
			return ServiceQuery{}, queryErr("service id %q has an empty workspace", query)
		}
		return ServiceQuery{Workspace: ws, Manager: true}, nil
	}
	rest, app, hasApp := strings.Cut(query, "@")
	if !hasApp {
		app = AnyApp
	}
	if app == "" || strings.ContainsAny(app, "/:") {
		return ServiceQuery{}, queryErr("invalid app id in service id %q", query)
	}
	q := ServiceQuery{AppID: app}
	if ws, r, ok := strings.Cut(rest, "/"); ok {
		q.Workspace, rest = ws, r
	} else {
		if callerWS == "" {
			return ServiceQuery{}, queryErr("no current workspace to resolve %q", query)
		}
		q.Workspace = callerWS
	}
	if cid, name, ok := strings.Cut(rest, ":"); ok {
		q.ClientID, q.Name = cid, name
	} else {
		q.ClientID, q.Name = "*", rest
	}
	switch {
	case q.Workspace == "" || q.ClientID == "" || q.Name == "":
		return ServiceQuery{}, queryErr("invalid service id %q, it must look like [<workspace>/][<client_id>:]<service_id>[@<app_id>]", query)
	case strings.Contains(q.Workspace, ":"):
		return ServiceQuery{}, queryErr("invalid service id %q: the '/' must come before the ':'", query)
	case q.Workspace == "*":
		return ServiceQuery{}, queryErr("you must specify a workspace for the service query, otherwise please call list_services to find the service")
	}
	return q, nil
}

// permOf calls f, treating a nil f as "no permission anywhere".
func permOf(f func(string) auth.Permission, ws string) auth.Permission {
	if f == nil {
		return auth.None
	}
	return f(ws)
}

func authorized(e *Entry, callerWS string) bool {
	if callerWS == "" {
		return false
	}
	for _, w := range e.AuthorizedWorkspaces {
		if w == callerWS {
			return true
		}
	}
	return false
}

// CanGet reports whether a caller in workspace callerWS, with permissions
// callerPerm, may get the service: public and unlisted services are open to
// anyone who knows the id; protected services need read permission on the
// service's workspace or callerWS listed in its authorized_workspaces.
func CanGet(e *Entry, callerWS string, callerPerm func(ws string) auth.Permission) bool {
	switch e.Visibility {
	case Public, Unlisted:
		return true
	}
	return permOf(callerPerm, e.Workspace) >= auth.Read || authorized(e, callerWS)
}

// ViewFor returns the entry as the caller may see it: a caller without read
// permission on the service's workspace (one admitted through
// authorized_workspaces) must not see the authorized_workspaces list, so it
// receives a copy whose config lacks that key. Otherwise e itself is
// returned. The server should apply it to get_service_info results; List
// applies it itself.
func ViewFor(e *Entry, callerWS string, callerPerm func(ws string) auth.Permission) *Entry {
	if e.AuthorizedWorkspaces == nil || permOf(callerPerm, e.Workspace) >= auth.Read {
		return e
	}
	c := e.Clone()
	c.AuthorizedWorkspaces = nil
	delete(c.Info["config"].(map[string]any), "authorized_workspaces")
	return c
}
