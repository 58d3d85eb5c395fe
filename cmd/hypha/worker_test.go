package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
)

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWorkerProcessCommand(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	root := auth.RootUser()
	root.Scope.CurrentWorkspace, root.CurrentWorkspace = "public", "public"
	tok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "echo started; exec sleep 60\n")
	}))
	defer files.Close()

	t.Setenv("HYPHA_SERVICE_ID", "cli-process")
	t.Setenv("HYPHA_VISIBILITY", "public")
	var out syncBuffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"worker", "process", "--server-url", s.URL(), "--token", tok, "--workspace", "public",
		"--client-id", "cli-worker", "--python", "sh", "--max-sessions", "3", "--log-level", "error"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Registered service id: public/cli-worker:cli-process") {
		if time.Now().After(deadline) {
			t.Fatalf("worker never registered; output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"Starting Hypha Process Worker...", "Service ID: cli-process", "Visibility: public",
		"Supported Types: python-eval, node-eval", "Max Sessions: 3", "Use Local URL: false"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}

	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer tcancel()
	ctl := testserver.Connect(t, s, rpc.Config{Token: tok, Workspace: "public", ClientID: "ctl"})
	svc, err := ctl.GetService(tctx, "public/cli-worker:cli-process")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Config["visibility"] != "public" {
		t.Fatalf("config = %v", svc.Config)
	}
	id, err := svc.Call(tctx, "start", map[string]any{
		"id": "ws-a/c1", "workspace": "ws-a", "client_id": "c1", "app_id": "a", "server_url": s.URL(),
		"app_files_base_url": files.URL, "token": "t", "entry_point": "main.sh",
		"manifest": map[string]any{"type": "python-eval", "entry_point": "main.sh"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		logs, err := svc.Call(tctx, "get_logs", id, "stdout")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(logs), "started") {
			break
		}
		if tctx.Err() != nil {
			t.Fatalf("no output: %v", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cancel() // what SIGINT does through run's signal context
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("command: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("command did not stop")
	}
	for _, want := range []string{"Stopping the worker (1 session(s))...", "Worker stopped."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := ctl.GetService(tctx, "public/cli-worker:cli-process"); err == nil {
		t.Fatal("worker still registered")
	}
}

func TestWorkerProcessFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--visibility", "private"}, `--visibility "private"`},
		{[]string{"--use-local-url=ftp://x"}, `--use-local-url "ftp://x"`},
		{[]string{"--server-url", ""}, "--server-url is required"},
	} {
		cmd := newRootCmd()
		var out syncBuffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"worker", "process"}, tc.args...))
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	wf := workerFlags{useLocalURL: "http://10.0.0.1:9527"}
	wf.visibility = "protected"
	_, b, u, err := wf.registration()
	if err != nil || b || u != "http://10.0.0.1:9527" {
		t.Fatalf("registration = %v %q %v", b, u, err)
	}
}

// TestWorkerDisableSSL: a worker's connection to a server behind TLS with a
// self-signed certificate fails with a certificate error, and succeeds with
// --disable-ssl (rpc.Config.InsecureSkipVerify, the same websocket
// transport as every other client).
func TestWorkerDisableSSL(t *testing.T) {
	s := testserver.Start(t, server.Config{})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	ts.StartTLS()
	t.Cleanup(ts.Close)
	cmd := newProcessWorkerCmd()
	cmd.SetContext(context.Background())
	wf := workerFlags{}
	wf.serverURL = ts.URL
	if _, err := wf.connect(cmd); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connect without --disable-ssl = %v, want a certificate error", err)
	}
	wf.disableSSL = true
	c, err := wf.connect(cmd)
	if err != nil {
		t.Fatalf("connect with --disable-ssl: %v", err)
	}
	defer c.Close()
	if v, err := c.Echo(testserver.Ctx(t), "tls"); err != nil || v != "tls" {
		t.Fatalf("echo = %v, %v", v, err)
	}
}
