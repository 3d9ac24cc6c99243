//! Where a person's data sits in the lake, for erasure: which columns name them and which hold
//! their tokens. The engine ([`super`]) walks the registry with these rules; a table added to
//! the registry with a `*_token` column is covered without a change here.

/// Bronze streams that name a person by the shop's customer id: `(stream, column)`. A request
/// by customer id finds their rows through these (WooCommerce's `customers.id` and
/// `orders.customer_id`).
pub const CUSTOMER_ID_COLUMNS: &[(&str, &str)] = &[("customers", "id"), ("orders", "customer_id")];

/// The column holding the email token in every table that has one: rows found through it
/// belong to the person (a guest order placed with their email).
pub const EMAIL_TOKEN: &str = "email_token";

/// Whether a column holds people's tokens: every `*_token` column (bronze `email_token`,
/// `phone_token`; silver `customer_token`; gold `customer_firsts.customer_token`) and the
/// columns below, which hold a token among other things.
pub fn holds_tokens(table: &str, column: &str) -> bool {
    column.ends_with("_token") || TOKENS_ELSEWHERE.iter().any(|(t, c)| *t == table && *c == column)
}

/// Columns that hold a token without the `_token` suffix: `(table path, column)`.
const TOKENS_ELSEWHERE: &[(&str, &str)] = &[
    // An alert's subject: a product id, `store`, or the customer token a rule watched.
    ("ops/alerts", "subject"),
];

/// What a token becomes: a random pseudonym with this prefix, one per token and erasure, the
/// same in every table, so counts of distinct customers (gold) do not move.
pub const PSEUDONYM_PREFIX: &str = "erased:";

/// The erasure deadline stated in docs/security.md: by then no copy of an erased person's keys
/// or tokens remains anywhere (superseded files vacuumed, Delta logs cleaned, dead-letter pages,
/// queue messages and old object versions expired).
pub const DEADLINE_DAYS: i64 = 30;
