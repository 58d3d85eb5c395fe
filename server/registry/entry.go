// Package registry is the server's in-memory service registry: the
// equivalent of upstream Hypha's Redis keys
// "services:<visibility>|<type>:<ws>/<cid>:<name>@<app_id>", with the
// visibility rules of get_service and list_services.
//
// The registry is safe for concurrent use. Entries it returns are shared
// and must be treated as read-only; functions that need to alter what a
// caller sees (ViewFor, List) return modified copies.
package registry

import (
	"errors"
	"maps"
	"slices"
)

// Visibility values.
const (
	Public    = "public"
	Protected = "protected"
	Unlisted  = "unlisted"
)

// Well-known names.
const (
	// BuiltIn is both the service name and the service type of every
	// client's built-in service.
	BuiltIn = "built-in"
	// DefaultType is the type of services registered without one.
	DefaultType = "generic"
	// AnyApp is the app id of services registered without one.
	AnyApp = "*"
	// MaxDescriptionLength is the maximum length (in characters) of a
	// service description.
	MaxDescriptionLength = 1024
)

// Errors. Errors returned by this package wrap one of these; their texts
// are meant to be shown to the remote caller.
var (
	ErrNotFound     = errors.New("service not found")
	ErrInvalid      = errors.New("invalid service")
	ErrInvalidQuery = errors.New("invalid service query")
	ErrPermission   = errors.New("permission denied")
	ErrSingleton    = errors.New("singleton service conflict")
)

// Entry is one registered service.
type Entry struct {
	Workspace            string
	ClientID             string
	Name                 string
	AppID                string // "*" when the service has no app id
	Type                 string
	Visibility           string // Public, Protected or Unlisted
	AuthorizedWorkspaces []string
	// Info is the normalised service_info map as registered: id, name, type,
	// description, docs, app_id, config (with visibility and workspace
	// filled in), service_schema and any extra keys.
	Info map[string]any

	singleton bool
	seq       uint64
}

// FullID returns "<ws>/<cid>:<name>".
func (e *Entry) FullID() string { return e.Workspace + "/" + e.ClientID + ":" + e.Name }

// ClientKey returns the absolute id of the providing client, "<ws>/<cid>".
func (e *Entry) ClientKey() string { return e.Workspace + "/" + e.ClientID }

// Key returns the upstream-style registry key
// "services:<visibility>|<type>:<ws>/<cid>:<name>@<app_id>".
func (e *Entry) Key() string {
	return "services:" + e.Visibility + "|" + e.Type + ":" + e.FullID() + "@" + e.AppID
}

// Singleton reports whether the service was registered with
// config.singleton = true.
func (e *Entry) Singleton() bool { return e.singleton }

// IsBuiltIn reports whether this is a client's built-in service.
func (e *Entry) IsBuiltIn() bool { return e.Name == BuiltIn }

// Config returns the service's config map (never nil for registered
// entries). It is shared: do not modify it.
func (e *Entry) Config() map[string]any {
	c, _ := e.Info["config"].(map[string]any)
	return c
}

// Clone returns a copy of e whose Info and config maps (but not deeper
// values) are fresh.
func (e *Entry) Clone() *Entry {
	c := *e
	c.AuthorizedWorkspaces = slices.Clone(e.AuthorizedWorkspaces)
	c.Info = maps.Clone(e.Info)
	if cfg, ok := e.Info["config"].(map[string]any); ok {
		c.Info["config"] = maps.Clone(cfg)
	}
	return &c
}
