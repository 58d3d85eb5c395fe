package browser

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hypha-go/hypha/internal/testserver"
	"github.com/hypha-go/hypha/rpc"
	"github.com/hypha-go/hypha/server"
	"github.com/hypha-go/hypha/worker"
)

// pythonApp is a web-python script as upstream's are written: the module
// hypha_rpc, api.export of a dict with a sync and an async function, print.
const pythonApp = `
import asyncio
import os
from hypha_rpc import api

print("python app in", os.environ["HYPHA_WORKSPACE"])

def add(a, b):
    return a + b

async def slow_greet(who, punctuation="!"):
    await asyncio.sleep(0.01)
    return {"text": "hi " + who + punctuation, "items": [1, 2.5, None, True], "nested": {"k": [who]}}

async def roundtrip(value):
    return value

async def whoami():
    svc = await api.get_service("ws-user-root/caller:echo")
    return await svc.echo("through the bridge")

counter = {"n": 0}

api.export({"name": "Py Adder", "add": add, "slow_greet": slow_greet, "roundtrip": roundtrip, "whoami": whoami})
`

// startPython compiles a web-python app and starts it against s, its page
// served by fs.
func startPython(t *testing.T, w *Worker, s *server.Server, fs *fileServer, id string, man worker.Manifest, source string) (string, error) {
	t.Helper()
	if man == nil {
		man = worker.Manifest{}
	}
	man["type"], man["entry_point"] = TypeWebPython, "main.py"
	res, err := w.Compile(testserver.Ctx(t), worker.CompileRequest{
		Manifest: man, Files: []worker.File{{Path: "main.py", Content: source, Format: "text"}},
	})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if len(res.Files) != 1 || res.Files[0].Path != DefaultEntryPoint {
		t.Fatalf("compile result: %+v", res.Files)
	}
	fs.put(id+"/index.html", res.Files[0].Content.(string))
	return w.Start(testserver.Ctx(t), worker.Config{
		ID: "ws-user-root/" + id, Workspace: "ws-user-root", ClientID: id, AppID: id,
		ServerURL: s.URL(), AppFilesBaseURL: fs.URL + "/files/" + id, Token: testserver.RootToken,
		Manifest: res.Manifest,
	})
}

// TestWebPythonApp: a Python app in Pyodide exports sync and async
// functions, called from Go through our server; the page fetched nothing
// but from loopback (Pyodide and the hypha-rpc client came from our server);
// print reaches the console logs; execute runs Python.
func TestWebPythonApp(t *testing.T) {
	w := newWorker(t, nil)
	s := testserver.Start(t, server.Config{})
	fs := newFileServer(t)
	ctx := testserver.Ctx(t)
	caller := testserver.RootClient(t, s, "caller")
	if _, err := caller.RegisterService(ctx, rpc.Service{
		ID: "echo", Functions: map[string]any{"echo": func(args ...any) string { return "echo: " + fmt.Sprint(args...) }},
	}); err != nil {
		t.Fatal(err)
	}
	sid, err := startPython(t, w, s, fs, "py-adder", worker.Manifest{"name": "Py Adder", "requirements": []any{"hypha-rpc>=0.20"}}, pythonApp)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	// Start answers after the script ran and its export finished.
	svc, err := caller.GetService(ctx, "ws-user-root/py-adder:default")
	if err != nil {
		t.Fatalf("the default service is not there when start answers: %v", err)
	}
	if got, err := svc.Call(ctx, "add", 2, 3); err != nil || fmt.Sprint(got) != "5" {
		t.Fatalf("add(2, 3) = %v, %v", got, err)
	}
	got, err := svc.Call(ctx, "slow_greet", "go")
	if err != nil || fmt.Sprint(got) != "map[items:[1 2.5 <nil> true] nested:map[k:[go]] text:hi go!]" {
		t.Fatalf("slow_greet = %v, %v", got, err)
	}
	// Keyword arguments map to the Python parameters by name (as the
	// JavaScript client maps them); one left out takes its default.
	got, err = svc.Call(ctx, "slow_greet", rpc.Kwargs{"who": "go", "punctuation": "?"})
	if err != nil || !strings.Contains(fmt.Sprint(got), "hi go?") {
		t.Fatalf("slow_greet with kwargs = %v, %v", got, err)
	}
	got, err = svc.Call(ctx, "slow_greet", rpc.Kwargs{"who": "kw"})
	if err != nil || !strings.Contains(fmt.Sprint(got), "hi kw!") {
		t.Fatalf("slow_greet with a default = %v, %v", got, err)
	}
	got, err = svc.Call(ctx, "roundtrip", []byte{0, 1, 255})
	if b, ok := got.([]byte); err != nil || !ok || string(b) != "\x00\x01\xff" {
		t.Fatalf("roundtrip(bytes) = %#v, %v", got, err)
	}
	if got, err := svc.Call(ctx, "whoami"); err != nil || got != "echo: through the bridge" {
		t.Fatalf("a Python service calling another service = %v, %v", got, err)
	}
	waitLog(t, w, sid, "console", "[log] python app in ws-user-root")

	// execute: Python, in the app's namespace; values and exceptions.
	for _, tc := range []struct{ script, want string }{
		{"1 + 1", "2"},
		{"counter['n'] += 1\ncounter", "map[n:1]"},
		{"import asyncio\nawait asyncio.sleep(0)\n[add(1, 2), 'x', None]", "[3 x <nil>]"},
		{"slow_greet('e')", "map[items:[1 2.5 <nil> true] nested:map[k:[e]] text:hi e!]"},
		{"x = 3", "<nil>"},
		{"import sys; sys.version_info[:2] >= (3, 12)", "true"},
	} {
		got, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: tc.script})
		if err != nil || fmt.Sprint(got) != tc.want {
			t.Errorf("execute %q = %v, %v (want %s)", tc.script, got, err, tc.want)
		}
	}
	// What docs/workers.md says can be imported offline, and what not.
	v, err := w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: `
import importlib
def can(n):
    try:
        importlib.import_module(n)
        return True
    except ImportError:
        return False
ok = ["json", "asyncio", "re", "dataclasses", "decimal", "hashlib", "uuid", "zoneinfo", "email", "xml.etree.ElementTree", "csv", "zipfile", "hypha_rpc", "pyodide", "js"]
missing = ["sqlite3", "ssl", "lzma", "curses", "dbm", "tkinter", "readline", "numpy", "micropip", "pydoc_data"]
[n for n in ok if not can(n)] + [n for n in missing if can(n)]
`})
	if l, _ := v.([]any); err != nil || len(l) != 0 {
		t.Errorf("imports that docs/workers.md gets wrong: %v, %v", v, err)
	}
	_, err = w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: "def f():\n    raise ValueError('boom from python')\nf()"})
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "ValueError: boom from python") || !strings.Contains(err.Error(), "Traceback") {
		t.Errorf("execute raising: err = %v, want ErrScript with the traceback", err)
	}
	if strings.Contains(fmt.Sprint(err), "hypha_rpc/__init__.py") {
		t.Errorf("the traceback shows the bridge's frames: %v", err)
	}

	// Offline: every resource the page loaded came from loopback, and the
	// runtime from our server.
	v, err = w.Execute(ctx, worker.ExecuteRequest{SessionID: sid, Script: "import js\n[e.name for e in js.performance.getEntries() if e.entryType in (\"navigation\", \"resource\")]"})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := v.([]any)
	var sawWasm, sawStdlib, sawClient bool
	for _, e := range entries {
		u, err := url.Parse(fmt.Sprint(e))
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Errorf("the page fetched %v, which is not on loopback", e)
			continue
		}
		sawWasm = sawWasm || u.Path == "/assets/pyodide/pyodide.asm.wasm"
		sawStdlib = sawStdlib || u.Path == "/assets/pyodide/python_stdlib.zip"
		sawClient = sawClient || u.Path == "/assets/hypha-rpc-websocket.mjs"
	}
	if !sawWasm || !sawStdlib || !sawClient {
		t.Errorf("the page did not load Pyodide and the client from our server: %v", entries)
	}
	logs, err := w.GetLogs(ctx, sid, worker.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if all := fmt.Sprint(logs.ToMap()); strings.Contains(all, testserver.RootToken) {
		t.Errorf("the token is in the session's logs: %s", all)
	}
	if err := w.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the app's service to go", func() bool {
		_, err := caller.GetService(ctx, "ws-user-root/py-adder:default")
		return err != nil
	})
}

// TestWebPythonUpstreamStyle runs scripts written for upstream's web-python:
// an exported class instance, api.export not awaited, hypha_rpc.utils.
func TestWebPythonUpstreamStyle(t *testing.T) {
	w := newWorker(t, nil)
	s := testserver.Start(t, server.Config{})
	fs := newFileServer(t)
	ctx := testserver.Ctx(t)
	const script = `
from hypha_rpc import api
from hypha_rpc.utils import ObjectProxy

class HyphaApp():
    async def setup(self):
        await api.log('initialized')

    def add2(self, a):
        return a + 2

    def info(self):
        return ObjectProxy(platform="pyodide", workspace=api.config.workspace)

api.export(HyphaApp())
`
	sid, err := startPython(t, w, s, fs, "py-class", nil, script)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	caller := testserver.RootClient(t, s, "caller")
	svc, err := caller.GetService(ctx, "ws-user-root/py-class:default")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Call(ctx, "add2", 40); err != nil || fmt.Sprint(got) != "42" {
		t.Fatalf("add2 = %v, %v", got, err)
	}
	if got, err := svc.Call(ctx, "info"); err != nil || fmt.Sprint(got) != "map[platform:pyodide workspace:ws-user-root]" {
		t.Fatalf("info = %v, %v", got, err)
	}
	if err := w.Stop(ctx, sid); err != nil {
		t.Fatal(err)
	}
}

// TestWebPythonScriptRaises: an exception in the app's script fails start
// with the traceback.
func TestWebPythonScriptRaises(t *testing.T) {
	w := newWorker(t, nil)
	s := testserver.Start(t, server.Config{})
	fs := newFileServer(t)
	_, err := startPython(t, w, s, fs, "py-raise", nil, "from hypha_rpc import api\n\ndef setup():\n    raise RuntimeError('no setup today')\n\nsetup()\n")
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "RuntimeError: no setup today") || !strings.Contains(err.Error(), `File "main.py", line 4`) {
		t.Fatalf("start: err = %v, want ErrScript with the traceback", err)
	}
	if w.Sessions.Len() != 0 {
		t.Fatalf("a failed start left %d sessions", w.Sessions.Len())
	}
	// An import that is not there offline fails the same way, with
	// Python's own message.
	_, err = startPython(t, w, s, fs, "py-numpy", nil, "import numpy\n")
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "ModuleNotFoundError") {
		t.Fatalf("start with import numpy: err = %v", err)
	}
}

// TestWebPythonRequirementsOffline: a requirement that cannot be had
// offline is refused at compile, naming it; hypha-rpc is the bridge.
func TestWebPythonRequirementsOffline(t *testing.T) {
	for _, reqs := range [][]any{{"numpy"}, {"hypha-rpc", "pandas>=2", "scipy"}, {"micropip"}} {
		_, err := compile(t, worker.Manifest{"type": TypeWebPython, "script": "print(1)", "requirements": reqs})
		if !errors.Is(err, ErrRequirementOffline) || !errors.Is(err, worker.ErrInvalidConfig) || !strings.Contains(err.Error(), fmt.Sprintf("%q", reqs[len(reqs)-1])) {
			t.Errorf("%v: err = %v, want ErrRequirementOffline naming it", reqs, err)
		}
	}
	for _, reqs := range [][]any{nil, {}, {"hypha-rpc"}, {"hypha_rpc==0.20.38"}, {"Hypha-RPC >= 0.20"}} {
		if _, err := compile(t, worker.Manifest{"type": TypeWebPython, "script": "print(1)", "requirements": reqs}); err != nil {
			t.Errorf("%v: %v", reqs, err)
		}
	}
	if _, err := compile(t, worker.Manifest{"type": TypeWebPython, "script": "print(1)", "requirements": "numpy"}); !errors.Is(err, worker.ErrInvalidConfig) {
		t.Errorf("requirements as a string: err = %v", err)
	}
}

// TestHostileWebPythonManifest: no manifest value, nor the Python source
// itself, can end the page's script element: everything is JSON.
func TestHostileWebPythonManifest(t *testing.T) {
	evil := `</script><script>alert("pwned")</script><!--`
	res, err := compile(t, worker.Manifest{
		"type": TypeWebPython, "name": evil, "description": evil, "version": evil,
		"script": "print('" + evil + "')\n# " + evil,
	})
	if err != nil {
		t.Fatal(err)
	}
	page := res.Files[0].Content.(string)
	if strings.Contains(page, "pwned\")</script>") || strings.Count(page, "</script>") != 1 || strings.Contains(page, "<!--") {
		t.Fatalf("a value breaks out of the page's script:\n%s", page)
	}
}

// TestWebPythonExecuteBeforeReady and type guard: execute on a page that is
// not a web-python page still runs JavaScript.
func TestCompileWebPythonFromFile(t *testing.T) {
	res, err := compile(t, worker.Manifest{"type": TypeWebPython, "name": "P", "entry_point": "app.py"},
		worker.File{Path: "app.py", Content: "print('hi')", Format: "text"}, worker.File{Path: "data.csv", Content: "a,b"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.EntryPoint() != DefaultEntryPoint || len(res.Files) != 2 || res.Files[1].Path != DefaultEntryPoint {
		t.Fatalf("compile result: %v %+v", res.Manifest, res.Files)
	}
	page := res.Files[1].Content.(string)
	for _, want := range []string{`"app.py"`, `/assets/pyodide/pyodide.mjs`, `/assets/hypha-rpc-websocket.mjs`, `print('hi')`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "cdn.") || strings.Contains(page, "pypi") {
		t.Errorf("the page names a CDN or PyPI")
	}
	// A web-python source is Python even when it looks like HTML (the
	// page then shows Python's SyntaxError): it is never served as a page.
	res, err = compile(t, worker.Manifest{"type": TypeWebPython, "script": "<html><script>alert(1)</script></html>"})
	if err != nil || !strings.Contains(res.Files[0].Content.(string), "__hyphaWebPython") || strings.Count(res.Files[0].Content.(string), "</script>") != 1 {
		t.Fatalf("an HTML-looking web-python source: %v", err)
	}
}

// TestServerAppsWebPython installs examples/hello-web-python through
// public/server-apps, starts it on the browser worker (the page loads
// Pyodide from the server's /assets/pyodide/), calls its default service,
// runs Python through the controller's execute, reads print's output in the
// logs; then an upstream-style ImJoy source with a Python script.
func TestServerAppsWebPython(t *testing.T) {
	w, _, _, user, apps, ctx := controllerSetup(t)
	dir := filepath.Join("..", "..", "examples", "hello-web-python")
	manBytes, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	if err := json.Unmarshal(manBytes, &man); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "main.py"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id": "hello-web-python", "manifest": man,
		"files":   []any{map[string]any{"path": "main.py", "content": string(src)}},
		"timeout": 60.0, "wait_for_service": "default",
	}); err != nil {
		t.Fatalf("install: %v", err)
	}
	v, err := apps.Call(ctx, "start", "hello-web-python", rpc.Kwargs{"timeout": 60.0, "wait_for_service": "default"})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid := v.(map[string]any)["id"].(string)
	app, err := user.GetService(ctx, sid+":default")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := app.Call(ctx, "hello", "go"); err != nil || !strings.HasPrefix(fmt.Sprint(got), "hello go from hello-web-python (Python 3.") {
		t.Fatalf("hello = %v, %v", got, err)
	}
	if got, err := app.Call(ctx, "fib", 30); err != nil || fmt.Sprint(got) != "832040" {
		t.Fatalf("fib(30) = %v, %v", got, err)
	}
	got, err := apps.Call(ctx, "execute", sid, "import os\nawait fib(10), os.environ['HYPHA_WORKSPACE']")
	if err != nil || fmt.Sprint(got) != "[55 ws-user-alice]" {
		t.Fatalf("execute through the controller = %v, %v", got, err)
	}
	logs, err := apps.Call(ctx, "get_logs", sid, rpc.Kwargs{"type": "console"})
	if err != nil || !strings.Contains(fmt.Sprint(logs), "[log] hello from the web-python app in ws-user-alice") {
		t.Fatalf("console logs = %v, %v", logs, err)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}

	// Upstream's own web-python test app, unchanged.
	const upstreamSource = `
<config lang="json">
{
    "name": "Web Python App",
    "type": "web-python",
    "version": "0.1.0",
    "description": "A Python app running in the browser with Pyodide"
}
</config>

<script lang="python">
import js
from hypha_rpc import api

print("Web Python app is setting up...")

def calculate(x, y):
    return x + y

def get_info():
    return {
        "platform": "pyodide",
        "message": "Running Python in the browser!"
    }

api.export({
    "calculate": calculate,
    "get_info": get_info
})
</script>
`
	if _, err := apps.Call(ctx, "install", rpc.Kwargs{
		"app_id": "upstream-web-python", "source": upstreamSource, "timeout": 60.0, "wait_for_service": "default",
	}); err != nil {
		t.Fatalf("install the upstream source: %v", err)
	}
	v, err = apps.Call(ctx, "start", "upstream-web-python", rpc.Kwargs{"timeout": 60.0, "wait_for_service": "default"})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sid = v.(map[string]any)["id"].(string)
	app, err = user.GetService(ctx, sid+":default")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := app.Call(ctx, "calculate", 3, 4); err != nil || fmt.Sprint(got) != "7" {
		t.Fatalf("calculate = %v, %v", got, err)
	}
	if got, err := app.Call(ctx, "get_info"); err != nil || fmt.Sprint(got) != "map[message:Running Python in the browser! platform:pyodide]" {
		t.Fatalf("get_info = %v, %v", got, err)
	}
	if _, err := apps.Call(ctx, "stop", sid); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, "the sessions to go", func() bool { return w.Sessions.Len() == 0 })
}
