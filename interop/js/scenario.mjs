// Interop scenarios: the real hypha-rpc JS client (npm "hypha-rpc") against a Hypha server
// (our Go server in the Go tests; the upstream Python server when checking the scenarios).
//
// usage: node scenario.mjs <name> <server_url> [json-args]
//
// stdout carries only protocol lines (all library logging goes to stderr):
//   READY <json>    (serve only) the service is registered
//   RESULT <json>   last line on success, exit code 0
//   ERROR <message> last line on failure, exit code 1
//
// Common json-args: token, workspace, client_id, method_timeout (s, default 15),
// timeout (s, hard overall limit, default 30; serve: limit until READY).
// Values in call arguments: {"$bytes_b64": "..."} becomes a Uint8Array,
// {"$callback": "prefix"} becomes the function (x) => prefix + x.
// Values in results: Uint8Array -> {"$bytes_b64": ...}, errors -> {"$error": message},
// functions -> {"$function": name}.
//
// Scenarios: connect, serve, call, callback_to_go, generators, worker_extensions, big, token_then_join,
// protected_refused, two_js, echo_bench. See README.md beside this file for each scenario's arguments and result.
import WebSocket from "ws";
import { createHash } from "node:crypto";
import { hyphaWebsocketClient } from "hypha-rpc";

// Node 20 has no global WebSocket and hypha-rpc 0.21.x reads the global (WebSocket.OPEN).
if (typeof globalThis.WebSocket === "undefined") globalThis.WebSocket = WebSocket;

// ---- output discipline: library logs to stderr, protocol lines to stdout ----
const stderrLog = (...a) => console.error(...a);
console.log = stderrLog;
console.info = stderrLog;
console.debug = stderrLog;
console.warn = stderrLog;

let finished = false;
function emit(line) {
  process.stdout.write(line + "\n");
}
function finish(code, line) {
  if (finished) return;
  finished = true;
  process.stdout.write(line + "\n", () => process.exit(code));
  // in case the write callback never fires
  setTimeout(() => process.exit(code), 2000).unref();
}
function succeed(obj) {
  finish(0, "RESULT " + JSON.stringify(toJSONable(obj)));
}
function fail(msg) {
  // one line: the summary of the error (full text goes to stderr)
  const full = String(msg);
  if (full.includes("\n")) console.error("full error:", full);
  const oneLine = errSummary(full).replace(/\s*\n\s*/g, " | ");
  finish(1, "ERROR " + oneLine);
}

process.on("unhandledRejection", (err) => {
  console.error("unhandledRejection:", err && err.stack ? err.stack : err);
});

// ---- value conversion ----
function bytesB64(u8) {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString("base64");
}

export function toJSONable(v, depth = 0) {
  if (depth > 64) return "<too deep>";
  if (v === undefined || v === null) return null;
  if (v instanceof Error) return errValue(v);
  if (v instanceof Uint8Array) return { $bytes_b64: bytesB64(v) };
  if (v instanceof ArrayBuffer) return { $bytes_b64: bytesB64(new Uint8Array(v)) };
  if (ArrayBuffer.isView(v)) {
    return {
      $typed: v.constructor.name,
      $bytes_b64: bytesB64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)),
    };
  }
  if (typeof v === "function") return { $function: v.__name__ || v.name || true };
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  if (Array.isArray(v)) return v.map((x) => toJSONable(x, depth + 1));
  if (v instanceof Map) {
    const o = {};
    for (const [k, x] of v) o[String(k)] = toJSONable(x, depth + 1);
    return o;
  }
  if (v instanceof Set) return [...v].map((x) => toJSONable(x, depth + 1));
  if (v instanceof Date) return v.toISOString();
  if (typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = toJSONable(v[k], depth + 1);
    return o;
  }
  return v;
}

function fromJSONable(v) {
  if (Array.isArray(v)) return v.map(fromJSONable);
  if (v && typeof v === "object") {
    if (typeof v.$bytes_b64 === "string" && Object.keys(v).length === 1) {
      return new Uint8Array(Buffer.from(v.$bytes_b64, "base64"));
    }
    if (typeof v.$callback === "string" && Object.keys(v).length === 1) {
      const prefix = v.$callback;
      return (x) => prefix + x;
    }
    const o = {};
    for (const k of Object.keys(v)) o[k] = fromJSONable(v[k]);
    return o;
  }
  return v;
}

function errMsg(e) {
  if (e && typeof e === "object" && "message" in e) return String(e.message);
  return String(e);
}

// The most telling line of a (possibly traceback-laden) remote error message: the last
// "SomethingError: text" line (Python), else the first line without the "RemoteError: " prefix.
export function errSummary(msg) {
  const lines = String(msg).split("\n").map((l) => l.trim()).filter(Boolean);
  let best = null;
  for (const l of lines) {
    if (/^[A-Za-z_][\w.]*(Error|Exception): /.test(l) && !/^Exception: Traceback/.test(l)) best = l;
  }
  if (best) return best.replace(/^RemoteError: /, "");
  return (lines[0] || "").replace(/^RemoteError: /, "");
}
const errValue = (e) => ({ $error: errMsg(e), $summary: errSummary(errMsg(e)) });

// Deterministic payload: xorshift32 stream seeded by `seed`.
function makePayload(n, seed = 0x9e3779b9) {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
const sha256 = (u8) => createHash("sha256").update(u8).digest("hex");

// ---- connection helper ----
const clients = [];
async function connect(serverUrl, opts = {}) {
  const cfg = {
    server_url: serverUrl,
    WebSocketClass: WebSocket,
    method_timeout: opts.method_timeout ?? 15,
  };
  for (const k of ["token", "workspace", "client_id", "name", "transport"]) {
    if (opts[k] !== undefined && opts[k] !== null) cfg[k] = opts[k];
  }
  const server = await hyphaWebsocketClient.connectToServer(cfg);
  clients.push(server);
  return server;
}
function who(server) {
  const c = server.config || {};
  return {
    workspace: c.workspace,
    client_id: c.client_id,
    user: c.user ? c.user.id : null,
    manager_id: c.manager_id,
  };
}
async function disconnectAll() {
  // let the last replies (e.g. message_cache.process results) leave before closing
  await new Promise((r) => setTimeout(r, 150));
  for (const c of clients.splice(0).reverse()) {
    try {
      await Promise.race([c.disconnect(), new Promise((r) => setTimeout(r, 2000))]);
    } catch (e) {
      console.error("disconnect:", errMsg(e));
    }
  }
}

// The service used by serve, two_js and the self-contained variants of big / protected_refused.
function makeService(id, visibility, requireContext, counters) {
  const count = (name) => {
    counters[name] = (counters[name] || 0) + 1;
  };
  return {
    id,
    name: id,
    description: "hypha-go interop JS service",
    config: { visibility, require_context: requireContext },
    add(a, b, context) {
      count("add");
      return a + b;
    },
    echo(x, context) {
      count("echo");
      return x;
    },
    fail(msg, context) {
      count("fail");
      throw new Error(msg);
    },
    async call_back(cb, x, context) {
      count("call_back");
      return await cb(x);
    },
    // numbers(n) and ticks() are async generators (hypha-rpc `_rtype: generator`);
    // ticks never ends on its own and counts ticks_closed when its consumer stops it.
    async *numbers(n, context) {
      count("numbers");
      for (let i = 0; i < n; i++) yield i;
    },
    async *ticks(context) {
      count("ticks");
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        count("ticks_closed");
      }
    },
    ctx_who(context) {
      count("ctx_who");
      if (!context) return { ws: null, from: null, user: null };
      return {
        ws: context.ws ?? null,
        from: context.from ?? null,
        user: context.user ? context.user.id : null,
      };
    },
  };
}

const functionKeys = (svc) =>
  Object.keys(svc || {})
    .filter((k) => typeof svc[k] === "function")
    .sort();

// ---- scenarios ----
const scenarios = {};

// connect: connect, print who we are and the manager's function names.
scenarios.connect = async (url, a) => {
  const s = await connect(url, a);
  const keys = functionKeys(s);
  const r = { ...who(s), manager_functions: keys };
  await disconnectAll();
  return r;
};

// serve: register the test service and stay until stdin closes / stop_after elapses.
// args: service_id="js-svc", visibility="public", require_context=true, stop_after (s),
//       ignore_stdin=false, max_life (s, default 600)
scenarios.serve = async (url, a, ctl) => {
  const counters = {};
  const s = await connect(url, a);
  const id = a.service_id || "js-svc";
  const info = await s.registerService(
    makeService(id, a.visibility || "public", a.require_context ?? true, counters),
  );
  ctl.clearDeadline();
  emit(
    "READY " +
      JSON.stringify({ service_id: info.id, ...who(s), visibility: a.visibility || "public" }),
  );
  await new Promise((resolve) => {
    if (a.stop_after) setTimeout(resolve, a.stop_after * 1000);
    if (!a.ignore_stdin) {
      process.stdin.on("end", resolve);
      process.stdin.on("close", resolve);
      process.stdin.on("error", resolve);
      process.stdin.resume();
    }
    ctl.setDeadline((a.max_life ?? 600) * 1000, "serve max_life elapsed");
  });
  const r = { service_id: info.id, ...who(s), calls: counters };
  await disconnectAll();
  return r;
};

// call: args: service_id (required), calls=[{fn, args, kwargs}], get_config (optional)
scenarios.call = async (url, a) => {
  if (!a.service_id) throw new Error("call: service_id is required");
  const s = await connect(url, a);
  const svc = await s.getService(a.service_id, a.get_config || {});
  const results = [];
  for (const c of a.calls || []) {
    try {
      // A dotted name reaches a nested function (an MCP proxy's tools.add).
      const fn = svc[c.fn] ?? c.fn.split(".").reduce((o, k) => (o == null ? undefined : o[k]), svc);
      if (typeof fn !== "function") throw new Error("no function " + c.fn + " in service");
      const args = fromJSONable(c.args || []);
      if (c.kwargs) args.push({ ...fromJSONable(c.kwargs), _rkwargs: true });
      results.push(await fn(...args));
    } catch (e) {
      results.push(errValue(e));
    }
  }
  const r = {
    ...who(s),
    service: { id: svc.id, name: svc.name, type: svc.type, config: svc.config, functions: functionKeys(svc) },
    results,
  };
  await disconnectAll();
  return r;
};

// generators: args: service_id (required): a service with count(n), forever(), failing(),
// sum(generator). JS reads count(n) to its end, forever() for 3 items then stops (the
// async iterator's return closes the producer), failing() until its error, and sends
// its own async generator to sum.
scenarios.generators = async (url, a) => {
  if (!a.service_id) throw new Error("generators: service_id is required");
  const s = await connect(url, a);
  const svc = await s.getService(a.service_id);
  const out = { count: [], forever: [], failing: [], failing_error: null };
  for await (const x of await svc.count(a.n ?? 5)) out.count.push(x);
  for await (const x of await svc.forever()) {
    out.forever.push(x);
    if (out.forever.length === 3) break;
  }
  try {
    for await (const x of await svc.failing()) out.failing.push(x);
  } catch (e) {
    out.failing_error = errValue(e);
  }
  async function* mine() {
    yield 10;
    yield 20;
    yield 12;
  }
  out.sum = await svc.sum(mine());
  const r = { ...who(s), ...out };
  await disconnectAll();
  return r;
};

// worker_extensions: args: service_id (required), steps (required): a list of
// {fn, args, stream}: each calls svc[fn](...args); with stream = n the answer is an async
// generator, read with for await until n items (then the loop's break closes it) or its end.
// Result: steps: one {result} | {items, ended} | {error} per step, in order.
scenarios.worker_extensions = async (url, a) => {
  if (!a.service_id || !Array.isArray(a.steps)) throw new Error("worker_extensions: service_id and steps are required");
  const s = await connect(url, a);
  const svc = await s.getService(a.service_id);
  const steps = [];
  for (const step of a.steps) {
    try {
      if (typeof svc[step.fn] !== "function") throw new Error("no function " + step.fn + " in service");
      const answer = await svc[step.fn](...(step.args || []).map(fromJSONable));
      if (!step.stream) {
        steps.push({ result: answer });
        continue;
      }
      const items = [];
      let ended = true;
      for await (const x of answer) {
        items.push(x);
        if (items.length >= step.stream) {
          ended = false;
          break;
        }
      }
      steps.push({ items, ended });
    } catch (e) {
      steps.push({ error: errValue(e) });
    }
  }
  const r = { ...who(s), steps };
  await disconnectAll();
  return r;
};

// callback_to_go: args: service_id (required), fn="call_back", call_args=["$cb", "hello"]
// ("$cb" is replaced by the JS callback (x) => "js:" + x)
scenarios.callback_to_go = async (url, a) => {
  if (!a.service_id) throw new Error("callback_to_go: service_id is required");
  const s = await connect(url, a);
  const svc = await s.getService(a.service_id);
  const seen = [];
  const cb = (x) => {
    seen.push(x);
    return "js:" + x;
  };
  const callArgs = (a.call_args || ["$cb", "hello"]).map((v) => (v === "$cb" ? cb : fromJSONable(v)));
  const fn = a.fn || "call_back";
  if (typeof svc[fn] !== "function") throw new Error("no function " + fn + " in service");
  const result = await svc[fn](...callArgs);
  const r = { ...who(s), result, callback_calls: seen.length, callback_args: seen };
  await disconnectAll();
  return r;
};

// big: args: service_id (optional: without it a second client of this process serves echo),
//      size=5242880, fn="echo", seed
scenarios.big = async (url, a) => {
  const size = a.size ?? 5 * 1024 * 1024;
  let serviceId = a.service_id;
  if (!serviceId) {
    const provider = await connect(url, { ...a, client_id: undefined, token: a.token });
    const info = await provider.registerService(makeService("js-big-echo", "public", false, {}));
    serviceId = info.id;
  }
  const s = await connect(url, a);
  const svc = await s.getService(serviceId);
  const payload = makePayload(size, a.seed);
  const sent = sha256(payload);
  const t0 = process.hrtime.bigint();
  const got = await svc[a.fn || "echo"](payload);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!(got instanceof Uint8Array)) throw new Error("echo returned " + typeof got + ", not bytes");
  const recv = sha256(got);
  const r = {
    service_id: serviceId,
    size,
    recv_size: got.byteLength,
    sent_sha256: sent,
    recv_sha256: recv,
    equal: sent === recv && got.byteLength === size,
    ms: Math.round(ms),
  };
  await disconnectAll();
  if (!r.equal) throw new Error("bytes differ: " + JSON.stringify(r));
  return r;
};

// token_then_join: A connects (token/workspace from args; the root token gives ws-user-root),
// registers a protected probe service, generates a token for its workspace; B connects with
// that token to that workspace, lists services, gets the probe by its short id and calls it.
// args: permission="read_write", expires_in=3600, probe_id="join-probe"
scenarios.token_then_join = async (url, a) => {
  const A = await connect(url, a);
  const ws = A.config.workspace;
  const probeId = a.probe_id || "join-probe";
  await A.registerService({
    id: probeId,
    config: { visibility: "protected" },
    hello: (x) => "hello " + x,
  });
  const tokenCfg = {
    workspace: ws,
    permission: a.permission || "read_write",
    expires_in: a.expires_in ?? 3600,
  };
  const token = await A.generateToken(tokenCfg);
  if (typeof token !== "string" || token.length < 10) throw new Error("bad token: " + JSON.stringify(token));
  const B = await connect(url, { method_timeout: a.method_timeout, token, workspace: ws });
  const list = await B.listServices();
  const ids = (list || []).map((x) => x.id).sort();
  const probe = await B.getService(probeId);
  const called = await probe.hello("B");
  const r = {
    a: who(A),
    b: who(B),
    token_len: token.length,
    token_is_jwt: token.split(".").length === 3,
    b_user_scope: B.config.user ? B.config.user.scope : null,
    listed: ids,
    probe_id: probe.id,
    probe_config: probe.config,
    called,
  };
  await disconnectAll();
  return r;
};

// protected_refused: args: service_id (a protected service of another workspace). Without it,
// client A (anonymous, own workspace) registers protected "js-protected" and B (another anonymous
// client, another workspace) tries to get it.
scenarios.protected_refused = async (url, a) => {
  let serviceId = a.service_id;
  if (!serviceId) {
    const A = await connect(url, { method_timeout: a.method_timeout });
    const info = await A.registerService(makeService("js-protected", "protected", false, {}));
    serviceId = info.id;
  }
  const B = await connect(url, a);
  let error = null;
  let got = null;
  try {
    got = await B.getService(serviceId);
  } catch (e) {
    error = errMsg(e);
  }
  const r = {
    ...who(B),
    service_id: serviceId,
    refused: error !== null,
    error_summary: error === null ? null : errSummary(error),
    error,
  };
  await disconnectAll();
  if (error === null) throw new Error("get_service unexpectedly succeeded: " + JSON.stringify(toJSONable(got && got.id)));
  return r;
};

// two_js: A registers the test service, B (another client) calls it.
// args: service_id="two-js-svc", visibility="public" (B is anonymous in another workspace unless
//       token/workspace are given, then both use them)
scenarios.two_js = async (url, a) => {
  const counters = {};
  const A = await connect(url, { ...a, client_id: a.client_id_a });
  const info = await A.registerService(
    makeService(a.service_id || "two-js-svc", a.visibility || "public", true, counters),
  );
  const B = await connect(url, { ...a, client_id: a.client_id_b });
  const svc = await B.getService(info.id);
  const bytes = new Uint8Array([0, 1, 2, 250, 255]);
  const seen = [];
  const out = {};
  out.add = await svc.add(2, 3);
  const echoed = await svc.echo(bytes);
  out.echo_bytes_equal =
    echoed instanceof Uint8Array && Buffer.compare(Buffer.from(echoed), Buffer.from(bytes)) === 0;
  out.echo_bytes = echoed;
  out.echo_obj = await svc.echo({ s: "x", n: 1.5, l: [1, null, true] });
  out.call_back = await svc.call_back((x) => {
    seen.push(x);
    return "js:" + x;
  }, "ping");
  try {
    await svc.fail("boom");
    out.fail = null;
  } catch (e) {
    out.fail = errValue(e);
  }
  out.ctx_who = await svc.ctx_who();
  const r = {
    a: who(A),
    b: who(B),
    service_id: info.id,
    service_config: svc.config,
    results: out,
    callback_args: seen,
    served: counters,
  };
  await disconnectAll();
  return r;
};

// echo_bench: args: service_id (required), seconds=5, concurrency=4, payload_size=16 (bytes;
//             0 sends the string "x")
scenarios.echo_bench = async (url, a) => {
  if (!a.service_id) throw new Error("echo_bench: service_id is required");
  const s = await connect(url, a);
  const svc = await s.getService(a.service_id);
  const seconds = a.seconds ?? 5;
  const conc = a.concurrency ?? 4;
  const payload = (a.payload_size ?? 16) > 0 ? makePayload(a.payload_size ?? 16) : "x";
  const lat = [];
  let errors = 0;
  let firstError = null;
  await svc.echo(payload); // warm up
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  const worker = async () => {
    while (process.hrtime.bigint() < end) {
      const t0 = process.hrtime.bigint();
      try {
        await svc.echo(payload);
        lat.push(Number(process.hrtime.bigint() - t0) / 1e3);
      } catch (e) {
        errors++;
        if (!firstError) firstError = errMsg(e);
        if (errors > 100) return;
      }
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((x, y) => x - y);
  const pct = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]) : null);
  const r = {
    service_id: a.service_id,
    seconds: Math.round(elapsed * 1000) / 1000,
    concurrency: conc,
    calls: lat.length,
    errors,
    first_error: firstError,
    calls_per_s: Math.round((lat.length / elapsed) * 10) / 10,
    p50_us: pct(0.5),
    p99_us: pct(0.99),
  };
  await disconnectAll();
  return r;
};

// ---- main ----
async function main() {
  const [name, url, rawArgs] = process.argv.slice(2);
  if (!name || !url || !scenarios[name]) {
    fail(
      "usage: node scenario.mjs <" + Object.keys(scenarios).join("|") + "> <server_url> [json-args]",
    );
    return;
  }
  let args = {};
  if (rawArgs) {
    try {
      args = JSON.parse(rawArgs);
    } catch (e) {
      fail("bad json-args: " + errMsg(e));
      return;
    }
  }
  let defaultTimeout = 30;
  if (name === "echo_bench") defaultTimeout = Math.max(30, (args.seconds ?? 5) + 25);
  let deadline = null;
  const ctl = {
    setDeadline(ms, why) {
      if (deadline) clearTimeout(deadline);
      deadline = setTimeout(() => fail(why), ms);
    },
    clearDeadline() {
      if (deadline) clearTimeout(deadline);
      deadline = null;
    },
  };
  const timeoutS = args.timeout ?? defaultTimeout;
  ctl.setDeadline(timeoutS * 1000, `timeout after ${timeoutS}s in scenario ${name}`);
  try {
    const result = await scenarios[name](url, args, ctl);
    succeed(result);
  } catch (e) {
    console.error(e && e.stack ? e.stack : e);
    fail(errMsg(e));
  }
}

main();
