// The Playwright side of the browser worker's benchmark (docs/benchmarks.md
// section 8): what a user would write instead of the browser worker.
// playwright-core launches the given Chromium executable headless; every
// session is a new browser context with one page, loaded like the worker
// loads it (goto, waiting for the load event).
//
// Protocol, one JSON object a line: on start it prints {"ready": true};
// then it reads requests from stdin and answers each with the same id:
//   {"id": "...", "op": "open", "url": "..."}   -> {"id": "...", "ok": true}
//   {"id": "...", "op": "close"}                -> {"id": "...", "ok": true}
// and {"id": ..., "error": "..."} when one fails; {"id": ..., "failed": "..."}
// when an open page reports an error. It exits when stdin ends.
//
// usage: node driver.mjs CHROMIUM_PATH
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const executablePath = process.argv[2] || "/usr/bin/chromium";
const args = process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [];
const browser = await chromium.launch({ executablePath, headless: true, args });
const contexts = new Map();
const send = (o) => process.stdout.write(JSON.stringify(o) + "\n");
send({ ready: true, version: browser.version() });

const rl = createInterface({ input: process.stdin });
const pending = new Set();
rl.on("line", (line) => {
  const req = JSON.parse(line);
  const p = (async () => {
    try {
      if (req.op === "open") {
        const ctx = await browser.newContext();
        contexts.set(req.id, ctx);
        const page = await ctx.newPage();
        // A page that fails to connect back says why on stderr.
        page.on("console", (m) => {
          if (m.type() === "error" || m.type() === "warning") process.stderr.write(`[${req.id}] console.${m.type()}: ${m.text()}\n`);
          if (m.type() === "error" && m.text().startsWith("app failed")) send({ id: req.id, failed: m.text() });
        });
        // A page error (the client's module failed to load, an uncaught
        // exception) is reported to the benchmark, which retries the session.
        page.on("pageerror", (e) => send({ id: req.id, failed: String(e) }));
        await page.goto(req.url, { waitUntil: "load", timeout: 600000 });
      } else if (req.op === "close") {
        const ctx = contexts.get(req.id);
        contexts.delete(req.id);
        if (ctx) await ctx.close();
      } else {
        throw new Error(`unknown op ${req.op}`);
      }
      send({ id: req.id, ok: true });
    } catch (e) {
      send({ id: req.id, error: String(e && e.message ? e.message : e) });
    }
  })();
  pending.add(p);
  p.finally(() => pending.delete(p));
});
rl.on("close", async () => {
  await Promise.allSettled([...pending]);
  await browser.close();
  process.exit(0);
});
