// Drives the dashboard in Debian's headless Chromium (playwright-core from web/node_modules) and
// reports what it shows, one JSON line per step on stdout, for tests/tests/dashboard.rs to check
// against DuckDB. Screenshots go to the output directory.
//
//   node tests/browser/dashboard.mjs <sign-in link> <output dir>
//
// Before the live step's second reading it prints {"step":"live_waiting"} and waits for a line
// on stdin (the test sends webhook events meanwhile).
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../web/package.json"));
const { chromium } = require("playwright-core");

const [link, out] = process.argv.slice(2);
if (!link || !out) { console.error("usage: dashboard.mjs <sign-in link> <output dir>"); process.exit(2); }
mkdirSync(out, { recursive: true });
const origin = new URL(link).origin;
const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
// Reduced motion: the charts are drawn without transitions, so a screenshot shows the final chart,
// not the previous view's bars fading out behind it.
const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, reducedMotion: "reduce" });
const page = await context.newPage();
const requests = [], problems = [];
page.on("request", (r) => requests.push(r.url()));
page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

const renders = () => page.evaluate(() => Number(document.body.dataset.renders || 0));
async function rendered(after, timeout = 60000) {
  await page.waitForFunction((n) => Number(document.body.dataset.renders || 0) > n && document.getElementById("main").dataset.state === "ready", after, { timeout });
}
// What the page shows: KPI values, the charts' data (from ECharts), the tables' cells.
const snapshot = () => page.evaluate(() => {
  const kpis = {};
  document.querySelectorAll("section.page.active .kpi").forEach((k) => { kpis[k.dataset.kpi] = k.dataset.value === "" ? null : Number(k.dataset.value); });
  const charts = {};
  document.querySelectorAll("section.page.active .chart").forEach((el) => {
    const c = echarts.getInstanceByDom(el);
    if (!c) return;
    const o = c.getOption();
    charts[el.id] = { animation: o.animation, x: (o.xAxis || [])[0] && o.xAxis[0].data, y: (o.yAxis || [])[0] && o.yAxis[0].data, series: o.series.map((s) => ({ name: s.name, data: s.data })) };
  });
  const tables = {};
  document.querySelectorAll("section.page.active table").forEach((t) => {
    tables[t.id] = [...t.querySelectorAll("tbody tr")].filter((tr) => tr.querySelector("td[data-col]")).map((tr) => Object.fromEntries([...tr.querySelectorAll("td[data-col]")].map((td) => [td.dataset.col, td.dataset.value])));
  });
  return { state: { ...window.alkasba.state }, kpis, charts, tables, text: document.querySelector("section.page.active").innerText.slice(0, 4000) };
});
async function step(name, act) {
  const n = await renders();
  const t0 = Date.now();
  await act();
  await rendered(n);
  const ms = Date.now() - t0;
  const s = await snapshot();
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
  emit({ step: name, ms, ...s });
}
const options = (name) => page.$$eval(`select[name=${name}] option`, (os) => os.map((o) => o.value).filter(Boolean));

try {
  // Sign in through the link, land on the sales page.
  await step("sales", () => page.goto(link));
  const timing = await page.evaluate(() => ({ first_view_ms: performance.now() }));
  emit({ step: "timing", ...timing });
  const currencies = await options("currency");
  const categories = await options("category");
  const currency = currencies.includes("EUR") ? "EUR" : currencies[0];
  await step("sales_currency", () => page.selectOption("select[name=currency]", currency));
  await step("sales_month", async () => { await page.selectOption("select[name=currency]", ""); await page.selectOption("select[name=grain]", "month"); });
  // Drill down: the biggest category's bar on the sales page opens its products.
  // Drill down: a click on the biggest category's bar opens its products.
  await step("products_drill", async () => {
    const box = await page.locator("#chart-categories").boundingBox();
    const [x, y] = await page.evaluate(() => {
      const c = echarts.getInstanceByDom(document.getElementById("chart-categories"));
      const o = c.getOption();
      return c.convertToPixel({ seriesIndex: 0 }, [o.series[0].data[0] / 2, o.yAxis[0].data[0]]);
    });
    await page.mouse.click(box.x + x, box.y + y);
  });
  await step("products_category", () => page.selectOption("select[name=category]", categories[categories.length - 1]));
  for (const p of ["customers", "competition", "health", "forecast"]) {
    await step(p, () => page.click(`#nav a[data-page=${p}]`));
  }
  await step("live", () => page.click("#nav a[data-page=live]"));
  emit({ step: "live_waiting" });
  await lines.next();
  const before = await page.evaluate(() => window.alkasba.live && window.alkasba.live.updated_ms);
  await page.waitForFunction((b) => window.alkasba.live && window.alkasba.live.updated_ms !== b && Number(document.querySelector('[data-kpi="orders_1h"]')?.dataset.value || 0) > 0, before, { timeout: 120000 });
  await step("live_after", () => page.evaluate(() => undefined).then(() => null));
  // A phone: the sales page fits the screen's width.
  await page.setViewportSize({ width: 390, height: 844 });
  await step("phone", () => page.click("#nav a[data-page=sales]"));
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
  emit({ step: "done", phone_fits: fits, requests, outside: requests.filter((u) => !u.startsWith(origin) && !u.startsWith("data:")), problems });
} catch (e) {
  await page.screenshot({ path: path.join(out, "failure.png"), fullPage: true }).catch(() => {});
  emit({ step: "failed", error: String(e && e.stack || e), requests, problems });
  process.exitCode = 1;
} finally {
  input.close();
  await browser.close();
}
