package interop

// Opt-in checks of the conda worker with the real upstream peers
// (HYPHA_PEERS=1):
//
//   - TestUpstreamCondaWorker: our `hypha worker conda` registered on the
//     real upstream server and driven by upstream's apps controller from a
//     Python driver (interop/testdata/upstream_conda_worker.py);
//   - TestPythonCondaAppConnectsBack: a conda app whose entry point imports
//     the real Python hypha-rpc, connects back to our server with the
//     HYPHA_* variables and registers a service that a Go client calls.
//
// No conda can be installed here: both use the FAKE conda of
// internal/condaenv/testdata/fake-conda (a real virtual environment over
// Debian's python3 with its ipykernel).
//
//	HYPHA_PEERS=1 go test ./interop/ -run 'TestUpstreamCondaWorker|TestPythonCondaAppConnectsBack' -v

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/server/auth"
	"github.com/hypha-go/hypha/worker/hyphaworker"
	"github.com/hypha-go/hypha/workers/conda"
)

// fakeCondaPath is the FAKE conda of the tests, or a skip when Debian's
// python3 with ipykernel and venv is missing.
func fakeCondaPath(t *testing.T) string {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import ipykernel, jupyter_client, venv").Run(); err != nil {
		testserver.NeedOrSkip(t, false, "/usr/bin/python3 with ipykernel and venv (Debian python3-ipykernel python3-venv)")
	}
	p, err := filepath.Abs("../internal/condaenv/testdata/fake-conda")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// buildHypha builds this module's hypha command into a temporary folder.
func buildHypha(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hypha")
	ctx := ctxTimeout(t, 5*time.Minute)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/hypha-go/hypha/cmd/hypha").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/hypha: %v\n%s", err, out)
	}
	return bin
}

// waitOutput waits until the process printed want on stdout.
func (p *proc) waitOutput(want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.After(timeout)
	for !strings.Contains(p.other.String(), want) {
		select {
		case <-p.exited:
			p.fatalf("exited (%v) before printing %q", p.err, want)
		case <-deadline:
			p.fatalf("did not print %q within %v", want, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestUpstreamCondaWorker: upstream's controller installs (calling our
// compile, then its trial start and stop), starts, lists, reads logs of,
// stops and uninstalls a conda-jupyter-kernel app on our worker; the driver
// calls execute on our worker service as upstream's documentation does, and
// every result has upstream's shape.
func TestUpstreamCondaWorker(t *testing.T) {
	dir := needPeers(t)
	fake := fakeCondaPath(t)
	bin := buildHypha(t)
	u := startUpstream(t, dir, "PEERS_S3=1")
	token := peersRootToken()

	w := startProc(t, "hypha worker conda", 8*time.Minute, false, ".", bin, "worker", "conda",
		"--server-url", u.url, "--token", token, "--visibility", "public",
		"--conda-path", fake, "--cache-dir", testserver.SharedTempDir(t), "--working-dir", testserver.SharedTempDir(t),
		"--no-pip-venv")
	w.waitOutput("Conda worker ready", 2*time.Minute)

	r := startProc(t, "upstream conda driver", 5*time.Minute, false, ".", filepath.Join(dir, "run-py.sh"),
		testdata(t, "upstream_conda_worker.py"), u.url, token).mustResult()

	// list_workers: ours, with upstream's type name.
	workers, _ := at(r, "workers").([]any)
	if len(workers) != 1 {
		t.Fatalf("conda workers listed by upstream: %v", mustJSON(at(r, "workers")))
	}
	workerID := str(workers[0], "id")
	expect(t, "supported_types", at(workers[0], "supported_types"), []any{"conda-jupyter-kernel"})
	if !strings.HasPrefix(workerID, "ws-user-root/") || !strings.HasSuffix(workerID, ":conda-worker") {
		t.Errorf("worker id %q", workerID)
	}

	// install: upstream stored the manifest our compile normalised.
	expect(t, "install type", str(r, "install", "type"), "conda-jupyter-kernel")
	expect(t, "install entry_point", str(r, "install", "entry_point"), "main.py")
	expect(t, "install dependencies", at(r, "install", "dependencies"),
		[]any{"numpy", "pip", "ipykernel", "jupyter_client", "pyzmq", map[string]any{"pip": []any{"hypha-rpc"}}})
	expect(t, "install channels", at(r, "install", "channels"), []any{"conda-forge"})
	prog := mustJSON(at(r, "install_progress"))
	for _, want := range []string{"conda: Solving environment: done", "Environment ready", "Jupyter kernel started", "Installation complete!"} {
		expectContains(t, "install progress", prog, want)
	}

	// start: detached, on the environment cached by the trial start.
	sid := str(r, "start", "id")
	expect(t, "start worker_id", str(r, "start", "worker_id"), workerID)
	expectContains(t, "start progress", mustJSON(at(r, "start_progress")), "using cached environment")
	expect(t, "list_running", at(r, "running"), []any{sid})

	// execute on the worker service: upstream's result shape, exactly.
	ex := func(name string) any { return at(r, "execute", name) }
	expect(t, "execute print", ex("print"), map[string]any{"status": "ok",
		"outputs": []any{map[string]any{"type": "stream", "name": "stdout", "text": "hi from execute\n"}}})
	expect(t, "execute state: status", at(ex("state"), "status"), "ok")
	expect(t, "execute state: result", at(ex("state"), "outputs", 0, "data"), map[string]any{"text/plain": "('Hello, upstream!', 42)"})
	expect(t, "execute state: type", at(ex("state"), "outputs", 0, "type"), "execute_result")
	expect(t, "execute state: metadata", at(ex("state"), "outputs", 0, "metadata"), map[string]any{})
	if n, ok := at(ex("state"), "outputs", 0, "execution_count").(float64); !ok || n < 1 {
		t.Errorf("execution_count: %v", mustJSON(ex("state")))
	}
	expect(t, "execute display: type", at(ex("display"), "outputs", 0, "type"), "display_data")
	expectContains(t, "execute display: png", str(ex("display"), "outputs", 0, "data", "image/png"), "iVBORw0KGgo")
	expect(t, "execute display: metadata", at(ex("display"), "outputs", 0, "metadata"), map[string]any{})
	expect(t, "execute error: status", at(ex("error"), "status"), "error")
	expect(t, "execute error: outputs", at(ex("error"), "outputs"), []any{})
	expect(t, "execute error: ename", at(ex("error"), "error", "ename"), "ZeroDivisionError")
	expect(t, "execute error: evalue", at(ex("error"), "error", "evalue"), "division by zero")
	if tb, _ := at(ex("error"), "error", "traceback").([]any); len(tb) < 2 {
		t.Errorf("traceback: %v", mustJSON(ex("error")))
	}
	expect(t, "execute timeout: status", at(ex("timeout"), "status"), "error")
	expect(t, "execute timeout: ename", at(ex("timeout"), "error", "ename"), "TimeoutError")
	expect(t, "execute after timeout (state kept)", at(ex("after_timeout"), "outputs", 0, "data", "text/plain"), "42")
	expect(t, "output_callback", at(r, "callback_types"), []any{"stream", "stream", "stream"})

	// get_logs through upstream's controller.
	logs := mustJSON(at(r, "logs", "items"))
	expectContains(t, "logs", logs, `["stdout","hello from conda-jupyter-kernel app `)
	expectContains(t, "logs", logs, `["stdout","hi from execute"]`)
	expectContains(t, "logs", logs, `["error","ZeroDivisionError: division by zero"]`)
	for _, k := range []string{"items", "total", "offset", "limit"} {
		expectContains(t, "log keys", mustJSON(at(r, "logs", "keys")), `"`+k+`"`)
	}
	if items, _ := at(r, "logs_page", "items").([]any); len(items) != 1 || str(items[0], 0) != "stdout" {
		t.Errorf("get_logs(type=stdout, limit=1): %v", mustJSON(at(r, "logs_page")))
	}

	// stop: gone from upstream and from our worker.
	expect(t, "list_running after stop", at(r, "running_after_stop"), []any{})
	expectContains(t, "execute after stop", str(r, "execute_after_stop_error"), "session not found")
	t.Logf("upstream timings (s): %s", mustJSON(at(r, "timings")))

	// SIGINT: the worker stops and unregisters.
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		w.fatalf("did not exit after SIGINT")
	}
	if w.err != nil || !strings.Contains(w.other.String(), "Worker stopped.") {
		w.fatalf("exit after SIGINT: %v", w.err)
	}
}

// TestPythonCondaAppConnectsBack: a conda app whose entry point imports the
// real Python hypha-rpc connects to our server with the HYPHA_* variables
// the worker sets, and registers a service; the controller's start waits
// for it and a Go client calls it.
//
// The environment gets hypha-rpc the way a real one does: compile adds
// hypha-rpc to the pip dependencies and the (fake) conda installs it with
// pip. Offline, from a wheel this test writes: the peers' hypha-rpc source
// with its pure-Python dependencies (msgpack, websockets, shortuuid, munch,
// httpx and what httpx needs) copied from the peers chroot, where Debian
// packages them, in one wheel named hypha_rpc.
func TestPythonCondaAppConnectsBack(t *testing.T) {
	needPeers(t)
	fake := fakeCondaPath(t)
	wheels := t.TempDir()
	writeHyphaRPCWheel(t, wheels)
	t.Setenv("FAKE_CONDA_FIND_LINKS", wheels)

	s := testserver.Start(t, server.Config{DataDir: t.TempDir()})
	root := auth.RootUser()
	root.Scope.CurrentWorkspace = "public"
	root.CurrentWorkspace = "public"
	tok, err := s.Issuer().Generate(root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wc := testserver.Connect(t, s, rpc.Config{Token: tok, Workspace: "public", ClientID: "builtin-conda-worker"})
	w := conda.New(conda.Options{CondaPath: fake, CacheDir: testserver.SharedTempDir(t), WorkDir: testserver.SharedTempDir(t),
		NoPipVenv: true, StopGrace: 2 * time.Second, Logger: testserver.Logger(t)})
	if err := w.Check(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	h, err := hyphaworker.Host(ctxTimeout(t, 30*time.Second), wc, w, hyphaworker.Options{Visibility: hyphaworker.Public, UseLocalURL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	atok, err := s.Issuer().Generate(&auth.UserInfo{ID: "alice", Roles: []string{}, Scope: auth.Scope{CurrentWorkspace: "ws-user-alice"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	alice := testserver.Connect(t, s, rpc.Config{Token: atok, ClientID: "alice-client"})
	ctx := ctxTimeout(t, 4*time.Minute)
	apps, err := alice.GetService(ctx, "public/server-apps")
	if err != nil {
		t.Fatal(err)
	}

	const mainPy = `import os
from hypha_rpc import connect_to_server

server = await connect_to_server({
    "server_url": os.environ["HYPHA_SERVER_URL"],
    "workspace": os.environ["HYPHA_WORKSPACE"],
    "client_id": os.environ["HYPHA_CLIENT_ID"],
    "token": os.environ["HYPHA_TOKEN"],
})
calls = 0

def hello(name):
    global calls
    calls += 1
    return f"hello {name} from the conda app in {server.config.workspace}"

def add(a, b):
    return a + b

await server.register_service({"id": "default", "name": "conda back", "hello": hello, "add": add})
print("registered as", server.config.workspace, os.environ["HYPHA_CLIENT_ID"], flush=True)
`
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id":           "conda-back",
		"manifest":         map[string]any{"type": conda.Type, "name": "Conda back", "entry_point": "main.py", "dependencies": []any{"numpy"}},
		"files":            []any{map[string]any{"path": "main.py", "content": mainPy}},
		"wait_for_service": "default",
		"timeout":          180.0,
	}); err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "conda-back", rpc.Kwargs{"timeout": 120.0, "wait_for_service": "default"})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	info, _ := v.(map[string]any)
	sid := str(info, "id")
	if !strings.HasPrefix(sid, "ws-user-alice/") {
		t.Fatalf("start: %v", mustJSON(v))
	}
	svcID := sid + ":default"
	svc, err := alice.GetService(ctx, svcID)
	if err != nil {
		t.Fatalf("the app's service %s: %v", svcID, err)
	}
	got, err := svc.Call(ctx, "hello", "go")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "hello", got, "hello go from the conda app in ws-user-alice")
	sum, err := svc.Call(ctx, "add", 2, 40)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "add", sum, 42)

	// The kernel's state is the service's: execute sees the calls.
	res, err := apps.Call(ctx, "execute", sid, "calls, server.config.client_id")
	if err != nil {
		t.Fatal(err)
	}
	clientID := strings.TrimPrefix(sid, "ws-user-alice/")
	expect(t, "execute", at(res, "outputs", 0, "data", "text/plain"), fmt.Sprintf("(1, '%s')", clientID))
	logs, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "stdout"})
	if err != nil {
		t.Fatal(err)
	}
	expectContains(t, "stdout", mustJSON(logs), "registered as ws-user-alice "+clientID)

	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	// The app's connection ends with its kernel: its service goes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := alice.GetService(gctx, svcID)
		cancel()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still registered 30 s after stop", svcID)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// peersState is the peers' state folder (setup.sh's PEERS_HOME).
func peersState() string {
	if v := os.Getenv("PEERS_HOME"); v != "" {
		return v
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "hypha-peers")
}

// writeHyphaRPCWheel writes hypha_rpc-<version>-py3-none-any.whl into dir:
// the peers' hypha-rpc Python package and its pure-Python dependencies
// from the peers chroot (compiled extension modules are left out; msgpack
// and websockets fall back to their pure-Python code). A wheel is a zip
// with dist-info metadata and a RECORD of hashes, so no build backend is
// needed.
func writeHyphaRPCWheel(t *testing.T, dir string) {
	t.Helper()
	state := peersState()
	src := filepath.Join(state, "vendor", "hypha-rpc", "python")
	site := filepath.Join(state, "vendor", "trixie-root", "usr", "lib", "python3", "dist-packages")
	version := "0.0.0"
	if b, err := os.ReadFile(filepath.Join(src, "hypha_rpc", "VERSION")); err == nil {
		// VERSION is {"version": "x.y.z"}
		if _, v, ok := strings.Cut(string(b), `"version": "`); ok {
			version, _, _ = strings.Cut(v, `"`)
		}
	}
	roots := map[string]string{"hypha_rpc": filepath.Join(src, "hypha_rpc")}
	for _, p := range []string{"msgpack", "websockets", "shortuuid", "munch", "httpx", "httpcore", "h11", "anyio", "sniffio", "certifi", "idna", "typing_extensions.py"} {
		roots[p] = filepath.Join(site, p)
	}
	files := map[string][]byte{}
	for name, path := range roots {
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "__pycache__" {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(p, ".so") || strings.HasSuffix(p, ".pyc") || !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(path, p)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[filepath.ToSlash(filepath.Join(name, rel))] = b
			return nil
		})
		if err != nil {
			t.Fatalf("the peers' hypha-rpc and its dependencies (run the peers setup): %v", err)
		}
	}
	info := fmt.Sprintf("hypha_rpc-%s.dist-info/", version)
	files[info+"METADATA"] = []byte(fmt.Sprintf("Metadata-Version: 2.1\nName: hypha_rpc\nVersion: %s\n", version))
	files[info+"WHEEL"] = []byte("Wheel-Version: 1.0\nGenerator: interop-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("hypha_rpc-%s-py3-none-any.whl", version)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	var rec strings.Builder
	for _, n := range names {
		fw, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(&rec, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[n]))
	}
	fmt.Fprintf(&rec, "%sRECORD,,\n", info)
	fw, err := zw.Create(info + "RECORD")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(fw, rec.String()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
