package worker

import (
	"time"
)

// Status is a session's lifecycle state, with the upstream string values.
type Status string

const (
	StatusStarting  Status = "starting"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusStopping  Status = "stopping"
	StatusStopped   Status = "stopped"
)

// transitions lists the allowed status changes. The upstream ones are
// starting→running→stopping→stopped, starting→failed, running→failed and
// running→completed. The extra ones exist because the server drives stop()
// independently of the session's own progress:
//
//   - starting→stopping: the server stops a session whose start() is still
//     running (startup timeout, client gone, workspace closed). start() then
//     finds it can no longer move to running and gives up.
//   - completed→stopping, failed→stopping: a session that ended by itself
//     (process exited, crashed) still holds resources, and the server still
//     calls stop() for it; going through stopping keeps one cleanup path.
//   - stopping→failed: cleanup itself failed. The session is kept, with its
//     error, so that stop() can be retried (failed→stopping again) and the
//     failure is visible in get_session_info/get_logs.
//
// Refused on purpose: anything out of stopped (it is final; a restart is a
// new session), running→starting, completed→running, completed↔failed (the
// first outcome is the truth), direct X→stopped without stopping (every stop
// runs cleanup), and X→X (a repeated transition usually hides a race).
var transitions = map[Status][]Status{
	StatusStarting:  {StatusRunning, StatusFailed, StatusStopping},
	StatusRunning:   {StatusStopping, StatusFailed, StatusCompleted},
	StatusStopping:  {StatusStopped, StatusFailed},
	StatusCompleted: {StatusStopping},
	StatusFailed:    {StatusStopping},
	StatusStopped:   nil,
}

// Valid reports whether s is one of the six statuses.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// CanTransitionTo reports whether the registry allows s→to.
func (s Status) CanTransitionTo(to Status) bool {
	for _, t := range transitions[s] {
		if t == to {
			return true
		}
	}
	return false
}

// Active reports whether the session is starting or running, i.e. whether
// its work should continue. Session.Context is cancelled when it stops being
// active.
func (s Status) Active() bool { return s == StatusStarting || s == StatusRunning }

// SessionInfo describes one session, in the shape of the seed's
// get_session_info result.
type SessionInfo struct {
	// SessionID is "<workspace>/<client_id>", Config.ID.
	SessionID  string
	AppID      string
	Workspace  string
	ClientID   string
	Status     Status
	AppType    string
	EntryPoint string
	CreatedAt  time.Time
	// Metadata is the app manifest (upstream stores the manifest here). It
	// is shared, not copied: treat it as read-only.
	Metadata map[string]any
	// Error is the failure message when Status is failed.
	Error string
	// ExitCode is the app process's exit code once it exited by itself
	// (workers that run a process set it with Session.SetExitCode); nil
	// while it runs, when it was stopped or killed by a signal, or when the
	// worker runs no process. On the wire: "exit_code", present only when
	// set.
	ExitCode *int
}

// createdAtLayout is ISO 8601 in UTC with microseconds: what Python's
// datetime.fromisoformat (3.11+) and JavaScript's Date both parse, and what
// the seed example shows ("2024-01-01T00:00:00Z" style).
const createdAtLayout = "2006-01-02T15:04:05.000000Z07:00"

// NewSessionInfo builds the starting SessionInfo for cfg as every upstream
// worker does: app type from manifest.type ("unknown" if missing), metadata =
// manifest.
func NewSessionInfo(cfg Config, now time.Time) SessionInfo {
	appType := cfg.Manifest.Type()
	if appType == "" {
		appType = "unknown"
	}
	return SessionInfo{
		SessionID:  cfg.ID,
		AppID:      cfg.AppID,
		Workspace:  cfg.Workspace,
		ClientID:   cfg.ClientID,
		Status:     StatusStarting,
		AppType:    appType,
		EntryPoint: cfg.EntryPoint,
		CreatedAt:  now,
		Metadata:   cfg.Manifest.ToMap(),
	}
}

// ToMap renders the session in wire shape. entry_point is nil when empty
// (Python's Optional); error is present only when set, as in the seed's
// example.
func (s SessionInfo) ToMap() map[string]any {
	m := map[string]any{
		"session_id":  s.SessionID,
		"app_id":      s.AppID,
		"workspace":   s.Workspace,
		"client_id":   s.ClientID,
		"status":      string(s.Status),
		"app_type":    s.AppType,
		"entry_point": nilIfEmpty(s.EntryPoint),
		"created_at":  s.CreatedAt.UTC().Format(createdAtLayout),
		"metadata":    nil,
	}
	if s.Metadata != nil { // a typed nil map would not compare equal to a decoded nil
		m["metadata"] = s.Metadata
	}
	if s.Error != "" {
		m["error"] = s.Error
	}
	if s.ExitCode != nil {
		m["exit_code"] = *s.ExitCode
	}
	return m
}
