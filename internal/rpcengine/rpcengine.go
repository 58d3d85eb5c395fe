// Package rpcengine lets this module's server build rpc's peer engine (the
// object store, call sessions, promises, heartbeats, chunking and generators
// behind every rpc.Client) for the peers it runs without a websocket of
// their own: the manager, which serves the `default` service, and the
// short-lived peers that make HTTP calls for a user.
//
// Package rpc does not export its engine, so that its public API is the
// client and what services and calls are made of; this package, being
// internal, is reachable only from inside this module. It holds only plain
// types, since rpc imports it: rpc sets New when it is initialised, so any
// package that imports rpc (as the server does) may call it.
package rpcengine

import (
	"context"
	"log/slog"
	"time"
)

// Config configures a peer built by New.
type Config struct {
	// ClientID and Workspace make the peer's id, "<Workspace>/<ClientID>"
	// (the manager's workspace is "*").
	ClientID  string
	Workspace string
	// ServerBaseURL is written into every function the peer encodes
	// (_rserver).
	ServerBaseURL string
	// ManagerID is the manager's client id: functions the manager forwards
	// are accepted although their owner is not the manager, and the manager
	// may call protected services of any workspace.
	ManagerID string
	// Send writes one frame to the router. It must be safe for concurrent
	// use.
	Send func(ctx context.Context, frame []byte) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Chunks bounds the chunked messages the peer reassembles for others.
	Chunks ChunkLimits
}

// ChunkLimits has exactly the fields of rpc.ChunkLimits, so that either
// converts to the other: a field added to one and not the other stops the
// conversions (in rpc and in the server) from compiling. See
// rpc.ChunkLimits for their meaning and defaults.
type ChunkLimits struct {
	PerSenderMessages int
	PerSenderBytes    int64
	TotalBytes        int64
	Idle              time.Duration
}

// Peer is the engine as the server uses it.
type Peer interface {
	// Receive handles one frame routed to the peer. It never runs user
	// code on the caller's goroutine; a frame it cannot decode is dropped
	// and its error (wrapping wire.ErrMalformed) returned, unlogged, for
	// the router to account for.
	Receive(frame []byte) error
	// Call calls method (a path such as "services.built-in.get_service")
	// of the peer target ("<workspace>/<client id>") and waits for its
	// result, as rpc.RemoteFunc.Call does.
	Call(ctx context.Context, target, method string, args ...any) (any, error)
	// AddService registers svc, which must be an rpc.Service, replacing a
	// service with the same id when overwrite is set. (This package cannot
	// name rpc's types.)
	AddService(svc any, overwrite bool) error
	// ServiceValue returns a value that encodes as the local service id, as
	// the built-in get_service answers it; false when there is none.
	ServiceValue(id string) (any, bool)
	// RejectTarget fails the pending calls to target with err, and drops
	// what target was sending (chunked messages) or reading (generators):
	// the server calls it when target disconnects.
	RejectTarget(target string, err error)
	// Close rejects every pending call and stops the peer's background
	// work.
	Close()
}

// New builds a peer. Package rpc sets it in its init function.
var New func(Config) Peer
