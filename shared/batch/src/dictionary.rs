//! The data dictionary: every silver and gold table's grain and every column's meaning and unit,
//! beside the catalogues that build them. `docs/data-dictionary.md` is generated from it
//! (`alkasba batch dictionary`); a test keeps the file in step, and the batch integration test
//! checks the columns against the tables the layers really write.

use crate::{forecast, gold, silver};

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    /// `MAD`, `order currency`, `count`, `ratio`, `days`, `date`, `timestamp (UTC)`, `id`, `text`...
    pub unit: &'static str,
    pub meaning: &'static str,
}

/// One table.
#[derive(Debug, Clone, Copy)]
pub struct TableDoc {
    /// `<layer>/<name>`.
    pub path: &'static str,
    /// What one row is.
    pub grain: &'static str,
    pub columns: &'static [Col],
}

const fn c(name: &'static str, unit: &'static str, meaning: &'static str) -> Col {
    Col { name, unit, meaning }
}

const VERSION: Col = c("_version", "text", "Hash of the source record this row was built from (which version of it).");
const INGESTED: Col = c("_ingested_at", "timestamp (UTC)", "When that version reached bronze.");

/// Every table.
pub const TABLES: &[TableDoc] = &[
    TableDoc {
        path: "silver/orders",
        grain: "one order, as it is now (latest version)",
        columns: &[
            c("order_id", "id", "The store's order id."),
            c("status", "text", "Order status, lower case (pending, processing, completed, refunded, cancelled, failed, on-hold)."),
            c("currency", "ISO 4217", "The currency the customer paid in."),
            c("customer_id", "id", "The store's customer id (0 for guests)."),
            c("customer_token", "token", "Keyed HMAC of the customer's email: joins and counts people without personal data."),
            c("total", "order currency", "Order total incl. tax and shipping, after discounts."),
            c("total_tax", "order currency", "Tax in the total."),
            c("shipping_total", "order currency", "Shipping charged, excl. tax."),
            c("discount_total", "order currency", "Discounts given, excl. tax."),
            c("payment_method", "text", "The store's payment gateway id (cod, bacs, stripe, paypal...)."),
            c("country", "ISO 3166-1 alpha-2", "Billing country (kept in clear at ingestion; the rest of the address is sealed)."),
            c("city", "text", "Billing city, as the customer typed it (kept in clear; never the street or postcode)."),
            c("is_paid", "boolean", "Status is processing, completed or refunded: the orders revenue counts."),
            c("created_at", "timestamp (UTC)", "When the order was placed."),
            c("modified_at", "timestamp (UTC)", "Last change in the store."),
            c("paid_at", "timestamp (UTC)", "When it was paid, if it was."),
            c("order_date", "date (UTC)", "Day the order was placed (partition)."),
            c("fx_rate", "MAD per unit", "Exchange rate applied (the order day's, or the latest before it)."),
            c("fx_rate_date", "date", "The day of that rate."),
            c("total_mad", "MAD", "total × fx_rate."),
            c("discount_mad", "MAD", "discount_total × fx_rate."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "silver/order_lines",
        grain: "one line of one order, as it is now",
        columns: &[
            c("order_id", "id", "The order."),
            c("line_id", "id", "The line within the order."),
            c("product_id", "id", "The product sold."),
            c("product_name", "text", "Its current name."),
            c("sku", "text", "Its SKU, upper case."),
            c("category_id", "id", "Its first category."),
            c("category_name", "text", "That category's name."),
            c("quantity", "count", "Units."),
            c("line_subtotal", "order currency", "Before discounts, excl. tax."),
            c("line_total", "order currency", "After discounts, excl. tax: line revenue."),
            c("line_tax", "order currency", "Tax on the line."),
            c("currency", "ISO 4217", "The order's currency."),
            c("status", "text", "The order's status."),
            c("is_paid", "boolean", "The order is paid (see silver/orders)."),
            c("customer_token", "token", "The order's customer token."),
            c("created_at", "timestamp (UTC)", "When the order was placed."),
            c("modified_at", "timestamp (UTC)", "The order's last change."),
            c("order_date", "date (UTC)", "Day the order was placed (partition)."),
            c("line_total_mad", "MAD", "line_total at the order's exchange rate."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "silver/products",
        grain: "one product, as it is now",
        columns: &[
            c("product_id", "id", "The store's product id."),
            c("name", "text", "Product name."),
            c("sku", "text", "SKU, upper case (joins competitor prices)."),
            c("price", "MAD", "Current selling price (the sale price when on sale)."),
            c("regular_price", "MAD", "Price before any sale."),
            c("stock_quantity", "count", "Units in stock (null when stock is not managed)."),
            c("category_id", "id", "First category."),
            c("category_name", "text", "Its name."),
            c("created_at", "timestamp (UTC)", "When the product was created."),
            c("modified_at", "timestamp (UTC)", "Last change in the store."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "silver/product_prices",
        grain: "one version of one product's price, as ingestion saw it",
        columns: &[
            c("product_id", "id", "The product."),
            c("valid_from", "timestamp (UTC)", "The version's modification time in the store: the price holds from then to the next version."),
            c("price", "MAD", "Selling price in that version."),
            c("regular_price", "MAD", "Price before any sale in that version."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "silver/customers",
        grain: "one customer account, as it is now",
        columns: &[
            c("customer_id", "id", "The store's customer id."),
            c("customer_token", "token", "Keyed HMAC of the email."),
            c("phone_token", "token", "Keyed HMAC of the phone number."),
            c(
                "pii_sealed",
                "sealed",
                "Everything the customers stream does not keep in clear (email, names, username, billing and shipping addresses, avatar, meta_data), encrypted as one value under the person's key (alkasba pii decrypt; needs kms:Decrypt).",
            ),
            c("created_at", "timestamp (UTC)", "When the account was created."),
            c("modified_at", "timestamp (UTC)", "Last change."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "silver/refunds",
        grain: "one refund",
        columns: &[
            c("refund_id", "id", "The store's refund id."),
            c("order_id", "id", "The order refunded."),
            c("amount", "order currency", "Amount refunded."),
            c("currency", "ISO 4217", "Currency of the amount: the order's (WooCommerce's refunds carry none)."),
            c("created_at", "timestamp (UTC)", "When the refund was made."),
            c("refund_date", "date (UTC)", "Its day (refunds count on this day, not the order's)."),
            c("amount_mad", "MAD", "amount at the refund day's rate."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "silver/refund_lines",
        grain: "one item of one refund: a product returned",
        columns: &[
            c("refund_id", "id", "The refund."),
            c("order_id", "id", "The order refunded."),
            c("line_id", "id", "The refund item's id."),
            c("product_id", "id", "The product returned."),
            c("product_name", "text", "Its current name."),
            c("category_id", "id", "Its first category."),
            c("category_name", "text", "That category's name."),
            c("quantity", "count", "Units returned (positive; WooCommerce stores them negative)."),
            c("line_total", "order currency", "Amount refunded for the item, excl. tax (positive)."),
            c("line_tax", "order currency", "Tax refunded for the item (positive)."),
            c("currency", "ISO 4217", "The order's currency."),
            c("created_at", "timestamp (UTC)", "When the refund was made."),
            c("refund_date", "date (UTC)", "Its day."),
            c("line_total_mad", "MAD", "line_total at the refund day's rate."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "silver/fx_rates",
        grain: "one currency on one day",
        columns: &[c("rate_date", "date", "The day."), c("currency", "ISO 4217", "The currency."), c("mad_per_unit", "MAD per unit", "Dirhams for one unit of the currency."), VERSION, INGESTED],
    },
    TableDoc {
        path: "silver/competitor_prices",
        grain: "one competitor's price of one SKU at one observation",
        columns: &[
            c("competitor", "text", "Competitor, lower case."),
            c("sku", "text", "Our SKU the price is for."),
            c("observed_at", "timestamp (UTC)", "When the feed observed it."),
            c("price_date", "date (UTC)", "Its day (partition)."),
            c("price", "feed currency", "The competitor's price."),
            c("currency", "ISO 4217", "Its currency."),
            c("price_mad", "MAD", "price at that day's rate."),
            VERSION,
            INGESTED,
        ],
    },
    TableDoc {
        path: "gold/daily_sales",
        grain: "one day and order currency",
        columns: &[
            c("date", "date (UTC)", "Order day (refunds: refund day)."),
            c("currency", "ISO 4217", "Order currency."),
            c("orders", "count", "Orders placed, any status."),
            c("paid_orders", "count", "Paid orders (silver/orders.is_paid)."),
            c("customers", "count", "Distinct paying customers that day."),
            c("refund_count", "count", "Refunds made that day."),
            c("gross", "order currency", "Revenue: totals of paid orders, incl. tax and shipping."),
            c("refunds", "order currency", "Refunded that day."),
            c("net", "order currency", "gross − refunds."),
            c("gross_mad", "MAD", "gross in MAD: the revenue figure of the dashboard and report."),
            c("refunds_mad", "MAD", "refunds in MAD."),
            c("net_mad", "MAD", "gross_mad − refunds_mad."),
            c("avg_order_value_mad", "MAD", "gross_mad / paid_orders."),
            c("refund_rate", "ratio", "refunds / gross (0.05 = 5%)."),
        ],
    },
    TableDoc {
        path: "gold/daily_order_mix",
        grain: "one day, order currency and payment method",
        columns: &[
            c("date", "date (UTC)", "Order day."),
            c("currency", "ISO 4217", "Order currency."),
            c("payment_method", "text", "Payment gateway id; (none) when the order has none."),
            c("orders", "count", "Orders placed, any status."),
            c("paid_orders", "count", "Paid orders."),
            c("failed_orders", "count", "Orders whose payment failed (status failed)."),
            c("gross_mad", "MAD", "Revenue of the paid orders (as daily_sales.gross_mad)."),
            c("discount_mad", "MAD", "Discounts given on the paid orders, excl. tax."),
            c("discounted_orders", "count", "Paid orders with a discount."),
        ],
    },
    TableDoc {
        path: "gold/daily_geo_sales",
        grain: "one day, billing country and city (paid orders)",
        columns: &[
            c("date", "date (UTC)", "Order day."),
            c("country", "ISO 3166-1 alpha-2", "Billing country; (unknown) when the order has none."),
            c("city", "text", "Billing city; (unknown) when the order has none."),
            c("paid_orders", "count", "Paid orders."),
            c("customers", "count", "Distinct paying customers that day (tokens)."),
            c("gross_mad", "MAD", "Revenue of those orders (as daily_sales.gross_mad)."),
        ],
    },
    TableDoc {
        path: "gold/daily_product_sales",
        grain: "one day, product and order currency (paid orders)",
        columns: &[
            c("date", "date (UTC)", "Order day (partition)."),
            c("product_id", "id", "The product."),
            c("currency", "ISO 4217", "Order currency."),
            c("product_name", "text", "Product name."),
            c("category_id", "id", "Its category."),
            c("category_name", "text", "Its category's name."),
            c("units", "count", "Units sold."),
            c("orders", "count", "Orders with the product."),
            c("revenue", "order currency", "Line revenue: line totals after discounts, excl. tax and shipping."),
            c("revenue_mad", "MAD", "revenue in MAD."),
        ],
    },
    TableDoc {
        path: "gold/daily_product_returns",
        grain: "one refund day, product and order currency",
        columns: &[
            c("date", "date (UTC)", "Refund day (partition)."),
            c("product_id", "id", "The product returned."),
            c("currency", "ISO 4217", "Order currency."),
            c("product_name", "text", "Product name."),
            c("category_id", "id", "Its category."),
            c("category_name", "text", "Its category's name."),
            c("units_returned", "count", "Units returned."),
            c("refunds", "count", "Refunds with the product."),
            c("refunded", "order currency", "Refund items' amounts, excl. tax (comparable with daily_product_sales.revenue)."),
            c("refunded_mad", "MAD", "refunded in MAD."),
        ],
    },
    TableDoc {
        path: "gold/revenue_growth",
        grain: "one day, all currencies",
        columns: &[
            c("date", "date (UTC)", "The day."),
            c("revenue_mad", "MAD", "Gross revenue (sum of daily_sales.gross_mad)."),
            c("net_revenue_mad", "MAD", "Net revenue."),
            c("paid_orders", "count", "Paid orders."),
            c("avg_order_value_mad", "MAD", "revenue_mad / paid_orders."),
            c("revenue_mad_prev_day", "MAD", "The day before's revenue."),
            c("revenue_mad_prev_week", "MAD", "Same weekday a week before."),
            c("growth_dod", "ratio", "Against the day before (0.1 = +10%)."),
            c("growth_wow", "ratio", "Against the same weekday a week before."),
        ],
    },
    TableDoc {
        path: "gold/monthly_revenue",
        grain: "one month, all currencies",
        columns: &[
            c("month", "date", "First day of the month."),
            c("revenue_mad", "MAD", "Gross revenue."),
            c("net_revenue_mad", "MAD", "Net revenue."),
            c("paid_orders", "count", "Paid orders."),
            c("revenue_mad_prev_month", "MAD", "The month before's revenue."),
            c("growth_mom", "ratio", "Against the month before."),
        ],
    },
    TableDoc {
        path: "gold/customer_firsts",
        grain: "one customer (token) with a paid order",
        columns: &[c("customer_token", "token", "The customer."), c("first_date", "date (UTC)", "Day of their first paid order."), c("first_month", "date", "Its month (partition): their cohort.")],
    },
    TableDoc {
        path: "gold/customer_activity",
        grain: "one day",
        columns: &[
            c("date", "date (UTC)", "The day."),
            c("customers", "count", "Distinct paying customers."),
            c("new_customers", "count", "Of them, on their first paid order."),
            c("returning_customers", "count", "The others."),
        ],
    },
    TableDoc {
        path: "gold/customer_cohorts",
        grain: "one cohort (month of first paid order) and one later month",
        columns: &[
            c("cohort_month", "date", "The cohort: month of the first paid order."),
            c("activity_month", "date", "A month the cohort bought in."),
            c("customers", "count", "Cohort members who bought that month."),
            c("orders", "count", "Their paid orders."),
            c("revenue_mad", "MAD", "Their gross revenue."),
        ],
    },
    TableDoc {
        path: "gold/top_products",
        grain: "one month and one of its 20 best products",
        columns: &[
            c("month", "date", "First day of the month."),
            c("product_id", "id", "The product."),
            c("product_name", "text", "Its name."),
            c("category_name", "text", "Its category."),
            c("units", "count", "Units sold in the month."),
            c("revenue_mad", "MAD", "Line revenue in the month."),
            c("rank", "rank", "1 = most revenue."),
        ],
    },
    TableDoc {
        path: "gold/stock_cover",
        grain: "one product",
        columns: &[
            c("product_id", "id", "The product."),
            c("product_name", "text", "Its name."),
            c("category_name", "text", "Its category."),
            c("stock_quantity", "count", "Units in stock now."),
            c("units_28d", "count", "Units sold in the 28 days up to the latest sales day."),
            c("daily_units", "units per day", "units_28d / 28."),
            c("cover_days", "days", "stock_quantity / daily_units: days the stock lasts at that pace (null without sales)."),
        ],
    },
    TableDoc {
        path: "gold/competitor_price_index",
        grain: "one day and product a competitor prices",
        columns: &[
            c("date", "date", "The day of the competitor prices."),
            c("product_id", "id", "Our product."),
            c("sku", "text", "Its SKU."),
            c("product_name", "text", "Its name."),
            c("our_price", "MAD", "Our price as it was that day (silver/product_prices: the last version by the end of the day)."),
            c("cheapest_competitor_price", "MAD", "The cheapest competitor's price that day."),
            c("competitors", "count", "Competitor prices seen that day."),
            c("price_index", "index", "our_price / cheapest × 100: above 100 a competitor is cheaper."),
        ],
    },
    TableDoc {
        path: "gold/forecast_daily",
        grain: "run date, series and forecast day",
        columns: &[
            c("run_date", "date", "The day the forecast ran (partition); earlier runs are kept."),
            c("as_of", "date", "The last day of history the forecast starts after."),
            c("family", "text", "The series family: revenue_mad/total, units/total, revenue_mad/category, units/category, units/product."),
            c("series", "text", "The series: the family, then the category name or product id (e.g. `units/product/17`)."),
            c("date", "date", "The day forecast."),
            c("horizon", "days", "Days after as_of (1 = the next day)."),
            c(
                "model",
                "text",
                "The model the backtest chose for this series (shop and categories: seasonal_naive, holt_winters, holt_winters_log, mstl_ets; products: seasonal_naive, share_of_shop, mean_28d).",
            ),
            c("point", "series unit", "Point forecast (MAD for revenue series, units for unit series)."),
            c("lo80", "series unit", "Lower bound of the 80% prediction interval."),
            c("hi80", "series unit", "Upper bound of the 80% prediction interval."),
            c("lo95", "series unit", "Lower bound of the 95% prediction interval."),
            c("hi95", "series unit", "Upper bound of the 95% prediction interval."),
        ],
    },
    TableDoc {
        path: "gold/forecast_accuracy",
        grain: "run date, series and candidate model",
        columns: &[
            c("run_date", "date", "The day the forecast ran (partition)."),
            c("as_of", "date", "The last day of history."),
            c("family", "text", "The series family."),
            c("series", "text", "The series."),
            c("model", "text", "The candidate model scored."),
            c("chosen", "boolean", "Whether this model made the series' forecast: the lowest MASE (shop and categories) or the lowest cumulative_error (products)."),
            c("origins", "count", "Backtest cuts, a week apart, each forecasting the horizon after it."),
            c("points", "count", "Forecast days scored over all cuts."),
            c("mase", "ratio", "Mean absolute error over the in-sample error of same-weekday-last-week (below 1: better than that baseline)."),
            c("smape", "percent", "Symmetric mean absolute percentage error."),
            c("mae", "series unit", "Mean absolute error."),
            c("coverage80", "ratio", "Share of held-out days inside the 80% interval (each cut's interval built from the other cuts' errors)."),
            c("coverage95", "ratio", "Share of held-out days inside the 95% interval."),
            c("cumulative_error", "ratio", "Mean absolute error of the running total from day 1 to each day, over the mean daily actual: what a stock-out date depends on."),
        ],
    },
    TableDoc {
        path: "gold/forecast_stockouts",
        grain: "run date and product with managed stock that sold in the last 91 days",
        columns: &[
            c("run_date", "date", "The day the forecast ran (partition)."),
            c("as_of", "date", "The last day of history."),
            c("product_id", "id", "The product."),
            c("product_name", "text", "Its name."),
            c("category_name", "text", "Its category."),
            c("stock_quantity", "count", "Units in stock at the run (silver/products)."),
            c("model", "text", "The model of its units forecast."),
            c("forecast_units", "count", "Units forecast over the horizon."),
            c("daily_units", "count", "forecast_units per day."),
            c("days_to_stockout", "days", "Days after as_of until the stock runs out at the forecast pace (0: out of stock now; null: lasts beyond the horizon)."),
            c("stockout_date", "date", "as_of + days_to_stockout: the last day the stock lasts; reorder before it."),
        ],
    },
];

/// The table at `path`.
pub fn table(path: &str) -> Option<&'static TableDoc> {
    TABLES.iter().find(|t| t.path == path)
}

/// `docs/data-dictionary.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Data dictionary\n\n<!-- Generated by `alkasba batch dictionary` from shared/batch/src/dictionary.rs and the mart catalogue; do not edit. -->\n\n\
         The silver and gold tables BI users query (Athena and Trino: `alkasba_lake.<layer>_<table>`; see `docs/athena-trino.md`).\n\n\
         **Revenue** is one definition throughout: the totals of paid orders (status processing, completed or refunded), incl. tax and shipping, \
         converted to MAD at the order day's rate (`gold/daily_sales.gross_mad` and every mart built on it). Per product and category, where tax \
         and shipping cannot be split, it is **line revenue**: line totals after discounts, excl. tax (`gold/daily_product_sales.revenue_mad`). \
         Net revenue is revenue minus refunds, counted on the refund's day.\n\n\
         No column holds personal data in clear: people are tokens (keyed HMACs), and `*_sealed` columns are encrypted per person.\n",
    );
    for t in TABLES {
        out.push_str(&format!("\n## {}\n\nOne row per {}.", t.path, t.grain));
        let gold_name = t.path.strip_prefix("gold/");
        let about = gold_name.and_then(|m| gold::MARTS.iter().find(|x| x.name == m).map(|m| m.about).or_else(|| forecast::TABLES.iter().find(|x| x.0 == m).map(|x| x.1)));
        if let Some(a) = about {
            out.push_str(&format!(" {a}"));
        }
        let partition = t.path.strip_prefix("silver/").and_then(|s| silver::SILVER.iter().find(|x| x.name == s)).and_then(|s| s.partition);
        let partition = partition.or_else(|| gold_name.and_then(|m| gold::MARTS.iter().find(|x| x.name == m)).and_then(|m| m.partition));
        let partition = partition.or_else(|| gold_name.and_then(|m| forecast::TABLES.iter().find(|x| x.0 == m)).map(|_| forecast::PARTITION));
        if let Some(p) = partition {
            out.push_str(&format!(" Partitioned by `{p}`."));
        }
        out.push_str("\n\n| column | unit | meaning |\n| --- | --- | --- |\n");
        for col in t.columns {
            out.push_str(&format!("| `{}` | {} | {} |\n", col.name, col.unit, col.meaning));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_silver_table_and_mart_is_described() {
        for s in silver::SILVER {
            assert!(table(&format!("silver/{}", s.name)).is_some(), "silver/{} has no dictionary entry", s.name);
        }
        for m in gold::MARTS {
            assert!(table(&format!("gold/{}", m.name)).is_some(), "gold/{} has no dictionary entry", m.name);
        }
        for (name, _) in forecast::TABLES {
            assert!(table(&format!("gold/{name}")).is_some(), "gold/{name} has no dictionary entry");
        }
        assert_eq!(TABLES.len(), silver::SILVER.len() + gold::MARTS.len() + forecast::TABLES.len());
    }

    #[test]
    fn the_committed_dictionary_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/data-dictionary.md");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == markdown(), "{} is stale: regenerate it with `alkasba batch dictionary > docs/data-dictionary.md`", path.display());
    }
}
