// The dashboard: pages of charts and tables over the dashboard function's named queries
// (`/api/q/<name>`), which read the gold and ops Delta tables. Filters live in the URL fragment,
// so a view can be bookmarked, shared, and the back button works. After each complete render
// `document.body.dataset.renders` counts up and `window.alkasba.answers` holds what was shown
// (the browser test reads both).
"use strict";

const PAGES = {
  sales: ["sales_kpis", "sales_series", "category_sales", "category_kpis", "payment_mix"],
  products: ["top_products", "category_sales", "stock_risk", "basket", "stockouts", "returns"],
  customers: ["customer_mix", "cohorts", "geography"],
  competition: ["price_index", "undercuts", "product_prices"],
  live: ["alerts"],
  health: ["runs", "quarantine", "heartbeat"],
  forecast: ["forecast", "forecast_actuals", "forecast_accuracy", "stockouts"],
};
const LIVE_EVERY_MS = 5000;
const charts = {};
const state = { page: "sales", from: "", to: "", currency: "", category: "", grain: "day", product: "" };
const meta = { first: "", last: "" };
window.alkasba = { answers: {}, state, live: null };

const mad = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const mad2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const int = new Intl.NumberFormat("en-US");
const pct = new Intl.NumberFormat("en-US", { style: "percent", maximumFractionDigits: 1 });
const fmt = { mad: (v) => `${mad.format(v)} MAD`, mad2: (v) => `${mad2.format(v)} MAD`, int: (v) => int.format(v), pct: (v) => pct.format(v), num: (v) => mad2.format(v), text: (v) => String(v) };

function status(text) { document.getElementById("status").textContent = text; }

// One catalogue query's answer.
async function answer(name, extra = {}) {
  const p = new URLSearchParams();
  for (const k of ["from", "to", "currency", "category", "grain", "product"]) if (state[k]) p.set(k, state[k]);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  const r = await fetch(`/api/q/${name}?${p}`, { credentials: "same-origin" });
  if (r.status === 401) { location.replace("/login"); throw new Error("signed out"); }
  const body = await r.json();
  if (!r.ok) { const e = new Error(body.error || r.statusText); e.code = body.code; throw e; }
  return body;
}

// A render's query. An answer that arrives after the filters changed (a newer `show()` began)
// is dropped: the older render would otherwise draw over the newer one's charts once its
// queries came back last (show() ignores the rejection of a superseded render).
async function api(name, extra = {}) {
  const g = generation;
  const body = await answer(name, extra);
  if (g !== generation) throw new Error("superseded by a newer view");
  return body;
}

function rows(answer) { return answer.rows.map((r) => Object.fromEntries(answer.columns.map((c, i) => [c, r[i]]))); }

// A reader who asked the system for reduced motion (prefers-reduced-motion: reduce) gets charts
// drawn in their final state, without ECharts' transitions; so do the browser test's screenshots.
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

// Chart `id` drawn anew with `option` (replacing the last one), honouring reduced motion.
function draw(id, option) {
  const c = chart(id);
  c.setOption({ animation: !reducedMotion.matches, ...option }, true);
  return c;
}

function chart(id) {
  const el = document.getElementById(id);
  if (!charts[id]) {
    charts[id] = echarts.init(el, null, { renderer: "canvas" });
    new ResizeObserver(() => charts[id].resize()).observe(el);
  }
  return charts[id];
}

function kpis(id, items) {
  const box = document.getElementById(id);
  box.replaceChildren(...items.map((k) => {
    const d = document.createElement("div");
    d.className = "kpi";
    d.dataset.kpi = k.key;
    d.dataset.value = k.value ?? "";
    d.title = k.about || "";
    const delta = k.prev != null && k.value != null && k.prev !== 0 ? (k.value - k.prev) / Math.abs(k.prev) : null;
    d.innerHTML = `<div class="label"></div><div class="value"></div><div class="delta"></div>`;
    d.querySelector(".label").textContent = k.label;
    d.querySelector(".value").textContent = k.value == null ? "–" : fmt[k.fmt](k.value);
    const del = d.querySelector(".delta");
    if (delta != null) { del.textContent = `${delta >= 0 ? "▲" : "▼"} ${pct.format(Math.abs(delta))} vs previous period`; del.classList.add(delta >= 0 ? "up" : "down"); del.dataset.value = delta; }
    return d;
  }));
}

// A table: columns are [key, label, format]; `onClick(row)` makes rows clickable; `empty`: what
// an empty table says.
function table(id, data, columns, onClick, empty = "No data for these filters.") {
  const t = document.getElementById(id);
  const head = `<thead><tr>${columns.map(([, l, f]) => `<th class="${f === "text" ? "" : "num"}">${l}</th>`).join("")}</tr></thead>`;
  t.innerHTML = head + "<tbody></tbody>";
  const tb = t.querySelector("tbody");
  for (const r of data) {
    const tr = document.createElement("tr");
    for (const [k, , f] of columns) {
      const td = document.createElement("td");
      if (f !== "text") td.className = "num";
      td.dataset.col = k;
      td.dataset.value = r[k] ?? "";
      td.textContent = r[k] == null ? "–" : fmt[f](r[k]);
      if (k === "risk") td.classList.add(`risk-${String(r[k]).split(" ")[0]}`);
      tr.appendChild(td);
    }
    if (onClick) { tr.classList.add("clickable"); tr.addEventListener("click", () => onClick(r)); }
    tb.appendChild(tr);
  }
  if (!data.length) {
    tb.innerHTML = `<tr><td colspan="${columns.length}" class="note"></td></tr>`;
    tb.querySelector("td").textContent = empty;
  }
}

const axisTooltip = { trigger: "axis", valueFormatter: (v) => (v == null ? "–" : mad2.format(v)) };

function byCurrencySeries(data, key) {
  const periods = [...new Set(data.map((r) => r.period))];
  const currencies = [...new Set(data.map((r) => r.currency))];
  return { periods, series: currencies.map((c) => ({ name: c, type: "bar", stack: "total", data: periods.map((p) => data.filter((r) => r.period === p && r.currency === c).reduce((s, r) => s + r[key], 0)) })) };
}

function navigate(changes) {
  Object.assign(state, changes);
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v) p.set(k, v);
  location.hash = p.toString();
}

const render = {
  async sales() {
    const [k, s, c, ck, pm] = await Promise.all([api("sales_kpis"), api("sales_series"), api("category_sales"), state.category ? api("category_kpis") : null, api("payment_mix")]);
    const cur = rows(k).find((r) => r.period === "current") || {}, prev = rows(k).find((r) => r.period === "previous") || {};
    const items = [
      { key: "revenue_mad", label: "Revenue", fmt: "mad", value: cur.revenue_mad, prev: prev.revenue_mad, about: "Gross revenue of paid orders, incl. tax and shipping, in MAD" },
      { key: "net_revenue_mad", label: "Net revenue", fmt: "mad", value: cur.net_revenue_mad, prev: prev.net_revenue_mad, about: "Revenue minus refunds" },
      { key: "paid_orders", label: "Paid orders", fmt: "int", value: cur.paid_orders, prev: prev.paid_orders },
      { key: "avg_order_value_mad", label: "Average order", fmt: "mad2", value: cur.avg_order_value_mad, prev: prev.avg_order_value_mad },
      { key: "refunds_mad", label: "Refunds", fmt: "mad", value: cur.refunds_mad, prev: prev.refunds_mad },
      { key: "refund_rate", label: "Refund rate", fmt: "pct", value: cur.refund_rate, prev: prev.refund_rate },
    ];
    if (ck) {
      const c1 = rows(ck).find((r) => r.period === "current") || {}, c0 = rows(ck).find((r) => r.period === "previous") || {};
      items.push({ key: "category_revenue_mad", label: `${state.category}: revenue`, fmt: "mad", value: c1.revenue_mad, prev: c0.revenue_mad, about: "Line revenue of the category's products" });
      items.push({ key: "category_units", label: `${state.category}: units`, fmt: "int", value: c1.units, prev: c0.units });
    }
    kpis("sales-kpis", items);
    const sr = rows(s);
    const rev = byCurrencySeries(sr, "revenue_mad");
    draw("chart-sales", { tooltip: axisTooltip, legend: {}, grid: { left: 60, right: 10 }, xAxis: { type: "category", data: rev.periods }, yAxis: { type: "value", name: "MAD" }, dataZoom: [{ type: "inside" }], series: rev.series });
    const totals = rev.periods.map((p) => sr.filter((r) => r.period === p).reduce((a, r) => a + r.revenue_mad, 0));
    const growth = totals.map((v, i) => (i > 0 && totals[i - 1] > 0 ? ((v - totals[i - 1]) / totals[i - 1]) * 100 : null));
    draw("chart-growth", { tooltip: { trigger: "axis", valueFormatter: (v) => (v == null ? "–" : `${v.toFixed(1)} %`) }, grid: { left: 50, right: 10 }, xAxis: { type: "category", data: rev.periods }, yAxis: { type: "value", name: "%" }, series: [{ name: "growth", type: "bar", data: growth }] });
    const cr = rows(c);
    const cat = draw("chart-categories", { tooltip: axisTooltip, grid: { left: 130, right: 40, bottom: 50 }, xAxis: { type: "value", name: "MAD", nameLocation: "middle", nameGap: 28 }, yAxis: { type: "category", inverse: true, data: cr.map((r) => r.category) }, series: [{ name: "revenue", type: "bar", data: cr.map((r) => r.revenue_mad) }] });
    cat.off("click");
    cat.on("click", (e) => navigate({ category: e.name === "(none)" ? "" : e.name, page: "products" }));
    const refunds = byCurrencySeries(sr, "refunds_mad");
    draw("chart-refunds", { tooltip: axisTooltip, legend: {}, grid: { left: 60, right: 10 }, xAxis: { type: "category", data: refunds.periods }, yAxis: { type: "value", name: "MAD" }, series: refunds.series.map((x) => ({ ...x, type: "line", stack: undefined })) });
    table("table-payments", rows(pm), [["payment_method", "Method", "text"], ["paid_orders", "Paid orders", "int"], ["revenue_mad", "Revenue", "mad"], ["discount_mad", "Discounts", "mad"], ["discount_share", "Discount share", "pct"], ["failed_orders", "Failed", "int"]]);
    return { sales_kpis: k, sales_series: s, category_sales: c, category_kpis: ck, payment_mix: pm };
  },
  async products() {
    const [t, c, st, b, so, rt] = await Promise.all([api("top_products"), api("category_sales"), api("stock_risk"), api("basket"), api("stockouts"), api("returns")]);
    // Where the forecast has run: the day each product's stock runs out at the forecast pace.
    const runsOut = new Map(rows(so).map((r) => [r.product_id, r.stockout_date]));
    const br = rows(b)[0] || {};
    const risky = rows(st).filter((r) => r.risk === "high" || r.risk === "out of stock").length;
    kpis("product-kpis", [
      { key: "units", label: "Units sold, all categories", fmt: "int", value: br.units },
      { key: "units_per_order", label: "Basket size (units per order), all categories", fmt: "num", value: br.units_per_order },
      { key: "at_risk", label: "Products at stock-out risk", fmt: "int", value: risky, about: "Out of stock or under 7 days of cover" },
    ]);
    table("table-top-products", rows(t), [["product_name", "Product", "text"], ["category_name", "Category", "text"], ["units", "Units", "int"], ["orders", "Orders", "int"], ["revenue_mad", "Revenue", "mad"], ["avg_unit_price_mad", "Avg price", "mad2"]], (r) => navigate({ product: String(r.product_id), page: "competition" }));
    table("table-categories", rows(c), [["category", "Category", "text"], ["products", "Products", "int"], ["units", "Units", "int"], ["revenue_mad", "Revenue", "mad"]], (r) => navigate({ category: r.category === "(none)" ? "" : r.category }));
    table("table-stock", rows(st).map((r) => ({ ...r, runs_out: runsOut.get(r.product_id) ?? null })), [["product_name", "Product", "text"], ["stock_quantity", "Stock", "int"], ["daily_units", "Units/day", "num"], ["cover_days", "Days of cover", "num"], ["risk", "Risk", "text"], ["runs_out", "Runs out (forecast)", "text"]]);
    table("table-returns", rows(rt), [["product_name", "Product", "text"], ["units_sold", "Sold", "int"], ["units_returned", "Returned", "int"], ["return_rate", "Return rate", "pct"], ["refunded_mad", "Refunded", "mad"]], (r) => navigate({ product: String(r.product_id), page: "competition" }));
    return { top_products: t, category_sales: c, stock_risk: st, basket: b, stockouts: so, returns: rt };
  },
  async customers() {
    const [m, co, geo] = await Promise.all([api("customer_mix"), api("cohorts"), api("geography")]);
    table("table-geography", rows(geo), [["country", "Country", "text"], ["city", "City", "text"], ["paid_orders", "Paid orders", "int"], ["revenue_mad", "Revenue", "mad"], ["revenue_share", "Share", "pct"]]);
    const mr = rows(m);
    draw("chart-customers", { tooltip: { trigger: "axis" }, legend: {}, grid: { left: 50, right: 10 }, xAxis: { type: "category", data: mr.map((r) => r.period) }, yAxis: { type: "value" }, series: [{ name: "new", type: "bar", stack: "c", data: mr.map((r) => r.new_customers) }, { name: "returning", type: "bar", stack: "c", data: mr.map((r) => r.returning_customers) }] });
    const cr = rows(co);
    const cohorts = [...new Set(cr.map((r) => r.cohort_month))];
    const offsets = [...new Set(cr.map((r) => r.month_offset))].sort((a, b) => a - b);
    draw("chart-cohorts", {
      tooltip: { formatter: (p) => `${cohorts[p.value[1]]} + ${offsets[p.value[0]]} months: ${pct.format(p.value[2])} of ${int.format(cr.find((r) => r.cohort_month === cohorts[p.value[1]]).cohort_size)}` },
      grid: { left: 80, right: 10, bottom: 90 },
      xAxis: { type: "category", data: offsets, name: "months later", nameLocation: "middle", nameGap: 28 }, yAxis: { type: "category", data: cohorts, inverse: true },
      visualMap: { min: 0, max: 1, calculable: true, orient: "horizontal", left: "center", bottom: 0, formatter: (v) => pct.format(v) },
      series: [{ type: "heatmap", data: cr.map((r) => [offsets.indexOf(r.month_offset), cohorts.indexOf(r.cohort_month), r.retention]), label: { show: cohorts.length <= 12, formatter: (p) => pct.format(p.value[2]) } }],
    });
    return { customer_mix: m, cohorts: co, geography: geo };
  },
  async competition() {
    const [ix, u] = await Promise.all([api("price_index"), api("undercuts")]);
    const xr = rows(ix);
    draw("chart-index", { tooltip: { trigger: "axis" }, legend: {}, grid: { left: 50, right: 50 }, xAxis: { type: "category", data: xr.map((r) => r.date) }, yAxis: [{ type: "value", name: "index", scale: true }, { type: "value", name: "undercut" }], series: [{ name: "price index", type: "line", data: xr.map((r) => r.avg_price_index) }, { name: "products undercut", type: "bar", yAxisIndex: 1, data: xr.map((r) => r.undercut) }] });
    const ur = rows(u);
    table("table-undercuts", ur, [["product_name", "Product", "text"], ["our_price", "Ours", "mad2"], ["cheapest_competitor_price", "Cheapest", "mad2"], ["price_index", "Index", "num"]], (r) => navigate({ product: String(r.product_id) }));
    const product = state.product || (ur[0] && String(ur[0].product_id));
    let pp = null;
    if (product) {
      pp = await api("product_prices", { product });
      const pr = rows(pp);
      document.getElementById("product-prices-title").textContent = `Prices: ${pr[0] ? pr[0].product_name : `product ${product}`}`;
      draw("chart-product-prices", { tooltip: axisTooltip, legend: {}, grid: { left: 60, right: 10 }, xAxis: { type: "category", data: pr.map((r) => r.date) }, yAxis: { type: "value", name: "MAD", scale: true }, series: [{ name: "ours", type: "line", step: "end", data: pr.map((r) => r.our_price) }, { name: "cheapest competitor", type: "line", step: "end", data: pr.map((r) => r.cheapest_competitor_price) }] });
    }
    return { price_index: ix, undercuts: u, product_prices: pp };
  },
  async live() {
    const r = await fetch("/api/live", { credentials: "same-origin" });
    if (r.status === 401) { location.replace("/login"); return {}; }
    if (!r.ok) throw new Error(`live view: ${r.status}`);
    const body = await r.json();
    const live = body.missing ? null : body;
    window.alkasba.live = live;
    const alerts = await api("alerts");
    if (!live) {
      document.getElementById("live-updated").textContent = "No live view yet: the real-time path has not received an event.";
      kpis("live-kpis", []);
    } else {
      document.getElementById("live-updated").textContent = `Updated ${new Date(live.updated_ms).toLocaleTimeString()} · refreshes every ${LIVE_EVERY_MS / 1000} s`;
      const w = (k) => live.windows[k] || {};
      kpis("live-kpis", [
        { key: "orders_1m", label: "Orders, last minute", fmt: "int", value: w("1m").orders ?? 0 },
        { key: "orders_5m", label: "Orders, 5 minutes", fmt: "int", value: w("5m").orders ?? 0 },
        { key: "orders_1h", label: "Orders, last hour", fmt: "int", value: w("1h").orders ?? 0 },
        { key: "units_1h", label: "Units, last hour", fmt: "int", value: w("1h").units ?? 0 },
        { key: "failed_1h", label: "Failed payments, last hour", fmt: "int", value: w("1h").failed ?? 0 },
        ...Object.entries(w("1h").revenue || {}).map(([c, v]) => ({ key: `revenue_1h_${c}`, label: `Revenue, last hour (${c})`, fmt: "num", value: v })),
      ]);
      // A product the real-time state has no name for yet (no order line or product event named
      // it) shows its id.
      table("table-live-top", (live.top_products_1h || []).map((r) => ({ ...r, product: r.name ?? `#${r.product_id}` })), [["product", "Product", "text"], ["category", "Category", "text"], ["units_1h", "Units", "int"], ["stock", "Stock", "int"]], null, "No sales in the last hour.");
    }
    table("table-alerts", rows(alerts), [["at", "At", "text"], ["severity", "Severity", "text"], ["rule", "Rule", "text"], ["subject", "Subject", "text"]], null, "No alert raised yet.");
    return { alerts };
  },
  async health() {
    const [runs, q, hb] = await Promise.all([api("runs"), api("quarantine"), api("heartbeat")]);
    const now = Date.now();
    const ago = (t) => { const m = Math.round((now - Date.parse(t)) / 60000); return m < 60 ? `${m} min ago` : m < 2880 ? `${Math.round(m / 60)} h ago` : `${Math.round(m / 1440)} days ago`; };
    table("table-runs", rows(runs).map((r) => ({ ...r, age: ago(r.completed_at), stream: `${r.source}/${r.stream}` })), [["stream", "Stream", "text"], ["age", "Last run", "text"], ["watermark_to", "Watermark", "text"], ["fetched", "Fetched", "int"], ["valid", "Valid", "int"], ["quarantined", "Quarantined", "int"], ["pages_retried", "Pages retried", "int"]]);
    table("table-quarantine", rows(q), [["stream", "Stream", "text"], ["reasons", "Reason", "text"], ["records", "Records", "int"], ["last_seen", "Last seen", "text"]]);
    const h = rows(hb)[0];
    document.getElementById("heartbeat").textContent = h && h.last_tick ? `Last tick ${h.last_tick} (${ago(h.last_tick)}), ${int.format(h.ticks)} ticks in all.` : "No heartbeat recorded.";
    return { runs, quarantine: q, heartbeat: hb };
  },
  async forecast() {
    const [f, act, acc, so] = await Promise.all([api("forecast"), api("forecast_actuals"), api("forecast_accuracy"), api("stockouts")]);
    const fr = rows(f);
    const ar = rows(act);
    const run = fr[0];
    document.getElementById("forecast-run").textContent = run ? `Forecast run ${run.run_date}, history up to ${run.as_of}, model ${run.model}.` : "No forecast for this selection yet.";
    document.getElementById("forecast-title").textContent = state.category ? `Revenue forecast: ${state.category}` : "Revenue forecast: the whole shop";
    const dates = [...new Set([...ar.map((r) => r.date), ...fr.map((r) => r.date)])].sort();
    const at = (list, key) => { const m = new Map(list.map((r) => [r.date, r[key]])); return dates.map((d) => (m.has(d) ? m.get(d) : null)); };
    const band = (lo, hi) => [
      { type: "line", stack: lo, data: at(fr, lo), lineStyle: { opacity: 0 }, symbol: "none", tooltip: { show: false } },
      { name: `${lo.slice(2)}% interval`, type: "line", stack: lo, data: dates.map((d, i) => { const r = fr.find((x) => x.date === d); return r ? r[hi] - r[lo] : null; }), lineStyle: { opacity: 0 }, areaStyle: { opacity: 0.2 }, symbol: "none" },
    ];
    draw("chart-forecast", { tooltip: axisTooltip, legend: {}, grid: { left: 70, right: 10 }, xAxis: { type: "category", data: dates }, yAxis: { type: "value", name: "MAD" }, series: [...band("lo95", "hi95"), ...band("lo80", "hi80"), { name: "actual", type: "line", data: at(ar, "actual"), symbol: "none" }, { name: "forecast", type: "line", data: at(fr, "point"), lineStyle: { type: "dashed" } }] });
    table("table-forecast-accuracy", rows(acc), [["series", "Series", "text"], ["model", "Model", "text"], ["mase", "MASE", "num"], ["naive_mase", "Naive MASE", "num"], ["gain", "Gain", "pct"], ["coverage80", "80% held", "pct"], ["coverage95", "95% held", "pct"]]);
    table("table-stockouts", rows(so), [["product_name", "Product", "text"], ["stock_quantity", "Stock", "int"], ["daily_units", "Units/day", "num"], ["stockout_date", "Runs out", "text"], ["days_to_stockout", "Days", "int"]]);
    return { forecast: f, forecast_actuals: act, forecast_accuracy: acc, stockouts: so };
  },
};

let generation = 0;
let liveTimer = null;

async function show() {
  const g = ++generation;
  const main = document.getElementById("main");
  main.dataset.state = "loading";
  status("Loading…");
  document.querySelectorAll("section.page").forEach((s) => s.classList.toggle("active", s.id === `page-${state.page}`));
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === state.page));
  const f = document.getElementById("filters");
  for (const k of ["from", "to", "currency", "category", "grain"]) f[k].value = state[k];
  clearTimeout(liveTimer);
  const t0 = performance.now();
  try {
    const answers = await render[state.page]();
    if (g !== generation) return;
    Object.values(charts).forEach((c) => c.resize());
    window.alkasba.answers = answers;
    main.dataset.state = "ready";
    status(`Updated in ${Math.round(performance.now() - t0)} ms`);
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
    if (state.page === "live") liveTimer = setTimeout(show, LIVE_EVERY_MS);
  } catch (e) {
    if (g !== generation) return;
    main.dataset.state = "error";
    status(`Error: ${e.message}`);
  }
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const k of Object.keys(state)) state[k] = p.get(k) || "";
  if (!PAGES[state.page]) state.page = "sales";
  if (!state.grain) state.grain = "day";
  if (!state.to) state.to = meta.last;
  if (!state.from) state.from = meta.from;
}

async function init() {
  const [range, currencies, categories] = await Promise.all([answer("range"), answer("currencies"), answer("categories")]);
  const r = rows(range)[0] || {};
  meta.last = r.last_day || new Date().toISOString().slice(0, 10);
  const from = new Date(Date.parse(meta.last) - 89 * 86400000).toISOString().slice(0, 10);
  meta.from = r.first_day && r.first_day > from ? r.first_day : from;
  const f = document.getElementById("filters");
  for (const [sel, a, col] of [[f.currency, currencies, "currency"], [f.category, categories, "category_name"]]) {
    for (const row of rows(a)) { const o = document.createElement("option"); o.value = o.textContent = row[col]; sel.appendChild(o); }
  }
  // The forecast page appears once the forecast function has written its table.
  answer("forecast").then((f) => { document.querySelector('#nav a[data-page="forecast"]').hidden = !!f.missing || !f.rows.length; }).catch(() => {});
  f.addEventListener("change", (e) => navigate({ [e.target.name]: e.target.value, product: e.target.name === "category" ? "" : state.product }));
  document.getElementById("reset").addEventListener("click", () => navigate({ from: meta.from, to: meta.last, currency: "", category: "", grain: "day", product: "" }));
  document.getElementById("logout").addEventListener("click", async () => { await fetch("/api/logout", { method: "POST" }); location.replace("/login"); });
  window.addEventListener("hashchange", () => { readHash(); show(); });
  readHash();
  show();
}

init().catch((e) => { document.getElementById("main").dataset.state = "error"; status(`Error: ${e.message}`); });
