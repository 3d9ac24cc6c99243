//! The catalogue of silver tables: each table's bronze stream, key, newest-wins column,
//! partitioning and how its rows are prepared. The transform engine is the parent module.

use super::{Prepare, SilverSpec};

/// Every silver table, in dependency order (dimensions before the facts that join them).
pub const SILVER: &[SilverSpec] = &[
    SilverSpec {
        name: "fx_rates",
        source: "exchange_rates",
        stream: "rates",
        keys: &["rate_date", "currency"],
        seq: "_ingested_at",
        partition: None,
        prepare: Prepare::None,
        fx_date: None,
        joins: &[],
        sql: "SELECT CAST(trim(date) AS DATE) AS rate_date, upper(trim(currency)) AS currency,
                     CAST(mad_per_unit AS DECIMAL(18,6)) AS mad_per_unit, _version, _ingested_at
              FROM increment",
    },
    SilverSpec {
        name: "competitor_prices",
        source: "competitor_prices",
        stream: "prices",
        keys: &["competitor", "sku", "observed_at"],
        seq: "_ingested_at",
        partition: Some("price_date"),
        prepare: Prepare::None,
        fx_date: Some("CAST(observed_at AS DATE)"),
        joins: &[],
        sql: "SELECT lower(trim(i.competitor)) AS competitor, upper(trim(i.sku)) AS sku, i.observed_at,
                     CAST(i.observed_at AS DATE) AS price_date, i.price, upper(trim(i.currency)) AS currency,
                     CAST(i.price * fx.mad_per_unit AS DECIMAL(18,2)) AS price_mad, i._version, i._ingested_at
              FROM increment i
              LEFT JOIN fx ON fx.rate_date = CAST(i.observed_at AS DATE) AND fx.currency = upper(trim(i.currency))",
    },
    SilverSpec {
        name: "products",
        source: "alkasba_store",
        stream: "products",
        keys: &["product_id"],
        seq: "modified_at",
        partition: None,
        prepare: Prepare::Categories,
        fx_date: None,
        joins: &[],
        sql: "SELECT id AS product_id, trim(name) AS name, upper(trim(sku)) AS sku, price, regular_price,
                     stock_quantity, category_id, trim(category_name) AS category_name,
                     date_created_gmt AS created_at, date_modified_gmt AS modified_at, _version, _ingested_at
              FROM increment",
    },
    // Every version of every product's price the ingestion saw: the price as it was on a day
    // (the competitor index compares with it). Versions between two ingestion runs are not seen.
    SilverSpec {
        name: "product_prices",
        source: "alkasba_store",
        stream: "products",
        keys: &["product_id", "valid_from"],
        seq: "_ingested_at",
        partition: None,
        prepare: Prepare::None,
        fx_date: None,
        joins: &[],
        sql: "SELECT id AS product_id, date_modified_gmt AS valid_from, price, regular_price, _version, _ingested_at
              FROM increment",
    },
    SilverSpec {
        name: "customers",
        source: "alkasba_store",
        stream: "customers",
        keys: &["customer_id"],
        seq: "modified_at",
        partition: None,
        prepare: Prepare::None,
        fx_date: None,
        joins: &[],
        // Personal fields stay sealed (one `pii1:`/`pii2:`/`pii3:` value, opened only with kms:Decrypt).
        sql: "SELECT id AS customer_id, email_token AS customer_token, phone_token, _sealed AS pii_sealed,
                     date_created_gmt AS created_at, date_modified_gmt AS modified_at, _version, _ingested_at
              FROM increment",
    },
    SilverSpec {
        name: "orders",
        source: "alkasba_store",
        stream: "orders",
        keys: &["order_id"],
        seq: "modified_at",
        partition: Some("order_date"),
        prepare: Prepare::None,
        fx_date: Some("CAST(date_created_gmt AS DATE)"),
        joins: &[],
        sql: "SELECT i.id AS order_id, lower(trim(i.status)) AS status, upper(trim(i.currency)) AS currency,
                     i.customer_id, i.email_token AS customer_token,
                     i.total, i.total_tax, i.shipping_total, i.discount_total, i.payment_method,
                     upper(trim(i.billing_country)) AS country, trim(i.billing_city) AS city,
                     lower(trim(i.status)) IN ('processing', 'completed', 'refunded') AS is_paid,
                     i.date_created_gmt AS created_at, i.date_modified_gmt AS modified_at, i.date_paid_gmt AS paid_at,
                     CAST(i.date_created_gmt AS DATE) AS order_date,
                     fx.mad_per_unit AS fx_rate, fx.fx_rate_date,
                     CAST(i.total * fx.mad_per_unit AS DECIMAL(18,2)) AS total_mad,
                     CAST(i.discount_total * fx.mad_per_unit AS DECIMAL(18,2)) AS discount_mad,
                     i._version, i._ingested_at
              FROM increment i
              LEFT JOIN fx ON fx.rate_date = CAST(i.date_created_gmt AS DATE) AND fx.currency = upper(trim(i.currency))",
    },
    SilverSpec {
        name: "order_lines",
        source: "alkasba_store",
        stream: "orders",
        keys: &["order_id", "line_id"],
        seq: "modified_at",
        partition: Some("order_date"),
        prepare: Prepare::ExplodeLines,
        fx_date: Some("CAST(date_created_gmt AS DATE)"),
        joins: &["products"],
        sql: "SELECT i.id AS order_id, i.line_id, i.product_id, p.name AS product_name, upper(trim(i.line_sku)) AS sku,
                     p.category_id, p.category_name, i.quantity, i.line_subtotal, i.line_total, i.line_tax,
                     upper(trim(i.currency)) AS currency, lower(trim(i.status)) AS status,
                     lower(trim(i.status)) IN ('processing', 'completed', 'refunded') AS is_paid,
                     i.email_token AS customer_token,
                     i.date_created_gmt AS created_at, i.date_modified_gmt AS modified_at,
                     CAST(i.date_created_gmt AS DATE) AS order_date,
                     CAST(i.line_total * fx.mad_per_unit AS DECIMAL(18,2)) AS line_total_mad,
                     i._version, i._ingested_at
              FROM increment i
              LEFT JOIN products p ON p.product_id = i.product_id
              LEFT JOIN fx ON fx.rate_date = CAST(i.date_created_gmt AS DATE) AND fx.currency = upper(trim(i.currency))",
    },
    // A refund's currency is its order's: silver orders (above) are joined.
    SilverSpec {
        name: "refunds",
        source: "alkasba_store",
        stream: "refunds",
        keys: &["refund_id"],
        seq: "created_at",
        partition: None,
        prepare: Prepare::None,
        fx_date: Some("CAST(date_created_gmt AS DATE)"),
        joins: &["orders"],
        sql: "SELECT i.id AS refund_id, i.parent_id AS order_id, i.amount, o.currency,
                     i.date_created_gmt AS created_at, CAST(i.date_created_gmt AS DATE) AS refund_date,
                     CAST(i.amount * fx.mad_per_unit AS DECIMAL(18,2)) AS amount_mad, i._version, i._ingested_at
              FROM increment i
              LEFT JOIN orders o ON o.order_id = i.parent_id
              LEFT JOIN fx ON fx.rate_date = CAST(i.date_created_gmt AS DATE) AND fx.currency = o.currency",
    },
    // The products a refund returns: one row per refund item, quantities and amounts made
    // positive (WooCommerce stores refund items negative).
    SilverSpec {
        name: "refund_lines",
        source: "alkasba_store",
        stream: "refunds",
        keys: &["refund_id", "line_id"],
        seq: "created_at",
        partition: None,
        prepare: Prepare::ExplodeLines,
        fx_date: Some("CAST(date_created_gmt AS DATE)"),
        joins: &["products", "orders"],
        sql: "SELECT i.id AS refund_id, i.parent_id AS order_id, i.line_id, i.product_id, p.name AS product_name,
                     p.category_id, p.category_name, -i.quantity AS quantity, -i.line_total AS line_total, -i.line_tax AS line_tax,
                     o.currency, i.date_created_gmt AS created_at, CAST(i.date_created_gmt AS DATE) AS refund_date,
                     CAST(-i.line_total * fx.mad_per_unit AS DECIMAL(18,2)) AS line_total_mad, i._version, i._ingested_at
              FROM increment i
              LEFT JOIN products p ON p.product_id = i.product_id
              LEFT JOIN orders o ON o.order_id = i.parent_id
              LEFT JOIN fx ON fx.rate_date = CAST(i.date_created_gmt AS DATE) AND fx.currency = o.currency",
    },
];
