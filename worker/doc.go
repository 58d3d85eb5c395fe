// Package worker is the SDK for Hypha server-app workers: the contract a
// worker implements, the values that cross it (Config, SessionInfo, log pages,
// progress messages) and the bookkeeping every worker needs (a session
// registry with status transitions, a bounded per-session log store and a
// non-blocking progress reporter).
//
// The package never touches the network. The wire shape of every value is
// defined here once (wire.go: ConfigFromMap and Config.ToMap, Caller.ToMap,
// SessionInfoFromMap, LogQuery.Kwargs, LogPageFromMap, …), and both ends of
// the contract use it: the adapter that registers a Worker as a Hypha
// service (type "server-app-worker", worker/hyphaworker) and
// hyphaworker.Remote, the typed client through which the apps controller
// calls workers written in any language. A worker author writes ordinary
// Go.
//
// A worker can be written in two styles, mirroring the upstream documentation:
//
//   - a type that embeds Base (which provides ListSessions, GetSessionInfo,
//     GetLogs, PrepareWorkspace and CloseWorkspace from a Registry) and adds
//     Properties, Start and Stop;
//   - plain functions collected in Funcs and turned into a Worker by FromFuncs.
//
// What the Hypha servers use: start, stop, get_logs, get_session_info (ours,
// to learn when an app ended) and (at install time) compile. list_sessions, get_session_info, prepare_workspace and
// close_workspace come from the older worker API and are kept because clients
// may call them on the worker service directly.
package worker
