"""Tells whether the Python MCP SDK (package `mcp`) that upstream's MCP proxy
worker needs is usable where the upstream server runs: prints one line,
RESULT {"ok": true} or RESULT {"ok": false, "error": "..."}.

usage (through run-py.sh of the peers harness): mcp_sdk_probe.py
"""
import json

try:
    import mcp
    from mcp import ClientSession  # noqa: F401
    from mcp.client.streamable_http import streamablehttp_client  # noqa: F401
    from mcp.types import Tool

    Tool(name="probe", inputSchema={"type": "object"})
    print("RESULT " + json.dumps({"ok": True, "module": getattr(mcp, "__file__", "")}))
except Exception as e:  # the stand-in raises on any real use
    print("RESULT " + json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}",
                                  "module": getattr(mcp, "__file__", "") if "mcp" in dir() else ""}))
