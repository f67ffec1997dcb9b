// Drives the served dashboard in headless Debian Chromium with playwright-core.
// Env: URL, TOKEN (admin), CHROMIUM (path), SHOT (optional screenshot path).
// Protocol with the pytest wrapper: prints {"step": "ready"} once the page shows "connected",
// then waits for a line "check <event_type>" on stdin and prints {"step": "seen", ...} when the
// feed shows that event, or "status <text>" and prints {"step": "status", ...} once the status
// line contains <text>; "quit" ends it. With HOLD_AGENTS=1 the page's first GET /agents is held
// until "release", which prints {"step": "released", agents} once that refetch has been applied.
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import readline from "node:readline";

const { URL, TOKEN, CHROMIUM, SHOT, HOLD_AGENTS } = process.env;
const say = (step, data = {}) => console.log(JSON.stringify({ step, ...data }));

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "immune-chromium-")), {
  executablePath: CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let code = 0;
try {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  let release = () => {};
  if (HOLD_AGENTS) {
    const released = new Promise((resolve) => { release = resolve; });
    let held = false;
    await page.route("**/agents?*", async (route) => {
      if (!held) { held = true; await released; }
      await route.continue();
    });
  }
  await page.goto(`${URL}/#token=${TOKEN}`);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15000 });
  say("ready", { status: await page.textContent("#status"), url: page.url() });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [command, eventType, ...rest] = line.trim().split(/\s+/);
    if (command === "quit") break;
    if (command === "status") {
      // "status <text>": wait until the status line contains <text>
      const wanted = [eventType, ...rest].join(" ");
      await page.waitForFunction((w) => document.querySelector("#status").textContent.includes(w), wanted,
                                 { timeout: 15000 });
      say("status", { status: await page.textContent("#status"), errors });
    }
    if (command === "release") {
      release();
      await page.waitForFunction(() => document.querySelector("#agents").dataset.refetching === "false",
                                 null, { timeout: 15000 });
      say("released", { agents: await page.$$eval("#agents tr", (rows) => rows.map((r) => r.textContent)), errors });
    }
    if (command === "check") {
      const item = await page.waitForSelector(`#feed li[data-event-type="${eventType}"]`, { timeout: 10000 });
      say("seen", {
        text: await item.textContent(),
        agents: await page.$$eval("#agents tr", (rows) => rows.map((r) => r.textContent)),
        errors,
      });
    }
  }
  if (SHOT) await page.screenshot({ path: SHOT, fullPage: true });
} catch (err) {
  console.error(String(err));
  code = 1;
} finally {
  await context.close();
}
process.exit(code);
