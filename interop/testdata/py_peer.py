"""Interop scenarios for the real hypha-rpc Python client (standard library + hypha_rpc only).

usage (through run-py.sh of shared/peers beside the repository): py_peer.py <scenario> <server_url> [json-args]

stdout protocol, as interop/js/scenario.mjs (other lines are ignored by the Go tests):
  READY <json>    (serve only) the service is registered
  RESULT <json>   last line on success, exit code 0
  ERROR <message> last line on failure, exit code 1

Common json-args: token, workspace, client_id, method_timeout (s, default 30),
timeout (s, hard overall limit, default 60; serve: limit until READY).
Values in call arguments: {"$bytes_b64": "..."} becomes bytes, {"$callback": "prefix"}
the function lambda x: prefix + x, {"$pattern": N} the N bytes i % 256 (i = 0..N-1).
Values in results: bytes of up to 1024 bytes -> {"$bytes_b64": ...}, longer bytes ->
{"$bytes_len": N, "$sha256": hex, "$pattern_ok": bool}, errors -> {"$error": msg, "$summary": line},
functions -> {"$function": name}.

Scenarios:
  connect connect (token/workspace/client_id from args), call the manager's echo("hi"); RESULT has
          workspace, client_id, user, manager_id, echo, manager_functions
  serve   register the test service (add, echo, fail, call_back, ctx_who, greet) and serve until
          stdin closes; args service_id="py-svc", visibility="public"; RESULT has calls per function
  call    args service_id (required), calls=[{fn, args, kwargs}]; RESULT service + results
  join    A connects (token/workspace from args), registers protected "join-probe" and public
          "pub-probe", generates a token for its workspace; B connects with it, lists services,
          gets the probe by short id and calls it; C (anonymous, own workspace) is refused the
          protected probe and may call the public one
"""
import asyncio
import base64
import hashlib
import json
import sys
import traceback

from hypha_rpc import connect_to_server


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def err_summary(msg):
    lines = [l.strip() for l in str(msg).split("\n") if l.strip()]
    best = None
    for l in lines:
        head = l.split(":", 1)[0]
        if ": " in l and (head.endswith("Error") or head.endswith("Exception")) and not l.startswith("Exception: Traceback"):
            best = l
    s = best if best is not None else (lines[0] if lines else "")
    for p in ("RemoteError: ", "RemoteError:"):
        if s.startswith(p):
            s = s[len(p):]
    return s


def err_value(e):
    return {"$error": str(e), "$summary": err_summary(str(e))}


def pattern(n):
    block = bytes(range(256))
    return block * (n // 256) + block[: n % 256]


def to_json(v, depth=0):
    if depth > 64:
        return "<too deep>"
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, BaseException):
        return err_value(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) <= 1024:
            return {"$bytes_b64": base64.b64encode(b).decode()}
        return {"$bytes_len": len(b), "$sha256": hashlib.sha256(b).hexdigest(), "$pattern_ok": b == pattern(len(b))}
    if callable(v):
        return {"$function": getattr(v, "__name__", True)}
    if isinstance(v, dict):
        return {str(k): to_json(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [to_json(x, depth + 1) for x in v]
    return repr(v)


def from_json(v):
    if isinstance(v, list):
        return [from_json(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1 and isinstance(v.get("$bytes_b64"), str):
            return base64.b64decode(v["$bytes_b64"])
        if len(v) == 1 and isinstance(v.get("$callback"), str):
            prefix = v["$callback"]
            return lambda x: prefix + x
        if len(v) == 1 and isinstance(v.get("$pattern"), int):
            return pattern(v["$pattern"])
        return {k: from_json(x) for k, x in v.items()}
    return v


clients = []


async def connect(url, a, **over):
    cfg = {"server_url": url, "method_timeout": a.get("method_timeout", 30)}
    for k in ("token", "workspace", "client_id", "name"):
        if a.get(k) is not None:
            cfg[k] = a[k]
    for k, v in over.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    c = await connect_to_server(cfg)
    clients.append(c)
    return c


def who(c):
    cfg = c.config
    user = cfg.get("user") if hasattr(cfg, "get") else None
    return {
        "workspace": cfg.workspace,
        "client_id": cfg.client_id,
        "user": user["id"] if user else None,
        "manager_id": cfg.get("manager_id") if hasattr(cfg, "get") else None,
    }


async def disconnect_all():
    await asyncio.sleep(0.15)
    while clients:
        c = clients.pop()
        try:
            await asyncio.wait_for(c.disconnect(), 3)
        except Exception as e:  # noqa: BLE001
            print("disconnect:", e, file=sys.stderr)


def make_service(sid, visibility, counters):
    def count(name):
        counters[name] = counters.get(name, 0) + 1

    def add(a, b, context=None):
        count("add")
        return a + b

    def echo(x, context=None):
        count("echo")
        return x

    def fail(msg, context=None):
        count("fail")
        raise Exception(msg)

    async def call_back(cb, x, context=None):
        count("call_back")
        return await cb(x)

    def ctx_who(context=None):
        count("ctx_who")
        if not context:
            return {"ws": None, "from": None, "user": None}
        user = context.get("user") or {}
        return {"ws": context.get("ws"), "from": context.get("from"), "user": user.get("id")}

    def greet(name, greeting="hello", context=None):
        count("greet")
        return "%s, %s" % (greeting, name)

    # numbers(n) and ticks() are async generators (hypha-rpc `_rtype: generator`);
    # ticks never ends on its own and counts ticks_closed when its consumer stops it.
    async def numbers(n, context=None):
        count("numbers")
        for i in range(n):
            yield i

    async def ticks(context=None):
        count("ticks")
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            count("ticks_closed")

    return {
        "id": sid,
        "name": sid,
        "description": "hypha-go interop Python service",
        "config": {"visibility": visibility, "require_context": True},
        "add": add,
        "echo": echo,
        "fail": fail,
        "call_back": call_back,
        "ctx_who": ctx_who,
        "greet": greet,
        "numbers": numbers,
        "ticks": ticks,
    }


async def sc_serve(url, a, ctl):
    counters = {}
    s = await connect(url, a)
    info = await s.register_service(make_service(a.get("service_id", "py-svc"), a.get("visibility", "public"), counters))
    ctl["ready"].set()
    out("READY " + json.dumps({"service_id": info["id"], **who(s), "visibility": a.get("visibility", "public")}))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until stdin closes
    r = {"service_id": info["id"], **who(s), "calls": counters}
    await disconnect_all()
    return r


async def sc_call(url, a, ctl):
    if not a.get("service_id"):
        raise Exception("call: service_id is required")
    s = await connect(url, a)
    svc = await s.get_service(a["service_id"])
    results = []
    for c in a.get("calls", []):
        try:
            fn = svc[c["fn"]] if c["fn"] in svc else None
            if not callable(fn):
                raise Exception("no function %s in service" % c["fn"])
            args = from_json(c.get("args", []))
            kwargs = from_json(c.get("kwargs", {}))
            results.append(await fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001
            results.append(err_value(e))
    r = {
        **who(s),
        "service": {
            "id": svc.get("id"),
            "name": svc.get("name"),
            "type": svc.get("type"),
            "config": dict(svc.get("config") or {}),
            "functions": sorted(k for k in svc.keys() if callable(svc[k])),
        },
        "results": results,
    }
    await disconnect_all()
    return r


async def sc_join(url, a, ctl):
    A = await connect(url, a)
    ws = A.config.workspace
    await A.register_service({"id": "join-probe", "config": {"visibility": "protected"}, "hello": lambda x: "hello " + x})
    pub = await A.register_service({"id": "pub-probe", "config": {"visibility": "public"}, "ping": lambda: "pong"})
    token = await A.generate_token({"workspace": ws, "permission": a.get("permission", "read_write"), "expires_in": 3600})
    if not isinstance(token, str) or len(token) < 10:
        raise Exception("bad token: %r" % (token,))
    B = await connect(url, {}, token=token, workspace=ws, method_timeout=a.get("method_timeout", 30))
    listed = sorted(x["id"] for x in await B.list_services())
    probe = await B.get_service("join-probe")
    called = await probe.hello("B")
    C = await connect(url, {}, method_timeout=a.get("method_timeout", 30))
    try:
        await C.get_service(ws + "/" + A.config.client_id + ":join-probe")
        c_refused = None
    except Exception as e:  # noqa: BLE001
        c_refused = err_summary(str(e))
    c_pub = await (await C.get_service(pub["id"])).ping()
    r = {
        "a": who(A),
        "b": who(B),
        "c": who(C),
        "token_is_jwt": token.count(".") == 2,
        "b_user_scope": to_json(B.config.get("user", {}).get("scope")),
        "listed": listed,
        "probe_id": probe["id"],
        "called": called,
        "c_refused": c_refused,
        "c_public": c_pub,
    }
    await disconnect_all()
    return r


async def sc_connect(url, a, ctl):
    s = await connect(url, a)
    r = {
        **who(s),
        "echo": await s.echo("hi"),
        "manager_functions": sorted(k for k in dir(s) if not k.startswith("_") and callable(getattr(s, k, None))),
    }
    await disconnect_all()
    return r


async def sc_generators(url, a, ctl):
    """Read the generators of a service with count(n), forever(), failing(), sum(gen):
    count(n) to its end, forever() for 3 items then aclose() (which closes the
    producer), failing() until its error; send an async generator to sum."""
    if not a.get("service_id"):
        raise Exception("generators: service_id is required")
    s = await connect(url, a)
    svc = await s.get_service(a["service_id"])
    r = {"count": [], "forever": [], "failing": [], "failing_error": None}
    async for x in await svc.count(a.get("n", 5)):
        r["count"].append(x)
    agen = await svc.forever()
    async for x in agen:
        r["forever"].append(x)
        if len(r["forever"]) == 3:
            break
    await agen.aclose()
    try:
        async for x in await svc.failing():
            r["failing"].append(x)
    except Exception as e:  # noqa: BLE001
        r["failing_error"] = err_value(e)

    async def mine():
        for x in (10, 20, 12):
            yield x

    r["sum"] = await svc.sum(mine())
    r = {**who(s), **r}
    await disconnect_all()
    return r


SCENARIOS = {"connect": sc_connect, "serve": sc_serve, "call": sc_call, "join": sc_join, "generators": sc_generators}


async def main():
    if len(sys.argv) < 3 or sys.argv[1] not in SCENARIOS:
        out("ERROR usage: py_peer.py <%s> <server_url> [json-args]" % "|".join(SCENARIOS))
        return 1
    name, url = sys.argv[1], sys.argv[2]
    a = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    ctl = {"ready": asyncio.Event()}
    task = asyncio.ensure_future(SCENARIOS[name](url, a, ctl))
    limit = a.get("timeout", 60)
    try:
        if name == "serve":
            # the limit applies until READY; then serve until stdin closes (max_life, default 600 s)
            done, _ = await asyncio.wait({task, asyncio.ensure_future(ctl["ready"].wait())},
                                         timeout=limit, return_when=asyncio.FIRST_COMPLETED)
            if not ctl["ready"].is_set() and not task.done():
                raise asyncio.TimeoutError()
            result = await asyncio.wait_for(task, a.get("max_life", 600))
        else:
            result = await asyncio.wait_for(task, limit)
    except asyncio.TimeoutError:
        out("ERROR timeout after %ss in scenario %s" % (limit, name))
        return 1
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        out("ERROR " + err_summary(str(e)).replace("\n", " | "))
        return 1
    out("RESULT " + json.dumps(to_json(result)))
    return 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    # hypha-rpc may leave background tasks/threads behind; exit hard after the result line
    import os

    os._exit(code)
