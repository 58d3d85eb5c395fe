"""Drive the REAL upstream app controller (public/server-apps) against our Go
process worker (`hypha worker process --visibility public`).

Run with the peers harness (hypha_rpc importable; upstream started with
PEERS_S3=1):

    ../shared/peers/run-py.sh interop/testdata/upstream_worker.py \
        http://127.0.0.1:PORT ROOT_TOKEN [NODE]

1. python-eval: install (wait_for_service=False) -> start (detached) ->
   list_running -> get_logs -> stop -> uninstall, printing every result.
2. with NODE=1 (the worker needs --node-path to hypha-rpc's node_modules):
   node-eval examples/hello-node, whose app registers a "default" service with
   the npm hypha-rpc client: install + start with wait_for_service="default"
   go through the upstream controller's service_added wait; the service is
   then called, logs read, the session stopped and the app uninstalled.

Standard library + hypha_rpc only. Prints UPSTREAM_WORKER OK at the end.
"""
import asyncio
import json
import sys
import time

from hypha_rpc import connect_to_server

PY_APP = """\
import os, sys, time
print("hello from python-eval", os.environ.get("HYPHA_CLIENT_ID"), flush=True)
print("workspace", os.environ.get("HYPHA_WORKSPACE"), "app", os.environ.get("HYPHA_APP_ID"), flush=True)
print("to stderr", file=sys.stderr, flush=True)
time.sleep(600)
"""

# The same app as examples/hello-node/index.js: run-py.sh copies this script
# alone into the peers chroot, where the repository cannot be read.
NODE_APP = r"""
const WebSocket = require("ws");
if (typeof globalThis.WebSocket === "undefined") globalThis.WebSocket = WebSocket;
const { hyphaWebsocketClient } = require("hypha-rpc");
async function main() {
  const server = await hyphaWebsocketClient.connectToServer({
    server_url: process.env.HYPHA_SERVER_URL,
    workspace: process.env.HYPHA_WORKSPACE,
    client_id: process.env.HYPHA_CLIENT_ID,
    token: process.env.HYPHA_TOKEN,
  });
  await server.registerService({
    id: "default",
    name: "hello-node",
    config: { visibility: "protected" },
    add: (a, b) => a + b,
    greet: (name) => `Hello, ${name}, from Node ${process.version}!`,
  });
  console.log(`hello-node ready in workspace ${server.config.workspace} as ${process.env.HYPHA_CLIENT_ID}`);
}
main().catch((err) => { console.error("hello-node failed:", err); process.exit(1); });
"""


def show(label, value, limit=1500):
    try:
        text = json.dumps(value, default=lambda x: f"<{type(x).__name__}>", sort_keys=True)
    except Exception:
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "...(%d chars)" % len(text)
    print(f"{label} -> {text}", flush=True)


async def timed(label, coro):
    t0 = time.monotonic()
    try:
        res = await coro
    except Exception as e:  # print and re-raise: every call is reported
        print(f"{label} FAILED after {time.monotonic() - t0:.2f}s: {e}", flush=True)
        raise
    print(f"{label} took {time.monotonic() - t0:.2f}s", flush=True)
    return res


async def progress_printer(label):
    def cb(msg):
        print(f"  [{label} progress] {msg.get('type')}: {msg.get('message')}", flush=True)
    return cb


async def python_eval(apps):
    cb = await progress_printer("python-eval")
    info = await timed("install", apps.install(
        manifest={"type": "python-eval", "entry_point": "main.py", "name": "go-worker-py",
                  "version": "0.1.0", "description": "upstream controller -> Go process worker"},
        files=[{"path": "main.py", "content": PY_APP, "format": "text"}],
        wait_for_service=False, overwrite=True, progress_callback=cb))
    show("install", info)
    app_id = info["id"]
    sess = await timed("start", apps.start(app_id, wait_for_service=False, timeout=30,
                                           progress_callback=cb))
    show("start", sess)
    sid = sess["id"]
    running = await timed("list_running", apps.list_running())
    show("list_running", running)
    assert any(r.get("id") == sid for r in running), running
    await asyncio.sleep(1.0)  # let the app print
    logs = await timed("get_logs", apps.get_logs(sid))
    show("get_logs", logs)
    contents = [i.get("content") for i in logs.get("items", [])]
    assert any("hello from python-eval" in (c or "") for c in contents), logs
    err_logs = await timed("get_logs(type=stderr)", apps.get_logs(sid, type="stderr"))
    show("get_logs(type=stderr)", err_logs)
    page = await timed("get_logs(offset=1,limit=2)", apps.get_logs(sid, offset=1, limit=2))
    show("get_logs(offset=1,limit=2)", page)
    res = await timed("stop", apps.stop(sid))
    show("stop", res)
    running = await timed("list_running", apps.list_running())
    show("list_running after stop", [r.get("id") for r in running])
    assert not any(r.get("id") == sid for r in running), running
    res = await timed("uninstall", apps.uninstall(app_id))
    show("uninstall", res)


async def python_eval_exit(apps):
    """An app that exits by itself (code 3): start returns once the process
    runs (upstream's own python-eval worker blocks until it exits); the exit
    shows in get_logs; the upstream session stays listed until stopped."""
    info = await timed("install(exit 3)", apps.install(
        manifest={"type": "python-eval", "entry_point": "main.py", "name": "go-worker-py-exit",
                  "version": "0.1.0"},
        files=[{"path": "main.py", "content": "print('bye')\nraise SystemExit(3)\n", "format": "text"}],
        wait_for_service=False, overwrite=True))
    app_id = info["id"]
    sess = await timed("start(exit 3)", apps.start(app_id, wait_for_service=False, timeout=30))
    show("start(exit 3)", sess)
    await asyncio.sleep(1.0)
    logs = await timed("get_logs(exit 3)", apps.get_logs(sess["id"]))
    show("get_logs(exit 3)", logs.get("items"))
    running = await timed("list_running", apps.list_running())
    show("list_running(exit 3)", [(r.get("id"), r.get("status")) for r in running])
    show("stop(exit 3)", await timed("stop(exit 3)", apps.stop(sess["id"])))
    show("uninstall(exit 3)", await timed("uninstall(exit 3)", apps.uninstall(app_id)))


async def node_eval(apps, root):
    cb = await progress_printer("node-eval")
    info = await timed("install(node-eval, wait_for_service=default)", apps.install(
        manifest={"type": "node-eval", "entry_point": "index.js", "name": "go-worker-node",
                  "version": "0.1.0", "description": "hello-node via the upstream controller"},
        files=[{"path": "index.js", "content": NODE_APP, "format": "text"}],
        wait_for_service="default", overwrite=True, timeout=60, progress_callback=cb))
    show("install(node)", info)
    app_id = info["id"]
    sess = await timed("start(node, wait_for_service=default)",
                       apps.start(app_id, wait_for_service="default", timeout=60, progress_callback=cb))
    show("start(node)", sess)
    sid = sess["id"]
    svc = await root.get_service(sess["service_id"])
    greet = await svc.greet("upstream")
    s = await svc.add(2, 3)
    print(f"default service {sess['service_id']}: greet -> {greet!r}, add(2,3) -> {s}", flush=True)
    assert s == 5, s
    logs = await timed("get_logs(node)", apps.get_logs(sid))
    show("get_logs(node)", logs)
    res = await timed("stop(node)", apps.stop(sid))
    show("stop(node)", res)
    res = await timed("uninstall(node)", apps.uninstall(app_id))
    show("uninstall(node)", res)


async def main(url, token, with_node):
    root = await connect_to_server({"server_url": url, "token": token, "client_id": "upstream-worker-check"})
    print("connected as", root.config.user["id"], "in", root.config.workspace, flush=True)
    apps = await root.get_service("public/server-apps")
    workers = await timed("list_workers", apps.list_workers())
    show("list_workers", [(w.get("id"), w.get("supported_types")) for w in workers])
    assert any("python-eval" in (w.get("supported_types") or []) for w in workers), workers
    await python_eval(apps)
    await python_eval_exit(apps)
    if with_node:
        await node_eval(apps, root)
    await root.disconnect()
    print("UPSTREAM_WORKER OK", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9527",
                     sys.argv[2] if len(sys.argv) > 2 else None,
                     len(sys.argv) > 3 and sys.argv[3] not in ("", "0")))
