package jupyter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// forge is Python run in the kernel that publishes messages on its own
// iopub socket as children of the running request, so that only the
// client's checks stand between them and the result.
const forge = `
import json
k = get_ipython().kernel
parent = k.get_parent()
def frames(content, sign, msg_type='stream'):
    h = k.session.msg_header(msg_type)
    h['date'] = h['date'].isoformat()
    parts = [json.dumps(h).encode(), json.dumps(parent['header'], default=str).encode(), b'{}',
             content if isinstance(content, bytes) else json.dumps(content).encode()]
    sig = k.session.sign(parts) if sign else b''
    return [b'stream', b'<IDS|MSG>', sig] + parts
`

func TestHostileForgedIOPubMessagesAreDropped(t *testing.T) {
	k, _ := startKernel(t, Options{})
	code := forge + `
pub = k.iopub_socket
pub.send_multipart(frames({'name': 'stdout', 'text': 'FORGED unsigned'}, False))
bad = frames({'name': 'stdout', 'text': 'FORGED badsig'}, True); bad[2] = b'0' * 64
pub.send_multipart(bad)
pub.send_multipart([b'stream', b'no delimiter at all'])
pub.send_multipart([b'stream', b'<IDS|MSG>', b'short'])
# Signed (only the kernel has the key) but malformed: the client must not
# panic and must not take them as outputs.
pub.send_multipart(frames(b'not json', True))
pub.send_multipart(frames({'data': ['not', 'a', 'map']}, True, 'display_data'))
pub.send_multipart(frames({'ename': 1}, True, 'error'))
print('real', flush=True)
`
	before := k.Stats().DroppedMessages
	r := execute(t, k, code)
	var texts []string
	for _, o := range r.Outputs {
		texts = append(texts, o.Type+":"+o.Text)
	}
	joined := strings.Join(texts, "|")
	if len(r.Outputs) != 1 {
		t.Errorf("outputs %v, want only the real one", r.ToMap()["outputs"])
	}
	if strings.Contains(joined, "FORGED") {
		t.Errorf("a forged message became an output: %v", joined)
	}
	if !strings.Contains(joined, "stream:real\n") {
		t.Errorf("the real output is missing: %v", joined)
	}
	if got := k.Stats().DroppedMessages - before; got != 7 {
		t.Errorf("dropped %d messages, want the 7 unsigned, badly signed or malformed ones", got)
	}
	if r.Status != "ok" {
		t.Errorf("a malformed error message changed the status: %v", r.ToMap())
	}
	if r := execute(t, k, "1+1"); r.Status != "ok" {
		t.Errorf("kernel unusable afterwards: %v", r.ToMap())
	}
}

func TestHostileOversizedWireMessageIsDropped(t *testing.T) {
	k, _ := startKernel(t, Options{MaxWireMessageBytes: 1 << 20})
	code := forge + `
k.iopub_socket.send_multipart(frames({'name': 'stdout', 'text': 'B' * (3 << 20)}, True))
print('after', flush=True)
`
	r := execute(t, k, code)
	for _, o := range r.Outputs {
		if strings.Contains(o.Text, "BBBB") {
			t.Fatalf("an over-limit wire message reached the result (%d bytes)", len(o.Text))
		}
	}
	if len(r.Outputs) == 0 || r.Outputs[len(r.Outputs)-1].Text != "after\n" {
		t.Errorf("outputs %v", r.ToMap()["outputs"])
	}
	if s := k.Stats(); s.DroppedFrames < 1 || s.DroppedMessages < 1 {
		t.Errorf("stats %+v, want the frame and its message counted", s)
	}
}

func TestHostileHugeOutputIsBounded(t *testing.T) {
	const limit = 1 << 20
	k, _ := startKernel(t, Options{MaxOutputBytes: limit})
	var seen atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// About 8 MiB of stdout in writes of 100,000 bytes, then a display of 2 MiB.
	r, err := k.Execute(ctx, `
import sys
for i in range(80):
    sys.stdout.write('x' * 100000); sys.stdout.flush()
from IPython.display import display
display({'text/plain': 'y' * (2 << 20)}, raw=True)
`, func(o Output) { seen.Add(int64(len(o.Text))) })
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, o := range r.Outputs {
		total += int64(len(o.Text))
		for _, v := range o.Data {
			if s, ok := v.(string); ok {
				total += int64(len(s))
			}
		}
	}
	if total > limit+4096 {
		t.Errorf("result holds %d bytes of output, limit %d", total, limit)
	}
	if seen.Load() > limit+4096 {
		t.Errorf("onOutput saw %d bytes, limit %d", seen.Load(), limit)
	}
	all := ""
	for _, o := range r.Outputs {
		all += o.Text
	}
	if !strings.Contains(all, "[output truncated:") || !strings.Contains(all, "more outputs dropped") || !strings.Contains(all, "1 MiB limit") {
		t.Errorf("no clear marker of what was dropped; last output: %q", r.Outputs[len(r.Outputs)-1].Text)
	}
	if r.DroppedBytes < 8<<20 {
		t.Errorf("DroppedBytes %d, want about 9 MiB", r.DroppedBytes)
	}
}

// TestHostileFrameHeaderAnnouncingExabytes feeds the wire guard a frame
// whose header announces 2^62 bytes: zmq4 alone would try to allocate
// that. The guard hands on an empty frame and discards the body.
func TestHostileFrameHeaderAnnouncingExabytes(t *testing.T) {
	var dropped atomic.Int64
	a, b := net.Pipe()
	defer a.Close()
	c := &boundedConn{Conn: b, cfg: &guardConfig{maxMessage: 1024, dropped: &dropped}, greeting: 64}
	c.r = bufioReader(b)
	go func() {
		w := new(bytes.Buffer)
		w.Write(make([]byte, 64))                       // greeting
		w.Write([]byte{flagMore, 3, 'a', 'b', 'c'})     // small frame, more follows
		hdr := []byte{flagLong, 0, 0, 0, 0, 0, 0, 0, 0} // long frame, last
		binary.BigEndian.PutUint64(hdr[1:], 1<<62)
		w.Write(hdr)
		w.Write(bytes.Repeat([]byte{'z'}, 5000)) // some of its body, then EOF
		_, _ = a.Write(w.Bytes())
		a.Close()
	}()
	got, err := io.ReadAll(c)
	if err != nil && err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	want := append(make([]byte, 64), flagMore, 3, 'a', 'b', 'c', 0, 0)
	if !bytes.Equal(got, want) {
		t.Errorf("guard passed %d bytes %q, want the greeting, the small frame and an empty last frame", len(got), got[64:])
	}
	if dropped.Load() != 1 {
		t.Errorf("dropped %d frames, want 1", dropped.Load())
	}
}

func TestHostileMessageOverLimitAcrossFrames(t *testing.T) {
	var dropped atomic.Int64
	a, b := net.Pipe()
	defer a.Close()
	c := &boundedConn{Conn: b, cfg: &guardConfig{maxMessage: 100, dropped: &dropped}}
	c.r = bufioReader(b)
	go func() {
		w := new(bytes.Buffer)
		w.Write([]byte{flagMore, 60}) // 60 bytes
		w.Write(bytes.Repeat([]byte{'a'}, 60))
		w.Write([]byte{0, 60}) // 60 more: over 100 in one message
		w.Write(bytes.Repeat([]byte{'b'}, 60))
		w.Write([]byte{0, 60}) // a new message: fits again
		w.Write(bytes.Repeat([]byte{'c'}, 60))
		_, _ = a.Write(w.Bytes())
		a.Close()
	}()
	got, _ := io.ReadAll(c)
	want := append(append(append([]byte{flagMore, 60}, bytes.Repeat([]byte{'a'}, 60)...), 0, 0, 0, 60), bytes.Repeat([]byte{'c'}, 60)...)
	if !bytes.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 32<<10) }
