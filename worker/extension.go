package worker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Extension methods are typed functions a worker offers beyond the worker
// API (a terminal's resize_terminal, a browser's take_screenshot, a log
// stream). The adapter registers them on the worker's service next to
// start, stop, … and applies the same access rule to them: who may call
// (the apps controller, root, and members of the worker's own workspace
// holding Permission), and, for a session extension, the same isolation by
// session id as stop and get_logs. A worker offers extensions by
// implementing Extender (Funcs has an Extensions field).

// Permission is the permission a member of the worker's workspace needs on
// that workspace to call an extension: PermissionRead for functions that
// only look, PermissionReadWrite for functions that change something (a
// session's input, its signals, its size), PermissionAdmin for functions
// that act on the whole worker. The apps controller and root may call every
// extension whatever it says.
type Permission string

// The permission levels, with the server's names.
const (
	PermissionRead      Permission = "read"
	PermissionReadWrite Permission = "read_write"
	PermissionAdmin     Permission = "admin"
)

// Valid reports whether p is one of the three levels.
func (p Permission) Valid() bool {
	return p == PermissionRead || p == PermissionReadWrite || p == PermissionAdmin
}

// Extension is one extra function of a worker.
//
// Func is an ordinary Go function whose first parameter is a
// context.Context and whose last result is an error:
//
//	func(ctx context.Context, sessionID string, rows, cols int) error
//	func(ctx context.Context, sessionID string) (Usage, error)
//	func(ctx context.Context, sessionID string) (iter.Seq2[Chunk, error], error)
//
// The other parameters take the call's arguments, converted to their Go
// types as rpc does for any registered function; the first result (if
// any) is the answer, and an iter.Seq2[T, error] answer reaches the caller
// as a generator (a Go iterator, a JavaScript async generator, a Python
// async generator) that yields as the caller reads. ctx carries the
// Caller (WithCaller), so that Registry.LookupFor and ListFor confine the
// function to the caller's workspace a second time; for a generator it
// lives as long as the generator.
type Extension struct {
	// Name is the function's name on the service: a letter followed by
	// letters, digits and underscores, not a name of the worker API or of
	// the service's registration fields (see ReservedExtensionName).
	Name string
	// Description is shown in the service schema.
	Description string
	// Session marks a function about one session: its first argument
	// (after ctx) is a string, the session id, and a caller that is not
	// the apps controller may only name sessions of its own workspace
	// (others are reported as not found, like stop and get_logs do).
	Session bool
	// Permission is what a member of the worker's workspace needs to call
	// it. It must be set: there is no default.
	Permission Permission
	// Params names the parameters after ctx (for keyword arguments, HTTP
	// query strings and the schema). Empty means "session_id" alone for a
	// session function and no names otherwise; when given it must name
	// every parameter, "session_id" first for a session function. A name
	// ending in "?" is optional (rpc.Params): omitted, it takes its zero
	// value; every other parameter must be given.
	Params []string
	// Func is the function (see above).
	Func any
}

// Extender is implemented by workers that offer extension methods. The
// adapter reads Extensions once, at registration.
type Extender interface {
	Extensions() []Extension
}

// ExtensionsOf returns w's extensions (nil when it offers none).
func ExtensionsOf(w Worker) []Extension {
	if e, ok := w.(Extender); ok {
		return e.Extensions()
	}
	return nil
}

// coreMethods are the names of the worker API.
var coreMethods = []string{
	MethodStart, MethodStop, MethodListSessions, MethodGetSessionInfo, MethodGetLogs,
	MethodPrepareWorkspace, MethodCloseWorkspace, MethodCompile, MethodExecute, MethodShutdown,
}

// registrationKeys are the keys of a worker's service that are not
// functions (Options.ServiceMap, the service record), which a function of
// the same name would hide.
var registrationKeys = []string{
	"id", "name", "type", "description", "docs", "config", "app_id", "service_schema",
	"supported_types", "use_local_url",
}

// IsCoreMethod reports whether name is a function of the worker API.
func IsCoreMethod(name string) bool { return slices.Contains(coreMethods, name) }

// ReservedExtensionName reports whether an extension may not be called
// name: a function of the worker API (start, stop, …, also the optional
// compile, execute and shutdown) or a field of the service's registration.
func ReservedExtensionName(name string) bool {
	return IsCoreMethod(name) || slices.Contains(registrationKeys, name)
}

var extNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

// ParamNames returns the parameter names the adapter registers: Params, or
// the default for a session function.
func (e Extension) ParamNames() []string {
	if len(e.Params) == 0 && e.Session {
		return []string{"session_id"}
	}
	return e.Params
}

// Validate reports an extension the adapter would refuse, naming what is
// wrong.
func (e Extension) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: extension %q: %s", ErrInvalidConfig, e.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case !extNameRE.MatchString(e.Name):
		return bad("the name must be a letter followed by letters, digits and underscores")
	case IsCoreMethod(e.Name):
		return bad("the name is a function of the worker API; an extension cannot replace it")
	case ReservedExtensionName(e.Name):
		return bad("the name is a field of the worker's service registration")
	case !e.Permission.Valid():
		return bad("permission %q is not read, read_write or admin (say read for functions that only look, read_write for ones that change something)", e.Permission)
	case e.Func == nil:
		return bad("Func is nil")
	}
	ft := reflect.TypeOf(e.Func)
	if ft.Kind() != reflect.Func {
		return bad("Func is a %s, not a function", ft)
	}
	if ft.NumIn() < 1 || ft.In(0) != ctxType {
		return bad("Func %s must take a context.Context first", ft)
	}
	if ft.NumOut() < 1 || ft.NumOut() > 2 || ft.Out(ft.NumOut()-1) != errType {
		return bad("Func %s must return (error) or (T, error)", ft)
	}
	nparams := ft.NumIn() - 1
	if e.Session && (nparams < 1 || ft.In(1).Kind() != reflect.String || ft.IsVariadic() && nparams == 1) {
		return bad("a session function takes the session id (a string) right after ctx; Func is %s", ft)
	}
	names := e.ParamNames()
	if len(e.Params) > 0 && len(e.Params) != nparams {
		return bad("Params names %d parameters, Func %s has %d after ctx", len(e.Params), ft, nparams)
	}
	if e.Session && names[0] != "session_id" {
		return bad("the first parameter of a session function is named session_id, not %q", names[0])
	}
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSuffix(n, "?") // optional (rpc.Params)
		if !extNameRE.MatchString(n) || n == KeyContext || seen[n] {
			return bad("parameter name %q is not a valid, distinct name (and not %q)", n, KeyContext)
		}
		seen[n] = true
	}
	return nil
}

// ValidateExtensions validates every extension and refuses two with the
// same name.
func ValidateExtensions(list []Extension) error {
	var errs []error
	seen := map[string]bool{}
	for _, e := range list {
		if err := e.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[e.Name] {
			errs = append(errs, fmt.Errorf("%w: extension %q is defined twice", ErrInvalidConfig, e.Name))
		}
		seen[e.Name] = true
	}
	return errors.Join(errs...)
}
