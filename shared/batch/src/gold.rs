//! Silver → gold: the BI marts, in SQL on DataFusion. Every mart names its inputs; a gold table
//! keeps, per input, a marker with the next input version it has not absorbed, committed with
//! its data. A mart whose inputs did not move is skipped (running twice changes nothing).
//! Date-keyed marts are incremental: the dates touched by the inputs' changes since their
//! markers (the change data feed of silver) are recomputed and replace exactly those dates;
//! the small derived marts are rebuilt whole when an input moved.
//!
//! ```text
//! s3://<lake>/gold/<mart>/
//! ```

use std::sync::Arc;

use alkasba_ingest::lake::Lake;
use alkasba_lake::arrow::array::{Array, AsArray, RecordBatch};
use alkasba_lake::arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use serde::Serialize;
use url::Url;

use crate::tables::{self, CHANGE_TYPE, Upserted};
use crate::{Error, Result};

/// A mart's input: a silver or gold table, registered under its name.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    pub layer: &'static str,
    pub table: &'static str,
}

const fn silver(table: &'static str) -> Input {
    Input { layer: "silver", table }
}

const fn gold(table: &'static str) -> Input {
    Input { layer: "gold", table }
}

/// One gold mart.
#[derive(Debug, Clone, Copy)]
pub struct Mart {
    pub name: &'static str,
    pub inputs: &'static [Input],
    /// Incremental marts: SQL over `<input>_changes` (and the inputs) giving the touched dates
    /// as column `d`; the mart's SQL reads them from `touched`, and they replace the rows whose
    /// `date_column` is one of them.
    pub touched: Option<&'static str>,
    pub date_column: &'static str,
    pub sql: &'static str,
    /// What it answers (docs and the Glue table comment).
    pub about: &'static str,
}

/// Every mart, in dependency order.
pub const MARTS: &[Mart] = &[
    Mart {
        name: "daily_sales",
        about: "Per day and currency: orders, paid orders, gross revenue (paid orders' totals incl. tax and shipping), refunds (by refund date), net, in the order currency and in MAD; average order value; refund rate.",
        inputs: &[silver("orders"), silver("refunds")],
        touched: Some(
            "SELECT order_date AS d FROM orders_changes
             UNION SELECT refund_date AS d FROM refunds_changes
             UNION SELECT r.refund_date AS d FROM refunds r JOIN orders_changes c ON r.order_id = c.order_id",
        ),
        date_column: "date",
        sql: "WITH o AS (
                SELECT order_date AS date, currency, count(*) AS orders,
                       sum(CASE WHEN is_paid THEN 1 ELSE 0 END) AS paid_orders,
                       sum(CASE WHEN is_paid THEN total END) AS gross,
                       sum(CASE WHEN is_paid THEN total_mad END) AS gross_mad,
                       count(DISTINCT CASE WHEN is_paid THEN customer_token END) AS customers
                FROM orders WHERE order_date IN (SELECT d FROM touched)
                GROUP BY order_date, currency),
              r AS (
                SELECT r.refund_date AS date, o.currency, count(*) AS refund_count,
                       sum(r.amount) AS refunds, sum(r.amount_mad) AS refunds_mad
                FROM refunds r JOIN orders o ON o.order_id = r.order_id
                WHERE r.refund_date IN (SELECT d FROM touched)
                GROUP BY r.refund_date, o.currency)
              SELECT coalesce(o.date, r.date) AS date, coalesce(o.currency, r.currency) AS currency,
                     coalesce(o.orders, 0) AS orders, coalesce(o.paid_orders, 0) AS paid_orders,
                     coalesce(o.customers, 0) AS customers, coalesce(r.refund_count, 0) AS refund_count,
                     CAST(coalesce(o.gross, 0) AS DECIMAL(18,2)) AS gross,
                     CAST(coalesce(r.refunds, 0) AS DECIMAL(18,2)) AS refunds,
                     CAST(coalesce(o.gross, 0) - coalesce(r.refunds, 0) AS DECIMAL(18,2)) AS net,
                     CAST(coalesce(o.gross_mad, 0) AS DECIMAL(18,2)) AS gross_mad,
                     CAST(coalesce(r.refunds_mad, 0) AS DECIMAL(18,2)) AS refunds_mad,
                     CAST(coalesce(o.gross_mad, 0) - coalesce(r.refunds_mad, 0) AS DECIMAL(18,2)) AS net_mad,
                     CAST(CASE WHEN o.paid_orders > 0 THEN o.gross_mad / o.paid_orders END AS DECIMAL(18,2)) AS avg_order_value_mad,
                     CASE WHEN o.gross > 0 THEN CAST(coalesce(r.refunds, 0) AS DOUBLE) / CAST(o.gross AS DOUBLE) END AS refund_rate
              FROM o FULL OUTER JOIN r ON o.date = r.date AND o.currency = r.currency",
    },
    Mart {
        name: "daily_product_sales",
        about: "Per day, product and currency (paid orders): units, revenue (line totals after discount, excl. tax) in the order currency and in MAD, orders; product name and category.",
        inputs: &[silver("order_lines")],
        touched: Some("SELECT order_date AS d FROM order_lines_changes"),
        date_column: "date",
        sql: "SELECT order_date AS date, product_id, currency,
                     max(product_name) AS product_name, max(category_id) AS category_id, max(category_name) AS category_name,
                     sum(quantity) AS units, count(DISTINCT order_id) AS orders,
                     CAST(sum(line_total) AS DECIMAL(18,2)) AS revenue,
                     CAST(sum(line_total_mad) AS DECIMAL(18,2)) AS revenue_mad
              FROM order_lines
              WHERE is_paid AND order_date IN (SELECT d FROM touched)
              GROUP BY order_date, product_id, currency",
    },
    Mart {
        name: "revenue_growth",
        about: "Per day, all currencies in MAD: gross revenue, net revenue, paid orders, average order value, and gross revenue growth day over day and week over week (against the same weekday).",
        inputs: &[gold("daily_sales")],
        touched: None,
        date_column: "date",
        sql: "WITH d AS (
                SELECT date, CAST(sum(gross_mad) AS DECIMAL(18,2)) AS revenue_mad, CAST(sum(net_mad) AS DECIMAL(18,2)) AS net_revenue_mad,
                       sum(paid_orders) AS paid_orders
                FROM daily_sales GROUP BY date)
              SELECT d.date, d.revenue_mad, d.net_revenue_mad, d.paid_orders,
                     CAST(CASE WHEN d.paid_orders > 0 THEN d.revenue_mad / d.paid_orders END AS DECIMAL(18,2)) AS avg_order_value_mad,
                     p1.revenue_mad AS revenue_mad_prev_day, p7.revenue_mad AS revenue_mad_prev_week,
                     CASE WHEN p1.revenue_mad > 0 THEN CAST(d.revenue_mad - p1.revenue_mad AS DOUBLE) / CAST(p1.revenue_mad AS DOUBLE) END AS growth_dod,
                     CASE WHEN p7.revenue_mad > 0 THEN CAST(d.revenue_mad - p7.revenue_mad AS DOUBLE) / CAST(p7.revenue_mad AS DOUBLE) END AS growth_wow
              FROM d
              LEFT JOIN d p1 ON p1.date = d.date - INTERVAL '1' DAY
              LEFT JOIN d p7 ON p7.date = d.date - INTERVAL '7' DAY",
    },
    Mart {
        name: "monthly_revenue",
        about: "Per month, in MAD: gross and net revenue, paid orders, and gross revenue growth month over month.",
        inputs: &[gold("daily_sales")],
        touched: None,
        date_column: "month",
        sql: "WITH m AS (
                SELECT CAST(date_trunc('month', date) AS DATE) AS month, CAST(sum(gross_mad) AS DECIMAL(18,2)) AS revenue_mad,
                       CAST(sum(net_mad) AS DECIMAL(18,2)) AS net_revenue_mad, sum(paid_orders) AS paid_orders
                FROM daily_sales GROUP BY 1)
              SELECT m.month, m.revenue_mad, m.net_revenue_mad, m.paid_orders, p.revenue_mad AS revenue_mad_prev_month,
                     CASE WHEN p.revenue_mad > 0 THEN CAST(m.revenue_mad - p.revenue_mad AS DOUBLE) / CAST(p.revenue_mad AS DOUBLE) END AS growth_mom
              FROM m LEFT JOIN m p ON p.month = CAST(m.month - INTERVAL '1' MONTH AS DATE)",
    },
    Mart {
        name: "customer_activity",
        about: "Per day: paying customers (by token), new ones (first paid order that day) and returning ones.",
        inputs: &[silver("orders")],
        touched: None,
        date_column: "date",
        sql: "WITH f AS (SELECT customer_token, min(order_date) AS first_date FROM orders WHERE is_paid AND customer_token IS NOT NULL GROUP BY customer_token)
              SELECT o.order_date AS date, count(DISTINCT o.customer_token) AS customers,
                     count(DISTINCT CASE WHEN o.order_date = f.first_date THEN o.customer_token END) AS new_customers,
                     count(DISTINCT CASE WHEN o.order_date > f.first_date THEN o.customer_token END) AS returning_customers
              FROM orders o JOIN f ON f.customer_token = o.customer_token
              WHERE o.is_paid GROUP BY o.order_date",
    },
    Mart {
        name: "customer_cohorts",
        about: "Monthly cohorts: customers (by token) grouped by the month of their first paid order, with how many of them bought, and for how much (MAD), in each later month.",
        inputs: &[silver("orders")],
        touched: None,
        date_column: "cohort_month",
        sql: "WITH f AS (SELECT customer_token, min(order_date) AS first_date FROM orders WHERE is_paid AND customer_token IS NOT NULL GROUP BY customer_token)
              SELECT CAST(date_trunc('month', f.first_date) AS DATE) AS cohort_month,
                     CAST(date_trunc('month', o.order_date) AS DATE) AS activity_month,
                     count(DISTINCT o.customer_token) AS customers, count(*) AS orders,
                     CAST(sum(o.total_mad) AS DECIMAL(18,2)) AS revenue_mad
              FROM orders o JOIN f ON f.customer_token = o.customer_token
              WHERE o.is_paid GROUP BY 1, 2",
    },
    Mart {
        name: "top_products",
        about: "Per month: the 20 products with the most revenue (MAD), with units, category and rank.",
        inputs: &[gold("daily_product_sales")],
        touched: None,
        date_column: "month",
        sql: "SELECT * FROM (
                SELECT month, product_id, product_name, category_name, units, revenue_mad,
                       rank() OVER (PARTITION BY month ORDER BY revenue_mad DESC, product_id) AS rank
                FROM (SELECT CAST(date_trunc('month', date) AS DATE) AS month, product_id, max(product_name) AS product_name,
                             max(category_name) AS category_name, sum(units) AS units, CAST(sum(revenue_mad) AS DECIMAL(18,2)) AS revenue_mad
                      FROM daily_product_sales GROUP BY 1, 2) t) r
              WHERE rank <= 20",
    },
    Mart {
        name: "stock_cover",
        about: "Per product: stock on hand, units sold in the 28 days up to the latest sales day, and the days of sales the stock covers at that pace.",
        inputs: &[silver("products"), gold("daily_product_sales")],
        touched: None,
        date_column: "product_id",
        sql: "WITH last AS (SELECT max(date) AS d FROM daily_product_sales),
              u AS (SELECT s.product_id, sum(s.units) AS units_28d FROM daily_product_sales s CROSS JOIN last
                    WHERE s.date > last.d - INTERVAL '28' DAY GROUP BY s.product_id)
              SELECT p.product_id, p.name AS product_name, p.category_name, p.stock_quantity, coalesce(u.units_28d, 0) AS units_28d,
                     CAST(coalesce(u.units_28d, 0) AS DOUBLE) / 28.0 AS daily_units,
                     CASE WHEN u.units_28d > 0 THEN CAST(p.stock_quantity AS DOUBLE) / (CAST(u.units_28d AS DOUBLE) / 28.0) END AS cover_days
              FROM products p LEFT JOIN u ON u.product_id = p.product_id",
    },
    Mart {
        name: "competitor_price_index",
        about: "Per day and product: our current price, the cheapest competitor price (MAD) and the price index (ours / cheapest × 100; above 100 we are dearer).",
        inputs: &[silver("competitor_prices"), silver("products")],
        touched: None,
        date_column: "date",
        sql: "SELECT c.price_date AS date, p.product_id, p.sku, p.name AS product_name, p.price AS our_price,
                     min(c.price_mad) AS cheapest_competitor_price, count(*) AS competitors,
                     CAST(p.price AS DOUBLE) / CAST(min(c.price_mad) AS DOUBLE) * 100.0 AS price_index
              FROM competitor_prices c JOIN products p ON p.sku = c.sku
              WHERE c.price_mad > 0
              GROUP BY c.price_date, p.product_id, p.sku, p.name, p.price",
    },
];

/// The mart named `name`.
pub fn mart(name: &str) -> Result<&'static Mart> {
    MARTS.iter().find(|m| m.name == name).ok_or_else(|| Error::Config(format!("unknown mart {name:?}; known: {}", MARTS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))))
}

/// A table of the lake: `<layer>/<name>`.
pub fn uri(lake: &Lake, layer: &str, name: &str) -> Result<Url> {
    Ok(lake.table(&format!("{layer}/{name}"))?)
}

/// What building one mart did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MartStep {
    pub mart: String,
    /// `full`, `incremental` or `skipped`.
    pub mode: String,
    /// Dates recomputed (incremental marts).
    pub dates: usize,
    pub rows: usize,
    pub version: Option<i64>,
    pub note: String,
}

/// An input opened for one build.
struct Opened {
    name: &'static str,
    app: String,
    table: DeltaTable,
    from: i64,
    current: i64,
}

/// Builds one mart if any of its inputs moved.
pub async fn build(lake: &Lake, mart: &Mart) -> Result<MartStep> {
    let mut step = MartStep { mart: mart.name.into(), mode: "skipped".into(), dates: 0, rows: 0, version: None, note: String::new() };
    let target_uri = uri(lake, "gold", mart.name)?;
    let target = tables::open(lake, &target_uri).await?;
    let ctx = tables::session();
    let mut inputs = Vec::new();
    for input in mart.inputs {
        let u = uri(lake, input.layer, input.table)?;
        let Some(table) = tables::open(lake, &u).await? else {
            step.note = format!("waiting for {}/{}", input.layer, input.table);
            return Ok(step);
        };
        let app = format!("aggregate:{}/{}", input.layer, input.table);
        let from = tables::marker(lake, target.as_ref(), &app).await?;
        let current = table.version().unwrap_or_default() as i64;
        tables::register(&ctx, input.table, &table).await?;
        inputs.push(Opened { name: input.table, app, table, from, current });
    }
    if target.is_some() && inputs.iter().all(|i| i.from > i.current) {
        step.note = "inputs unchanged".into();
        return Ok(step);
    }
    let markers: Vec<(String, i64)> = inputs.iter().map(|i| (i.app.clone(), i.current + 1)).collect();
    let full = target.is_none();
    let mut predicate = None;
    if let Some(touched_sql) = mart.touched {
        for i in &inputs {
            let name = format!("{}_changes", i.name);
            let (schema, batches) = if i.from > i.current { empty_changes(&i.table).await? } else { tables::changes(&i.table, i.from, i.current).await? };
            tables::register_batches(&ctx, &name, schema, batches)?;
        }
        let (schema, batches) = tables::query(&ctx, &format!("{}: touched dates", mart.name), &format!("SELECT DISTINCT d FROM ({touched_sql}) t WHERE d IS NOT NULL")).await?;
        let mut dates = Vec::new();
        for b in &batches {
            let a = b.column(0).as_primitive_opt::<Date32Type>().ok_or_else(|| Error::query(mart.name, "touched dates are not dates"))?;
            dates.extend((0..a.len()).filter(|j| !a.is_null(*j)).filter_map(|j| a.value_as_date(j)));
        }
        dates.sort();
        step.dates = dates.len();
        tables::register_batches(&ctx, "touched", schema, batches)?;
        step.mode = if full { "full".into() } else { "incremental".into() };
        if !full {
            if dates.is_empty() {
                predicate = Some("false".to_string());
            } else {
                let list: Vec<String> = dates.iter().map(|d| format!("CAST('{d}' AS DATE)")).collect();
                predicate = Some(format!("{} IN ({})", mart.date_column, list.join(", ")));
            }
        }
    } else {
        step.mode = "full".into();
    }
    let (schema, batches) = tables::query(&ctx, &format!("mart {}", mart.name), mart.sql).await?;
    step.rows = batches.iter().map(RecordBatch::num_rows).sum();
    match tables::replace(lake, &target_uri, schema, batches, predicate.as_deref(), None, &markers).await? {
        Upserted::Committed { version, .. } => step.version = Some(version),
        Upserted::AlreadyDone => step.note = "a concurrent run already built it".into(),
    }
    Ok(step)
}

/// An empty change read with `table`'s columns.
async fn empty_changes(table: &DeltaTable) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let uri = table.table_url().clone();
    let provider = table.table_provider().await.map_err(|e| Error::query(&uri, e))?;
    let mut fields: Vec<Field> = provider.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(CHANGE_TYPE, DataType::Utf8, true));
    tables::plain(Arc::new(Schema::new(fields)), Vec::new())
}

/// Builds every mart (or only `only`) whose inputs moved, in dependency order.
pub async fn aggregate(lake: &Lake, only: Option<&[String]>, keep_going: impl Fn() -> bool) -> Result<Vec<MartStep>> {
    if let Some(only) = only {
        for name in only {
            mart(name)?;
        }
    }
    let mut out = Vec::new();
    for m in MARTS {
        if only.is_some_and(|o| !o.iter().any(|n| n == m.name)) {
            continue;
        }
        if !keep_going() {
            tracing::warn!(mart = m.name, "stopping before the deadline; the next run resumes here");
            break;
        }
        let span = tracing::info_span!("mart", mart = m.name);
        let s = tracing::Instrument::instrument(build(lake, m), span).await?;
        tracing::info!(mart = %s.mart, mode = %s.mode, dates = s.dates, rows = s.rows, version = ?s.version, note = %s.note, "gold step");
        out.push(s);
    }
    Ok(out)
}
