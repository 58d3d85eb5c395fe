package jupyter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-zeromq/zmq4"
)

// Output is one output of an execution, in the order the kernel published
// it. Result.Outputs holds the kinds upstream Hypha keeps (stream,
// display_data, execute_result); the onOutput callback of Execute also sees
// error, update_display_data and clear_output.
type Output struct {
	Type string // "stream", "display_data", "execute_result", "error", "update_display_data", "clear_output"
	// stream
	Name string // "stdout" or "stderr"
	Text string
	// display_data, update_display_data, execute_result
	Data     map[string]any
	Metadata map[string]any
	// execute_result
	ExecutionCount int64
	// error
	Error *ErrorInfo
	// Msg is the kernel's message (nil for the client's own markers).
	Msg *Message
}

// ToMap renders the output in upstream's shape.
func (o Output) ToMap() map[string]any {
	switch o.Type {
	case "stream":
		return map[string]any{"type": "stream", "name": o.Name, "text": o.Text}
	case "execute_result":
		return map[string]any{"type": o.Type, "data": anyMap(o.Data), "metadata": anyMap(o.Metadata), "execution_count": o.ExecutionCount}
	case "error":
		m := map[string]any{"type": "error"}
		if o.Error != nil {
			for k, v := range o.Error.ToMap() {
				m[k] = v
			}
		}
		return m
	case "clear_output":
		return map[string]any{"type": o.Type}
	default: // display_data, update_display_data
		return map[string]any{"type": o.Type, "data": anyMap(o.Data), "metadata": anyMap(o.Metadata)}
	}
}

func anyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// ErrorInfo is an exception raised by the executed code.
type ErrorInfo struct {
	Ename, Evalue string
	Traceback     []string
}

// ToMap renders {"ename", "evalue", "traceback"}.
func (e *ErrorInfo) ToMap() map[string]any {
	tb := make([]any, len(e.Traceback))
	for i, l := range e.Traceback {
		tb[i] = l
	}
	return map[string]any{"ename": e.Ename, "evalue": e.Evalue, "traceback": tb}
}

// Result is the outcome of one execution.
type Result struct {
	Status  string // "ok" or "error"
	Outputs []Output
	Error   *ErrorInfo // set when Status is "error"
	// ExecutionCount is the kernel's counter for this request (from
	// execute_reply); not part of upstream's result map.
	ExecutionCount int64
	// DroppedBytes counts output bytes cut by MaxOutputBytes.
	DroppedBytes int64
}

// ToMap renders upstream's execute result: status, outputs and, only when
// there was one, error.
func (r Result) ToMap() map[string]any {
	outs := make([]any, len(r.Outputs))
	for i, o := range r.Outputs {
		outs[i] = o.ToMap()
	}
	m := map[string]any{"status": r.Status, "outputs": outs}
	if r.Error != nil {
		m["error"] = r.Error.ToMap()
	}
	return m
}

type route struct {
	ch   chan *Message
	done chan struct{}
}

// Execute runs code in the kernel and collects its outputs: the iopub
// messages whose parent is this request, until the kernel reports idle for
// it and its execute_reply arrived. onOutput (may be nil) is called with
// each output as it arrives, on the caller's goroutine. Executions on one
// kernel run one at a time, in call order as far as the waiting allows;
// state persists between them.
//
// When ctx ends first the kernel is interrupted, Execute waits up to
// InterruptGrace for the request to finish, and returns what was collected
// with an error wrapping ErrTimeout (deadline) or ctx's error (cancel). A
// dead kernel gives an error wrapping ErrKernelDead.
func (k *Kernel) Execute(ctx context.Context, code string, onOutput func(Output)) (Result, error) {
	start := time.Now()
	select {
	case k.execSem <- struct{}{}:
	case <-ctx.Done():
		return Result{}, k.endedErr(ctx, start, false)
	case <-k.done:
		return Result{}, k.doneErr
	}
	defer func() { <-k.execSem }()
	if err := k.Err(); err != nil {
		return Result{}, err
	}

	frames, h, err := k.sig.encode("execute_request", k.session, Header{}, map[string]any{
		"code":             code,
		"silent":           false,
		"store_history":    true,
		"user_expressions": map[string]any{},
		"allow_stdin":      false,
		// Executes here run one at a time; stop_on_error would only make
		// the kernel abort the next request if it arrives right after one
		// that failed (an interrupt after a timeout, say).
		"stop_on_error": false,
	})
	if err != nil {
		return Result{}, err
	}
	r := &route{ch: make(chan *Message, 64), done: make(chan struct{})}
	reply := make(chan *Message, 1)
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return Result{}, ErrClosed
	}
	k.routes[h.MsgID] = r
	k.replies[h.MsgID] = reply
	k.mu.Unlock()
	defer func() {
		close(r.done)
		k.forget(h.MsgID)
	}()
	k.sendMu.Lock()
	err = k.shell.SendMulti(zmq4.NewMsgFrom(frames...))
	k.sendMu.Unlock()
	if err != nil {
		return Result{}, fmt.Errorf("jupyter: send execute_request: %w", err)
	}

	c := &collector{max: k.opts.MaxOutputBytes, onOutput: onOutput, malformed: &k.dropped}
	var (
		gotReply, gotIdle bool
		ended             error
		ctxDone           = ctx.Done()
		grace             <-chan time.Time
	)
	for !gotReply || !gotIdle {
		select {
		case m := <-r.ch:
			if c.iopub(m) {
				gotIdle = true
			}
		case m := <-reply:
			c.reply(m)
			gotReply = true
		case <-ctxDone:
			ctxDone = nil
			ended = k.endedErr(ctx, start, true)
			if err := k.interrupt(); err != nil {
				k.log.Warn("jupyter interrupt failed", "err", err)
			}
			t := time.NewTimer(k.opts.InterruptGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			return c.result(ended), fmt.Errorf("%w; the interrupted request did not finish within %s", ended, k.opts.InterruptGrace)
		case <-k.done:
			return c.result(ended), k.doneErr
		}
	}
	if ended != nil {
		return c.result(ended), ended
	}
	return c.result(nil), nil
}

// endedErr names why ctx ended: the deadline (ErrTimeout, with the
// timeout) or a cancellation.
func (k *Kernel) endedErr(ctx context.Context, start time.Time, interrupted bool) error {
	what := "execution"
	if interrupted {
		what = "execution (the kernel was interrupted)"
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		d := time.Since(start)
		if dl, ok := ctx.Deadline(); ok {
			d = dl.Sub(start)
		}
		return fmt.Errorf("%w after %s: %s", ErrTimeout, roundDuration(d), what)
	}
	return fmt.Errorf("jupyter: %s cancelled: %w", what, ctx.Err())
}

func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// collector builds a Result from the messages of one request, within the
// output budget.
type collector struct {
	max       int64
	used      int64
	onOutput  func(Output)
	malformed *atomic.Int64 // the kernel's dropped-message counter

	outputs      []Output
	err          *ErrorInfo
	replyErr     *ErrorInfo
	count        int64
	dropped      int   // outputs dropped whole once the budget was spent
	droppedBytes int64 // bytes cut or dropped
}

// iopub handles one iopub message of the request; it reports whether it
// was the final status idle.
func (c *collector) iopub(m *Message) bool {
	switch m.Header.MsgType {
	case "status":
		var s struct {
			State string `json:"execution_state"`
		}
		_ = json.Unmarshal(m.Content, &s)
		return s.State == "idle"
	case "stream":
		s := struct {
			Name string `json:"name"`
			Text string `json:"text"`
		}{Name: "stdout"}
		if json.Unmarshal(m.Content, &s) != nil {
			c.malformed.Add(1)
			return false
		}
		c.add(Output{Type: "stream", Name: s.Name, Text: s.Text, Msg: m}, int64(len(s.Text)), true)
	case "display_data", "update_display_data", "execute_result":
		v, err := decodeJSON(m.Content)
		content, ok := v.(map[string]any)
		if ok && !mapOrAbsent(content, "data") || ok && !mapOrAbsent(content, "metadata") {
			ok = false
		}
		if err != nil || !ok {
			c.malformed.Add(1)
			return false
		}
		o := Output{Type: m.Header.MsgType, Data: asMap(content["data"]), Metadata: asMap(content["metadata"]), Msg: m}
		if n, ok := content["execution_count"].(int64); ok {
			o.ExecutionCount = n
		}
		c.add(o, int64(len(m.Content)), m.Header.MsgType != "update_display_data")
	case "error":
		e := c.errorInfo(m.Content)
		if e == nil {
			c.malformed.Add(1)
			return false
		}
		c.err = e // the last error published wins, as upstream
		if c.onOutput != nil {
			c.onOutput(Output{Type: "error", Error: e, Msg: m})
		}
	case "clear_output":
		if c.onOutput != nil {
			c.onOutput(Output{Type: "clear_output", Msg: m})
		}
	}
	return false
}

// errorInfo parses an error (iopub error or execute_reply with status
// error), charged against the budget: an oversized traceback is replaced by
// a marker.
func (c *collector) errorInfo(raw []byte) *ErrorInfo {
	var e struct {
		Ename     string   `json:"ename"`
		Evalue    string   `json:"evalue"`
		Traceback []string `json:"traceback"`
	}
	e.Ename, e.Evalue = "Unknown", "Unknown error"
	if json.Unmarshal(raw, &e) != nil {
		return nil
	}
	info := &ErrorInfo{Ename: e.Ename, Evalue: e.Evalue, Traceback: e.Traceback}
	if info.Traceback == nil {
		info.Traceback = []string{}
	}
	size := int64(len(raw))
	if size > c.max-c.used {
		c.droppedBytes += size
		info.Ename = cut(info.Ename, 1024)
		info.Evalue = cut(info.Evalue, 4096)
		info.Traceback = []string{fmt.Sprintf("[traceback dropped: %d bytes, over the %s limit of one execute]", size, fmtBytes(c.max))}
		return info
	}
	c.used += size
	return info
}

func (c *collector) reply(m *Message) {
	var r struct {
		Status         string `json:"status"`
		ExecutionCount int64  `json:"execution_count"`
	}
	_ = json.Unmarshal(m.Content, &r)
	c.count = r.ExecutionCount
	switch r.Status {
	case "error":
		c.replyErr = c.errorInfo(m.Content)
	case "aborted":
		c.replyErr = &ErrorInfo{Ename: "ExecutionAborted", Evalue: "the kernel aborted the request (an earlier one failed)", Traceback: []string{}}
	}
}

// add keeps an output within the budget: whole when it fits, cut with a
// marker when it is the one that crosses the limit, dropped (counted)
// after that.
func (c *collector) add(o Output, size int64, keep bool) {
	left := c.max - c.used
	switch {
	case c.dropped > 0 || (left <= 0 && size > 0):
		c.dropped++
		c.droppedBytes += size
		return
	case size > left:
		if o.Type == "stream" {
			kept := utf8Prefix(o.Text, int(left))
			c.droppedBytes += size - int64(len(kept))
			o.Text = kept + fmt.Sprintf("\n[output truncated: %d bytes dropped, over the %s limit of one execute]\n",
				size-int64(len(kept)), fmtBytes(c.max))
		} else {
			c.droppedBytes += size
			o.Data = map[string]any{"text/plain": fmt.Sprintf("[%s dropped: %d bytes, over the %s limit of one execute]",
				o.Type, size, fmtBytes(c.max))}
			o.Metadata = map[string]any{}
		}
		c.used = c.max
	default:
		c.used += size
	}
	if keep {
		c.outputs = append(c.outputs, o)
	}
	if c.onOutput != nil {
		c.onOutput(o)
	}
}

func (c *collector) result(ended error) Result {
	r := Result{Status: "ok", Outputs: c.outputs, ExecutionCount: c.count, DroppedBytes: c.droppedBytes}
	if r.Outputs == nil {
		r.Outputs = []Output{}
	}
	if c.dropped > 0 {
		marker := Output{Type: "stream", Name: "stderr", Text: fmt.Sprintf(
			"[%d more outputs dropped (%d bytes), over the %s limit of one execute]\n", c.dropped, c.droppedBytes, fmtBytes(c.max))}
		r.Outputs = append(r.Outputs, marker)
		if c.onOutput != nil {
			c.onOutput(marker)
		}
	}
	switch {
	case ended != nil:
		r.Status = "error"
		r.Error = &ErrorInfo{Ename: "TimeoutError", Evalue: ended.Error(), Traceback: []string{}}
		if !errors.Is(ended, ErrTimeout) {
			r.Error.Ename = "CancelledError"
		}
	case c.err != nil:
		r.Status, r.Error = "error", c.err
	case c.replyErr != nil:
		r.Status, r.Error = "error", c.replyErr
	}
	return r
}

// mapOrAbsent: a field that must be an object, when present.
func mapOrAbsent(m map[string]any, key string) bool {
	v, present := m[key]
	_, isMap := v.(map[string]any)
	return !present || isMap
}

func asMap(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// utf8Prefix is the longest prefix of s of at most n bytes that does not
// split a UTF-8 sequence.
func utf8Prefix(s string, n int) string {
	if n >= len(s) {
		return s
	}
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return utf8Prefix(s, n) + "…"
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
