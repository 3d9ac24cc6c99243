//! The catalogue of gold marts: each mart's inputs, partitioning, SQL and how it is brought up
//! to date. The engine that runs them is the parent module.

use super::{Input, Mart, TOUCHED, Update, stage};
use crate::{Error, Result};

const fn silver(table: &'static str) -> Input {
    Input { layer: "silver", table }
}

const fn gold(table: &'static str) -> Input {
    Input { layer: "gold", table }
}

/// Every mart, in dependency order.
pub const MARTS: &[Mart] = &[
    Mart {
        name: "daily_sales",
        about: "Per day and currency: orders, paid orders, gross revenue (paid orders' totals incl. tax and shipping), refunds (by refund date), net, in the order currency and in MAD; average order value; refund rate.",
        inputs: &[silver("orders"), silver("refunds")],
        partition: None,
        update: Update::Dates {
            touched: "SELECT order_date AS d FROM orders_changes
             UNION SELECT refund_date AS d FROM refunds_changes
             UNION SELECT r.refund_date AS d FROM refunds r JOIN orders_changes c ON r.order_id = c.order_id",
            column: "date",
        },
        sql: "WITH o AS (
                SELECT order_date AS date, currency, count(*) AS orders,
                       sum(CASE WHEN is_paid THEN 1 ELSE 0 END) AS paid_orders,
                       sum(CASE WHEN is_paid THEN total END) AS gross,
                       sum(CASE WHEN is_paid THEN total_mad END) AS gross_mad,
                       count(DISTINCT CASE WHEN is_paid THEN customer_token END) AS customers
                FROM orders WHERE order_date IN {touched}
                GROUP BY order_date, currency),
              r AS (
                SELECT r.refund_date AS date, o.currency, count(*) AS refund_count,
                       sum(r.amount) AS refunds, sum(r.amount_mad) AS refunds_mad
                FROM refunds r JOIN orders o ON o.order_id = r.order_id
                WHERE r.refund_date IN {touched}
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
        name: "daily_order_mix",
        about: "Per day, currency and payment method: orders, paid orders, failed payments, gross revenue (MAD), discounts given (MAD, excl. tax) and paid orders with a discount.",
        inputs: &[silver("orders")],
        partition: None,
        update: Update::Dates { touched: "SELECT order_date AS d FROM orders_changes", column: "date" },
        sql: "SELECT order_date AS date, currency, coalesce(payment_method, '(none)') AS payment_method,
                     count(*) AS orders, sum(CASE WHEN is_paid THEN 1 ELSE 0 END) AS paid_orders,
                     sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed_orders,
                     CAST(coalesce(sum(CASE WHEN is_paid THEN total_mad END), 0) AS DECIMAL(18,2)) AS gross_mad,
                     CAST(coalesce(sum(CASE WHEN is_paid THEN discount_mad END), 0) AS DECIMAL(18,2)) AS discount_mad,
                     sum(CASE WHEN is_paid AND discount_total > 0 THEN 1 ELSE 0 END) AS discounted_orders
              FROM orders WHERE order_date IN {touched}
              GROUP BY order_date, currency, coalesce(payment_method, '(none)')",
    },
    Mart {
        name: "daily_geo_sales",
        about: "Per day, country and city of the billing address (never finer): paid orders, distinct paying customers and gross revenue (MAD).",
        inputs: &[silver("orders")],
        partition: None,
        update: Update::Dates { touched: "SELECT order_date AS d FROM orders_changes", column: "date" },
        sql: "SELECT order_date AS date, coalesce(country, '(unknown)') AS country, coalesce(city, '(unknown)') AS city,
                     count(*) AS paid_orders, count(DISTINCT customer_token) AS customers,
                     CAST(sum(total_mad) AS DECIMAL(18,2)) AS gross_mad
              FROM orders WHERE is_paid AND order_date IN {touched}
              GROUP BY order_date, coalesce(country, '(unknown)'), coalesce(city, '(unknown)')",
    },
    Mart {
        name: "daily_product_sales",
        about: "Per day, product and currency (paid orders): units, revenue (line totals after discount, excl. tax) in the order currency and in MAD, orders; product name and category.",
        inputs: &[silver("order_lines")],
        partition: Some("date"),
        update: Update::Dates { touched: "SELECT order_date AS d FROM order_lines_changes", column: "date" },
        sql: "SELECT order_date AS date, product_id, currency,
                     max(product_name) AS product_name, max(category_id) AS category_id, max(category_name) AS category_name,
                     sum(quantity) AS units, count(DISTINCT order_id) AS orders,
                     CAST(sum(line_total) AS DECIMAL(18,2)) AS revenue,
                     CAST(sum(line_total_mad) AS DECIMAL(18,2)) AS revenue_mad
              FROM order_lines
              WHERE is_paid AND order_date IN {touched}
              GROUP BY order_date, product_id, currency",
    },
    Mart {
        name: "daily_product_returns",
        about: "Per refund day, product and currency: units returned, refund items' amounts (excl. tax) in the order currency and in MAD, refunds; product name and category. Returns count on the refund's day.",
        inputs: &[silver("refund_lines")],
        partition: Some("date"),
        update: Update::Dates { touched: "SELECT refund_date AS d FROM refund_lines_changes", column: "date" },
        sql: "SELECT refund_date AS date, product_id, currency,
                     max(product_name) AS product_name, max(category_id) AS category_id, max(category_name) AS category_name,
                     sum(quantity) AS units_returned, count(DISTINCT refund_id) AS refunds,
                     CAST(sum(line_total) AS DECIMAL(18,2)) AS refunded,
                     CAST(sum(line_total_mad) AS DECIMAL(18,2)) AS refunded_mad
              FROM refund_lines
              WHERE refund_date IN {touched}
              GROUP BY refund_date, product_id, currency",
    },
    Mart {
        name: "revenue_growth",
        about: "Per day, all currencies in MAD: gross revenue, net revenue, paid orders, average order value, and gross revenue growth day over day and week over week (against the same weekday).",
        inputs: &[gold("daily_sales")],
        partition: None,
        update: Update::Rebuild,
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
        partition: None,
        update: Update::Rebuild,
        sql: "WITH m AS (
                SELECT CAST(date_trunc('month', date) AS DATE) AS month, CAST(sum(gross_mad) AS DECIMAL(18,2)) AS revenue_mad,
                       CAST(sum(net_mad) AS DECIMAL(18,2)) AS net_revenue_mad, sum(paid_orders) AS paid_orders
                FROM daily_sales GROUP BY 1)
              SELECT m.month, m.revenue_mad, m.net_revenue_mad, m.paid_orders, p.revenue_mad AS revenue_mad_prev_month,
                     CASE WHEN p.revenue_mad > 0 THEN CAST(m.revenue_mad - p.revenue_mad AS DOUBLE) / CAST(p.revenue_mad AS DOUBLE) END AS growth_mom
              FROM m LEFT JOIN m p ON p.month = CAST(m.month - INTERVAL '1' MONTH AS DATE)",
    },
    Mart {
        name: "customer_firsts",
        about: "Per customer token: the date (and month) of the first paid order (customers without a paid order are absent). What new-versus-returning and the cohorts are measured against.",
        inputs: &[silver("orders")],
        partition: Some("first_month"),
        // The changes since the last build fold into the current rows. A customer's first date
        // can only move if one of their changed orders is dated on or before it (it moves
        // earlier through that order's current row, or later if the order on it stopped being
        // paid: only those "lost" customers are looked up in the orders again, and only from
        // their old first date on, since every order before it is a changed one), or if they
        // are new. Partitioned by first month (a few files to find the changed customers in,
        // where daily partitions made that read open ninety), only the months of the
        // candidates' old and new first dates are rewritten (a new month a rescan finds is added
        // and the stages rerun).
        update: Update::Fold {
            stages: &[
                // The changed customers' current first dates (one scan of the mart).
                stage("firsts", "SELECT c.customer_token, c.first_date FROM customer_firsts_current c WHERE c.customer_token IN (SELECT customer_token FROM orders_changes)"),
                stage(
                    "cand",
                    "SELECT DISTINCT ch.customer_token, f.first_date FROM orders_changes ch LEFT JOIN firsts f ON f.customer_token = ch.customer_token
                     WHERE ch.customer_token IS NOT NULL AND (f.customer_token IS NULL OR ch.order_date <= f.first_date)",
                ),
                // The days whose orders are read again, and the months rewritten.
                stage("days", "SELECT order_date AS d FROM orders_changes UNION SELECT first_date AS d FROM cand"),
                stage(TOUCHED, "SELECT CAST(date_trunc('month', d) AS DATE) AS d FROM days"),
                // The changed orders as they are now (paid ones), read from their days' partitions.
                stage(
                    "now",
                    "SELECT order_id, customer_token, order_date FROM orders
                     WHERE is_paid AND customer_token IS NOT NULL AND order_date IN {days} AND order_id IN (SELECT order_id FROM orders_changes)",
                ),
                stage(
                    "lost",
                    "SELECT DISTINCT p.customer_token, f.first_date AS d FROM orders_changes p
                     JOIN firsts f ON f.customer_token = p.customer_token
                     LEFT JOIN now n ON n.order_id = p.order_id AND n.order_date = p.order_date
                     WHERE p._change_type IN ('update_preimage', 'delete') AND p.is_paid AND p.order_date <= f.first_date AND n.order_id IS NULL",
                ),
                stage(
                    "rescan",
                    "SELECT o.customer_token, min(o.order_date) AS first_date FROM orders o
                     WHERE o.is_paid AND o.order_date >= {lost_from} AND o.customer_token IN (SELECT customer_token FROM lost)
                     GROUP BY o.customer_token",
                ),
                stage(
                    "result",
                    "WITH n AS (SELECT customer_token, min(first_date) AS first_date FROM (
                        SELECT c.customer_token, c.first_date FROM cand c
                        WHERE c.first_date IS NOT NULL AND c.customer_token NOT IN (SELECT customer_token FROM lost)
                        UNION ALL SELECT w.customer_token, w.order_date AS first_date FROM now w JOIN cand c ON c.customer_token = w.customer_token
                        UNION ALL SELECT customer_token, first_date FROM rescan) t
                      GROUP BY customer_token)
                     SELECT customer_token, first_date, first_month FROM customer_firsts_current
                     WHERE first_month IN {touched} AND customer_token NOT IN (SELECT customer_token FROM cand)
                     UNION ALL SELECT customer_token, first_date, CAST(date_trunc('month', first_date) AS DATE) AS first_month FROM n",
                ),
            ],
            replace: Some("first_month"),
        },
        sql: "SELECT customer_token, min(order_date) AS first_date, CAST(date_trunc('month', min(order_date)) AS DATE) AS first_month
              FROM orders WHERE is_paid AND customer_token IS NOT NULL GROUP BY customer_token",
    },
    Mart {
        name: "customer_activity",
        about: "Per day: paying customers (by token), new ones (first paid order that day) and returning ones.",
        inputs: &[silver("orders"), gold("customer_firsts")],
        partition: None,
        // Paying customers per day change only on the days the changes touched; new customers
        // per day only in the first months customer_firsts rewrote since the last build (its
        // partitions, read from its log): they are counted again from those partitions, the
        // other days keep their counts.
        update: Update::Fold {
            stages: &[
                stage(TOUCHED, "SELECT order_date AS d FROM orders_changes"),
                stage("first_months", "SELECT d FROM customer_firsts_touched"),
                stage(
                    "result",
                    "WITH c AS (
                    SELECT order_date AS date, count(DISTINCT customer_token) AS customers FROM orders
                    WHERE is_paid AND customer_token IS NOT NULL AND order_date IN {touched} GROUP BY order_date
                    UNION ALL SELECT date, customers FROM customer_activity_current WHERE date NOT IN {touched}),
                  n AS (SELECT first_date AS date, count(*) AS new_customers FROM customer_firsts WHERE first_month IN {first_months} GROUP BY first_date
                    UNION ALL SELECT date, new_customers FROM customer_activity_current
                    WHERE CAST(date_trunc('month', date) AS DATE) NOT IN {first_months} AND new_customers > 0)
                  SELECT c.date, c.customers, coalesce(n.new_customers, 0) AS new_customers, c.customers - coalesce(n.new_customers, 0) AS returning_customers
                  FROM c LEFT JOIN n ON n.date = c.date",
                ),
            ],
            replace: None,
        },
        sql: "WITH c AS (
                SELECT order_date AS date, count(DISTINCT customer_token) AS customers FROM orders
                WHERE is_paid AND customer_token IS NOT NULL AND order_date IN {touched} GROUP BY order_date),
              n AS (SELECT first_date AS date, count(*) AS new_customers FROM customer_firsts GROUP BY first_date)
              SELECT c.date, c.customers, coalesce(n.new_customers, 0) AS new_customers, c.customers - coalesce(n.new_customers, 0) AS returning_customers
              FROM c LEFT JOIN n ON n.date = c.date",
    },
    Mart {
        name: "customer_cohorts",
        about: "Monthly cohorts: customers (by token) grouped by the month of their first paid order, with how many of them bought, and for how much (MAD), in each later month.",
        inputs: &[silver("orders"), gold("customer_firsts")],
        partition: None,
        // A change on day d can move a customer's first date, and with it the cohort of every
        // order they placed, but all those orders are on or after d: the months from d's on are
        // recomputed, earlier ones cannot change.
        update: Update::From { touched: "SELECT CAST(date_trunc('month', order_date) AS DATE) AS d FROM orders_changes", column: "activity_month" },
        // Per customer and month first, then per cohort: the join sees one row per customer and
        // month instead of one per order, and no distinct count is needed.
        sql: "SELECT f.first_month AS cohort_month, t.activity_month,
                     count(*) AS customers, CAST(sum(t.orders) AS BIGINT) AS orders,
                     CAST(sum(t.revenue_mad) AS DECIMAL(18,2)) AS revenue_mad
              FROM (SELECT customer_token, CAST(date_trunc('month', order_date) AS DATE) AS activity_month,
                           count(*) AS orders, sum(total_mad) AS revenue_mad
                    FROM orders WHERE is_paid AND customer_token IS NOT NULL AND order_date >= {touched_from}
                    GROUP BY 1, 2) t
              JOIN customer_firsts f ON f.customer_token = t.customer_token
              GROUP BY 1, 2",
    },
    Mart {
        name: "top_products",
        about: "Per month: the 20 products with the most revenue (MAD), with units, category and rank.",
        inputs: &[gold("daily_product_sales")],
        partition: None,
        // A month's ranking moves only when one of its days does: the months of the partitions
        // daily_product_sales rewrote since the last build are ranked again.
        update: Update::From { touched: "SELECT CAST(date_trunc('month', d) AS DATE) AS d FROM daily_product_sales_touched", column: "month" },
        sql: "SELECT * FROM (
                SELECT month, product_id, product_name, category_name, units, revenue_mad,
                       rank() OVER (PARTITION BY month ORDER BY revenue_mad DESC, product_id) AS rank
                FROM (SELECT CAST(date_trunc('month', date) AS DATE) AS month, product_id, max(product_name) AS product_name,
                             max(category_name) AS category_name, sum(units) AS units, CAST(sum(revenue_mad) AS DECIMAL(18,2)) AS revenue_mad
                      FROM daily_product_sales WHERE date >= {touched_from} GROUP BY 1, 2) t) r
              WHERE rank <= 20",
    },
    Mart {
        name: "stock_cover",
        about: "Per product: stock on hand, units sold in the 28 days up to the latest sales day, and the days of sales the stock covers at that pace.",
        inputs: &[silver("products"), gold("daily_product_sales")],
        partition: None,
        update: Update::Rebuild,
        // `{daily_product_sales_latest_from}`: the latest sales day, a literal, so only the
        // last 28 partitions are read.
        sql: "WITH u AS (SELECT s.product_id, sum(s.units) AS units_28d FROM daily_product_sales s
                    WHERE s.date > {daily_product_sales_latest_from} - INTERVAL '28' DAY GROUP BY s.product_id)
              SELECT p.product_id, p.name AS product_name, p.category_name, p.stock_quantity, coalesce(u.units_28d, 0) AS units_28d,
                     CAST(coalesce(u.units_28d, 0) AS DOUBLE) / 28.0 AS daily_units,
                     CASE WHEN u.units_28d > 0 THEN CAST(p.stock_quantity AS DOUBLE) / (CAST(u.units_28d AS DOUBLE) / 28.0) END AS cover_days
              FROM products p LEFT JOIN u ON u.product_id = p.product_id",
    },
    Mart {
        name: "competitor_price_index",
        about: "Per day and product: our price as it was that day (the last version seen by the end of the day; before the first version seen, that first one), the cheapest competitor price (MAD) and the price index (ours / cheapest × 100; above 100 we are dearer).",
        inputs: &[silver("competitor_prices"), silver("products"), silver("product_prices")],
        partition: None,
        update: Update::Rebuild,
        sql: "WITH v AS (SELECT product_id, price, valid_from,
                           lead(valid_from) OVER (PARTITION BY product_id ORDER BY valid_from) AS valid_until
                    FROM product_prices),
              f AS (SELECT product_id, min(valid_from) AS first_from FROM product_prices GROUP BY product_id),
              c AS (SELECT c.price_date, p.product_id, p.sku, p.name AS product_name,
                           min(c.price_mad) AS cheapest, count(*) AS competitors
                    FROM competitor_prices c JOIN products p ON p.sku = c.sku
                    WHERE c.price_mad > 0
                    GROUP BY c.price_date, p.product_id, p.sku, p.name)
              SELECT c.price_date AS date, c.product_id, c.sku, c.product_name, v.price AS our_price,
                     c.cheapest AS cheapest_competitor_price, c.competitors,
                     CAST(v.price AS DOUBLE) / CAST(c.cheapest AS DOUBLE) * 100.0 AS price_index
              FROM c JOIN f ON f.product_id = c.product_id
              JOIN v ON v.product_id = c.product_id
                AND ((CAST(v.valid_from AS DATE) <= c.price_date AND (v.valid_until IS NULL OR CAST(v.valid_until AS DATE) > c.price_date))
                  OR (CAST(f.first_from AS DATE) > c.price_date AND v.valid_from = f.first_from))",
    },
];

/// The mart named `name`.
pub fn mart(name: &str) -> Result<&'static Mart> {
    MARTS.iter().find(|m| m.name == name).ok_or_else(|| Error::Config(format!("unknown mart {name:?}; known: {}", MARTS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "))))
}
