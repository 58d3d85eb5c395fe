// Apps over HTTP and get_service's case_conversion with the real hypha-rpc JS client (npm
// "hypha-rpc"), driven by interop/apps_test.go. The npm client has no ASGI helper, so the
// asgi service here is a plain service with the call shape the server uses:
// serve({scope, receive, send}), receive() → {type: "http.request", body, more_body},
// send({type: "http.response.start", status, headers}) and send({type: "http.response.body", body, more_body}).
//
// usage: node apps.mjs <name> <server_url> [json-args]
//   serve            register "js-asgi" (asgi) and "js-fns" (functions), print READY {workspace}, stay until stdin closes
//   case_conversion  args {service_id}: getService with case_conversion camel and snake, call through the new names;
//                    RESULT {camel, snake, camel_keys, snake_keys}
// stdout carries only the READY / RESULT / ERROR lines.
import WebSocket from "ws";
import { hyphaWebsocketClient } from "hypha-rpc";

if (typeof globalThis.WebSocket === "undefined") globalThis.WebSocket = WebSocket;
const toStderr = (...a) => console.error(...a);
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;
console.warn = toStderr;

const [name, serverUrl, rawArgs] = process.argv.slice(2);
const args = rawArgs ? JSON.parse(rawArgs) : {};
const out = (line) => new Promise((r) => process.stdout.write(line + "\n", r));
const enc = new TextEncoder();
const dec = new TextDecoder();

async function connect() {
  const cfg = { server_url: serverUrl, WebSocketClass: WebSocket, method_timeout: 20 };
  if (args.token) cfg.token = args.token;
  return hyphaWebsocketClient.connectToServer(cfg);
}

const asBytes = (b) => (b instanceof Uint8Array ? b : b ? new Uint8Array(b) : new Uint8Array());

async function serve() {
  const server = await connect();
  await server.registerService({
    id: "js-asgi",
    type: "asgi",
    config: { visibility: "public" },
    serve: async ({ scope, receive, send }) => {
      // read the whole body
      const parts = [];
      for (;;) {
        const ev = await receive();
        if (ev.type !== "http.request") break;
        parts.push(asBytes(ev.body));
        if (!ev.more_body) break;
      }
      const body = Buffer.concat(parts.map((p) => Buffer.from(p)));
      const headers = {};
      for (const [k, v] of scope.headers) headers[dec.decode(asBytes(k))] = dec.decode(asBytes(v));
      const path = scope.path;
      if (path === "/stream") {
        await send({ type: "http.response.start", status: 200, headers: [[enc.encode("content-type"), enc.encode("text/event-stream")]] });
        for (let i = 0; i < 3; i++) {
          await send({ type: "http.response.body", body: enc.encode(`data: ${i}\n\n`), more_body: true });
        }
        await send({ type: "http.response.body", body: enc.encode("data: [DONE]\n\n"), more_body: false });
        return;
      }
      const answer = {
        method: scope.method,
        path,
        query: dec.decode(asBytes(scope.query_string)),
        body: body.toString("utf8"),
        has_authorization: "authorization" in headers,
      };
      await send({ type: "http.response.start", status: 200, headers: [[enc.encode("content-type"), enc.encode("application/json")]] });
      await send({ type: "http.response.body", body: enc.encode(JSON.stringify(answer)), more_body: false });
    },
  });
  await server.registerService({
    id: "js-fns",
    type: "functions",
    config: { visibility: "public" },
    index: async (scope) => ({ status: 200, headers: { "Content-Type": "text/plain" }, body: "index of js-fns" }),
    hello: async (scope) => ({
      status: 201,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: scope.query_string, body: scope.body ? dec.decode(asBytes(scope.body)) : null, user: scope.user && scope.user.id }),
    }),
  });
  await out("READY " + JSON.stringify({ workspace: server.config.workspace }));
  await new Promise((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
    process.stdin.resume();
  });
  await server.disconnect();
}

async function caseConversion() {
  const server = await connect();
  const camel = await server.getService(args.service_id, { case_conversion: "camel" });
  const snake = await server.getService(args.service_id, { case_conversion: "snake" });
  const result = {
    camel: await camel.helloWorld("world"),
    snake: await snake.hello_world("world"),
    camel_keys: Object.keys(camel).sort(),
    snake_keys: Object.keys(snake).sort(),
  };
  await server.disconnect();
  return result;
}

try {
  if (name === "serve") {
    await serve();
    process.exit(0);
  } else if (name === "case_conversion") {
    const r = await caseConversion();
    await out("RESULT " + JSON.stringify(r));
    process.exit(0);
  } else {
    throw new Error("unknown scenario " + name);
  }
} catch (e) {
  console.error(e && e.stack ? e.stack : e);
  await out("ERROR " + String(e && e.message ? e.message : e).replace(/\n/g, " | "));
  process.exit(1);
}
