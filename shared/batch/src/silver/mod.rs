//! Bronze → silver, incrementally: each silver table reads only the bronze versions committed
//! since the last version it absorbed (a marker committed with its own MERGE), cleans them in
//! SQL (trimmed text, UTC timestamps, enums, decimals), keeps the latest version per primary key,
//! enriches them (product and category dimensions, amounts in the reporting currency at the rate
//! of their date) and MERGEs them in. Customers appear only by their token; their personal
//! fields stay sealed.
//!
//! ```text
//! s3://<lake>/silver/<table>/    one Delta table per entity, change data feed enabled
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use alkasba_lake::Lake;
use alkasba_lake::arrow::array::{Array, ArrayRef, AsArray, Date32Builder, Decimal128Builder, Int64Builder, RecordBatch, StringArray, StringBuilder, UInt32Builder};
use alkasba_lake::arrow::compute::{cast, take};
use alkasba_lake::arrow::datatypes::{DataType, Date32Type, Decimal128Type, Field, Int64Type, Schema, SchemaRef};
use chrono::{Datelike, NaiveDate};
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::Value;
use url::Url;

mod backfill;
mod catalogue;
pub use backfill::Backfill;
pub use catalogue::SILVER;

use crate::tables::{self, CHANGE_TYPE, UpsertSpec, Upserted};
use crate::{Error, Result, lease};

/// The reporting currency every amount is also converted to.
pub const REPORTING_CURRENCY: &str = "MAD";

/// Rust steps SQL cannot do well (DataFusion has no JSON functions): run on the bronze increment
/// before the spec's SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepare {
    None,
    /// Adds `category_id`, `category_name` from the first element of the `categories` JSON.
    Categories,
    /// One row per element of the `line_items` JSON, with `line_id`, `product_id`, `line_sku`,
    /// `quantity`, `line_subtotal`, `line_total`, `line_tax`.
    ExplodeLines,
}

/// One silver table.
#[derive(Debug, Clone, Copy)]
pub struct SilverSpec {
    /// Table name (`silver/<name>`).
    pub name: &'static str,
    /// The bronze stream it reads.
    pub source: &'static str,
    pub stream: &'static str,
    /// Primary key (silver column names).
    pub keys: &'static [&'static str],
    /// Newest wins on this column.
    pub seq: &'static str,
    /// Partition column.
    pub partition: Option<&'static str>,
    pub prepare: Prepare,
    /// A date expression over `increment` (the bronze rows): the dates FX rates are needed for.
    pub fx_date: Option<&'static str>,
    /// Silver tables the SQL joins, registered under their names (built earlier in [`SILVER`]'s
    /// order; see [`register_silver`] for the columns given when one does not exist yet).
    pub joins: &'static [&'static str],
    /// Reads `increment` (and `fx`, the `joins`); one row per bronze row.
    pub sql: &'static str,
}

/// The spec named `name`.
pub fn spec(name: &str) -> Result<&'static SilverSpec> {
    SILVER.iter().find(|s| s.name == name).ok_or_else(|| Error::Config(format!("unknown silver table {name:?}; known: {}", SILVER.iter().map(|s| s.name).collect::<Vec<_>>().join(", "))))
}

/// The silver table `name`.
pub fn uri(lake: &Lake, name: &str) -> Result<Url> {
    Ok(lake.table(&alkasba_lake::layout::silver(name))?)
}

/// The marker a silver table keeps for the bronze table it reads.
pub fn marker_id(spec: &SilverSpec) -> String {
    format!("transform:bronze/{}/{}", spec.source, spec.stream)
}

/// What one transform step did to one silver table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    pub table: String,
    /// Bronze versions read (`from..=to`), none when already up to date.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Bronze rows read and silver rows merged (after keeping the latest per key).
    pub read: usize,
    pub merged: usize,
    /// The silver version committed, if any.
    pub version: Option<i64>,
    /// Bronze's version when the step started.
    pub bronze_version: Option<i64>,
    /// From nothing: which slice of bronze's snapshot this step read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    pub note: String,
}

/// Transform settings.
#[derive(Debug, Clone, Copy)]
pub struct TransformOptions {
    /// Bronze versions read per step: bounds memory and time (a Lambda resumes where the last
    /// step committed).
    pub max_versions: i64,
    /// Parquet bytes of bronze read per step: from nothing, a slice of bronze's snapshot (at
    /// least one file, see `backfill`); after that, the versions whose files fit (at least one).
    /// Bounds memory however large bronze is, or however much arrived since the last step.
    pub max_step_bytes: u64,
}

impl Default for TransformOptions {
    fn default() -> Self {
        Self { max_versions: 500, max_step_bytes: 64 << 20 }
    }
}

/// One step of one silver table: reads up to `max_versions` bronze versions after its marker
/// (from nothing, the next slice of bronze's snapshot), merges them, commits the new marker with
/// the data.
pub async fn step(lake: &Lake, spec: &SilverSpec, opts: TransformOptions) -> Result<Step> {
    let mut out = Step { table: spec.name.to_string(), from: None, to: None, read: 0, merged: 0, version: None, bronze_version: None, backfill: None, note: String::new() };
    let bronze_uri = lake.bronze(spec.source, spec.stream)?;
    let Some(bronze) = tables::open(lake, &bronze_uri).await? else {
        out.note = format!("no bronze table {bronze_uri} yet");
        return Ok(out);
    };
    let current = bronze.version().unwrap_or_default() as i64;
    out.bronze_version = Some(current);
    let silver_uri = uri(lake, spec.name)?;
    let silver = tables::open(lake, &silver_uri).await?;
    let app = marker_id(spec);
    let from = tables::marker(lake, silver.as_ref(), &app).await?;
    if from > current {
        out.note = format!("up to date with bronze version {current}");
        return Ok(out);
    }
    // From nothing, a slice of the snapshot's files; after that, chunks of versions.
    let ((schema, batches), markers) = if from == 0 {
        let slice = backfill::next_slice(lake, &bronze, silver.as_ref(), &app, opts.max_step_bytes).await?;
        out.from = Some(0);
        out.to = Some(slice.progress.snapshot);
        let markers = slice.markers(&app);
        // An empty snapshot has no file to select: its (empty) rows carry the schema.
        let rows = if slice.paths.is_empty() { inserts(tables::changes(&slice.table, 0, slice.progress.snapshot).await?)? } else { tables::read_files(&slice.table, &slice.paths).await? };
        out.backfill = Some(slice.progress);
        (rows, markers)
    } else {
        let to = tables::versions_within(&bronze, from, current.min(from + opts.max_versions.max(1) - 1), opts.max_step_bytes).await?;
        out.from = Some(from);
        out.to = Some(to);
        (inserts(tables::changes(&bronze, from, to).await?)?, vec![(app.clone(), to + 1)])
    };
    let ctx = tables::session();
    out.read = batches.iter().map(RecordBatch::num_rows).sum();
    let (schema, batches) = match spec.prepare {
        Prepare::None => (schema, batches),
        Prepare::Categories => categories(schema, batches)?,
        Prepare::ExplodeLines => explode_lines(spec.stream, schema, batches)?,
    };
    tables::register_batches(&ctx, "increment", schema, batches)?;
    if let Some(date) = spec.fx_date {
        register_fx(lake, &ctx, date).await?;
    }
    for name in spec.joins {
        register_silver(lake, &ctx, name).await?;
    }
    let (schema, rows) = latest(&ctx, spec).await?;
    out.merged = rows.iter().map(RecordBatch::num_rows).sum();
    let upsert = UpsertSpec { keys: spec.keys, seq: spec.seq, partition: spec.partition };
    match tables::upsert(lake, &silver_uri, schema, rows, upsert, &markers).await? {
        Upserted::Committed { version, .. } => {
            out.version = Some(version);
            out.note = match (&out.backfill, out.to) {
                (Some(b), _) => format!("backfill of bronze version {}: files {}..{} of {} ({:.1} MB)", b.snapshot, b.files_from, b.files_to, b.files, b.bytes as f64 / 1e6),
                (None, Some(to)) => format!("bronze {from}..={to} of {current}"),
                (None, None) => String::new(),
            };
        }
        Upserted::AlreadyDone => out.note = "a concurrent run already merged these versions".into(),
    }
    Ok(out)
}

/// Steps every silver table (or only `only`) until each is up to date with bronze, or until
/// `keep_going` says stop (a Lambda near its deadline). Logs one line per step.
pub async fn transform(lake: &Lake, only: Option<&[String]>, opts: TransformOptions, keep_going: impl Fn() -> bool) -> Result<Vec<Step>> {
    // Shared with the aggregate, exclusive of an erasure (see `lease`): a step read before an
    // erasure and merged after it would put the erased tokens back.
    let steps = lease::fenced(lake, &lease::owner("transform"), lease::Mode::Shared, transform_steps(lake, only, opts, keep_going)).await?;
    // For the operations dashboard (EMF in Lambda; nothing where no recorder is installed).
    metrics::counter!("SilverRowsMerged").increment(steps.iter().map(|s| s.merged as u64).sum());
    metrics::counter!("SilverCommits").increment(steps.iter().filter(|s| s.version.is_some()).count() as u64);
    Ok(steps)
}

async fn transform_steps(lake: &Lake, only: Option<&[String]>, opts: TransformOptions, keep_going: impl Fn() -> bool) -> Result<Vec<Step>> {
    if let Some(only) = only {
        for name in only {
            spec(name)?;
        }
    }
    let mut steps = Vec::new();
    for spec in SILVER {
        if only.is_some_and(|o| !o.iter().any(|n| n == spec.name)) {
            continue;
        }
        loop {
            if !keep_going() {
                tracing::warn!(table = spec.name, "stopping before the deadline; the next run resumes here");
                return Ok(steps);
            }
            let span = tracing::info_span!("transform", table = spec.name);
            let s = tracing::Instrument::instrument(step(lake, spec, opts), span).await?;
            tracing::info!(table = %s.table, from = ?s.from, to = ?s.to, read = s.read, merged = s.merged, version = ?s.version, note = %s.note, "silver step");
            // Another step when this one committed and bronze (or the snapshot read) has more.
            let again = s.version.is_some() && (s.to < s.bronze_version || s.backfill.as_ref().is_some_and(Backfill::more));
            steps.push(s);
            if !again {
                break;
            }
        }
    }
    Ok(steps)
}

/// Keeps the inserted rows of a change read, without the change column.
fn inserts((schema, batches): (SchemaRef, Vec<RecordBatch>)) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let idx = schema.index_of(CHANGE_TYPE).map_err(|e| Error::query("change read", e))?;
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|i| *i != idx).collect();
    let projected = Arc::new(schema.project(&keep).map_err(|e| Error::query("change read", e))?);
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let kinds = strings(b.column(idx))?;
        let mask: alkasba_lake::arrow::array::BooleanArray = kinds.iter().map(|k| Some(k == Some("insert"))).collect();
        let filtered = alkasba_lake::arrow::compute::filter_record_batch(&b, &mask).map_err(|e| Error::query("change read", e))?;
        out.push(filtered.project(&keep).map_err(|e| Error::query("change read", e))?);
    }
    Ok((projected, out))
}

/// The spec's SQL, then the latest row per key (largest `seq`, then latest ingestion).
async fn latest(ctx: &SessionContext, spec: &SilverSpec) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let keys = spec.keys.join(", ");
    let sql = format!(
        "SELECT * FROM (SELECT c.*, row_number() OVER (PARTITION BY {keys} ORDER BY c.{seq} DESC NULLS LAST, c._ingested_at DESC) AS _rn FROM ({sql}) c) WHERE _rn = 1",
        seq = spec.seq,
        sql = spec.sql
    );
    let (schema, batches) = tables::query(ctx, &format!("silver {}", spec.name), &sql).await?;
    let keep: Vec<usize> = schema.fields().iter().enumerate().filter(|(_, f)| f.name() != "_rn").map(|(i, _)| i).collect();
    let projected = Arc::new(schema.project(&keep).map_err(|e| Error::query(spec.name, e))?);
    let batches = batches.iter().map(|b| b.project(&keep)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::query(spec.name, e))?;
    Ok((projected, batches))
}

fn strings(a: &ArrayRef) -> Result<StringArray> {
    Ok(alkasba_lake::read::strings(a)?)
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn column<'a>(schema: &SchemaRef, batch: &'a RecordBatch, name: &str, what: &str) -> Result<&'a ArrayRef> {
    let i = schema.index_of(name).map_err(|_| Error::Data { what: what.into(), reason: format!("bronze has no column {name:?}") })?;
    Ok(batch.column(i))
}

/// Products: the first category of the `categories` JSON as two columns.
fn categories(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("category_id", DataType::Int64, true));
    fields.push(Field::new("category_name", DataType::Utf8, true));
    let out_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let cats = strings(column(&schema, &b, "categories", "silver products")?)?;
        let mut ids = Int64Builder::with_capacity(b.num_rows());
        let mut names = StringBuilder::new();
        for v in cats.iter() {
            let first = v.and_then(|s| serde_json::from_str::<Value>(s).ok()).and_then(|j| j.get(0).cloned());
            ids.append_option(first.as_ref().and_then(|c| c.get("id")).and_then(Value::as_i64));
            names.append_option(first.as_ref().and_then(|c| c.get("name")).and_then(Value::as_str));
        }
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(ids.finish()));
        cols.push(Arc::new(names.finish()));
        out.push(RecordBatch::try_new(out_schema.clone(), cols).map_err(|e| Error::query("silver products", e))?);
    }
    Ok((out_schema, out))
}

/// A money string (`"12.34"`, or a JSON number) as a decimal with scale 2.
fn cents(v: Option<&Value>) -> Option<i128> {
    let s = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (neg, s) = s.strip_prefix('-').map(|r| (true, r)).unwrap_or((false, s.as_str()));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut frac: String = frac.chars().take(3).collect();
    while frac.len() < 3 {
        frac.push('0');
    }
    let milli: i128 = format!("{}{frac}", if int.is_empty() { "0" } else { int }).parse().ok()?;
    // Round half away from zero to two places.
    let c = (milli + 5) / 10;
    Some(if neg { -c } else { c })
}

/// Orders: one row per line item, the order's columns repeated.
/// `stream` names the bronze stream in errors (`orders`, `refunds`).
fn explode_lines(stream: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let line_col = schema.index_of("line_items").map_err(|_| Error::Data { what: format!("silver lines of {stream}"), reason: "the bronze stream has no line_items column".into() })?;
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|i| *i != line_col).collect();
    let mut fields: Vec<Field> = keep.iter().map(|i| schema.field(*i).clone()).collect();
    let money = DataType::Decimal128(18, 2);
    for (name, ty) in [
        ("line_id", DataType::Int64),
        ("product_id", DataType::Int64),
        ("line_sku", DataType::Utf8),
        ("quantity", DataType::Int64),
        ("line_subtotal", money.clone()),
        ("line_total", money.clone()),
        ("line_tax", money.clone()),
    ] {
        fields.push(Field::new(name, ty, true));
    }
    let out_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let items = strings(b.column(line_col))?;
        let ids = b.column(schema.index_of("id").map_err(|_| Error::Data { what: format!("silver lines of {stream}"), reason: "the bronze stream has no id column".into() })?).clone();
        let ids = cast(&ids, &DataType::Int64).map_err(|e| Error::query("order ids", e))?;
        let ids = ids.as_primitive::<Int64Type>();
        let mut idx = UInt32Builder::new();
        let (mut line_id, mut product, mut sku, mut qty) = (Int64Builder::new(), Int64Builder::new(), StringBuilder::new(), Int64Builder::new());
        let new_money = || Decimal128Builder::new().with_precision_and_scale(18, 2);
        let (mut sub, mut total, mut tax) =
            (new_money().map_err(|e| Error::query("decimal", e))?, new_money().map_err(|e| Error::query("decimal", e))?, new_money().map_err(|e| Error::query("decimal", e))?);
        for row in 0..b.num_rows() {
            let order = ids.value(row);
            let Some(text) = opt(&items, row) else {
                continue;
            };
            let lines: Vec<Value> = serde_json::from_str(text).map_err(|e| Error::Data { what: format!("{stream} record {order}"), reason: format!("line_items is not a JSON array: {e}") })?;
            for (n, line) in lines.iter().enumerate() {
                idx.append_value(row as u32);
                line_id.append_option(line.get("id").and_then(Value::as_i64).or(Some(n as i64 + 1)));
                product.append_option(line.get("product_id").and_then(Value::as_i64));
                sku.append_option(line.get("sku").and_then(Value::as_str));
                qty.append_option(line.get("quantity").and_then(Value::as_i64));
                sub.append_option(cents(line.get("subtotal")));
                total.append_option(cents(line.get("total")));
                tax.append_option(cents(line.get("total_tax")));
            }
        }
        let idx = idx.finish();
        let mut cols: Vec<ArrayRef> = keep.iter().map(|i| take(b.column(*i).as_ref(), &idx, None)).collect::<std::result::Result<_, _>>().map_err(|e| Error::query("order lines", e))?;
        cols.push(Arc::new(line_id.finish()));
        cols.push(Arc::new(product.finish()));
        cols.push(Arc::new(sku.finish()));
        cols.push(Arc::new(qty.finish()));
        cols.push(Arc::new(sub.finish()));
        cols.push(Arc::new(total.finish()));
        cols.push(Arc::new(tax.finish()));
        out.push(RecordBatch::try_new(out_schema.clone(), cols).map_err(|e| Error::query("order lines", e))?);
    }
    Ok((out_schema, out))
}

/// Registers the current silver table `name` under its name; when it does not exist yet, an
/// empty table with the columns the catalogue's joins read from it.
async fn register_silver(lake: &Lake, ctx: &SessionContext, name: &str) -> Result<()> {
    if let Some(t) = tables::open(lake, &uri(lake, name)?).await? {
        return tables::register(ctx, name, &t).await;
    }
    let columns: &[(&str, DataType)] = match name {
        "products" => &[("product_id", DataType::Int64), ("name", DataType::Utf8), ("category_id", DataType::Int64), ("category_name", DataType::Utf8)],
        "orders" => &[("order_id", DataType::Int64), ("currency", DataType::Utf8)],
        other => return Err(Error::Config(format!("silver table {other:?} is joined but has no empty shape in register_silver"))),
    };
    let schema = Arc::new(Schema::new(columns.iter().map(|(c, t)| Field::new(*c, t.clone(), true)).collect::<Vec<_>>()));
    tracing::warn!(table = name, "no silver {name} yet: rows joining it get nulls until the next run");
    tables::register_batches(ctx, name, schema, Vec::new())
}

/// Registers `fx`: for every date the increment needs (by `date_expr`) and every currency, the
/// rate of that date, else the latest earlier one, else the earliest later one (`fx_rate_date`
/// says which date's rate was used); the reporting currency is 1.
async fn register_fx(lake: &Lake, ctx: &SessionContext, date_expr: &str) -> Result<()> {
    let (_, range) = tables::query(ctx, "increment dates", &format!("SELECT CAST(min({date_expr}) AS DATE) AS lo, CAST(max({date_expr}) AS DATE) AS hi FROM increment")).await?;
    let dates = |b: &RecordBatch, i: usize| -> Option<NaiveDate> {
        let a = b.column(i).as_primitive_opt::<Date32Type>()?;
        (!a.is_null(0)).then(|| a.value_as_date(0)).flatten()
    };
    let (Some(lo), Some(hi)) = (range.first().and_then(|b| dates(b, 0)), range.first().and_then(|b| dates(b, 1))) else {
        return tables::register_batches(ctx, "fx", fx_schema(), Vec::new());
    };
    let mut rates: BTreeMap<String, BTreeMap<NaiveDate, i128>> = BTreeMap::new();
    if let Some(t) = tables::open(lake, &uri(lake, "fx_rates")?).await? {
        // Only the three columns, whatever else the table holds.
        let batches = lake.scan_table(&t, None, &["rate_date", "currency", "mad_per_unit"]).await?;
        let shape = || Error::Data { what: "silver fx_rates".into(), reason: "rate_date must be a date and mad_per_unit a decimal".into() };
        for b in &batches {
            let (ds, cs, rs) = (b.column(0).as_primitive_opt::<Date32Type>().ok_or_else(shape)?, strings(b.column(1))?, b.column(2).as_primitive_opt::<Decimal128Type>().ok_or_else(shape)?);
            for i in 0..b.num_rows() {
                if let (Some(day), Some(cur), false) = (ds.value_as_date(i), opt(&cs, i), rs.is_null(i)) {
                    rates.entry(cur.to_string()).or_default().insert(day, rs.value(i));
                }
            }
        }
    }
    let (mut day_b, mut cur_b, mut rate_b, mut used_b) = (Date32Builder::new(), StringBuilder::new(), Decimal128Builder::new(), Date32Builder::new());
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let days = |d: NaiveDate| (d - epoch).num_days() as i32;
    let mut missing = HashSet::new();
    let mut day = lo;
    while day <= hi {
        day_b.append_value(days(day));
        cur_b.append_value(REPORTING_CURRENCY);
        rate_b.append_value(1_000_000);
        used_b.append_value(days(day));
        for (cur, by_day) in &rates {
            if cur == REPORTING_CURRENCY {
                continue;
            }
            let found = by_day.range(..=day).next_back().or_else(|| by_day.range(day..).next());
            if let Some((used, rate)) = found {
                day_b.append_value(days(day));
                cur_b.append_value(cur);
                rate_b.append_value(*rate);
                used_b.append_value(days(*used));
                if *used != day {
                    missing.insert(day);
                }
            }
        }
        day = day.succ_opt().unwrap_or(hi + chrono::Days::new(1));
    }
    if !missing.is_empty() {
        let first = missing.iter().min().map(|d| d.to_string()).unwrap_or_default();
        tracing::warn!(days = missing.len(), first = %first, year = lo.year(), "no exchange rate for some dates: the nearest earlier (else later) rate is used; fx_rate_date records it");
    }
    let rate = rate_b.with_precision_and_scale(18, 6).map_err(|e| Error::query("fx", e))?.finish();
    let batch = RecordBatch::try_new(fx_schema(), vec![Arc::new(day_b.finish()), Arc::new(cur_b.finish()), Arc::new(rate), Arc::new(used_b.finish())]).map_err(|e| Error::query("fx", e))?;
    tables::register_batches(ctx, "fx", fx_schema(), vec![batch])
}

fn fx_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("rate_date", DataType::Date32, false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("mad_per_unit", DataType::Decimal128(18, 6), false),
        Field::new("fx_rate_date", DataType::Date32, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_parses_to_cents_with_rounding() {
        assert_eq!(cents(Some(&json!("12.34"))), Some(1234));
        assert_eq!(cents(Some(&json!("12.345"))), Some(1235));
        assert_eq!(cents(Some(&json!("-3.5"))), Some(-350));
        assert_eq!(cents(Some(&json!("7"))), Some(700));
        assert_eq!(cents(Some(&json!(2.5))), Some(250));
        assert_eq!(cents(Some(&json!("abc"))), None);
        assert_eq!(cents(Some(&json!(""))), None);
        assert_eq!(cents(None), None);
    }

    #[test]
    fn explode_repeats_the_order_and_reads_each_line() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("status", DataType::Utf8, true), Field::new("line_items", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(alkasba_lake::arrow::array::Int64Array::from(vec![1, 2])),
                Arc::new(alkasba_lake::arrow::array::StringArray::from(vec!["paid", "new"])),
                Arc::new(alkasba_lake::arrow::array::StringArray::from(vec![
                    json!([{"id": 10, "product_id": 5, "quantity": 2, "total": "20.00", "subtotal": "20.00", "total_tax": "4.00", "sku": "ALK-00005"}, {"id": 11, "product_id": 6, "quantity": 1, "total": "9.99"}]).to_string(),
                    json!([{"id": 20, "product_id": 5, "quantity": 3, "total": "30.00"}]).to_string(),
                ])),
            ],
        )
        .unwrap();
        let (s, out) = explode_lines("orders", schema, vec![b]).unwrap();
        let b = &out[0];
        assert_eq!(b.num_rows(), 3);
        let get = |n: &str| b.column(s.index_of(n).unwrap()).clone();
        assert_eq!(get("id").as_primitive::<Int64Type>().values().to_vec(), vec![1, 1, 2]);
        assert_eq!(get("line_id").as_primitive::<Int64Type>().values().to_vec(), vec![10, 11, 20]);
        assert_eq!(get("line_total").as_primitive::<Decimal128Type>().values().to_vec(), vec![2000, 999, 3000]);
        assert!(get("line_tax").is_null(1));
        assert_eq!(get("status").as_string::<i32>().value(2), "new");
    }

    #[test]
    fn a_malformed_line_items_value_names_the_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("line_items", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(alkasba_lake::arrow::array::Int64Array::from(vec![42])), Arc::new(alkasba_lake::arrow::array::StringArray::from(vec!["{oops"]))])
            .unwrap();
        let err = explode_lines("orders", schema, vec![b]).unwrap_err().to_string();
        assert!(err.contains("orders record 42") && err.contains("line_items"), "{err}");
    }

    #[test]
    fn unknown_silver_table_lists_the_known_ones() {
        let err = spec("nope").unwrap_err().to_string();
        assert!(err.contains("orders") && err.contains("nope"), "{err}");
    }
}
