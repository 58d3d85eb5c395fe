// An MCP client from the npm @modelcontextprotocol/sdk (version pinned in
// package.json) against the server's MCP endpoint (docs/mcp.md), driven by
// interop/mcp_test.go:
//
//   node mcp_client.mjs <endpoint> '{"token": "...", "calls": [{"name": "add", "arguments": {...}}]}'
//
// It connects over streamable HTTP, lists the tools, makes the calls in
// order, closes the session and prints one line `RESULT <json>` ({tools:
// [{name, description, inputSchema}], calls: [CallToolResult or
// {"$error": message}]}), or `ERROR <message>` (exit 1). Hard limit 60 s.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [endpoint, argsJSON] = process.argv.slice(2);
const args = JSON.parse(argsJSON || "{}");
const timer = setTimeout(() => {
  console.log("ERROR timeout after 60 s");
  process.exit(1);
}, 60_000);

async function main() {
  const headers = args.token ? { Authorization: `Bearer ${args.token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(endpoint), { requestInit: { headers } });
  const client = new Client({ name: "hypha-go-interop", version: "1.0.0" });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    const calls = [];
    for (const c of args.calls || []) {
      try {
        calls.push(await client.callTool({ name: c.name, arguments: c.arguments || {} }));
      } catch (e) {
        calls.push({ $error: String(e && e.message ? e.message : e) });
      }
    }
    return {
      server: client.getServerVersion(),
      tools: tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema })),
      calls,
    };
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close();
  }
}

main().then(
  (r) => {
    clearTimeout(timer);
    console.log("RESULT " + JSON.stringify(r));
  },
  (e) => {
    clearTimeout(timer);
    console.error(e);
    console.log("ERROR " + String(e && e.message ? e.message : e).split("\n")[0]);
    process.exit(1);
  },
);
