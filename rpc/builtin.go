package rpc

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hypha-go/hypha/internal/convert"
	"github.com/hypha-go/hypha/internal/idgen"
	"github.com/hypha-go/hypha/internal/wire"
)

// apiVersion is advertised in the built-in service; 3 enables concurrent
// chunk upload with message_cache.set.
const apiVersion = 3

// ChunkLimits bound the chunked messages a peer reassembles for the peers
// sending them (its built-in message_cache). Every limit is counted per
// sending peer, keyed by the server-stamped `from` of the chunks (never by an
// argument), so that one sender filling its share leaves the others theirs;
// a sender's share is released when its message completes, when it removes
// the message, when the message stays idle for Idle, and when the sender
// disconnects. Zero fields take the defaults.
type ChunkLimits struct {
	// PerSenderMessages bounds the chunked messages one sender may have in
	// flight (default 32).
	PerSenderMessages int
	// PerSenderBytes bounds the bytes one sender may have in flight, and so
	// the size of one chunked message (default 256 MiB).
	PerSenderBytes int64
	// TotalBytes bounds the bytes of all senders together (default 1 GiB).
	// It is raised to twice PerSenderBytes when lower, so that one sender can
	// never reach it alone.
	TotalBytes int64
	// Idle drops a message that received no chunk for this long (default 2 min).
	Idle time.Duration
}

// Default chunk limits.
const (
	DefaultChunkedMessagesPerSender = 32
	DefaultChunkedBytesPerSender    = 256 << 20
	DefaultChunkedBytesTotal        = 1 << 30
	DefaultChunkedIdle              = 2 * time.Minute
)

func (l ChunkLimits) withDefaults() ChunkLimits {
	if l.PerSenderMessages <= 0 {
		l.PerSenderMessages = DefaultChunkedMessagesPerSender
	}
	if l.PerSenderBytes <= 0 {
		l.PerSenderBytes = DefaultChunkedBytesPerSender
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = DefaultChunkedBytesTotal
	}
	if l.TotalBytes < 2*l.PerSenderBytes {
		l.TotalBytes = 2 * l.PerSenderBytes
	}
	if l.Idle <= 0 {
		l.Idle = DefaultChunkedIdle
	}
	return l
}

// chunkUse is what one sender holds in the message cache.
type chunkUse struct {
	messages int
	bytes    int64
}

// chunkOverhead is what one chunk is charged beyond its bytes (its map entry).
const chunkOverhead = 64

// maxChunkIndex bounds the index of message_cache.set.
const maxChunkIndex = 1 << 24

type chunkBuffer struct {
	owner   string // the peer that created the entry; only it may use it
	chunks  map[int][]byte
	size    int // bytes charged to the owner: the chunks plus chunkOverhead each
	touched time.Time
}

// addBuiltin registers the per-peer `built-in` service every peer exposes:
// ping, get_service and the message_cache used for large messages.
func (p *peer) addBuiltin() {
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

func (p *peer) builtinPing(_ context.Context, c *Call) (any, error) {
	if m := asString(c.Arg(0, "msg")); m != "ping" {
		return nil, fmt.Errorf("ping expects \"ping\", got %q", m)
	}
	return "pong", nil
}

func (p *peer) builtinGetService(_ context.Context, c *Call) (any, error) {
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
func (p *peer) touchSession(key, from string) error {
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

func (p *peer) cacheEntry(key, from string) (*chunkBuffer, error) {
	b, ok := p.cache[key]
	if !ok {
		return nil, fmt.Errorf("message cache key not found: %s", key)
	}
	if b.owner != from {
		return nil, fmt.Errorf("%w: message cache key %s belongs to another peer", ErrPermission, key)
	}
	return b, nil
}

func (p *peer) cacheCreate(_ context.Context, c *Call) (any, error) {
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
	if old, exists := p.cache[key]; exists {
		p.dropCacheLocked(key, old) // overwrite starts the message again
	}
	from := c.Context.From
	if u := p.cacheUse[from]; u != nil && u.messages >= p.chunks.PerSenderMessages {
		return nil, fmt.Errorf("%w: message_cache: %s already has %d chunked messages in flight (per-client limit %d)",
			ErrLimit, from, u.messages, p.chunks.PerSenderMessages)
	}
	p.cache[key] = &chunkBuffer{owner: from, chunks: map[int][]byte{}, touched: time.Now()}
	p.use(from).messages++
	return nil, nil
}

// use returns the usage record of sender, creating it.
func (p *peer) use(sender string) *chunkUse {
	u := p.cacheUse[sender]
	if u == nil {
		u = &chunkUse{}
		p.cacheUse[sender] = u
	}
	return u
}

// dropCacheLocked removes one message and gives its share back to its sender.
func (p *peer) dropCacheLocked(key string, b *chunkBuffer) {
	delete(p.cache, key)
	p.cacheBytes -= int64(b.size)
	if u := p.cacheUse[b.owner]; u != nil {
		u.messages--
		u.bytes -= int64(b.size)
		if u.messages <= 0 {
			delete(p.cacheUse, b.owner)
		}
	}
}

// dropSenderLocked removes every message a sender has in flight (it went away).
func (p *peer) dropSenderLocked(sender string) {
	if p.cacheUse[sender] == nil {
		return
	}
	for k, b := range p.cache {
		if b.owner == sender {
			p.dropCacheLocked(k, b)
		}
	}
}

func (p *peer) cachePut(c *Call, key string, index int, data []byte, hb bool) error {
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
	// Each chunk is charged a little more than its bytes, so that a flood
	// of empty chunks counts too.
	grow := int64(len(data)) + chunkOverhead
	if old, ok := b.chunks[index]; ok {
		grow -= int64(len(old)) + chunkOverhead
	}
	u := p.use(b.owner)
	if u.bytes+grow > p.chunks.PerSenderBytes {
		// A message this large can never complete: free it now.
		p.dropCacheLocked(key, b)
		return fmt.Errorf("%w: message_cache: chunked messages in flight from %s would exceed the per-client limit of %d bytes",
			ErrLimit, b.owner, p.chunks.PerSenderBytes)
	}
	// All senders together are bounded too (the limit is at least twice a
	// sender's share, so no sender reaches it alone).
	if p.cacheBytes+grow > p.chunks.TotalBytes {
		return fmt.Errorf("%w: message_cache: chunked messages in flight from all clients would exceed the total limit of %d bytes",
			ErrLimit, p.chunks.TotalBytes)
	}
	b.chunks[index] = data
	b.size += int(grow)
	u.bytes += grow
	p.cacheBytes += grow
	b.touched = time.Now()
	return nil
}

func (p *peer) cacheAppend(_ context.Context, c *Call) (any, error) {
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

func (p *peer) cacheSet(_ context.Context, c *Call) (any, error) {
	key := asString(c.Arg(0, "key"))
	idx, ok := convert.Number(c.Arg(1, "index"))
	if !ok || idx < 0 || idx > maxChunkIndex {
		return nil, fmt.Errorf("message_cache.set: index must be a number between 0 and %d", maxChunkIndex)
	}
	data, ok := c.Arg(2, "data").([]byte)
	if !ok {
		return nil, fmt.Errorf("message_cache.set: data must be bytes")
	}
	hb, _ := c.Arg(3, "heartbeat").(bool)
	return nil, p.cachePut(c, key, int(idx), data, hb)
}

func (p *peer) cacheProcess(_ context.Context, c *Call) (any, error) {
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
		p.dropCacheLocked(key, b)
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

func (p *peer) cacheRemove(_ context.Context, c *Call) (any, error) {
	key := asString(c.Arg(0, "key"))
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := p.cacheEntry(key, c.Context.From)
	if err != nil {
		return nil, err
	}
	p.dropCacheLocked(key, b)
	return nil, nil
}

// sendChunked delivers a large frame through the target's message_cache.
func (p *peer) sendChunked(ctx context.Context, target string, frame []byte, remoteParent string) error {
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
