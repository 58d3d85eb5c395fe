package rpc

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/internal/wire"
	"golang.org/x/sync/errgroup"
)

// apiVersion is advertised in the built-in service; 3 enables concurrent
// chunk upload with message_cache.set.
const apiVersion = 3

// maxCacheEntries bounds how many chunked messages may be in flight at once.
const maxCacheEntries = 256

type chunkBuffer struct {
	owner   string // the peer that created the entry; only it may use it
	chunks  map[int][]byte
	size    int
	touched time.Time
}

// addBuiltin registers the per-peer `built-in` service every peer exposes:
// ping, get_service and the message_cache used for large messages.
func (p *Peer) addBuiltin() {
	name := "Builtin services for " + p.cfg.ClientID
	svc := Service{
		ID: "built-in", Name: name, Type: "built-in",
		Config: ServiceConfig{Visibility: "public", RequireContext: true, Extra: map[string]any{"api_version": apiVersion}},
		Functions: map[string]any{
			"ping":        HandlerFunc(p.builtinPing),
			"get_service": HandlerFunc(p.builtinGetService),
			"message_cache": map[string]any{
				"create":  HandlerFunc(p.cacheCreate),
				"append":  HandlerFunc(p.cacheAppend),
				"set":     HandlerFunc(p.cacheSet),
				"process": HandlerFunc(p.cacheProcess),
				"remove":  HandlerFunc(p.cacheRemove),
			},
		},
	}
	ls, err := newLocalService(svc)
	if err != nil {
		panic(err) // static definition
	}
	p.services[ls.id] = ls
}

func (p *Peer) builtinPing(_ context.Context, c *Call) (any, error) {
	if m := asString(c.Arg(0, "msg")); m != "ping" {
		return nil, fmt.Errorf("ping expects \"ping\", got %q", m)
	}
	return "pong", nil
}

func (p *Peer) builtinGetService(_ context.Context, c *Call) (any, error) {
	id := asString(c.Arg(0, "service_id"))
	if me := p.ID(); c.Context.To != me {
		return nil, fmt.Errorf("get_service addressed to %s reached %s", c.Context.To, me)
	}
	p.mu.Lock()
	svc, ok := p.services[id]
	ws := p.workspace
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: Service not found: %s", ErrNotFound, id)
	}
	if svc.visibility == "protected" {
		cws := c.Context.WS
		if cws != ws && !slices.Contains(svc.authorized, cws) && ws != "*" {
			return nil, fmt.Errorf("%w: Permission denied for getting protected service: %s, workspace mismatch: %s != %s",
				ErrPermission, id, ws, cws)
		}
	}
	return serviceValue{svc}, nil
}

// touchSession resets the timer of the pending call a chunked reply belongs to.
// Only the peer the session talks to may do so: a heartbeat chunk keyed by
// someone else's session would otherwise let any peer keep that call alive
// or claim the key of its reply.
func (p *Peer) touchSession(key, from string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[key]
	if !ok {
		return fmt.Errorf("session %s does not exist", key)
	}
	if s.target != from {
		return fmt.Errorf("%w: session %s does not belong to %s", ErrPermission, key, from)
	}
	s.touched = time.Now()
	if s.call != nil && s.call.timer != nil {
		s.call.timer.Reset(s.call.timeout)
	}
	return nil
}

func (p *Peer) cacheEntry(key, from string) (*chunkBuffer, error) {
	b, ok := p.cache[key]
	if !ok {
		return nil, fmt.Errorf("message cache key not found: %s", key)
	}
	if b.owner != from {
		return nil, fmt.Errorf("%w: message cache key %s belongs to another peer", ErrPermission, key)
	}
	return b, nil
}

func (p *Peer) cacheCreate(_ context.Context, c *Call) (any, error) {
	key := asString(c.Arg(0, "key"))
	hb, _ := c.Arg(1, "heartbeat").(bool)
	overwrite, _ := c.Arg(2, "overwrite").(bool)
	if key == "" {
		return nil, fmt.Errorf("message_cache.create: empty key")
	}
	if hb {
		if err := p.touchSession(key, c.Context.From); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, exists := p.cache[key]; exists {
		if old.owner != c.Context.From {
			// overwrite replaces one's own entry, never another peer's.
			return nil, fmt.Errorf("%w: message cache key %s belongs to another peer", ErrPermission, key)
		}
		if !overwrite {
			return nil, fmt.Errorf("message cache key already exists: %s", key)
		}
	}
	if len(p.cache) >= maxCacheEntries {
		return nil, fmt.Errorf("too many chunked messages in flight (%d)", maxCacheEntries)
	}
	p.cache[key] = &chunkBuffer{owner: c.Context.From, chunks: map[int][]byte{}, touched: time.Now()}
	return nil, nil
}

func (p *Peer) cachePut(c *Call, key string, index int, data []byte, hb bool) error {
	if hb {
		if err := p.touchSession(key, c.Context.From); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.cacheEntry(key, c.Context.From)
	if err != nil {
		return err
	}
	if b.size+len(data) > maxReassembled {
		delete(p.cache, key)
		return fmt.Errorf("chunked message %s exceeds %d bytes", key, maxReassembled)
	}
	// All messages being reassembled together are bounded too, so that many
	// half-sent messages cannot exhaust memory either.
	total := len(data)
	for _, e := range p.cache {
		total += e.size
	}
	if total > maxCacheTotal {
		return fmt.Errorf("chunked messages in flight exceed %d bytes", maxCacheTotal)
	}
	if old, ok := b.chunks[index]; ok {
		b.size -= len(old)
	}
	b.chunks[index] = data
	b.size += len(data)
	b.touched = time.Now()
	return nil
}

func (p *Peer) cacheAppend(_ context.Context, c *Call) (any, error) {
	key := asString(c.Arg(0, "key"))
	data, ok := c.Arg(1, "data").([]byte)
	if !ok {
		return nil, fmt.Errorf("message_cache.append: data must be bytes")
	}
	hb, _ := c.Arg(2, "heartbeat").(bool)
	p.mu.Lock()
	n := 0
	if b, ok := p.cache[key]; ok {
		n = len(b.chunks)
	}
	p.mu.Unlock()
	return nil, p.cachePut(c, key, n, data, hb)
}

func (p *Peer) cacheSet(_ context.Context, c *Call) (any, error) {
	key := asString(c.Arg(0, "key"))
	idx, ok := asFloat(c.Arg(1, "index"))
	if !ok || idx < 0 {
		return nil, fmt.Errorf("message_cache.set: index must be a non-negative number")
	}
	data, ok := c.Arg(2, "data").([]byte)
	if !ok {
		return nil, fmt.Errorf("message_cache.set: data must be bytes")
	}
	hb, _ := c.Arg(3, "heartbeat").(bool)
	return nil, p.cachePut(c, key, int(idx), data, hb)
}

func (p *Peer) cacheProcess(_ context.Context, c *Call) (any, error) {
	key := asString(c.Arg(0, "key"))
	hb, _ := c.Arg(1, "heartbeat").(bool)
	if hb {
		if err := p.touchSession(key, c.Context.From); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	b, err := p.cacheEntry(key, c.Context.From)
	if err == nil {
		delete(p.cache, key)
	}
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	idx := make([]int, 0, len(b.chunks))
	for i := range b.chunks {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	frame := make([]byte, 0, b.size)
	for _, i := range idx {
		frame = append(frame, b.chunks[i]...)
	}
	main, extra, err := wire.DecodeFrame(frame)
	if err != nil {
		return nil, fmt.Errorf("message_cache.process %s: %w", key, err)
	}
	raw := c.Context.Raw
	p.handleMessage(main, extra, map[string]any{"from": raw["from"], "to": raw["to"], "ws": raw["ws"], "user": raw["user"]})
	return nil, nil
}

func (p *Peer) cacheRemove(_ context.Context, c *Call) (any, error) {
	key := asString(c.Arg(0, "key"))
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.cacheEntry(key, c.Context.From); err != nil {
		return nil, err
	}
	delete(p.cache, key)
	return nil, nil
}

// sendChunked delivers a large frame through the target's message_cache.
func (p *Peer) sendChunked(ctx context.Context, target string, frame []byte, remoteParent string) error {
	key, hb := remoteParent, remoteParent != ""
	if key == "" {
		key = idgen.New()
	}
	mc := func(op string) *RemoteFunc {
		return &RemoteFunc{peer: p, target: target, method: "services.built-in.message_cache." + op, promise: "*"}
	}
	if _, err := mc("create").Call(ctx, key, hb); err != nil {
		return fmt.Errorf("chunked send to %s: %w", target, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(chunkConcurrency)
	var once sync.Once
	for i := 0; i*chunkSize < len(frame); i++ {
		chunk := frame[i*chunkSize : min((i+1)*chunkSize, len(frame))]
		g.Go(func() error {
			_, err := mc("set").Call(gctx, key, i, chunk, hb)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		once.Do(func() { _, _ = mc("remove").Call(context.WithoutCancel(ctx), key) })
		return fmt.Errorf("chunked send to %s: %w", target, err)
	}
	if _, err := mc("process").Call(ctx, key, hb); err != nil {
		return fmt.Errorf("chunked send to %s: %w", target, err)
	}
	return nil
}
