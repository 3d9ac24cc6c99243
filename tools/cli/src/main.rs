//! `alkasba`: the operator's command line.
//!
//! ```text
//! alkasba ingest backfill --stack alkasba-lake [--streams alkasba_store.orders,...] [--workers 4] [--json]
//! alkasba ingest status --stack alkasba-lake [--wait 10m]
//! alkasba pii decrypt --stack alkasba-lake --table s3://.../bronze/alkasba_store/customers [--keys 1,2] [--limit 20]
//! alkasba pii open-error --stack alkasba-lake --object s3://.../errors/...sealed
//! alkasba pii erase --stack alkasba-lake (--email ana@example.ma | --customer-id 42) [--queue] [--json]
//! alkasba doctor --stack alkasba-lake [--webhook-url URL] [--json]
//! alkasba dlq list|show <id>|redrive --queue fetch|events|erasures --stack alkasba-lake [--json]
//! alkasba batch transform --stack alkasba-lake [--tables orders,order_lines]
//! alkasba batch aggregate --stack alkasba-lake [--marts daily_sales]
//! alkasba batch maintain --stack alkasba-lake [--tables silver/,gold/]
//! ```
//!
//! Settings come from flags, then the environment (the same variables as the functions, see
//! `alkasba_ingest::settings::OPTIONS`), then the outputs of `--stack`.

mod backfill;
mod batch;
mod dashboard;
mod dlq;
mod doctor;
mod forecast;
mod pii;
mod report;
mod stack;
mod status;

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::backfill::{backfill, parse_dates};
use crate::batch::{Batch, batch};
use crate::pii::{decrypt, erase, open_error};
use crate::status::status;

#[derive(Parser)]
#[command(name = "alkasba", version, about = "Alkasba Lake operations")]
struct Cli {
    /// The deployed stack whose outputs fill in unset settings.
    #[arg(long, global = true, env = "STACK_NAME")]
    stack: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingestion.
    #[command(subcommand)]
    Ingest(Ingest),
    /// Personal data (needs kms:Decrypt on the PII key).
    #[command(subcommand)]
    Pii(Pii),
    /// Checks the deployment (stack, lake, queues, every source's secret, reachability and
    /// credentials, clock skew, webhook registrations) and says what to fix.
    Doctor {
        /// Check the store's webhook registrations against this URL (default: the stack's
        /// WebhookUrl output).
        #[arg(long)]
        webhook_url: Option<String>,
        /// One JSON line per check.
        #[arg(long)]
        json: bool,
    },
    /// The dead-letter queues: list, show and redrive letters.
    #[command(subcommand)]
    Dlq(dlq::Dlq),
    /// The batch layer, run here through the same code as the transform and aggregate functions.
    #[command(subcommand)]
    Batch(Batch),
    /// The dashboard: publish its pages, grant and revoke access.
    #[command(subcommand)]
    Dashboard(dashboard::Dashboard),
    /// The monthly BI report: one self-contained HTML file and its PDF (headless Chromium), from
    /// the gold and ops tables, as the scheduled report function makes it.
    Report {
        /// `YYYY-MM` (default: last month).
        #[arg(long)]
        month: Option<String>,
        /// Directory to write the files to.
        #[arg(long, default_value = "reports")]
        out: std::path::PathBuf,
        /// Chromium to print the PDF with.
        #[arg(long, env = "CHROMIUM_PATH", default_value = "/usr/bin/chromium")]
        chromium: std::path::PathBuf,
        /// Only the HTML.
        #[arg(long)]
        no_pdf: bool,
        /// Also store both under reports/ in the lake.
        #[arg(long)]
        upload: bool,
        /// Print what was written as JSON (`{"month", "html", "pdf", "uploaded"}`).
        #[arg(long)]
        json: bool,
    },
    /// Forecasts of revenue and units (shop, categories, products) and stock-out dates, as the
    /// scheduled forecast function makes them: writes the gold forecast tables and prints the
    /// backtest accuracy of each shop and category series against the seasonal naive baseline.
    Forecast {
        /// Only these families (repeatable): revenue_mad/total, units/total,
        /// revenue_mad/category, units/category, units/product.
        #[arg(long = "series")]
        families: Vec<String>,
        /// `YYYY-MM-DD`: run as of this day (the history ends the day before; default today).
        #[arg(long)]
        run_date: Option<String>,
        /// Days forecast ahead (1-90).
        #[arg(long, default_value_t = 28, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=90))]
        horizon: usize,
        /// Backtest cuts, a week apart (1-26).
        #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=26))]
        origins: usize,
        /// Products forecast (the best sellers of the last 91 days; 0-100000).
        #[arg(long, default_value_t = 5000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=100_000))]
        max_products: usize,
        /// Print the JSON answer the function gives instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Ingest {
    /// A full (or catch-up) load through the planner and fetcher code, run here with a progress
    /// bar instead of through SQS. Dead letters still go to the dead-letter queue.
    Backfill {
        /// `source.stream` names (default: every stream).
        #[arg(long, value_delimiter = ',')]
        streams: Vec<String>,
        /// Tasks run at once.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Plan as of past days, one after the other (daily feeds: `2026-08-01..2026-10-31`
        /// loads the exchange rates of every day of that range). Default: now.
        #[arg(long, value_parser = parse_dates)]
        dates: Option<Vec<chrono::NaiveDate>>,
        /// Print a JSON summary (what was planned, records, pages, time) instead of the progress
        /// bar and its lines.
        #[arg(long)]
        json: bool,
    },
    /// Each stream's watermark and latest run: pages committed, records, dead pages, completed.
    Status {
        /// Wait (up to this long, e.g. 10m) until every stream's latest run has completed;
        /// fails at once if one of them has a page in the dead-letter queue.
        #[arg(long, value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Pii {
    /// Prints rows of a table as JSON lines with their sealed values decrypted.
    Decrypt {
        /// Table URI (s3://bucket/bronze/<source>/<stream>).
        #[arg(long)]
        table: String,
        /// Only rows with these `_key` values.
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Prints a sealed error object (a dead-lettered page's raw response).
    OpenError {
        /// s3://bucket/errors/... as given in the dead letter.
        #[arg(long)]
        object: String,
    },
    /// Erases one person: destroys their keys (none of their sealed values opens again, in any
    /// version), makes their tokens unlinkable, records it in ops/erasures (docs/security.md).
    Erase {
        /// The person's email.
        #[arg(long, conflicts_with = "customer_id", required_unless_present = "customer_id")]
        email: Option<String>,
        /// The person's WooCommerce customer id.
        #[arg(long)]
        customer_id: Option<i64>,
        /// Send the request to the stack's erasure queue (the erase function does it) instead of
        /// erasing from here; the email travels encrypted under the lake key.
        #[arg(long)]
        queue: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    alkasba_telemetry::init();
    let cli = Cli::parse();
    let sdk = aws_config::load_from_env().await;
    let stack = cli.stack.as_deref();
    match cli.command {
        Command::Ingest(Ingest::Backfill { streams, workers, dates, json }) => backfill(&sdk, stack, streams, workers, dates, json).await,
        Command::Ingest(Ingest::Status { wait, json }) => status(&sdk, stack, wait, json).await,
        Command::Pii(Pii::Decrypt { table, keys, limit }) => decrypt(&sdk, stack, &table, keys, limit).await,
        Command::Pii(Pii::OpenError { object }) => open_error(&sdk, stack, &object).await,
        Command::Pii(Pii::Erase { email, customer_id, queue, json }) => erase(&sdk, stack, email, customer_id, queue, json).await,
        Command::Batch(b) => batch(&sdk, stack, b).await,
        Command::Dlq(d) => dlq::dlq(&sdk, stack, d).await,
        Command::Doctor { webhook_url, json } => doctor::doctor(&sdk, stack, webhook_url, json).await,
        Command::Dashboard(d) => dashboard::dashboard(&sdk, stack, d).await,
        Command::Forecast { families, run_date, horizon, origins, max_products, json } => {
            let options = alkasba_batch::forecast::ForecastOptions { horizon, origins, max_products, ..Default::default() };
            forecast::run(&sdk, stack, forecast::ForecastArgs { families, run_date, options, json }).await
        }
        Command::Report { month, out, chromium, no_pdf, upload, json } => report::run(&sdk, stack, report::ReportArgs { month, out, chromium, no_pdf, upload, json }).await,
    }
}
