"""A tiny A2A agent for the hello-a2a example (Python standard library only).

Run it with `python3 agent.py [PORT]` (default 9100), then
`hypha run examples/hello-a2a`: the app's proxy reads this agent's card and
registers a service "hello" whose run, skills.greet and stream reach it.
It speaks JSON-RPC 2.0 over HTTP as the A2A specification describes:
the card at /.well-known/agent-card.json, message/send and message/stream
(server-sent events).
"""

import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9100


def card():
    return {
        "name": "Hello Agent",
        "description": "Greets whoever writes to it",
        "version": "1.0.0",
        "protocolVersion": "0.3.0",
        "url": f"http://127.0.0.1:{PORT}/",
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "greet", "name": "Greet", "description": "Say hello to a name", "tags": ["hello"]}],
    }


def text_of(message):
    return " ".join(p.get("text", "") for p in message.get("parts", []) if p.get("kind") == "text")


class Agent(BaseHTTPRequestHandler):
    def _json(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/.well-known/agent-card.json":
            self._json(card())
        else:
            self.send_error(404)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        answer = f"Hello, {text_of(req['params']['message']) or 'stranger'}!"
        if req.get("method") == "message/send":
            self._json({"jsonrpc": "2.0", "id": req["id"], "result": {
                "kind": "message", "messageId": str(uuid.uuid4()), "role": "agent",
                "parts": [{"kind": "text", "text": answer}]}})
            return
        if req.get("method") == "message/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, word in enumerate(answer.split()):
                event = {"kind": "artifact-update", "taskId": "t", "contextId": "c",
                         "artifact": {"artifactId": f"a{i}", "parts": [{"kind": "text", "text": word}]}}
                self.wfile.write(f"data: {json.dumps({'jsonrpc': '2.0', 'id': req['id'], 'result': event})}\n\n".encode())
                self.wfile.flush()
            done = {"kind": "status-update", "taskId": "t", "contextId": "c",
                    "status": {"state": "completed"}, "final": True}
            self.wfile.write(f"data: {json.dumps({'jsonrpc': '2.0', 'id': req['id'], 'result': done})}\n\n".encode())
            return
        self._json({"jsonrpc": "2.0", "id": req.get("id"), "error": {"code": -32601, "message": "Method not found"}})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    print(f"Hello Agent on http://127.0.0.1:{PORT}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Agent).serve_forever()
