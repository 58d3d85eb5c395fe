"""Drive the REAL upstream app controller (public/server-apps) against our Go
conda worker (`hypha worker conda --visibility public`), and call `execute` on
the worker service directly, as upstream's conda worker documentation does
(`conda_worker.execute(session_id=..., script=..., config={"timeout": ...})`).

Run with the peers harness (hypha_rpc importable; upstream started with
PEERS_S3=1):

    ../shared/peers/run-py.sh interop/testdata/upstream_conda_worker.py \
        http://127.0.0.1:PORT ROOT_TOKEN

It prints every call's result and duration, and ends with one line
`RESULT {json}` holding what interop's TestUpstreamCondaWorker checks (or
`ERROR message`). Standard library + hypha_rpc only.
"""
import asyncio
import json
import sys
import time
import traceback

from hypha_rpc import connect_to_server

APP = """\
import os
from IPython.display import display
print("hello from conda-jupyter-kernel app", os.environ.get("HYPHA_APP_ID"), flush=True)
print("workspace", os.environ.get("HYPHA_WORKSPACE"), flush=True)
counter = 41
def greet(name):
    return f"Hello, {name}!"
"""

# a 1x1 PNG
PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

DISPLAY = (
    "import base64\n"
    "from IPython.display import Image, display\n"
    f"display(Image(data=base64.b64decode('{PNG_B64}')))\n"
)

timings = {}


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
    timings[label] = round(time.monotonic() - t0, 3)
    print(f"{label} took {timings[label]:.2f}s", flush=True)
    return res


def plain(v):
    """A JSON-able copy of a hypha-rpc result (ObjectProxy, lists)."""
    return json.loads(json.dumps(v, default=lambda x: dict(x) if hasattr(x, "keys") else str(x)))


async def main(url, token):
    out = {}
    root = await connect_to_server({"server_url": url, "token": token, "client_id": "upstream-conda-check"})
    print("connected as", root.config.user["id"], "in", root.config.workspace, flush=True)
    apps = await root.get_service("public/server-apps")
    workers = await timed("list_workers", apps.list_workers())
    ours = [w for w in workers if "conda-jupyter-kernel" in (w.get("supported_types") or [])]
    show("list_workers", [(w.get("id"), w.get("supported_types")) for w in workers])
    out["workers"] = [{"id": w.get("id"), "supported_types": list(w.get("supported_types") or [])} for w in ours]
    assert ours, workers

    progress = []

    def cb(msg):
        progress.append(msg.get("message"))
        print(f"  [progress] {msg.get('type')}: {msg.get('message')}", flush=True)

    info = await timed("install", apps.install(
        manifest={"type": "conda-jupyter-kernel", "name": "go-conda-worker", "version": "0.1.0",
                  "description": "upstream controller -> Go conda worker",
                  "entry_point": "main.py", "dependencies": ["numpy"], "channels": ["conda-forge"]},
        files=[{"path": "main.py", "content": APP, "format": "text"}],
        wait_for_service=False, overwrite=True, timeout=180, progress_callback=cb))
    show("install", info)
    out["install"] = {"id": info["id"], "type": info.get("type"), "entry_point": info.get("entry_point"),
                      "dependencies": plain(info.get("dependencies")), "channels": plain(info.get("channels"))}
    out["install_progress"] = progress[:]
    app_id = info["id"]

    progress.clear()
    sess = await timed("start", apps.start(app_id, wait_for_service=False, timeout=120, progress_callback=cb))
    show("start", sess)
    sid = sess["id"]
    out["start"] = {k: sess.get(k) for k in ("id", "app_id", "status", "worker_id")}
    out["start_progress"] = progress[:]
    running = await timed("list_running", apps.list_running())
    out["running"] = [r.get("id") for r in running]

    worker_id = sess.get("worker_id") or ours[0]["id"]
    conda_worker = await root.get_service(worker_id)
    ex = {}
    ex["print"] = await timed("execute(print)", conda_worker.execute(
        session_id=sid, script="print('hi from execute')", config={"timeout": 30.0}))
    ex["state"] = await timed("execute(state)", conda_worker.execute(
        session_id=sid, script="counter += 1\ngreet('upstream'), counter", config={"timeout": 30.0}))
    ex["display"] = await timed("execute(display)", conda_worker.execute(
        session_id=sid, script=DISPLAY, config={"timeout": 30.0}))
    ex["error"] = await timed("execute(error)", conda_worker.execute(
        session_id=sid, script="1/0", config={"timeout": 30.0}))
    ex["timeout"] = await timed("execute(timeout)", conda_worker.execute(
        session_id=sid, script="import time\ntime.sleep(60)", config={"timeout": 1.0}))
    ex["after_timeout"] = await timed("execute(after timeout)", conda_worker.execute(
        session_id=sid, script="counter", config={"timeout": 30.0}))
    seen = []
    ex["callback"] = await timed("execute(output_callback)", conda_worker.execute(
        session_id=sid, script="for i in range(3): print('line', i, flush=True)",
        config={"timeout": 30.0}, output_callback=lambda o: seen.append(o.get("type"))))
    out["callback_types"] = seen
    for k, v in ex.items():
        show(f"execute[{k}]", v)
    out["execute"] = plain(ex)

    logs = await timed("get_logs", apps.get_logs(sid))
    show("get_logs", logs)
    out["logs"] = {"keys": sorted(logs.keys()), "total": logs.get("total"),
                   "items": [(i.get("type"), i.get("content")) for i in logs.get("items", [])]}
    page = await timed("get_logs(type=stdout,limit=1)", apps.get_logs(sid, type="stdout", limit=1))
    out["logs_page"] = {"total": page.get("total"), "items": [(i.get("type"), i.get("content")) for i in page.get("items", [])]}

    res = await timed("stop", apps.stop(sid))
    show("stop", res)
    running = await timed("list_running(after stop)", apps.list_running())
    out["running_after_stop"] = [r.get("id") for r in running]
    try:
        gone = await conda_worker.execute(session_id=sid, script="1", config={"timeout": 5.0})
        out["execute_after_stop"] = plain(gone)
    except Exception as e:
        out["execute_after_stop_error"] = str(e)[:300]
    res = await timed("uninstall", apps.uninstall(app_id))
    show("uninstall", res)
    out["timings"] = timings
    await root.disconnect()
    print("RESULT " + json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9527",
                         sys.argv[2] if len(sys.argv) > 2 else None))
    except Exception as e:
        traceback.print_exc()
        print("ERROR " + (str(e) or type(e).__name__).replace("\n", " ")[:2000], flush=True)
        sys.exit(1)
