// Test harness shared by the two seed-style workers (function-worker.cjs and
// class-worker.cjs): connection, the line protocol the Go tests read, and the
// tiny "app" both workers run. The worker code itself lives in the two files.
//
// usage: node <worker>.cjs <server_url> [json-args]
//   json-args: token (default $HYPHA_TOKEN), workspace, client_id,
//              service_id, visibility, supported_types, max_life (s, default
//              600), ready_file (also write the READY json there),
//              ignore_stdin (serve until killed or max_life)
// stdout: "READY <json>" once the worker service is registered; when stdin
// closes, "RESULT <json>" with every call the worker received ({fn, argc,
// arg0, context}), then exit 0. "ERROR <message>" and exit 1 on failure.
//
// The app: the entry point file (fetched from config.app_files_base_url with
// config.token) is read line by line: "stderr: TEXT" is logged as stderr,
// "exit N" ends the session (completed when N is 0, else failed), every
// other line is logged as stdout.
"use strict";

const WebSocket = require("ws");
// Node 20 has no global WebSocket and hypha-rpc 0.21.x reads the global.
if (typeof globalThis.WebSocket === "undefined") globalThis.WebSocket = WebSocket;
const { hyphaWebsocketClient } = require("hypha-rpc");

// The library logs through console.*: keep stdout for protocol lines.
for (const k of ["log", "info", "debug", "warn"]) console[k] = (...a) => console.error(...a);

const args = JSON.parse(process.argv[3] || "{}");
if (!args.token && process.env.HYPHA_TOKEN) args.token = process.env.HYPHA_TOKEN;
const serverUrl = process.argv[2];
const calls = [];

function out(line) {
  process.stdout.write(line + "\n");
}

function fail(err) {
  console.error(err && err.stack ? err.stack : err);
  const msg = String((err && err.message) || err).split("\n")[0];
  process.stdout.write("ERROR " + msg + "\n", () => process.exit(1));
}

// record notes one call of a worker function as it arrived.
function record(fn, argv, context) {
  const a0 = argv[0];
  calls.push({
    fn,
    argc: argv.length,
    arg0: a0 && typeof a0 === "object" ? { id: a0.id, keys: Object.keys(a0).sort() } : a0 === undefined ? "(undefined)" : a0,
    context: context ? { ws: context.ws, from: context.from, user: context.user && context.user.id } : null,
  });
}

// connect opens the worker's connection (connectToServer, as in the seed).
async function connect() {
  const cfg = { server_url: serverUrl, method_timeout: 30 };
  for (const k of ["token", "workspace", "client_id"]) if (args[k]) cfg[k] = args[k];
  return hyphaWebsocketClient.connectToServer(cfg);
}

// loadEntry fetches the app's entry point with the app's token.
async function loadEntry(config) {
  const url = `${config.app_files_base_url}/${config.entry_point}`;
  const res = await fetch(url, { headers: config.token ? { Authorization: `Bearer ${config.token}` } : {} });
  if (!res.ok) throw new Error(`fetch ${config.entry_point}: HTTP ${res.status}`);
  return (await res.text()).split("\n").filter((l) => l.trim() !== "");
}

// runApp interprets the entry lines into log entries; it returns the exit
// code when the app ends, else null (it runs until stopped).
function runApp(lines, log) {
  for (const line of lines) {
    const m = /^exit (\d+)$/.exec(line.trim());
    if (m) return Number(m[1]);
    if (line.startsWith("stderr: ")) log("stderr", line.slice(8));
    else log("stdout", line);
  }
  return null;
}

// logPage answers get_logs in upstream's current shape.
function logPage(items, type, offset, limit) {
  let list = type ? items.filter((e) => e.type === type) : items;
  const total = list.length;
  offset = offset || 0;
  list = limit ? list.slice(offset, offset < 0 && offset + limit >= 0 ? undefined : offset + limit) : list.slice(offset);
  return { items: list, total, offset, limit: limit || null };
}

// serve registers the service, prints READY, waits for stdin to close,
// prints RESULT and exits.
async function serve(server, service) {
  const info = await server.registerService(service);
  const ready = JSON.stringify({ service_id: info.id, workspace: server.config.workspace });
  if (args.ready_file) require("node:fs").writeFileSync(args.ready_file, ready + "\n");
  out("READY " + ready);
  const life = setTimeout(() => fail(new Error("max_life elapsed")), (args.max_life || 600) * 1000);
  await new Promise((resolve) => {
    if (args.ignore_stdin) return;
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
    process.stdin.on("error", resolve);
    process.stdin.resume();
  });
  clearTimeout(life);
  const result = { service_id: info.id, calls };
  await server.disconnect().catch(() => {});
  process.stdout.write("RESULT " + JSON.stringify(result) + "\n", () => process.exit(0));
}

process.on("unhandledRejection", (err) => console.error("unhandledRejection:", err));

module.exports = { args, connect, record, loadEntry, runApp, logPage, serve, fail, hyphaWebsocketClient };
