package browser

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/worker"
)

// BenchmarkWebPythonStartToDefault: from Worker.Start of a web-python app to
// its default service answering a call from Go through our server. Start
// answers once the page has loaded Pyodide from the server's
// /assets/pyodide/ (each session is a fresh browser context, so nothing is
// cached between sessions), connected and run the script with its export.
// The browser is already running; stop is not counted.
//
//	go test -run '^$' -bench 'WebPythonStartToDefault' -benchtime 10x ./workers/browser
func BenchmarkWebPythonStartToDefault(b *testing.B) {
	w := newWorker(b, nil)
	s := testserver.Start(b, server.Config{})
	fs := newFileServer(b)
	page, err := RenderPythonPage(map[string]any{"type": TypeWebPython, "name": "bench"},
		"from hypha_rpc import api\n\ndef ping():\n    return 'pong'\n\napi.export({'ping': ping})\n", "main.py")
	if err != nil {
		b.Fatal(err)
	}
	fs.put("bench/index.html", page)
	caller := testserver.RootClient(b, s, "bench-caller")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(i int) {
		id := fmt.Sprintf("py-%d", i)
		sid, err := w.Start(ctx, worker.Config{ID: "ws-user-root/" + id, Workspace: "ws-user-root", ClientID: id, AppID: "bench",
			ServerURL: s.URL(), AppFilesBaseURL: fs.URL + "/files/bench", Token: testserver.RootToken,
			Manifest: worker.Manifest{"type": TypeWebPython}})
		if err != nil {
			b.Fatal(err)
		}
		// Start answered after the export: the service is there.
		svc, err := caller.GetService(ctx, "ws-user-root/"+id+":default")
		if err != nil {
			b.Fatal(err)
		}
		if got, err := svc.Call(ctx, "ping"); err != nil || got != "pong" {
			b.Fatalf("ping = %v, %v", got, err)
		}
		b.StopTimer()
		if err := w.Stop(ctx, sid); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	run(-1) // starts the browser
	i := 0
	for b.Loop() {
		run(i)
		i++
	}
}
