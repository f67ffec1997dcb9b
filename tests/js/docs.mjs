// Opens /docs (Swagger UI) and /docs/events in headless Debian Chromium and reports what a reader sees.
// Env: URL, CHROMIUM (path), SHOT_DIR (optional: screenshots). Prints one JSON line and exits 0.
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { URL, CHROMIUM, SHOT_DIR } = process.env;
const origin = new globalThis.URL(URL).origin;
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "immune-chromium-")), {
  executablePath: CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let code = 0;
try {
  const page = await context.newPage();
  const errors = [];
  const offsite = [];
  const failed = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("request", (req) => { if (!req.url().startsWith(origin) && !req.url().startsWith("data:")) offsite.push(req.url()); });
  page.on("response", (res) => { if (res.status() >= 400) failed.push(`${res.status()} ${res.url()}`); });

  await page.goto(`${URL}/docs`);
  await page.waitForSelector(".opblock", { timeout: 20000 });
  const operations = await page.$$eval(".opblock", (blocks) => blocks.map((b) =>
    `${b.querySelector(".opblock-summary-method")?.textContent} ${b.querySelector(".opblock-summary-path")?.getAttribute("data-path")}`));
  // Open POST /alerts: the request body's example names its fields.
  const alerts = page.locator(".opblock-post", { has: page.locator('[data-path="/alerts"]') });
  await alerts.locator(".opblock-summary").click();
  await alerts.locator(".body-param__example, .microlight").first().waitFor({ timeout: 10000 });
  const alertBody = await alerts.locator(".body-param__example, .microlight").first().textContent();
  if (SHOT_DIR) await page.screenshot({ path: join(SHOT_DIR, "docs-rest.png") });

  await page.goto(`${URL}/docs/events`);
  await page.waitForSelector("#m-agent_created table", { timeout: 10000 });
  const events = await page.$$eval("section h3 code", (codes) => codes.map((c) => c.textContent));
  const agentFields = await page.$$eval("#m-agent_created table tr td:first-child code", (c) => c.map((x) => x.textContent));
  const rawBackticks = (await page.textContent("main")).includes("`");
  if (SHOT_DIR) await page.screenshot({ path: join(SHOT_DIR, "docs-events.png") });
  console.log(JSON.stringify({ operations, alertBody, events, agentFields, rawBackticks, errors, offsite, failed }));
} catch (err) {
  console.error(String(err));
  code = 1;
} finally {
  await context.close();
}
process.exit(code);
