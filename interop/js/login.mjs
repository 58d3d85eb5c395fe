// Login interop: the npm hypha-rpc client's login() helper against a Hypha server.
//
// usage: node login.mjs <server_url> <json-args>
//   args: {username, password} to log in on the login page with an account,
//         or {token} to log in there with a token;
//         workspace, expires_in (optional, passed to login()), profile (bool).
// The login_callback plays the user: it posts the form fields to the login
// page's report endpoint (what the page's script does), or, with
// {"report_get": true}, calls report_url?key=&token= as hypha-rpc's own tests do.
// stdout: RESULT <json> {result, login_url_path} on success, ERROR <message> otherwise.
import WebSocket from "ws";
import { hyphaWebsocketClient } from "hypha-rpc";

if (typeof globalThis.WebSocket === "undefined") globalThis.WebSocket = WebSocket;
const out = (line) => process.stdout.write(line + "\n", () => process.exit(line.startsWith("RESULT") ? 0 : 1));
for (const k of ["log", "info", "debug", "warn"]) console[k] = (...a) => console.error(...a);

const [url, raw] = process.argv.slice(2);
const a = JSON.parse(raw || "{}");
setTimeout(() => out("ERROR timed out"), 60000).unref();

let loginUrlPath = null;
try {
  const cfg = {
    server_url: url,
    login_timeout: 30,
    profile: !!a.profile,
    login_callback: async (ctx) => {
      const u = new URL(ctx.login_url);
      loginUrlPath = u.pathname;
      if (a.report_get) {
        const r = await fetch(`${ctx.report_url}?key=${encodeURIComponent(ctx.key)}&token=${encodeURIComponent(a.token)}`);
        if (!r.ok) throw new Error(`report_url answered ${r.status}: ${await r.text()}`);
        return;
      }
      const body = { key: u.searchParams.get("key"), workspace: u.searchParams.get("workspace") || "",
        expires_in: u.searchParams.get("expires_in") || "" };
      if (a.username) Object.assign(body, { username: a.username, password: a.password });
      else body.token = a.token;
      const r = await fetch(new URL("report", u).href, { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`the login page answered ${r.status}: ${await r.text()}`);
    },
  };
  if (a.workspace) cfg.workspace = a.workspace;
  if (a.expires_in) cfg.expires_in = a.expires_in;
  const result = await hyphaWebsocketClient.login(cfg);
  out("RESULT " + JSON.stringify({ result, login_url_path: loginUrlPath }));
} catch (e) {
  console.error(e && e.stack ? e.stack : e);
  out("ERROR " + String(e && e.message ? e.message : e).split("\n")[0]);
}
