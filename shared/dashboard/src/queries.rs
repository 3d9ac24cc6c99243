//! The catalogue of the dashboard's queries: each one's name, page, the tables it reads and its
//! SQL. The engine that runs them is [`crate::engine`]. Queries read the gold marts and the ops
//! tables where the batch and real-time layers write them; no copy is made for the dashboard.
//!
//! Parameters are bound, never spliced: `$from`, `$to` and `$prev_from`, `$prev_to` (the period
//! of the same length before, for growth) are dates, `$currency` and `$category` are strings
//! (empty: all), `$product` an id (0: none). `{grain}` is the one text substitution, from an enum
//! (`day`, `week`, `month`). Revenue is in MAD throughout: "revenue" on the sales cards is the
//! gross of paid orders (order totals incl. tax and shipping, `daily_sales.gross_mad`); revenue
//! per category and product is line revenue after discounts, excl. tax and shipping
//! (`daily_product_sales.revenue_mad`), since tax and shipping belong to orders, not products.

use alkasba_lake::layout;

/// A table a query reads, under the name its SQL uses.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The name in the SQL.
    pub name: &'static str,
    /// Path under the lake root.
    pub path: Path,
}

/// Where a table lives.
#[derive(Debug, Clone, Copy)]
pub enum Path {
    Gold(&'static str),
    Fixed(&'static str),
}

impl Path {
    /// Path under the lake root.
    pub fn resolve(self) -> String {
        match self {
            Path::Gold(m) => layout::gold(m),
            Path::Fixed(p) => p.to_string(),
        }
    }
}

const fn gold(name: &'static str) -> Source {
    Source { name, path: Path::Gold(name) }
}

const RUNS: Source = Source { name: "ingestion_runs", path: Path::Fixed(layout::INGESTION_RUNS) };
const QUARANTINE: Source = Source { name: "quarantine", path: Path::Fixed(layout::QUARANTINE) };
const ALERTS: Source = Source { name: "alerts", path: Path::Fixed(layout::ALERTS) };
const HEARTBEAT: Source = Source { name: "heartbeat", path: Path::Fixed(layout::HEARTBEAT) };

/// One named query.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    /// Its name in `/api/q/<name>`.
    pub name: &'static str,
    /// The page that shows it.
    pub page: &'static str,
    /// What it answers.
    pub about: &'static str,
    /// The tables it reads.
    pub sources: &'static [Source],
    /// DataFusion SQL.
    pub sql: &'static str,
}

/// Filter on the order currency, on a table with a `currency` column.
macro_rules! by_currency {
    () => {
        "($currency = '' OR currency = $currency)"
    };
}
/// Filter on the category, on a table with a `category_name` column.
macro_rules! by_category {
    () => {
        "($category = '' OR category_name = $category)"
    };
}

/// Every query.
pub const QUERIES: &[Query] = &[
    // --- the filters' choices
    Query { name: "range", page: "meta", about: "First and last day with sales.", sources: &[gold("daily_sales")], sql: "SELECT min(date) AS first_day, max(date) AS last_day FROM daily_sales" },
    Query { name: "currencies", page: "meta", about: "Order currencies seen.", sources: &[gold("daily_sales")], sql: "SELECT DISTINCT currency FROM daily_sales ORDER BY currency" },
    Query {
        name: "categories",
        page: "meta",
        about: "Product categories seen.",
        sources: &[gold("daily_product_sales")],
        sql: "SELECT DISTINCT category_name FROM daily_product_sales WHERE category_name IS NOT NULL ORDER BY category_name",
    },
    // --- sales
    Query {
        name: "sales_kpis",
        page: "sales",
        about: "The period and the one before it: gross and net revenue, refunds (MAD), orders, paid orders, average order value, refund rate.",
        sources: &[gold("daily_sales")],
        sql: concat!(
            "SELECT period, CAST(gross AS DOUBLE) AS revenue_mad, CAST(net AS DOUBLE) AS net_revenue_mad, CAST(refunds AS DOUBLE) AS refunds_mad,
                    orders, paid_orders, refund_count,
                    CASE WHEN paid_orders > 0 THEN CAST(gross AS DOUBLE) / paid_orders END AS avg_order_value_mad,
                    CASE WHEN gross > 0 THEN CAST(refunds AS DOUBLE) / CAST(gross AS DOUBLE) END AS refund_rate
             FROM (SELECT CASE WHEN date >= $from THEN 'current' ELSE 'previous' END AS period,
                          sum(gross_mad) AS gross, sum(net_mad) AS net, sum(refunds_mad) AS refunds,
                          sum(orders) AS orders, sum(paid_orders) AS paid_orders, sum(refund_count) AS refund_count
                   FROM daily_sales WHERE date BETWEEN $prev_from AND $to AND ",
            by_currency!(),
            " GROUP BY 1) t ORDER BY period"
        ),
    },
    Query {
        name: "sales_series",
        page: "sales",
        about: "Per day, week or month and currency: gross and net revenue, refunds (MAD) and paid orders.",
        sources: &[gold("daily_sales")],
        sql: concat!(
            "SELECT CAST(date_trunc('{grain}', date) AS DATE) AS period, currency,
                    CAST(sum(gross_mad) AS DOUBLE) AS revenue_mad, CAST(sum(net_mad) AS DOUBLE) AS net_revenue_mad,
                    CAST(sum(refunds_mad) AS DOUBLE) AS refunds_mad, sum(paid_orders) AS paid_orders
             FROM daily_sales WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    },
    Query {
        name: "category_kpis",
        page: "sales",
        about: "For the chosen category, the period and the one before it: line revenue (MAD), units, orders with the category's products.",
        sources: &[gold("daily_product_sales")],
        sql: concat!(
            "SELECT CASE WHEN date >= $from THEN 'current' ELSE 'previous' END AS period,
                    CAST(sum(revenue_mad) AS DOUBLE) AS revenue_mad, sum(units) AS units, sum(orders) AS product_orders
             FROM daily_product_sales WHERE date BETWEEN $prev_from AND $to AND ",
            by_currency!(),
            " AND ",
            by_category!(),
            " GROUP BY 1 ORDER BY 1"
        ),
    },
    Query {
        name: "category_sales",
        page: "sales",
        about: "Per category: line revenue (MAD), units, orders with its products, products sold.",
        sources: &[gold("daily_product_sales")],
        sql: concat!(
            "SELECT coalesce(category_name, '(none)') AS category, CAST(sum(revenue_mad) AS DOUBLE) AS revenue_mad, sum(units) AS units,
                    sum(orders) AS product_orders, count(DISTINCT product_id) AS products
             FROM daily_product_sales WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            " AND ",
            by_category!(),
            " GROUP BY 1 ORDER BY revenue_mad DESC, category"
        ),
    },
    Query {
        name: "payment_mix",
        page: "sales",
        about: "Per payment method: paid orders, revenue (MAD), failed payments, discounts given (MAD) and their share of revenue, paid orders with a discount.",
        sources: &[gold("daily_order_mix")],
        sql: concat!(
            "SELECT payment_method, sum(paid_orders) AS paid_orders, CAST(sum(gross_mad) AS DOUBLE) AS revenue_mad, sum(failed_orders) AS failed_orders,
                    CAST(sum(discount_mad) AS DOUBLE) AS discount_mad,
                    CASE WHEN sum(gross_mad) > 0 THEN CAST(sum(discount_mad) AS DOUBLE) / CAST(sum(gross_mad) AS DOUBLE) END AS discount_share,
                    sum(discounted_orders) AS discounted_orders
             FROM daily_order_mix WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            " GROUP BY payment_method ORDER BY revenue_mad DESC, payment_method"
        ),
    },
    // --- products
    Query {
        name: "top_products",
        page: "products",
        about: "The 50 products with the most line revenue (MAD) in the period: units, orders, average unit price.",
        sources: &[gold("daily_product_sales")],
        sql: concat!(
            "SELECT product_id, max(product_name) AS product_name, max(category_name) AS category_name, sum(units) AS units, sum(orders) AS orders,
                    CAST(sum(revenue_mad) AS DOUBLE) AS revenue_mad,
                    CASE WHEN sum(units) > 0 THEN CAST(sum(revenue_mad) AS DOUBLE) / sum(units) END AS avg_unit_price_mad
             FROM daily_product_sales WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            " AND ",
            by_category!(),
            " GROUP BY product_id ORDER BY revenue_mad DESC, product_id LIMIT 50"
        ),
    },
    Query {
        name: "basket",
        page: "products",
        about: "Basket size: units sold per paid order in the period (all categories).",
        sources: &[gold("daily_product_sales"), gold("daily_sales")],
        sql: concat!(
            "SELECT u.units, o.paid_orders, CASE WHEN o.paid_orders > 0 THEN CAST(u.units AS DOUBLE) / o.paid_orders END AS units_per_order
             FROM (SELECT sum(units) AS units FROM daily_product_sales WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            ") u CROSS JOIN (SELECT sum(paid_orders) AS paid_orders FROM daily_sales WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            ") o"
        ),
    },
    Query {
        name: "returns",
        page: "products",
        about: "Returns by product in the period: units returned and refunded (MAD, excl. tax) by refund day, against units sold by order day, most returned first.",
        sources: &[gold("daily_product_returns"), gold("daily_product_sales")],
        sql: concat!(
            "WITH r AS (SELECT product_id, max(product_name) AS product_name, max(category_name) AS category_name, sum(units_returned) AS units_returned,
                               sum(refunds) AS refunds, CAST(sum(refunded_mad) AS DOUBLE) AS refunded_mad
                        FROM daily_product_returns WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            " AND ",
            by_category!(),
            " GROUP BY product_id),
                  s AS (SELECT product_id, sum(units) AS units_sold FROM daily_product_sales WHERE date BETWEEN $from AND $to AND ",
            by_currency!(),
            " GROUP BY product_id)
             SELECT r.product_id, r.product_name, r.category_name, coalesce(s.units_sold, 0) AS units_sold, r.units_returned, r.refunds, r.refunded_mad,
                    CASE WHEN s.units_sold > 0 THEN CAST(r.units_returned AS DOUBLE) / s.units_sold END AS return_rate
             FROM r LEFT JOIN s ON s.product_id = r.product_id
             ORDER BY r.units_returned DESC, r.refunded_mad DESC, r.product_id LIMIT 50"
        ),
    },
    Query {
        name: "stock_risk",
        page: "products",
        about: "Stock on hand against the last 28 days' pace: days of cover and the risk of running out (out of stock, high < 7 days, medium < 21 days, low), riskiest first.",
        sources: &[gold("stock_cover")],
        sql: concat!(
            "SELECT product_id, product_name, category_name, stock_quantity, units_28d, daily_units, cover_days,
                    CASE WHEN stock_quantity <= 0 THEN 'out of stock' WHEN cover_days IS NULL THEN 'no recent sales'
                         WHEN cover_days < 7 THEN 'high' WHEN cover_days < 21 THEN 'medium' ELSE 'low' END AS risk
             FROM stock_cover WHERE stock_quantity IS NOT NULL AND ",
            by_category!(),
            " ORDER BY CASE WHEN stock_quantity <= 0 THEN 0 WHEN cover_days IS NULL THEN 4 WHEN cover_days < 7 THEN 1 WHEN cover_days < 21 THEN 2 ELSE 3 END,
                       cover_days, product_id LIMIT 100"
        ),
    },
    // --- customers
    Query {
        name: "customer_mix",
        page: "customers",
        about: "Per day, week or month: new customers (first paid order) and returning ones, counted per day (a customer buying on two days counts twice).",
        sources: &[gold("customer_activity")],
        sql: "SELECT CAST(date_trunc('{grain}', date) AS DATE) AS period, sum(new_customers) AS new_customers, sum(returning_customers) AS returning_customers
              FROM customer_activity WHERE date BETWEEN $from AND $to GROUP BY 1 ORDER BY 1",
    },
    Query {
        name: "cohorts",
        page: "customers",
        about: "Monthly cohorts that started in the period: customers active in each later month and their share of the cohort (retention).",
        sources: &[gold("customer_cohorts")],
        sql: "WITH c AS (SELECT cohort_month, activity_month, customers, CAST(revenue_mad AS DOUBLE) AS revenue_mad FROM customer_cohorts
                         WHERE cohort_month BETWEEN CAST(date_trunc('month', $from) AS DATE) AND $to),
                   s AS (SELECT cohort_month, customers AS cohort_size FROM c WHERE activity_month = cohort_month)
              SELECT c.cohort_month,
                     CAST((date_part('year', c.activity_month) - date_part('year', c.cohort_month)) * 12
                          + date_part('month', c.activity_month) - date_part('month', c.cohort_month) AS BIGINT) AS month_offset,
                     c.customers, s.cohort_size, CAST(c.customers AS DOUBLE) / s.cohort_size AS retention, c.revenue_mad
              FROM c JOIN s ON s.cohort_month = c.cohort_month ORDER BY 1, 2",
    },
    Query {
        name: "geography",
        page: "customers",
        about: "The 30 billing cities with the most revenue in the period (country and city, never finer): paid orders, customer-days, revenue (MAD) and share of the period's revenue.",
        sources: &[gold("daily_geo_sales")],
        sql: "SELECT country, city, sum(paid_orders) AS paid_orders, sum(customers) AS customer_days, CAST(sum(gross_mad) AS DOUBLE) AS revenue_mad,
                     CAST(sum(gross_mad) AS DOUBLE) / CAST(sum(sum(gross_mad)) OVER () AS DOUBLE) AS revenue_share
              FROM daily_geo_sales WHERE date BETWEEN $from AND $to
              GROUP BY country, city ORDER BY revenue_mad DESC, country, city LIMIT 30",
    },
    // --- competition
    Query {
        name: "price_index",
        page: "competition",
        about: "Per day: the average price index over the products the competitors sell (ours / cheapest × 100) and how many products a competitor undercuts.",
        sources: &[gold("competitor_price_index")],
        sql: "SELECT date, avg(price_index) AS avg_price_index, count(*) AS products, sum(CASE WHEN price_index > 100 THEN 1 ELSE 0 END) AS undercut
              FROM competitor_price_index WHERE date BETWEEN $from AND $to GROUP BY date ORDER BY date",
    },
    Query {
        name: "undercuts",
        page: "competition",
        about: "On the last day of the period with prices: the products a competitor sells cheaper than we do, most undercut first.",
        sources: &[gold("competitor_price_index")],
        sql: "SELECT i.date, i.product_id, i.product_name, CAST(i.our_price AS DOUBLE) AS our_price, CAST(i.cheapest_competitor_price AS DOUBLE) AS cheapest_competitor_price,
                     i.competitors, i.price_index
              FROM competitor_price_index i
              JOIN (SELECT max(date) AS d FROM competitor_price_index WHERE date BETWEEN $from AND $to) l ON i.date = l.d
              WHERE i.price_index > 100 ORDER BY i.price_index DESC, i.product_id LIMIT 50",
    },
    Query {
        name: "product_prices",
        page: "competition",
        about: "One product over the period: our price and the cheapest competitor's, per day.",
        sources: &[gold("competitor_price_index")],
        sql: "SELECT date, product_name, CAST(our_price AS DOUBLE) AS our_price, CAST(cheapest_competitor_price AS DOUBLE) AS cheapest_competitor_price, price_index
              FROM competitor_price_index WHERE product_id = $product AND date BETWEEN $from AND $to ORDER BY date",
    },
    // --- live
    Query {
        name: "alerts",
        page: "live",
        about: "The 20 latest alerts from the real-time rules.",
        sources: &[ALERTS],
        sql: "SELECT CAST(at AS VARCHAR) AS at, rule, kind, severity, subject, evidence FROM alerts ORDER BY at DESC, alert_id LIMIT 20",
    },
    // --- data health
    Query {
        name: "runs",
        page: "health",
        about: "Each stream's latest completed ingestion run: when, watermark, pages, records fetched, valid, quarantined, duplicates skipped, pages retried.",
        sources: &[RUNS],
        sql: "SELECT source, stream, run_id, CAST(completed_at AS VARCHAR) AS completed_at, watermark_to, pages, fetched, valid, quarantined, duplicates_skipped, pages_retried
              FROM (SELECT *, row_number() OVER (PARTITION BY source, stream ORDER BY completed_at DESC, run_id DESC) AS rn FROM ingestion_runs) r
              WHERE rn = 1 ORDER BY source, stream",
    },
    Query {
        name: "quarantine",
        page: "health",
        about: "Quarantined records by stream and reason: how many, and when last seen.",
        sources: &[QUARANTINE],
        sql: "SELECT stream, reasons, count(*) AS records, CAST(max(_ingested_at) AS VARCHAR) AS last_seen FROM quarantine GROUP BY stream, reasons ORDER BY records DESC, stream, reasons LIMIT 100",
    },
    Query {
        name: "heartbeat",
        page: "health",
        about: "The heartbeat job's last tick (the scheduler and the lake are alive).",
        sources: &[HEARTBEAT],
        sql: "SELECT CAST(max(tick_time) AS VARCHAR) AS last_tick, count(*) AS ticks FROM heartbeat",
    },
    // --- the monthly report
    Query {
        name: "monthly",
        page: "report",
        about: "Per month of the period: gross and net revenue (MAD), paid orders, the month before's revenue and the growth against it.",
        sources: &[gold("monthly_revenue")],
        sql: "SELECT month, CAST(revenue_mad AS DOUBLE) AS revenue_mad, CAST(net_revenue_mad AS DOUBLE) AS net_revenue_mad, paid_orders,
                     CAST(revenue_mad_prev_month AS DOUBLE) AS revenue_mad_prev_month, growth_mom
              FROM monthly_revenue WHERE month BETWEEN CAST(date_trunc('month', $from) AS DATE) AND $to ORDER BY month",
    },
    Query {
        name: "alerts_period",
        page: "report",
        about: "Alerts raised in the period, per rule and severity: how many, first and last.",
        sources: &[ALERTS],
        sql: "SELECT rule, severity, count(*) AS alerts, CAST(min(at) AS VARCHAR) AS first_at, CAST(max(at) AS VARCHAR) AS last_at FROM alerts
              WHERE CAST(at AS DATE) BETWEEN $from AND $to GROUP BY rule, severity ORDER BY alerts DESC, rule",
    },
    Query {
        name: "quality_period",
        page: "report",
        about: "Ingestion in the period, per stream: runs completed, records fetched, valid, quarantined (and the share), duplicates skipped, pages retried.",
        sources: &[RUNS],
        sql: "SELECT source, stream, count(*) AS runs, sum(fetched) AS fetched, sum(valid) AS valid, sum(quarantined) AS quarantined,
                     CASE WHEN sum(fetched) > 0 THEN CAST(sum(quarantined) AS DOUBLE) / sum(fetched) END AS quarantined_share,
                     sum(duplicates_skipped) AS duplicates_skipped, sum(pages_retried) AS pages_retried
              FROM ingestion_runs WHERE CAST(completed_at AS DATE) BETWEEN $from AND $to GROUP BY source, stream ORDER BY source, stream",
    },
    // --- forecast (gold tables the forecast function writes; absent until its first run)
    Query {
        name: "forecast",
        page: "forecast",
        about: "The latest run's forecast of daily revenue (MAD), the whole shop or the chosen category's line revenue, with 80% and 95% intervals and the model the backtest chose.",
        sources: &[gold("forecast_daily")],
        sql: "SELECT date, model, point, lo80, hi80, lo95, hi95, as_of, run_date FROM forecast_daily
              WHERE run_date = (SELECT max(run_date) FROM forecast_daily)
                AND series = CASE WHEN $category = '' THEN 'revenue_mad/total' ELSE concat('revenue_mad/category/', $category) END
              ORDER BY date",
    },
    Query {
        name: "forecast_actuals",
        page: "forecast",
        about: "What happened around the latest forecast: daily revenue (MAD, as the forecast series measures it) for the 8 weeks before it and any days since.",
        sources: &[gold("forecast_daily"), gold("revenue_growth"), gold("daily_product_sales")],
        sql: "WITH r AS (SELECT max(run_date) AS run_date, max(as_of) AS as_of FROM forecast_daily WHERE run_date = (SELECT max(run_date) FROM forecast_daily))
              SELECT date, actual FROM (
                SELECT date, CAST(revenue_mad AS DOUBLE) AS actual FROM revenue_growth WHERE $category = ''
                UNION ALL
                SELECT date, CAST(sum(revenue_mad) AS DOUBLE) AS actual FROM daily_product_sales WHERE $category <> '' AND category_name = $category GROUP BY date) a
              WHERE date > (SELECT as_of FROM r) - INTERVAL '56' DAY ORDER BY date",
    },
    Query {
        name: "forecast_accuracy",
        page: "forecast",
        about: "The latest run's backtest per shop and category series: the chosen model, its MASE against the seasonal naive baseline's, and how often the 80% and 95% intervals held the actual day.",
        sources: &[gold("forecast_accuracy")],
        sql: "WITH a AS (SELECT * FROM forecast_accuracy WHERE run_date = (SELECT max(run_date) FROM forecast_accuracy) AND family <> 'units/product')
              SELECT c.series, c.model, c.origins, c.mase, n.mase AS naive_mase,
                     CASE WHEN n.mase > 0 THEN 1 - c.mase / n.mase END AS gain, c.smape, c.coverage80, c.coverage95
              FROM a c LEFT JOIN a n ON n.series = c.series AND n.model = 'seasonal_naive'
              WHERE c.chosen
              ORDER BY CASE c.family WHEN 'revenue_mad/total' THEN 0 WHEN 'revenue_mad/category' THEN 1 WHEN 'units/total' THEN 2 ELSE 3 END, c.series",
    },
    Query {
        name: "stockouts",
        page: "forecast",
        about: "Products whose stock runs out within the forecast horizon at the forecast pace, soonest first (latest run).",
        sources: &[gold("forecast_stockouts")],
        sql: concat!(
            "SELECT product_id, product_name, category_name, stock_quantity, daily_units, days_to_stockout, stockout_date, model
             FROM forecast_stockouts WHERE run_date = (SELECT max(run_date) FROM forecast_stockouts) AND days_to_stockout IS NOT NULL AND ",
            by_category!(),
            " ORDER BY days_to_stockout, daily_units DESC, product_id LIMIT 100"
        ),
    },
];

/// The query named `name`.
pub fn query(name: &str) -> Option<&'static Query> {
    QUERIES.iter().find(|q| q.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_sql_binds_rather_than_splices() {
        let mut names: Vec<_> = QUERIES.iter().map(|q| q.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), QUERIES.len());
        for q in QUERIES {
            // The only braces a query may hold are the grain's.
            assert_eq!(q.sql.replace("{grain}", "").matches('{').count(), 0, "{}", q.name);
            assert!(!q.sources.is_empty(), "{}", q.name);
        }
    }
}
