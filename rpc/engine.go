package rpc

import (
	"context"
	"fmt"

	"github.com/hypha-go/hypha/internal/rpcengine"
)

// The engine is not exported: the server builds its manager and HTTP caller
// peers through internal/rpcengine, which this file connects to newPeer, so
// that nothing outside this module can build a peer without Connect.
func init() { rpcengine.New = newEngine }

// engine is a peer seen through rpcengine.Peer.
type engine struct{ *peer }

func newEngine(cfg rpcengine.Config) rpcengine.Peer {
	return engine{newPeer(peerConfig{
		ClientID: cfg.ClientID, Workspace: cfg.Workspace, ServerBaseURL: cfg.ServerBaseURL,
		ManagerID: cfg.ManagerID, Send: cfg.Send, Logger: cfg.Logger, Chunks: ChunkLimits(cfg.Chunks),
	})}
}

func (e engine) Call(ctx context.Context, target, method string, args ...any) (any, error) {
	return e.Func(target, method).Call(ctx, args...)
}

func (e engine) AddService(svc any, overwrite bool) error {
	s, ok := svc.(Service)
	if !ok {
		return fmt.Errorf("rpc: AddService takes an rpc.Service, not %T", svc)
	}
	_, err := e.peer.AddService(s, overwrite)
	return err
}
