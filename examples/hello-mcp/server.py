"""A minimal MCP server over stdio (newline-delimited JSON-RPC 2.0),
standard library only: two tools, greet and add."""
import json
import sys

TOOLS = [
    {
        "name": "greet",
        "description": "Greet someone by name.",
        "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
    {
        "name": "add",
        "description": "Add two numbers.",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
        "outputSchema": {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]},
    },
]


def call_tool(name, args):
    if name == "greet":
        return {"content": [{"type": "text", "text": f"Hello, {args['name']}!"}]}
    if name == "add":
        total = args["a"] + args["b"]
        return {"content": [{"type": "text", "text": json.dumps({"sum": total})}], "structuredContent": {"sum": total}}
    raise KeyError(name)


def answer(req):
    method, params = req.get("method"), req.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "hello-mcp", "version": "1.0.0"},
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        try:
            return call_tool(params["name"], params.get("arguments") or {})
        except Exception as e:  # a tool error, reported in the result
            return {"content": [{"type": "text", "text": f"error: {e!r}"}], "isError": True}
    raise LookupError(method)


print("hello-mcp: ready", file=sys.stderr, flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    req = json.loads(line)
    if "id" not in req:
        continue  # a notification
    try:
        msg = {"jsonrpc": "2.0", "id": req["id"], "result": answer(req)}
    except LookupError as e:
        msg = {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": f"method not found: {e}"}}
    print(json.dumps(msg), flush=True)
