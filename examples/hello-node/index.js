// A node-eval app that registers a `default` service with the npm hypha-rpc
// client. The worker gives it the connection details in HYPHA_* variables.
// hypha-rpc and ws must be resolvable: `npm ci` in interop/js and run with
// --node-path interop/js/node_modules (or NODE_PATH).
const WebSocket = require("ws");
// Node 20 has no global WebSocket; hypha-rpc reads the global one.
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

main().catch((err) => {
  console.error("hello-node failed:", err);
  process.exit(1);
});
