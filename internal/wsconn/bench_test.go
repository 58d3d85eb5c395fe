package wsconn

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/hypha-go/hypha/internal/batchconn"
)

// benchEcho measures one message echoed by a server end (both directions,
// one real websocket client, loopback TCP, 16 messages in flight, 256-byte
// messages of the size of a routed call): the client side is the same for
// every server end, so the difference between the sub-benchmarks is the
// server's framing cost.
func benchEcho(b *testing.B, serve func(w http.ResponseWriter, r *http.Request)) {
	srv := httptest.NewServer(http.HandlerFunc(serve))
	defer srv.Close()
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		CompressionMode: websocket.CompressionDisabled,
		HTTPClient:      &http.Client{Transport: &http.Transport{DialContext: batchconn.Dialer(&net.Dialer{})}},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	msg := make([]byte, 256)
	window := make(chan struct{}, 16)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			window <- struct{}{}
			if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
				return
			}
		}
	}()
	for range b.N {
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
		<-window
	}
}

func BenchmarkEcho(b *testing.B) {
	b.Run("wsconn", func(b *testing.B) {
		benchEcho(b, func(w http.ResponseWriter, r *http.Request) {
			c, err := Accept(w, r, 1<<20)
			if err != nil {
				return
			}
			for {
				op, data, err := c.Read()
				if err != nil {
					return
				}
				if c.Write(context.Background(), op, data) != nil {
					return
				}
			}
		})
	})
	// The server's previous framing: coder/websocket over a batching
	// connection, writes serialised on a mutex.
	b.Run("coder", func(b *testing.B) {
		benchEcho(b, func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(batchconn.HijackWriter{ResponseWriter: w}, r,
				&websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, data, err := c.Read(context.Background())
				if err != nil {
					return
				}
				if c.Write(context.Background(), typ, data) != nil {
					return
				}
			}
		})
	})
}
