// A worker in the seed's class style: a class with property getters and
// async methods with the signatures start(config, context = null), ...,
// registered through getWorkerService() with the methods bound to the
// instance and config.require_context = true. Written for the tests; see
// harness.cjs for the command line and the app it runs.
"use strict";

const h = require("./harness.cjs");

class SeedClassWorker {
  constructor() {
    this.sessions = new Map();
    this.sessionData = new Map();
  }

  get supportedTypes() {
    return h.args.supported_types || ["seed-js-class"];
  }
  get name() {
    return "Seed Class Worker";
  }
  get description() {
    return "A worker written as a class, in the seed's style";
  }
  get visibility() {
    return h.args.visibility || "protected";
  }
  get runInExecutor() {
    return true;
  }
  get requireContext() {
    return true;
  }
  get serviceId() {
    return h.args.service_id || "seed-class-worker";
  }

  async start(config, context = null) {
    h.record("start", arguments, context);
    const sessionId = config.id;
    if (this.sessions.has(sessionId)) throw new Error(`Session ${sessionId} already exists`);
    const progress = config.progress_callback;
    if (progress) await progress({ type: "info", message: `class worker starting ${sessionId}` });
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
    this.sessions.set(sessionId, info);
    const logs = [];
    const log = (type, content) => logs.push({ type, content });
    this.sessionData.set(sessionId, { logs });
    try {
      log("stdout", `context: ${context ? context.ws : "none"}`);
      const code = h.runApp(await h.loadEntry(config), log);
      info.status = code === null ? "running" : code === 0 ? "completed" : "failed";
      if (code) {
        info.error = `exit code ${code}`;
        info.exit_code = code;
      }
    } catch (err) {
      info.status = "failed";
      info.error = err.message;
      throw err;
    }
    if (progress) await progress({ type: "success", message: `class worker started ${sessionId}` });
    return sessionId;
  }

  async stop(sessionId, context = null) {
    h.record("stop", arguments, context);
    const info = this.sessions.get(sessionId);
    if (!info) return;
    if (info.status === "running" || info.status === "starting") info.status = "stopped";
  }

  async listSessions(workspace, context = null) {
    h.record("list_sessions", arguments, context);
    return [...this.sessions.values()].filter((s) => s.workspace === workspace);
  }

  async getSessionInfo(sessionId, context = null) {
    h.record("get_session_info", arguments, context);
    const info = this.sessions.get(sessionId);
    if (!info) throw new Error(`Session ${sessionId} not found`);
    return info;
  }

  async getLogs(sessionId, type = null, offset = 0, limit = null, context = null) {
    h.record("get_logs", arguments, context);
    const data = this.sessionData.get(sessionId);
    if (!data) throw new Error(`Session ${sessionId} not found`);
    return h.logPage(data.logs, type, offset, limit);
  }

  async prepareWorkspace(workspace, context = null) {
    h.record("prepare_workspace", arguments, context);
  }

  async closeWorkspace(workspace, context = null) {
    h.record("close_workspace", arguments, context);
    for (const [id, s] of this.sessions) if (s.workspace === workspace) await this.stop(id, context);
  }

  getWorkerService() {
    return {
      id: this.serviceId,
      name: this.name,
      description: this.description,
      type: "server-app-worker",
      config: {
        visibility: this.visibility,
        run_in_executor: this.runInExecutor,
        require_context: this.requireContext,
      },
      supported_types: this.supportedTypes,
      start: this.start.bind(this),
      stop: this.stop.bind(this),
      list_sessions: this.listSessions.bind(this),
      get_logs: this.getLogs.bind(this),
      get_session_info: this.getSessionInfo.bind(this),
      prepare_workspace: this.prepareWorkspace.bind(this),
      close_workspace: this.closeWorkspace.bind(this),
    };
  }
}

async function main() {
  const worker = new SeedClassWorker();
  const server = await h.connect();
  await h.serve(server, worker.getWorkerService());
}

main().catch(h.fail);
