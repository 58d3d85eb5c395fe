// Package jupyter is a client of Jupyter kernels (ipykernel and others):
// it starts a kernel through a Launcher, speaks the Jupyter messaging
// protocol v5 over ZeroMQ (github.com/go-zeromq/zmq4) on loopback, and
// executes code with upstream Hypha's result shape (see Result). It knows
// nothing of workers or sessions; workers/conda builds on it.
package jupyter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
)

// Sentinel errors.
var (
	// ErrKernelDead: the kernel process exited or stopped answering the
	// heartbeat. The wrapping error says which, with the exit status.
	ErrKernelDead = errors.New("jupyter: kernel is dead")
	// ErrTimeout: an execute ran past its context's deadline; the kernel
	// was interrupted and stays usable.
	ErrTimeout = errors.New("jupyter: execution timed out")
	// ErrStart: the kernel did not become ready.
	ErrStart = errors.New("jupyter: kernel did not start")
	// ErrClosed: the kernel was shut down by this client.
	ErrClosed = errors.New("jupyter: kernel is shut down")
)

// Defaults of Options.
const (
	DefaultMaxOutputBytes      = 16 << 20
	DefaultMaxWireMessageBytes = 64 << 20
	DefaultHeartbeatInterval   = 3 * time.Second
	DefaultHeartbeatTimeout    = 30 * time.Second
	DefaultShutdownGrace       = 5 * time.Second
	DefaultInterruptGrace      = 10 * time.Second
)

// Interrupt modes (the kernelspec's interrupt_mode).
const (
	InterruptMessage = "message" // interrupt_request on the control channel
	InterruptSignal  = "signal"  // SIGINT through Process.Signal
)

// Options configure Start. Only Python (or Argv) is needed.
type Options struct {
	// Python runs the default command line
	// PYTHON -m ipykernel_launcher -f {connection_file}; default "python3".
	Python string
	// Argv replaces the default command line; "{connection_file}" in any
	// argument is replaced by the connection file's path.
	Argv []string
	// Env is the kernel's environment; nil means this process's.
	Env []string
	// Dir is the kernel's working directory; "" means this process's.
	Dir string
	// Launcher starts the process; default ExecLauncher.
	Launcher Launcher
	// Logger gets the client's diagnostics (never the key); default discards.
	Logger *slog.Logger
	// ConnDir holds the connection file (mode 0600, random name, removed at
	// Shutdown); default os.TempDir().
	ConnDir string
	// PrepareConnFile runs after the connection file is written and before
	// the kernel starts, e.g. to hand the file to the session's uid.
	PrepareConnFile func(path string) error
	// InterruptMode is InterruptMessage (default) or InterruptSignal.
	InterruptMode string
	// MaxOutputBytes bounds the outputs of one execute (and so of any one
	// output); beyond it outputs are truncated or dropped with a marker.
	MaxOutputBytes int64
	// MaxWireMessageBytes bounds one ZeroMQ message from the kernel; a frame
	// beyond it is discarded on the wire and the message dropped.
	MaxWireMessageBytes int64
	// HeartbeatInterval and HeartbeatTimeout: the kernel is declared dead
	// when no heartbeat echo came back for HeartbeatTimeout.
	HeartbeatInterval, HeartbeatTimeout time.Duration
	// ShutdownGrace: how long Shutdown waits for the kernel to exit after
	// shutdown_request before killing it.
	ShutdownGrace time.Duration
	// InterruptGrace: how long a timed-out execute waits for the
	// interrupted request to finish.
	InterruptGrace time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.Python == "" {
		o.Python = "python3"
	}
	if len(o.Argv) == 0 {
		o.Argv = []string{o.Python, "-m", "ipykernel_launcher", "-f", "{connection_file}"}
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Launcher == nil {
		o.Launcher = ExecLauncher
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnDir == "" {
		o.ConnDir = os.TempDir()
	}
	switch o.InterruptMode {
	case "":
		o.InterruptMode = InterruptMessage
	case InterruptMessage, InterruptSignal:
	default:
		return o, fmt.Errorf("jupyter: interrupt mode %q: want %q or %q", o.InterruptMode, InterruptMessage, InterruptSignal)
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if o.MaxWireMessageBytes <= 0 {
		o.MaxWireMessageBytes = DefaultMaxWireMessageBytes
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.InterruptGrace <= 0 {
		o.InterruptGrace = DefaultInterruptGrace
	}
	return o, nil
}

// Info is what the kernel said about itself in its kernel_info_reply.
type Info struct {
	ProtocolVersion string
	Implementation  string
	Language        string
}

// Stats counts what the client threw away.
type Stats struct {
	// DroppedMessages: received messages that were malformed or failed the
	// HMAC check.
	DroppedMessages int64
	// DroppedFrames: ZeroMQ frames discarded on the wire for being over
	// MaxWireMessageBytes.
	DroppedFrames int64
}

// Kernel is a running kernel and the client's connection to it. Its
// methods are safe for concurrent use; executions run one at a time.
type Kernel struct {
	opts    Options
	log     *slog.Logger
	sig     signer
	session string
	info    Info

	proc     Process
	connFile string

	ctx                              context.Context // the sockets' lifetime
	cancel                           context.CancelFunc
	shell, control, stdin, iopub, hb zmq4.Socket
	sendMu                           sync.Mutex // one writer per socket is all zmq4 promises
	wg                               sync.WaitGroup

	execSem chan struct{}

	mu      sync.Mutex
	replies map[string]chan *Message // shell and control replies, by request msg_id
	routes  map[string]*route        // iopub messages, by parent msg_id
	closed  bool

	iopubSeen     chan struct{}
	iopubSeenOnce sync.Once

	lastEcho atomic.Int64 // unix nanoseconds of the last heartbeat echo

	exited  chan struct{} // closed when Process.Wait returned
	exitErr error

	done     chan struct{} // closed when the kernel is dead or shut down
	doneOnce sync.Once
	doneErr  error

	dropped     atomic.Int64
	wireDropped atomic.Int64

	closing      atomic.Bool // Shutdown began: an exit from now on is ours
	shutdownOnce sync.Once
	shutdownErr  error
}

type connInfo struct {
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	IP              string `json:"ip"`
	Key             string `json:"key"`
	Transport       string `json:"transport"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name"`
}

// freePorts finds n free loopback TCP ports, holding them all open at once
// so that they differ. (The kernel binds them after we release them; that
// window is the protocol's, as with jupyter_client.)
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("jupyter: find a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeConnFile writes the connection file with a fresh key. The key is
// never logged.
func writeConnFile(dir string) (path string, ci connInfo, err error) {
	ports, err := freePorts(5)
	if err != nil {
		return "", ci, err
	}
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", ci, fmt.Errorf("jupyter: key: %w", err)
	}
	ci = connInfo{
		ShellPort: ports[0], IOPubPort: ports[1], StdinPort: ports[2], ControlPort: ports[3], HBPort: ports[4],
		IP: "127.0.0.1", Key: hex.EncodeToString(k[:]), Transport: "tcp", SignatureScheme: "hmac-sha256",
	}
	b, err := json.MarshalIndent(ci, "", "  ")
	if err != nil {
		return "", ci, err
	}
	f, err := os.CreateTemp(dir, "kernel-*.json")
	if err != nil {
		return "", ci, fmt.Errorf("jupyter: connection file: %w", err)
	}
	path = f.Name()
	// CreateTemp makes the file 0600; say so explicitly, the key is in it.
	if err = f.Chmod(0o600); err == nil {
		_, err = f.Write(b)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", ci, fmt.Errorf("jupyter: connection file: %w", err)
	}
	return path, ci, nil
}

// Start launches a kernel and returns once it has answered a
// kernel_info_request on shell and its iopub channel delivers messages.
// ctx bounds the start only. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Kernel, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	registerTransport()
	path, ci, err := writeConnFile(opts.ConnDir)
	if err != nil {
		return nil, err
	}
	if opts.PrepareConnFile != nil {
		if err := opts.PrepareConnFile(path); err != nil {
			_ = os.Remove(path)
			return nil, fmt.Errorf("jupyter: prepare connection file: %w", err)
		}
	}
	argv := make([]string, len(opts.Argv))
	for i, a := range opts.Argv {
		argv[i] = strings.ReplaceAll(a, "{connection_file}", path)
	}
	proc, err := opts.Launcher(ctx, argv, opts.Env, opts.Dir)
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("%w: launch %s: %w", ErrStart, argv[0], err)
	}

	kctx, cancel := context.WithCancel(context.WithValue(context.Background(), guardKey{}, &guardConfig{
		maxMessage: opts.MaxWireMessageBytes,
	}))
	k := &Kernel{
		opts:      opts,
		log:       opts.Logger,
		sig:       signer{key: []byte(ci.Key)},
		session:   newID(),
		proc:      proc,
		connFile:  path,
		ctx:       kctx,
		cancel:    cancel,
		execSem:   make(chan struct{}, 1),
		replies:   map[string]chan *Message{},
		routes:    map[string]*route{},
		iopubSeen: make(chan struct{}),
		exited:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	// The guard counts into the kernel's own counter.
	kctx.Value(guardKey{}).(*guardConfig).dropped = &k.wireDropped

	k.wg.Add(1)
	go k.waitProcess()

	if err := k.connect(ctx, ci); err != nil {
		k.abortStart()
		return nil, err
	}
	if err := k.waitReady(ctx); err != nil {
		k.abortStart()
		return nil, err
	}
	k.wg.Add(1)
	go k.heartbeat()
	k.log.Debug("jupyter kernel ready", "implementation", k.info.Implementation, "protocol", k.info.ProtocolVersion)
	return k, nil
}

// abortStart kills what Start began.
func (k *Kernel) abortStart() {
	_ = k.proc.Kill()
	<-k.exited
	k.markDone(ErrClosed)
	k.closeSockets()
	k.wg.Wait()
	_ = os.Remove(k.connFile)
}

func (k *Kernel) waitProcess() {
	defer k.wg.Done()
	err := k.proc.Wait()
	if err == nil {
		err = errors.New("exit status 0")
	}
	k.exitErr = err
	close(k.exited)
	if k.closing.Load() {
		k.markDone(ErrClosed)
	}
	k.markDone(fmt.Errorf("%w: the kernel process exited: %w", ErrKernelDead, err))
}

// markDone records why the kernel ended (the first reason wins) and
// releases every waiter.
func (k *Kernel) markDone(err error) {
	k.doneOnce.Do(func() {
		k.doneErr = err
		close(k.done)
	})
}

// Done is closed when the kernel died or was shut down; Err then says why.
func (k *Kernel) Done() <-chan struct{} { return k.done }

// Err is nil while the kernel runs, then ErrKernelDead (wrapped, with the
// exit status or "heartbeat lost") or ErrClosed.
func (k *Kernel) Err() error {
	select {
	case <-k.done:
		return k.doneErr
	default:
		return nil
	}
}

// Info is the kernel's answer to kernel_info_request.
func (k *Kernel) Info() Info { return k.info }

// Stats reports what the client dropped.
func (k *Kernel) Stats() Stats {
	return Stats{DroppedMessages: k.dropped.Load(), DroppedFrames: k.wireDropped.Load()}
}

// ConnectionFile is the path of the kernel's connection file.
func (k *Kernel) ConnectionFile() string { return k.connFile }

func (k *Kernel) zmqOpts() []zmq4.Option {
	return []zmq4.Option{
		zmq4.WithID(zmq4.SocketIdentity(newID())),
		zmq4.WithDialerMaxRetries(0), // connect retries its own way, bounded by ctx
		zmq4.WithTimeout(30 * time.Second),
		zmq4.WithLogger(log.New(io.Discard, "", 0)),
	}
}

// connect dials the five channels, retrying while the kernel binds its
// ports.
func (k *Kernel) connect(ctx context.Context, ci connInfo) error {
	k.shell = zmq4.NewDealer(k.ctx, k.zmqOpts()...)
	k.control = zmq4.NewDealer(k.ctx, k.zmqOpts()...)
	k.stdin = zmq4.NewDealer(k.ctx, k.zmqOpts()...)
	k.iopub = zmq4.NewSub(k.ctx, k.zmqOpts()...)
	// hb is an echo (a ROUTER device in ipykernel, REP in others): a DEALER
	// with an empty delimiter frame talks to both without REQ's lockstep.
	k.hb = zmq4.NewDealer(k.ctx, k.zmqOpts()...)
	if err := k.iopub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		return fmt.Errorf("%w: subscribe to iopub: %w", ErrStart, err)
	}
	for _, c := range []struct {
		name string
		s    zmq4.Socket
		port int
	}{{"shell", k.shell, ci.ShellPort}, {"iopub", k.iopub, ci.IOPubPort}, {"control", k.control, ci.ControlPort},
		{"stdin", k.stdin, ci.StdinPort}, {"hb", k.hb, ci.HBPort}} {
		ep := transportName + "://127.0.0.1:" + strconv.Itoa(c.port)
		for {
			err := c.s.Dial(ep)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: connect %s channel: %w (last error: %v)", ErrStart, c.name, ctx.Err(), err)
			case <-k.exited:
				return fmt.Errorf("%w: the kernel process exited before it listened: %w", ErrStart, k.exitErr)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	k.wg.Add(5)
	go k.readLoop("shell", k.shell, k.deliverReply)
	go k.readLoop("control", k.control, k.deliverReply)
	go k.readLoop("iopub", k.iopub, k.deliverIOPub)
	go k.readLoop("stdin", k.stdin, k.deliverStdin)
	go k.hbReadLoop()
	return nil
}

// readLoop receives messages from one channel until the sockets close.
// Every message is verified; bad ones are dropped and counted.
func (k *Kernel) readLoop(name string, s zmq4.Socket, deliver func(*Message)) {
	defer k.wg.Done()
	for {
		raw, err := s.Recv()
		if err != nil {
			if k.ctx.Err() != nil {
				return
			}
			// A broken connection: zmq4 does not redial, so this channel is
			// gone. The heartbeat and the process watcher decide about death.
			k.log.Debug("jupyter channel read failed", "channel", name, "err", err)
			select {
			case <-k.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		m, err := k.sig.decode(raw.Frames)
		if err != nil {
			n := k.dropped.Add(1)
			if n <= 10 || n%1000 == 0 {
				k.log.Warn("jupyter message dropped", "channel", name, "reason", err, "dropped", n)
			}
			continue
		}
		deliver(m)
	}
}

func (k *Kernel) deliverReply(m *Message) {
	k.mu.Lock()
	ch := k.replies[m.ParentHeader.MsgID]
	delete(k.replies, m.ParentHeader.MsgID)
	k.mu.Unlock()
	if ch != nil {
		ch <- m // buffered, one reply per request
	}
}

func (k *Kernel) deliverIOPub(m *Message) {
	k.iopubSeenOnce.Do(func() { close(k.iopubSeen) })
	k.mu.Lock()
	r := k.routes[m.ParentHeader.MsgID]
	k.mu.Unlock()
	if r == nil {
		return
	}
	// Back-pressure rather than memory: the executor consumes in order.
	select {
	case r.ch <- m:
	case <-r.done:
	case <-k.ctx.Done():
	}
}

// deliverStdin: executes never allow stdin, so a kernel asking for input
// is misbehaving; the request is logged and dropped.
func (k *Kernel) deliverStdin(m *Message) {
	k.log.Debug("jupyter stdin message ignored", "msg_type", m.Header.MsgType)
}

// send signs and sends a message on a channel.
func (k *Kernel) send(s zmq4.Socket, msgType string, content any) (Header, error) {
	frames, h, err := k.sig.encode(msgType, k.session, Header{}, content)
	if err != nil {
		return h, err
	}
	k.sendMu.Lock()
	defer k.sendMu.Unlock()
	if err := s.SendMulti(zmq4.NewMsgFrom(frames...)); err != nil {
		return h, fmt.Errorf("jupyter: send %s: %w", msgType, err)
	}
	return h, nil
}

// expectReply registers for the reply to msgID before the request is sent.
func (k *Kernel) expectReply(msgID string) chan *Message {
	ch := make(chan *Message, 1)
	k.mu.Lock()
	k.replies[msgID] = ch
	k.mu.Unlock()
	return ch
}

func (k *Kernel) forget(msgID string) {
	k.mu.Lock()
	delete(k.replies, msgID)
	delete(k.routes, msgID)
	k.mu.Unlock()
}

// request sends a request and waits for its reply, bounded by ctx and the
// kernel's life.
func (k *Kernel) request(ctx context.Context, s zmq4.Socket, msgType string, content any) (*Message, error) {
	frames, h, err := k.sig.encode(msgType, k.session, Header{}, content)
	if err != nil {
		return nil, err
	}
	ch := k.expectReply(h.MsgID)
	defer k.forget(h.MsgID)
	k.sendMu.Lock()
	err = s.SendMulti(zmq4.NewMsgFrom(frames...))
	k.sendMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("jupyter: send %s: %w", msgType, err)
	}
	select {
	case m := <-ch:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-k.done:
		return nil, k.doneErr
	}
}

// waitReady repeats kernel_info_request until the kernel answers on shell
// and iopub has delivered a message (the subscription is live: a SUB
// socket misses what is published before it joined).
func (k *Kernel) waitReady(ctx context.Context) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := k.request(rctx, k.shell, "kernel_info_request", map[string]any{})
		cancel()
		switch {
		case err == nil:
			var c struct {
				ProtocolVersion string `json:"protocol_version"`
				Implementation  string `json:"implementation"`
				LanguageInfo    struct {
					Name string `json:"name"`
				} `json:"language_info"`
			}
			_ = json.Unmarshal(m.Content, &c)
			k.info = Info{ProtocolVersion: c.ProtocolVersion, Implementation: c.Implementation, Language: c.LanguageInfo.Name}
			select {
			case <-k.iopubSeen:
				return nil
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		case errors.Is(err, ErrKernelDead):
			return fmt.Errorf("%w: %w", ErrStart, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: no kernel_info_reply: %w", ErrStart, ctx.Err())
		}
	}
}

// heartbeat pings the kernel's echo socket and declares the kernel dead
// when nothing came back for HeartbeatTimeout. A dead kernel is killed so
// that the process and the client agree.
func (k *Kernel) heartbeat() {
	defer k.wg.Done()
	k.lastEcho.Store(time.Now().UnixNano())
	t := time.NewTicker(k.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-k.done:
			return
		case <-t.C:
		}
		silent := time.Since(time.Unix(0, k.lastEcho.Load()))
		if silent > k.opts.HeartbeatTimeout {
			k.log.Warn("jupyter kernel heartbeat lost", "silent", silent.Round(time.Millisecond))
			k.markDone(fmt.Errorf("%w: heartbeat lost (no echo for %s)", ErrKernelDead, silent.Round(time.Second)))
			_ = k.proc.Kill()
			return
		}
		k.sendMu.Lock()
		_ = k.hb.SendMulti(zmq4.NewMsgFrom([]byte{}, []byte("ping")))
		k.sendMu.Unlock()
	}
}

func (k *Kernel) hbReadLoop() {
	defer k.wg.Done()
	for {
		if _, err := k.hb.Recv(); err != nil {
			if k.ctx.Err() != nil {
				return
			}
			select {
			case <-k.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		k.lastEcho.Store(time.Now().UnixNano())
	}
}

// interrupt asks the kernel to stop what it is running.
func (k *Kernel) interrupt() error {
	if k.opts.InterruptMode == InterruptSignal {
		return k.proc.Signal(os.Interrupt)
	}
	_, err := k.send(k.control, "interrupt_request", map[string]any{})
	return err
}

// Interrupt interrupts the running execution, if any.
func (k *Kernel) Interrupt(ctx context.Context) error {
	if err := k.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return k.interrupt()
}

// Shutdown asks the kernel to shut down, kills it after ShutdownGrace (or
// when ctx ends), closes the sockets, waits for every goroutine of the
// client and removes the connection file. It is safe to call more than
// once and after the kernel died; it reports only failures to clean up.
func (k *Kernel) Shutdown(ctx context.Context) error {
	k.shutdownOnce.Do(func() { k.shutdownErr = k.shutdown(ctx) })
	return k.shutdownErr
}

func (k *Kernel) shutdown(ctx context.Context) error {
	k.closing.Store(true)
	select {
	case <-k.exited:
	default:
		gctx, cancel := context.WithTimeout(ctx, k.opts.ShutdownGrace)
		if k.Err() == nil {
			if _, err := k.request(gctx, k.control, "shutdown_request", map[string]any{"restart": false}); err != nil {
				k.log.Debug("jupyter shutdown_request unanswered", "err", err)
			}
		}
		select {
		case <-k.exited:
		case <-gctx.Done():
			k.log.Info("jupyter kernel did not exit after shutdown_request; killing it")
			_ = k.proc.Kill()
		}
		cancel()
		<-k.exited
	}
	k.markDone(ErrClosed)
	k.closeSockets()
	k.wg.Wait()
	if err := os.Remove(k.connFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("jupyter: remove connection file: %w", err)
	}
	return nil
}

func (k *Kernel) closeSockets() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.cancel()
	for _, s := range []zmq4.Socket{k.shell, k.control, k.stdin, k.iopub, k.hb} {
		if s != nil {
			_ = s.Close()
		}
	}
}
