package asgi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/rpc/asgi"
	"github.com/hypha-go/hypha/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHandlerThroughServer: status, headers, query, method and body reach
// the handler and back; a handler that panics gives a 500 and the service
// keeps serving; a handler that writes nothing gives an empty 200.
func TestHandlerThroughServer(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	c := testserver.Connect(t, s, rpc.Config{})
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Id", r.PathValue("id"))
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Query().Get("v")+" "+string(b))
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("handler bug") })
	mux.HandleFunc("/empty", func(http.ResponseWriter, *http.Request) {})
	testserver.MustRegister(t, c, asgi.Service("app", mux, asgi.Name("My app")))
	base := s.URL() + "/" + c.Info().Workspace + "/apps/app"

	req, _ := http.NewRequest(http.MethodPut, base+"/items/42?v=x", strings.NewReader("the body"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Id") != "42" || string(b) != "PUT x the body" {
		t.Errorf("PUT: %d %v %q", resp.StatusCode, resp.Header, b)
	}
	for _, c := range []struct {
		path string
		code int
	}{{"/panic", 500}, {"/empty", 200}, {"/nothing", 404}} {
		resp, err := http.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: %d, want %d", c.path, resp.StatusCode, c.code)
		}
	}
}
