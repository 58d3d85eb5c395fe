package wsconn

import (
	"io"
	"net"
	"testing"
)

// FuzzRead feeds arbitrary client bytes to a connection: Read returns
// messages or an error, never panics, and never returns a message over the
// limit.
func FuzzRead(f *testing.F) {
	f.Add([]byte{0x82, 0x81, 1, 2, 3, 4, 'x' ^ 1})
	f.Add([]byte{0x01, 0x81, 0, 0, 0, 0, 'a', 0x89, 0x80, 0, 0, 0, 0, 0x80, 0x81, 0, 0, 0, 0, 'b'})
	f.Add([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8})
	f.Add([]byte{0x82, 0xFE, 0x01, 0x00, 0, 0, 0, 0})
	f.Add([]byte{0x82, 0xFF, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	const limit = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		defer client.Close()
		drained := make(chan struct{})
		go func() { // what the server writes (pongs, close frames)
			defer close(drained)
			_, _ = io.Copy(io.Discard, client)
		}()
		go func() {
			_, _ = client.Write(in)
			_ = client.Close()
		}()
		c := newConn(server, nil, limit)
		for {
			op, data, err := c.Read()
			if err != nil {
				break
			}
			if op != OpText && op != OpBinary {
				t.Fatalf("Read returned opcode %d", op)
			}
			if len(data) > limit {
				t.Fatalf("Read returned %d bytes over the limit %d", len(data), limit)
			}
		}
		c.shutdown()
		<-drained
	})
}
