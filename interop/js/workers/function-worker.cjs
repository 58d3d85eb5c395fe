// A worker in the seed's "simple functions" style (plain async functions with
// the signatures start(config, context = null), stop(sessionId, context =
// null), ...; no require_context in its config). Written for the tests; see
// harness.cjs for the command line and the app it runs.
"use strict";

const h = require("./harness.cjs");

const sessions = new Map(); // session id -> session info
const sessionData = new Map(); // session id -> {logs, server}

async function start(config, context = null) {
  h.record("start", arguments, context);
  const sessionId = config.id;
  const progress = config.progress_callback;
  if (progress) await progress({ type: "info", message: `function worker starting ${sessionId}` });
  const info = {
    session_id: sessionId,
    app_id: config.app_id,
    workspace: config.workspace,
    client_id: config.client_id,
    status: "starting",
    app_type: config.manifest.type,
    entry_point: config.entry_point,
    created_at: new Date().toISOString(),
    metadata: config.manifest,
  };
  sessions.set(sessionId, info);
  const logs = [];
  const log = (type, content) => logs.push({ type, content });
  // As in the seed: a connection of the session's own and the artifact manager.
  const server = await h.hyphaWebsocketClient.connectToServer({ server_url: config.server_url });
  const artifactManager = await server.getService("public/artifact-manager");
  sessionData.set(sessionId, { logs, server, artifactManager });
  log("stdout", `context: ${context ? context.ws : "none"}`);
  const code = h.runApp(await h.loadEntry(config), log);
  info.status = code === null ? "running" : code === 0 ? "completed" : "failed";
  if (code) {
    info.error = `exit code ${code}`;
    info.exit_code = code;
  }
  if (progress) await progress({ type: "success", message: `function worker started ${sessionId}` });
  return sessionId;
}

async function stop(sessionId, context = null) {
  h.record("stop", arguments, context);
  const info = sessions.get(sessionId);
  if (!info) return;
  if (info.status === "running" || info.status === "starting") info.status = "stopped";
  const data = sessionData.get(sessionId);
  if (data && data.server) {
    await data.server.disconnect();
    data.server = null;
  }
}

async function listSessions(workspace, context = null) {
  h.record("list_sessions", arguments, context);
  return [...sessions.values()].filter((s) => s.workspace === workspace);
}

async function getSessionInfo(sessionId, context = null) {
  h.record("get_session_info", arguments, context);
  const info = sessions.get(sessionId);
  if (!info) throw new Error(`Session ${sessionId} not found`);
  return info;
}

async function getLogs(sessionId, type = null, offset = 0, limit = null, context = null) {
  h.record("get_logs", arguments, context);
  if (!sessionData.has(sessionId)) throw new Error(`Session ${sessionId} not found`);
  return h.logPage(sessionData.get(sessionId).logs, type, offset, limit);
}

async function prepareWorkspace(workspace, context = null) {
  h.record("prepare_workspace", arguments, context);
}

async function closeWorkspace(workspace, context = null) {
  h.record("close_workspace", arguments, context);
  for (const [id, s] of sessions) if (s.workspace === workspace) await stop(id, context);
}

async function main() {
  const server = await h.connect();
  await h.serve(server, {
    id: h.args.service_id || "seed-function-worker",
    name: "Seed Function Worker",
    description: "A worker written as plain functions, in the seed's style",
    type: "server-app-worker",
    config: { visibility: h.args.visibility || "protected", run_in_executor: true },
    supported_types: h.args.supported_types || ["seed-js"],
    start,
    stop,
    list_sessions: listSessions,
    get_logs: getLogs,
    get_session_info: getSessionInfo,
    prepare_workspace: prepareWorkspace,
    close_workspace: closeWorkspace,
  });
}

main().catch(h.fail);
