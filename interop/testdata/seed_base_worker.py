"""A worker on upstream's BaseWorker (hypha.workers.base), in the seed's
Python class style, written for the tests. Run with the peers harness
(hypha_rpc and upstream's hypha package importable):

    run-py.sh interop/testdata/seed_base_worker.py SERVER_URL '{"token": ...}'

json-args: token, service_id, supported_types (default ["seed-py"]),
visibility (default "protected"), require_context (default true).

stdout: "READY <json>" once registered; when stdin closes, "RESULT <json>"
with every call received ({fn, argc, arg0, context}); "ERROR <message>" on
failure. The app is the one of interop/js/workers/harness.cjs: the entry
point's lines are logged as stdout ("stderr: TEXT" as stderr), "exit N" ends
the session.
"""
import asyncio
import json
import sys
import urllib.request
from datetime import datetime, timezone

from hypha_rpc import connect_to_server
from hypha.workers.base import (
    BaseWorker,
    SessionInfo,
    SessionNotFoundError,
    SessionStatus,
    WorkerConfig,
)

ARGS = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
CALLS = []


def record(fn, args, context):
    a0 = args[0] if args else None
    if isinstance(a0, dict):
        a0 = {"id": a0.get("id"), "keys": sorted(a0.keys())}
    ctx = None
    if isinstance(context, dict):
        user = context.get("user")
        ctx = {"ws": context.get("ws"), "from": context.get("from"),
               "user": user.get("id") if isinstance(user, dict) else None}
    CALLS.append({"fn": fn, "argc": len(args), "arg0": a0, "context": ctx})


def fetch_entry(config: WorkerConfig):
    req = urllib.request.Request(f"{config.app_files_base_url}/{config.entry_point}")
    if config.token:
        req.add_header("Authorization", f"Bearer {config.token}")
    with urllib.request.urlopen(req, timeout=30) as res:
        return [l for l in res.read().decode().split("\n") if l.strip()]


class SeedBaseWorker(BaseWorker):
    def __init__(self):
        super().__init__()
        self._sessions = {}
        self._logs = {}

    @property
    def supported_types(self):
        return ARGS.get("supported_types", ["seed-py"])

    @property
    def name(self):
        return "Seed BaseWorker"

    @property
    def description(self):
        return "A worker on upstream's BaseWorker, in the seed's style"

    @property
    def visibility(self):
        return ARGS.get("visibility", "protected")

    @property
    def require_context(self):
        return ARGS.get("require_context", True)

    @property
    def service_id(self):
        return ARGS.get("service_id", "seed-base-worker")

    async def start(self, config, context=None):
        record("start", [config], context)
        if isinstance(config, dict):
            config = WorkerConfig(**config)
        sid = config.id
        progress = config.progress_callback
        if progress:
            await progress({"type": "info", "message": f"python worker starting {sid}"})
        info = SessionInfo(session_id=sid, app_id=config.app_id, workspace=config.workspace,
                           client_id=config.client_id, status=SessionStatus.STARTING,
                           app_type=config.manifest.get("type", "unknown"), entry_point=config.entry_point,
                           created_at=datetime.now(timezone.utc).isoformat(), metadata=config.manifest)
        self._sessions[sid] = info
        logs = self._logs[sid] = []
        logs.append({"type": "stdout", "content": f"context: {context.get('ws') if context else 'none'}"})
        code = None
        for line in await asyncio.to_thread(fetch_entry, config):
            if line.strip().startswith("exit "):
                code = int(line.strip()[5:])
                break
            if line.startswith("stderr: "):
                logs.append({"type": "stderr", "content": line[8:]})
            else:
                logs.append({"type": "stdout", "content": line})
        if code is None:
            info.status = SessionStatus.RUNNING
        else:
            info.status = SessionStatus.COMPLETED if code == 0 else SessionStatus.FAILED
            if code:
                info.error = f"exit code {code}"
        if progress:
            await progress({"type": "success", "message": f"python worker started {sid}"})
        return sid

    async def stop(self, session_id, context=None):
        record("stop", [session_id], context)
        info = self._sessions.get(session_id)
        if info and info.status in (SessionStatus.RUNNING, SessionStatus.STARTING):
            info.status = SessionStatus.STOPPED

    async def get_session_info(self, session_id, context=None):
        record("get_session_info", [session_id], context)
        info = self._sessions.get(session_id)
        if info is None:
            raise SessionNotFoundError(f"Session {session_id} not found")
        d = info.model_dump()
        d["status"] = info.status.value
        return d

    async def get_logs(self, session_id, type=None, offset=0, limit=None, context=None):
        record("get_logs", [session_id, type, offset, limit], context)
        if session_id not in self._logs:
            raise SessionNotFoundError(f"Session {session_id} not found")
        items = [e for e in self._logs[session_id] if not type or e["type"] == type]
        total = len(items)
        offset = offset or 0
        if limit:
            end = offset + limit
            items = items[offset:] if offset < 0 and end >= 0 else items[offset:end]
        else:
            items = items[offset:]
        return {"items": items, "total": total, "offset": offset, "limit": limit}

    def get_worker_service(self):
        svc = super().get_worker_service()
        svc["get_session_info"] = self.get_session_info
        return svc


async def main():
    cfg = {"server_url": sys.argv[1]}
    if ARGS.get("token"):
        cfg["token"] = ARGS["token"]
    server = await connect_to_server(cfg)
    worker = SeedBaseWorker()
    svc = await worker.register_worker_service(server)
    print("READY " + json.dumps({"service_id": svc.id, "workspace": server.config.workspace}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.disconnect()
    print("RESULT " + json.dumps({"service_id": svc.id, "calls": CALLS}), flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # one line for the Go test, the traceback on stderr
        import traceback
        traceback.print_exc()
        print("ERROR " + str(e).split("\n")[0], flush=True)
        sys.exit(1)
