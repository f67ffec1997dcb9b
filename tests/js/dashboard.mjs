// Drives the served swarm console in headless Debian Chromium with playwright-core, for
// tests/test_dashboard.py. Env: URL, CHROMIUM (path), WIDTH/HEIGHT (viewport).
// Protocol: one JSON command per stdin line, one JSON answer per stdout line:
//   {"cmd": "goto", "path": "/#token=..."}                 -> {"ok": true}
//   {"cmd": "wait", "selector": "...", "text": "..."?}     waits until the element (containing text) exists
//   {"cmd": "text", "selector": "..."}                     -> {"ok": true, "result": textContent}
//   {"cmd": "texts", "selector": "..."}                    -> every match's textContent
//   {"cmd": "click" | "fill" | "select", "selector", "value"?}
//   {"cmd": "eval", "expr": "..."}                         -> the expression's (JSON) value in the page
//   {"cmd": "screenshot", "path": "..."}
//   {"cmd": "report"}  -> page errors, console errors, failed requests and off-site requests so far
//   {"cmd": "quit"}
// A failed command answers {"ok": false, "error": "..."} and the driver goes on.
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import readline from "node:readline";

const { URL, CHROMIUM, WIDTH, HEIGHT } = process.env;
const origin = new globalThis.URL(URL).origin;
const answer = (data) => console.log(JSON.stringify(data));

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "immune-chromium-")), {
  executablePath: CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: Number(WIDTH || 1280), height: Number(HEIGHT || 900) },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = await context.newPage();
const problems = { pageErrors: [], consoleErrors: [], failed: [], offsite: [] };
page.on("pageerror", (err) => problems.pageErrors.push(String(err)));
page.on("console", (msg) => { if (msg.type() === "error") problems.consoleErrors.push(msg.text()); });
page.on("request", (req) => { if (!req.url().startsWith(origin) && !req.url().startsWith("data:")) problems.offsite.push(req.url()); });
page.on("response", (res) => { if (res.status() >= 400) problems.failed.push(`${res.status()} ${res.request().method()} ${res.url()}`); });

const TIMEOUT = 20000;
const commands = {
  goto: async ({ path }) => { await page.goto(`${URL}${path}`); },
  wait: async ({ selector, text }) => {
    if (text === undefined) await page.waitForSelector(selector, { timeout: TIMEOUT });
    else await page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((e) => e.textContent.includes(t)),
      [selector, text], { timeout: TIMEOUT });
  },
  text: async ({ selector }) => page.textContent(selector, { timeout: TIMEOUT }),
  texts: async ({ selector }) => page.$$eval(selector, (els) => els.map((e) => e.textContent)),
  click: async ({ selector }) => { await page.click(selector, { timeout: TIMEOUT }); },
  fill: async ({ selector, value }) => { await page.fill(selector, value, { timeout: TIMEOUT }); },
  select: async ({ selector, value }) => { await page.selectOption(selector, value, { timeout: TIMEOUT }); },
  eval: async ({ expr }) => page.evaluate(expr),
  screenshot: async ({ path }) => { await page.screenshot({ path, fullPage: true }); },
  report: async () => problems,
};

let code = 0;
try {
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    if (command.cmd === "quit") break;
    try {
      answer({ ok: true, result: (await commands[command.cmd](command)) ?? null });
    } catch (err) {
      answer({ ok: false, error: String(err).slice(0, 2000) });
    }
  }
} catch (err) {
  console.error(String(err));
  code = 1;
} finally {
  await context.close();
}
process.exit(code);
