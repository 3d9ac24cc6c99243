//! The catalogue of forecast series: each family's inputs and the SQL that gives its daily
//! values. The engine that forecasts them is the parent module.

use alkasba_forecast::Kind;

/// A family of series: one per `key` its SQL returns, named `<family>/<key>`.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// `measure/grain`, e.g. `revenue_mad/category`.
    pub name: &'static str,
    pub about: &'static str,
    /// Which candidates its series get.
    pub kind: Kind,
    /// The shop-wide family its series borrow calendar from (`alkasba_forecast::Role`: a total
    /// learns its own; a category follows the shop's last year; a product borrows both).
    pub shop: Option<&'static str>,
    /// Tables the SQL reads, as `layer/name`; registered under `name`.
    pub inputs: &'static [&'static str],
    /// Columns `key` (string), `date` (date) and `value` (double) for days from `{from}`.
    pub sql: &'static str,
}

pub const FAMILIES: &[Family] = &[
    Family {
        name: "revenue_mad/total",
        about: "Gross revenue of paid orders (incl. tax and shipping) in MAD, the whole shop (gold/revenue_growth.revenue_mad).",
        kind: Kind::Aggregate,
        shop: None,
        inputs: &["gold/revenue_growth"],
        sql: "SELECT 'total' AS key, date, CAST(revenue_mad AS DOUBLE) AS value FROM revenue_growth WHERE date >= {from}",
    },
    Family {
        name: "units/total",
        about: "Units sold in paid orders, the whole shop.",
        kind: Kind::Aggregate,
        shop: None,
        inputs: &["gold/daily_product_sales"],
        sql: "SELECT 'total' AS key, date, CAST(sum(units) AS DOUBLE) AS value FROM daily_product_sales WHERE date >= {from} GROUP BY date",
    },
    Family {
        name: "revenue_mad/category",
        about: "Product revenue (line totals after discount, excl. tax) in MAD, per category.",
        kind: Kind::Aggregate,
        shop: Some("revenue_mad/total"),
        inputs: &["gold/daily_product_sales"],
        sql: "SELECT coalesce(category_name, '(none)') AS key, date, CAST(sum(revenue_mad) AS DOUBLE) AS value
              FROM daily_product_sales WHERE date >= {from} GROUP BY 1, 2",
    },
    Family {
        name: "units/category",
        about: "Units sold in paid orders, per category.",
        kind: Kind::Aggregate,
        shop: Some("units/total"),
        inputs: &["gold/daily_product_sales"],
        sql: "SELECT coalesce(category_name, '(none)') AS key, date, CAST(sum(units) AS DOUBLE) AS value
              FROM daily_product_sales WHERE date >= {from} GROUP BY 1, 2",
    },
    Family {
        name: "units/product",
        about: "Units sold in paid orders, per product id: what the stock-out dates are computed from.",
        kind: Kind::Product,
        shop: Some("units/total"),
        inputs: &["gold/daily_product_sales"],
        sql: "SELECT CAST(product_id AS VARCHAR) AS key, date, CAST(sum(units) AS DOUBLE) AS value
              FROM daily_product_sales WHERE date >= {from} GROUP BY 1, 2",
    },
];

/// The family of product units: its forecasts give the stock-out dates.
pub const PRODUCT_UNITS: &str = "units/product";

/// The stock on hand per product (silver), read for the stock-out dates.
pub const STOCK_SQL: &str = "SELECT CAST(product_id AS VARCHAR) AS key, name, category_name, CAST(stock_quantity AS BIGINT) AS stock FROM products WHERE stock_quantity IS NOT NULL";

/// Looks a family up by name.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}
