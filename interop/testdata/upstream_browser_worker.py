"""Drive the REAL upstream app controller (public/server-apps) against our Go
browser worker (`hypha worker browser --visibility public`): a `window` app
(installed from its script, started, its `default` service called), and a
`web-app` on a local page with cookies and local storage preloaded; logs
read through the controller, execute and take_screenshot called on the
worker service; everything stopped and uninstalled.

Run with the peers harness (hypha_rpc importable; upstream started with
PEERS_S3=1):

    ../shared/peers/run-py.sh interop/testdata/upstream_browser_worker.py \
        http://127.0.0.1:PORT ROOT_TOKEN WEB_APP_URL

It prints every call's result and duration, and ends with one line
`RESULT {json}` holding what interop's TestUpstreamBrowserWorker checks (or
`ERROR message`). Standard library + hypha_rpc only.
"""
import asyncio
import base64
import json
import sys
import time
import traceback

from hypha_rpc import connect_to_server

WINDOW_APP = """\
console.log("hello from the window app", window.location.pathname);
let calls = 0;
await api.export({
  name: "go-browser-window",
  ping: () => "pong",
  add: (a, b) => { calls += 1; return a + b; },
  whoami: () => ({workspace: api.config.workspace, client_id: api.config.client_id, calls}),
});
"""

# For the iframe and web-worker types (the same script, told apart by where
# it runs) and an ImJoy-style hypha source, which upstream's controller
# splits before compile (config into the manifest, the script into main.js).
TYPED_APP = 'await api.export({ping: () => "pong-" + (typeof window === "undefined" ? "worker" : "page")});'
HYPHA_SOURCE = """<config lang="json">{"name": "go-browser-hypha", "type": "hypha", "version": "0.1.0"}</config>
<script lang="javascript">
await api.export({ping: () => "pong-hypha"});
</script>
<window><div id="x">hi</div></window>
"""

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


def log_items(logs):
    return [(i.get("type"), i.get("content")) for i in logs.get("items", [])]


async def main(url, token, web_app_url):
    out = {}
    root = await connect_to_server({"server_url": url, "token": token, "client_id": "upstream-browser-check"})
    print("connected as", root.config.user["id"], "in", root.config.workspace, flush=True)
    apps = await root.get_service("public/server-apps")
    workers = await timed("list_workers", apps.list_workers())
    ours = [w for w in workers if "window" in (w.get("supported_types") or [])]
    show("list_workers", [(w.get("id"), w.get("supported_types")) for w in workers])
    out["workers"] = [{"id": w.get("id"), "supported_types": list(w.get("supported_types") or [])} for w in ours]
    assert ours, workers
    browser = await root.get_service(ours[0]["id"])

    progress = []

    def cb(msg):
        progress.append(msg.get("message"))
        print(f"  [progress] {msg.get('type')}: {msg.get('message')}", flush=True)

    # --- window: installed from its script; install's own trial start waits
    # for the default service, as upstream's does by default.
    info = await timed("install(window)", apps.install(
        manifest={"type": "window", "name": "go-browser-window", "version": "0.1.0",
                  "description": "upstream controller -> Go browser worker", "entry_point": "main.js"},
        files=[{"path": "main.js", "content": WINDOW_APP, "format": "text"}],
        overwrite=True, timeout=120, progress_callback=cb))
    show("install(window)", info)
    out["install"] = {"id": info["id"], "type": info.get("type"), "entry_point": info.get("entry_point"),
                      "services": [s.get("id") for s in info.get("services") or []]}
    out["install_progress"] = progress[:]
    app_id = info["id"]
    files = await timed("list_files(window)", apps.list_files(app_id))
    out["files"] = sorted(f.get("name") for f in files)

    progress.clear()
    sess = await timed("start(window)", apps.start(app_id, wait_for_service="default", timeout=120, progress_callback=cb))
    show("start(window)", sess)
    sid = sess["id"]
    out["start"] = {k: sess.get(k) for k in ("id", "app_id", "status", "worker_id")}
    out["start_services"] = [s.get("id") for s in sess.get("services") or []]
    out["start_progress"] = progress[:]
    running = await timed("list_running", apps.list_running())
    out["running"] = [r.get("id") for r in running]

    svc = await timed("get_service(default)", root.get_service(f"{sid}:default"))
    out["ping"] = await svc.ping()
    out["add"] = await svc.add(2, 40)
    out["whoami"] = plain(await svc.whoami())

    out["execute_title"] = plain(await timed("execute(title)", browser.execute(
        session_id=sid, script="document.title", config={"timeout": 30.0})))
    out["execute_promise"] = plain(await timed("execute(promise)", browser.execute(
        session_id=sid, script="new Promise(r => setTimeout(() => r(6 * 7), 10))")))
    try:
        await browser.execute(session_id=sid, script="throw new Error('boom from upstream check')")
        out["execute_throw"] = "no error"
    except Exception as e:
        out["execute_throw"] = str(e)[:300]
    shot = await timed("take_screenshot", browser.take_screenshot(sid, "png"))
    raw = shot if isinstance(shot, (bytes, bytearray)) else base64.b64decode(shot)
    out["screenshot"] = {"type": type(shot).__name__, "png": raw[:8] == b"\x89PNG\r\n\x1a\n", "bytes": len(raw)}

    logs = await timed("get_logs(window)", apps.get_logs(sid))
    show("get_logs(window)", logs)
    out["logs"] = {"keys": sorted(logs.keys()), "items": log_items(logs)}
    page = await timed("get_logs(window, type=console)", apps.get_logs(sid, type="console", limit=1))
    out["logs_console"] = {"total": page.get("total"), "items": log_items(page)}

    await timed("stop(window)", apps.stop(sid))
    running = await timed("list_running(after stop)", apps.list_running())
    out["running_after_stop"] = [r.get("id") for r in running]
    try:
        await root.get_service(f"{sid}:default")
        out["service_after_stop"] = "still there"
    except Exception as e:
        out["service_after_stop"] = str(e)[:200]
    try:
        await browser.execute(session_id=sid, script="1")
        out["execute_after_stop"] = "no error"
    except Exception as e:
        out["execute_after_stop"] = str(e)[:300]
    await timed("uninstall(window)", apps.uninstall(app_id))

    # --- iframe, web-worker and a hypha source: installed, started, default
    # service called, stopped, uninstalled.
    out["types"] = {}
    for typ in ["iframe", "web-worker", "hypha"]:
        if typ == "hypha":
            info = await timed(f"install({typ})", apps.install(source=HYPHA_SOURCE, overwrite=True, timeout=120))
        else:
            info = await timed(f"install({typ})", apps.install(
                manifest={"type": typ, "name": f"go-browser-{typ}", "entry_point": "main.js"},
                files=[{"path": "main.js", "content": TYPED_APP, "format": "text"}], overwrite=True, timeout=120))
        s = await timed(f"start({typ})", apps.start(info["id"], wait_for_service="default", timeout=120))
        svc = await root.get_service(s["id"] + ":default")
        out["types"][typ] = {"stored_type": info.get("type"), "ping": await svc.ping()}
        await apps.stop(s["id"])
        await apps.uninstall(info["id"])

    # --- web-app: an external page (the Go test's httptest server) with
    # cookies and local storage preloaded; no service to wait for.
    info = await timed("install(web-app)", apps.install(
        manifest={"type": "web-app", "name": "go-browser-web-app", "version": "0.1.0",
                  "entry_point": web_app_url,
                  "cookies": {"session": "c00kie"},
                  "local_storage": {"greeting": "hello from local_storage"}},
        files=[], overwrite=True, wait_for_service=False, timeout=60, progress_callback=cb))
    show("install(web-app)", info)
    web_id = info["id"]
    out["web_install"] = {"type": info.get("type"), "entry_point": info.get("entry_point")}
    sess = await timed("start(web-app)", apps.start(web_id, wait_for_service=False, timeout=60))
    wsid = sess["id"]
    out["web_start"] = {k: sess.get(k) for k in ("id", "status", "worker_id")}
    out["web_read"] = plain(await timed("execute(web-app)", browser.execute(
        session_id=wsid,
        script="({title: document.getElementById('t').textContent, cookie: document.cookie,"
               " greeting: localStorage.getItem('greeting'), search: location.search})")))
    logs = await timed("get_logs(web-app)", apps.get_logs(wsid))
    out["web_logs"] = log_items(logs)
    await timed("stop(web-app)", apps.stop(wsid))
    await timed("uninstall(web-app)", apps.uninstall(web_id))
    running = await apps.list_running()
    out["running_at_end"] = [r.get("id") for r in running]
    installed = await apps.list_apps()
    out["apps_at_end"] = [a.get("id") for a in installed if a.get("id") in (app_id, web_id)]

    out["timings"] = timings
    await root.disconnect()
    print("RESULT " + json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
    except Exception as e:
        traceback.print_exc()
        print("ERROR " + (str(e) or type(e).__name__).replace("\n", " ")[:2000], flush=True)
        sys.exit(1)
