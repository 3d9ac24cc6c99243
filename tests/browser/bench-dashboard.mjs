// The dashboard benchmark's browser side (scripts/bench-dashboard.sh): in Debian's headless
// Chromium, the time to the first complete sales page (Performance API: from navigation start to
// the end of the first render, every chart and KPI filled) and the time to apply a filter (from
// the change to the end of the render it causes), RUNS times each. Prints one JSON object.
//
//   node tests/browser/bench-dashboard.mjs <sign-in link> [runs]
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../web/package.json"));
const { chromium } = require("playwright-core");

const [link, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 5);
const origin = new URL(link).origin;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
const ready = (page) => page.waitForFunction(() => Number(document.body.dataset.renders || 0) >= 1 && document.getElementById("main").dataset.state === "ready", null, { timeout: 120000 });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

// Sign in once (the session cookie stays in the context).
const first = await context.newPage();
await first.goto(link);
await ready(first);
const cold = await first.evaluate(() => performance.now());
const state = await first.evaluate(() => ({ ...window.alkasba.state }));
const currencies = await first.$$eval("select[name=currency] option", (os) => os.map((o) => o.value).filter(Boolean));
const categories = await first.$$eval("select[name=category] option", (os) => os.map((o) => o.value).filter(Boolean));
await first.close();

const views = [];
for (let i = 0; i < runs; i++) {
  const page = await context.newPage();
  await page.goto(`${origin}/#page=sales`);
  await ready(page);
  views.push(await page.evaluate(() => performance.now()));
  await page.close();
}

// Filters on one page: a currency, back to all, a category, back to all, in turn.
const page = await context.newPage();
await page.goto(`${origin}/#page=sales`);
await ready(page);
const changes = [];
for (let i = 0; i < runs; i++) {
  changes.push(["currency", currencies[i % currencies.length]], ["currency", ""], ["category", categories[i % categories.length]], ["category", ""]);
}
const filters = [];
for (const [name, value] of changes) {
  filters.push(await page.evaluate(async ([name, value]) => {
    const n = Number(document.body.dataset.renders || 0);
    const sel = document.querySelector(`select[name=${name}]`);
    const t0 = performance.now();
    sel.value = value;
    sel.dispatchEvent(new Event("change", { bubbles: true }));
    await new Promise((resolve) => { const check = () => (Number(document.body.dataset.renders || 0) > n ? resolve() : requestAnimationFrame(check)); check(); });
    return performance.now() - t0;
  }, [name, value]));
}
await browser.close();
console.log(JSON.stringify({ state, cold_first_view_ms: cold, first_view_ms: median(views), first_views_ms: views, filter_ms: median(filters), filters_ms: filters, currencies, category: categories[0] }));
