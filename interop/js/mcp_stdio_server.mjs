// An MCP server over stdio written with the npm MCP SDK
// (@modelcontextprotocol/sdk): the peer of interop/mcpproxy_test.go, run by
// the MCP proxy worker (workers/mcpproxy) as a stdio server.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "node-mcp", version: "1.0.0" });
server.registerTool(
  "add",
  { description: "Add two numbers.", inputSchema: { a: z.number(), b: z.number() }, outputSchema: { sum: z.number() } },
  async ({ a, b }) => ({
    content: [{ type: "text", text: JSON.stringify({ sum: a + b }) }],
    structuredContent: { sum: a + b },
  }),
);
server.registerTool("greet", { description: "Greet someone.", inputSchema: { name: z.string() } }, async ({ name }) => ({
  content: [{ type: "text", text: `Hello, ${name}!` }],
}));
server.registerResource("motd", "memo://motd", { description: "Message of the day", mimeType: "text/plain" }, async (uri) => ({
  contents: [{ uri: uri.href, text: "node says hi" }],
}));
server.registerPrompt("review", { description: "Review code.", argsSchema: { code: z.string() } }, ({ code }) => ({
  messages: [{ role: "user", content: { type: "text", text: "Review: " + code } }],
}));
process.stderr.write("node-mcp ready\n");
await server.connect(new StdioServerTransport());
