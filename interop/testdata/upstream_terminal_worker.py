"""Drive the REAL upstream app controller (public/server-apps) against our Go
terminal worker (`hypha worker terminal --visibility public`), and call the
terminal functions on the worker service directly, as an upstream client
does (`terminal_worker.execute(session_id=..., script=..., config={...})`;
upstream's controller relays none of them, only get_logs).

The same scenario then runs against upstream's own terminal worker
(`hypha/workers/terminal.py`, started in the upstream server with
--enable-terminal-worker) when one is listed, so the result shapes can be
compared; its failures are recorded, not raised.

Run with the peers harness (hypha_rpc importable; upstream started with
PEERS_S3=1):

    ../shared/peers/run-py.sh interop/testdata/upstream_terminal_worker.py \
        http://127.0.0.1:PORT ROOT_TOKEN

Before stopping the session on our worker it prints
`READY {"session_id": ...}` and waits for a line (or end of file) on stdin,
so that the test can look at the session's processes. It ends with one line
`RESULT {json}` (or `ERROR message`). Standard library + hypha_rpc only.
"""
import asyncio
import json
import sys
import time
import traceback

from hypha_rpc import connect_to_server

HELLO = "echo hello from the terminal app\n"
MARK = "31337"  # a background `sleep` the session leaves running until stop


def show(label, value, limit=1500):
    try:
        text = json.dumps(value, default=lambda x: f"<{type(x).__name__}>", sort_keys=True)
    except Exception:
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + "...(%d chars)" % len(text)
    print(f"{label} -> {text}", flush=True)


def plain(v):
    """A JSON-able copy of a hypha-rpc result (ObjectProxy, lists)."""
    return json.loads(json.dumps(v, default=lambda x: dict(x) if hasattr(x, "keys") else str(x)))


def shape(v):
    """The shape of a result: a dict's sorted keys, or the type name."""
    if hasattr(v, "keys"):
        return sorted(v.keys())
    return type(v).__name__


async def scenario(root, apps, wid, label, strict, handshake):
    """The life cycle of a bash terminal app on the worker wid. With strict
    every failure is raised; otherwise it is recorded under errors."""
    out = {"errors": {}}
    timings = {}

    async def call(name, coro):
        t0 = time.monotonic()
        try:
            res = await coro
        except Exception as e:
            print(f"[{label}] {name} FAILED after {time.monotonic() - t0:.2f}s: {e}", flush=True)
            if strict:
                raise
            out["errors"][name] = str(e)[:400]
            return None
        timings[name] = round(time.monotonic() - t0, 3)
        print(f"[{label}] {name} took {timings[name]:.2f}s", flush=True)
        return res

    progress = []

    def cb(msg):
        progress.append(msg.get("message"))
        print(f"  [{label} progress] {msg.get('type')}: {msg.get('message')}", flush=True)

    info = await call("install", apps.install(
        manifest={"type": "terminal", "name": f"terminal-check-{label}", "version": "0.1.0",
                  "description": "upstream controller -> terminal worker",
                  "entry_point": "hello.sh", "startup_command": "bash"},
        files=[{"path": "hello.sh", "content": HELLO, "format": "text"}],
        worker_id=wid, wait_for_service=False, overwrite=True, timeout=60, progress_callback=cb))
    if info is None:
        return out
    show(f"[{label}] install", info)
    app_id = info["id"]
    out["install"] = {"type": info.get("type"), "entry_point": info.get("entry_point"),
                      "startup_command": info.get("startup_command")}
    out["install_progress"] = progress[:]

    progress.clear()
    sess = await call("start", apps.start(app_id, worker_id=wid, wait_for_service=False, timeout=60,
                                          progress_callback=cb))
    if sess is None:
        return out
    show(f"[{label}] start", sess)
    sid = sess["id"]
    out["start"] = {k: sess.get(k) for k in ("id", "app_id", "status", "worker_id")}
    out["start_progress"] = progress[:]
    running = await call("list_running", apps.list_running())
    out["running"] = [r.get("id") for r in (running or [])]

    term = await root.get_service(wid)
    out["functions"] = sorted(k for k in term.keys() if not k.startswith("_") and callable(term[k]))

    async def execute(name, script, **config):
        config.setdefault("timeout", 20.0)
        r = await call(name, term.execute(session_id=sid, script=script, config=config))
        show(f"[{label}] {name}", r)
        return plain(r) if r is not None else None

    # Let bash print its first prompt before the first command is typed.
    await asyncio.sleep(1.0)
    ex = {}
    ex["echo"] = await execute("execute(echo)", "echo hello-$((6*7))")
    ex["raw"] = await execute("execute(raw)", "echo raw-$((6*7))", raw_output=True)
    await execute("execute(set)", "X=42; cd /tmp")
    ex["state"] = await execute("execute(state)", 'echo "X=$X in $PWD"')
    ex["multi"] = await execute("execute(multi)", "for i in 1 2 3; do echo line$i; done")
    ex["false"] = await execute("execute(false)", "false")
    ex["hello_sh"] = await execute("execute(hello.sh)", "cd \"$OLDPWD\" && bash hello.sh")
    out["execute"] = ex

    w = await call("write_terminal", term.write_terminal(session_id=sid, data="echo typed-$((40+2))\r"))
    out["write"] = plain(w) if w is not None else None
    reads, seen = [], ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = await call("read_terminal", term.read_terminal(session_id=sid))
        if r is None:
            break
        reads.append(shape(r))
        seen += r.get("output") or ""
        if "typed-42" in seen.replace("typed-$((40+2))", ""):
            break
        await asyncio.sleep(0.2)
    out["read"] = {"shapes": sorted(set(json.dumps(s) for s in reads)), "saw_output": "typed-42" in seen.replace("typed-$((40+2))", ""),
                   "calls": len(reads)}
    show(f"[{label}] read_terminal", out["read"])

    rz = await call("resize_terminal", term.resize_terminal(session_id=sid, rows=30, cols=100))
    out["resize"] = plain(rz) if rz is not None else None
    out["stty"] = await execute("execute(stty size)", "stty size")

    sc = await call("get_screen_content", term.get_screen_content(session_id=sid))
    if sc is not None:
        content = sc.get("content") or ""
        out["screen_content"] = {"keys": shape(sc), "has_typed": "typed-42" in content,
                                 "has_escape": "\x1b" in content, "success": sc.get("success"),
                                 "rows": sc.get("rows"), "cols": sc.get("cols")}
        show(f"[{label}] get_screen_content", out["screen_content"])

    # attach: upstream's answers the initial state when no callback is given;
    # ours is a generator. Record what a plain call gives.
    try:
        a = await asyncio.wait_for(term.attach(session_id=sid), 20)
        if hasattr(a, "__anext__"):
            first = await asyncio.wait_for(a.__anext__(), 20)
            out["attach"] = {"kind": "generator", "first": shape(first), "first_type": first.get("type")}
            try:
                await a.aclose()
            except Exception:
                pass
        else:
            out["attach"] = {"kind": type(a).__name__, "shape": shape(a)}
    except Exception as e:
        out["errors"]["attach"] = str(e)[:400]
    show(f"[{label}] attach", out.get("attach"))
    # attach as upstream's web terminal calls it: attach(session_id, on_screen_update).
    got = []

    async def on_update(data):
        got.append(data.get("type"))

    task = asyncio.ensure_future(term.attach(sid, on_update))
    await asyncio.sleep(1.0)
    await term.write_terminal(session_id=sid, data="echo attached-$((3+4))\r")
    await asyncio.sleep(2.0)
    if task.done():
        try:
            r = task.result()
            out["attach_callback"] = {"returned": shape(r), "updates": got[:5]}
        except Exception as e:
            out["attach_callback"] = {"error": str(e)[:300], "updates": got[:5]}
    else:
        task.cancel()
        out["attach_callback"] = {"returned": "still attached", "updates": got[:5]}
    show(f"[{label}] attach(session_id, on_screen_update)", out["attach_callback"])

    ls = await call("list_sessions", term.list_sessions())
    if ls is not None:
        ls = plain(ls)
        items = ls.get("sessions") if isinstance(ls, dict) else ls
        out["list_sessions"] = {"shape": shape(ls) if isinstance(ls, dict) else "list",
                                "item": sorted(items[0].keys()) if items and isinstance(items[0], dict) else None}
        show(f"[{label}] list_sessions", out["list_sessions"])
    si = await call("get_session_info", apps.get_session_info(sid))
    if si is not None:
        out["session_info"] = sorted(si.keys())

    # Leave a background process that stop must end.
    await execute("execute(background)", f"sleep {MARK} &")

    logs = await call("get_logs", apps.get_logs(sid))
    if logs is not None:
        items = logs.get("items", [])
        text = "".join(i.get("content") or "" for i in items)
        out["logs"] = {"keys": sorted(logs.keys()), "types": sorted({i.get("type") for i in items}),
                       "has_hello": "hello-42" in text, "has_typed": "typed-42" in text,
                       "has_escape": "\x1b" in text}
        show(f"[{label}] get_logs", out["logs"])
    page = await call("get_logs(type=stdout,limit=1)", apps.get_logs(sid, type="stdout", limit=1))
    if page is not None:
        out["logs_page"] = {"total": page.get("total"), "n": len(page.get("items", [])),
                            "types": [i.get("type") for i in page.get("items", [])]}
    scr = await call("get_logs(type=screen)", apps.get_logs(sid, type="screen"))
    if scr is not None:
        text = scr if isinstance(scr, str) else "".join(i.get("content") or "" for i in scr.get("items", []))
        out["logs_screen"] = {"kind": type(scr).__name__ if isinstance(scr, str) else "page",
                              "shape": shape(scr), "has_typed": "typed-42" in text, "has_escape": "\x1b" in text}
        show(f"[{label}] get_logs(type=screen)", out["logs_screen"])

    if handshake:
        print("READY " + json.dumps({"session_id": sid, "mark": MARK}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    res = await call("stop", apps.stop(sid))
    show(f"[{label}] stop", res)
    running = await call("list_running(after stop)", apps.list_running())
    out["running_after_stop"] = [r.get("id") for r in (running or []) if r.get("id") == sid]
    try:
        gone = await term.execute(session_id=sid, script="echo gone", config={"timeout": 5.0})
        out["execute_after_stop"] = plain(gone)
    except Exception as e:
        out["execute_after_stop_error"] = str(e)[:300]
    try:
        gone = await term.write_terminal(session_id=sid, data="x")
        out["write_after_stop"] = plain(gone)
    except Exception as e:
        out["write_after_stop_error"] = str(e)[:300]
    await call("uninstall", apps.uninstall(app_id))
    apps_left = await call("list_apps", apps.list_apps())
    out["apps_left"] = [a.get("id") for a in (apps_left or []) if a.get("id") == app_id]
    out["timings"] = timings
    return out


async def main(url, token):
    root = await connect_to_server({"server_url": url, "token": token, "client_id": "upstream-terminal-check"})
    print("connected as", root.config.user["id"], "in", root.config.workspace, flush=True)
    apps = await root.get_service("public/server-apps")
    workers = await apps.list_workers()
    terms = [w for w in workers if "terminal" in (w.get("supported_types") or [])]
    show("list_workers", [(w.get("id"), w.get("supported_types")) for w in workers])
    ours = [w for w in terms if w["id"].startswith("ws-user-root/")]
    theirs = [w for w in terms if not w["id"].startswith("ws-user-root/")]
    out = {"workers": [{"id": w.get("id"), "supported_types": list(w.get("supported_types") or [])} for w in ours],
           "upstream_workers": [w.get("id") for w in theirs]}
    assert len(ours) == 1, terms
    out["ours"] = await scenario(root, apps, ours[0]["id"], "ours", True, True)
    if theirs:
        try:
            out["theirs"] = await scenario(root, apps, theirs[0]["id"], "upstream", False, False)
        except Exception as e:
            out["theirs"] = {"fatal": str(e)[:400]}
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
