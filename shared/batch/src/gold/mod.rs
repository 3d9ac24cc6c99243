//! Silver → gold: the BI marts, in SQL on DataFusion. Every mart names its inputs; a gold table
//! keeps, per input, a marker with the next input version it has not absorbed, committed with
//! its data. A mart whose inputs did not move is skipped (running twice changes nothing).
//! Each mart says how it is brought up to date ([`Update`]): the dates (or months) touched by
//! the inputs' changes since their markers (the change data feed of silver) are recomputed and
//! replace exactly those rows; the customer marts fold the changes into their current rows
//! (`customer_firsts` keeps each customer's first paid order date, so nothing rescans every
//! order to find it); a mart over a partitioned gold mart recomputes what the partitions that
//! moved (read from that mart's Delta log) touch; the other small marts derived from gold are
//! rebuilt whole. Marts build at the same time, each once the marts it reads are done.
//!
//! ```text
//! s3://<lake>/gold/<mart>/
//! ```
//!
//! The catalogue of marts (their SQL, inputs and update modes) is [`marts`]; this module is the
//! engine that builds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use chrono::NaiveDate;

use alkasba_lake::Lake;
use alkasba_lake::arrow::array::{Array, AsArray, Date32Array, RecordBatch};
use alkasba_lake::arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;
use url::Url;

use crate::tables::{self, CHANGE_TYPE, Upserted};
use crate::{Error, Result, lease};

mod marts;
pub use marts::{MARTS, mart};

/// A mart's input: a silver or gold table, registered under its name.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    pub layer: &'static str,
    pub table: &'static str,
}

/// One gold mart.
#[derive(Debug, Clone, Copy)]
pub struct Mart {
    pub name: &'static str,
    pub inputs: &'static [Input],
    /// The partition column of its Delta table (set when the table is created).
    pub partition: Option<&'static str>,
    /// How a build after the first one brings the mart up to date.
    pub update: Update,
    /// The first (full) build's SQL. `{touched}` stands for the list of touched dates (every
    /// date of the inputs on a full build), `{touched_from}` for the earliest one: they are
    /// substituted as literals so partition pruning applies ([`Mart::portable_sql`] gives the
    /// SQL other engines run, with subqueries on a `touched` view instead).
    pub sql: &'static str,
    /// What it answers (docs and the Glue table comment).
    pub about: &'static str,
}

/// How a mart is brought up to date once it exists.
#[derive(Debug, Clone, Copy)]
pub enum Update {
    /// Rebuilt whole whenever an input moved (the small marts derived from gold).
    Rebuild,
    /// `touched`, SQL over `<input>_changes` (the changes since the mart's markers) and the
    /// inputs, gives the touched dates as column `d`; `sql` recomputes them and they replace the
    /// rows whose `column` is one of them.
    Dates { touched: &'static str, column: &'static str },
    /// Like `Dates`, but every row whose `column` is at or after the earliest touched date is
    /// replaced (`sql` recomputes from `{touched_from}`): for marts keyed by month where a change
    /// can move rows of later months.
    From { touched: &'static str, column: &'static str },
    /// `stages` run in order over the inputs, their changes and the mart's own current rows
    /// (`<name>_current`); each is materialised and registered under its name (DataFusion would
    /// otherwise compute a subquery again wherever it is referenced). A stage with a date column
    /// `d` also fills `{<stage>}` (its dates as a literal list) and `{<stage>_from}` (the
    /// earliest) in the stages after it, so that they prune partitions; the stage `touched`
    /// names the touched values. The last stage gives the whole new table, or with `replace`,
    /// the new rows for the touched values of that column (they replace those rows; a value the
    /// result holds beyond the touched ones is added to them and the stages after `touched` run
    /// again).
    Fold { stages: &'static [Stage], replace: Option<&'static str> },
}

/// One materialised step of an [`Update::Fold`].
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub name: &'static str,
    pub sql: &'static str,
}

const fn stage(name: &'static str, sql: &'static str) -> Stage {
    Stage { name, sql }
}

impl Mart {
    fn touched(&self) -> Option<&'static str> {
        match self.update {
            Update::Rebuild => None,
            Update::Dates { touched, .. } | Update::From { touched, .. } => Some(touched),
            Update::Fold { stages, .. } => stages.iter().find(|s| s.name == TOUCHED).map(|s| s.sql),
        }
    }

    /// The full build's SQL for another engine, self-contained: when it uses the touched dates,
    /// a `touched` CTE gives every one of them (the touched SQL over the whole inputs: a full
    /// build's changes are every row, a gold input's touched partitions all of its partitions),
    /// and `{touched}` / `{touched_from}` read it; `{<input>_latest_from}` becomes a `max()`
    /// subquery.
    pub fn portable_sql(&self) -> String {
        // The partition column of each partitioned gold input.
        let partitioned = || self.inputs.iter().filter(|i| i.layer == "gold").filter_map(|i| Some((i.table, MARTS.iter().find(|m| m.name == i.table)?.partition?)));
        let mut body = self.sql.replace("{touched_from}", "(SELECT min(d) FROM touched)").replace("{touched}", "(SELECT d FROM touched)");
        for (t, p) in partitioned() {
            body = body.replace(&format!("{{{t}_latest_from}}"), &format!("(SELECT max({p}) FROM {t})"));
        }
        let Some(touched) = self.touched().filter(|_| self.sql.contains("{touched")) else { return body };
        let mut touched = touched.to_string();
        for i in self.inputs {
            touched = touched.replace(&format!("{}_changes", i.table), i.table);
        }
        for (t, p) in partitioned() {
            touched = touched.replace(&format!("{t}_touched"), &format!("(SELECT DISTINCT {p} AS d FROM {t})"));
        }
        format!("WITH touched AS ({touched}) SELECT * FROM ({body}) m")
    }
}

fn date_lit(d: &NaiveDate) -> String {
    format!("CAST('{d}' AS DATE)")
}

/// `(d1, d2, ...)`; with no date, a list holding only a date no data has, so that `IN` matches
/// nothing and `NOT IN` everything (a NULL would make `NOT IN` match nothing).
fn date_list(dates: &[NaiveDate]) -> String {
    if dates.is_empty() {
        return format!("({})", date_lit(&NaiveDate::MIN));
    }
    format!("({})", dates.iter().map(date_lit).collect::<Vec<_>>().join(", "))
}

/// The stage (and placeholder) naming the touched dates.
const TOUCHED: &str = "touched";

/// `sql` with `{<name>_from}` and `{<name>}` replaced by date literals (the earliest date, the
/// list), for every named date list.
fn fill<'a>(sql: &str, lists: impl IntoIterator<Item = (&'a str, &'a [NaiveDate])>) -> String {
    let mut out = sql.to_string();
    for (name, dates) in lists {
        let from = dates.first().map(date_lit).unwrap_or_else(|| "CAST(NULL AS DATE)".into());
        out = out.replace(&format!("{{{name}_from}}"), &from).replace(&format!("{{{name}}}"), &date_list(dates));
    }
    out
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
    /// Dates (or months) recomputed.
    pub dates: usize,
    pub rows: usize,
    pub version: Option<i64>,
    /// Wall time of the step (open, query, write and commit), milliseconds.
    pub millis: u64,
    pub note: String,
}

/// An input opened for one build.
struct Opened {
    name: &'static str,
    layer: &'static str,
    app: String,
    table: DeltaTable,
    from: i64,
    current: i64,
}

/// A change read: schema and rows.
type Changes = (SchemaRef, Vec<RecordBatch>);

/// A table opened once per run (`None`: no table there).
type OpenCell = Arc<OnceCell<Option<DeltaTable>>>;
/// A change read made once per run, keyed by table and versions.
type ChangeCell = Arc<OnceCell<Changes>>;

/// Silver tables and change reads, opened once per aggregate run and shared by the marts that
/// read them, also by marts built at the same time (silver does not change during the run; gold
/// inputs do, and are opened afresh; a change read is of fixed versions, so it never goes
/// stale). Each is read once: a second mart asking meanwhile waits for the first read.
#[derive(Default)]
pub struct Opens {
    tables: Mutex<HashMap<String, OpenCell>>,
    changes: Mutex<HashMap<(String, i64, i64), ChangeCell>>,
}

/// The cell for `key` in `map` (a poisoned lock only means another build panicked mid-insert;
/// the map itself is still sound).
fn cell<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, Arc<OnceCell<V>>>>, key: K) -> Arc<OnceCell<V>> {
    let mut m = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    m.entry(key).or_default().clone()
}

impl Opens {
    async fn get(&self, lake: &Lake, input: &Input) -> Result<Option<DeltaTable>> {
        let url = uri(lake, input.layer, input.table)?;
        if input.layer != "silver" {
            return tables::open(lake, &url).await;
        }
        let c = cell(&self.tables, url.to_string());
        c.get_or_try_init(|| tables::open(lake, &url)).await.cloned()
    }

    /// The rows of `table` changed in versions `from..=to` (empty when `from > to`).
    async fn changes(&self, table: &DeltaTable, from: i64, to: i64) -> Result<Changes> {
        let c = cell(&self.changes, (table.table_url().to_string(), from, to));
        c.get_or_try_init(|| async { if from > to { empty_changes(table).await } else { tables::changes(table, from, to).await } }).await.cloned()
    }
}

/// Builds one mart if any of its inputs moved.
pub async fn build(lake: &Lake, mart: &Mart) -> Result<MartStep> {
    build_with(lake, mart, &Opens::default()).await
}

/// Builds one mart if any of its inputs moved, reusing the tables `opens` already holds.
pub async fn build_with(lake: &Lake, mart: &Mart, opens: &Opens) -> Result<MartStep> {
    let started = std::time::Instant::now();
    let mut step = build_inner(lake, mart, opens).await?;
    step.millis = started.elapsed().as_millis() as u64;
    Ok(step)
}

async fn build_inner(lake: &Lake, mart: &Mart, opens: &Opens) -> Result<MartStep> {
    let mut step = MartStep { mart: mart.name.into(), mode: "skipped".into(), dates: 0, rows: 0, version: None, millis: 0, note: String::new() };
    let started = std::time::Instant::now();
    let target_uri = uri(lake, "gold", mart.name)?;
    let target = tables::open(lake, &target_uri).await?;
    let ctx = tables::session();
    let mut inputs = Vec::new();
    for input in mart.inputs {
        let Some(table) = opens.get(lake, input).await? else {
            step.note = format!("waiting for {}/{}", input.layer, input.table);
            return Ok(step);
        };
        let app = format!("aggregate:{}/{}", input.layer, input.table);
        let from = tables::marker(lake, target.as_ref(), &app).await?;
        let current = table.version().unwrap_or_default() as i64;
        tables::register(&ctx, input.table, &table).await?;
        inputs.push(Opened { name: input.table, layer: input.layer, app, table, from, current });
    }
    // A marker beyond an input's next version: the input was deleted and built again (its
    // versions started over), so its changes since the marker cannot be read: build in full.
    let replaced_input = inputs.iter().find(|i| i.from > i.current + 1).map(|i| format!("{}/{} was built again (marker {}, version {})", i.layer, i.name, i.from, i.current));
    if target.is_some() && replaced_input.is_none() && inputs.iter().all(|i| i.from > i.current) {
        step.note = "inputs unchanged".into();
        return Ok(step);
    }
    let markers: Vec<(String, i64)> = inputs.iter().map(|i| (i.app.clone(), i.current + 1)).collect();
    let full = target.is_none() || replaced_input.is_some();
    if let Some(why) = replaced_input {
        tracing::warn!(mart = mart.name, %why, "building in full");
        step.note = format!("{why}: built in full");
        for i in &mut inputs {
            i.from = 0;
        }
    }
    step.mode = if full || matches!(mart.update, Update::Rebuild) { "full".into() } else { "incremental".into() };
    // An unpartitioned mart updated by date keeps its current rows outside the touched dates
    // and is written whole: one small overwrite instead of a `replaceWhere`, which scans the
    // same file and checks each new row against the predicate (~10 ms more per build).
    let whole = !full && mart.partition.is_none() && matches!(mart.update, Update::Dates { .. } | Update::From { .. });
    if whole || (!full && matches!(mart.update, Update::Fold { .. })) {
        let current = target.as_ref().ok_or_else(|| Error::query(mart.name, "an incremental build needs the mart's current rows"))?;
        tables::register(&ctx, &format!("{}_current", mart.name), current).await?;
    }
    let stages = match (full, mart.update) {
        (false, Update::Fold { stages, .. }) => stages.to_vec(),
        _ => full_stages(mart),
    };
    tracing::debug!(mart = mart.name, millis = started.elapsed().as_millis() as u64, "gold inputs opened");
    let started = std::time::Instant::now();
    // The changes of the inputs the stages read (gold inputs have no change feed).
    for i in inputs.iter().filter(|i| stages.iter().any(|s| s.sql.contains(&format!("{}_changes", i.name)))) {
        let name = format!("{}_changes", i.name);
        if i.from == 0 {
            // Everything is new: a view of the whole table (nothing materialised).
            tables::register_as_inserts(&ctx, &name, &i.table).await?;
            continue;
        }
        let (schema, batches) = opens.changes(&i.table, i.from, i.current).await?;
        tables::register_batches(&ctx, &name, schema, batches)?;
    }
    // The partitions of gold inputs that moved since the markers.
    for i in inputs.iter().filter(|i| i.layer == "gold" && stages.iter().any(|s| s.sql.contains(&format!("{}_touched", i.name)))) {
        register_touched(&ctx, i.name, &i.table, i.from, i.current).await?;
    }
    tracing::debug!(mart = mart.name, millis = started.elapsed().as_millis() as u64, "gold changes read");
    let replaced = match mart.update {
        _ if full => None,
        Update::Rebuild | Update::Fold { replace: None, .. } => None,
        Update::Dates { column, .. } | Update::Fold { replace: Some(column), .. } => Some((column, false)),
        Update::From { column, .. } => Some((column, true)),
    };
    let mut lists = latest_lists(mart.name, inputs.iter().map(|i| (i.layer, i.name, &i.table)), &stages)?;
    let (schema, batches) = match run_stages(&ctx, mart.name, &stages, &mut lists, replaced.is_some()).await? {
        Some(result) => result,
        // Nothing touched: only the markers move.
        None => (target_schema(target.as_ref(), mart.name).await?, Vec::new()),
    };
    let (schema, batches) = match (replaced, mart.update) {
        // The new rows may hold values beyond the touched ones (a customer's first order moved
        // to a day nothing else touched): add them and run the stages after `touched` again, so
        // their rows are replaced too.
        (Some((column, _)), Update::Fold { .. }) if !batches.is_empty() => {
            let touched = touched_list(&mut lists);
            let extra: Vec<NaiveDate> = column_dates(&batches, &schema, column, mart.name)?.into_iter().filter(|d| touched.binary_search(d).is_err()).collect();
            if extra.is_empty() {
                (schema, batches)
            } else {
                touched.extend(extra);
                touched.sort();
                touched.dedup();
                let after = stages.iter().position(|s| s.name == TOUCHED).map_or(0, |p| p + 1);
                lists.retain(|(name, _)| name == TOUCHED || !stages[after..].iter().any(|s| s.name == name));
                run_stages(&ctx, mart.name, &stages[after..], &mut lists, false).await?.ok_or_else(|| Error::query(mart.name, "the rerun gave no result"))?
            }
        }
        _ => (schema, batches),
    };
    let dates = touched_list(&mut lists).clone();
    step.dates = dates.len();
    let predicate = match replaced {
        None => None,
        Some(_) if dates.is_empty() => Some("false".to_string()),
        Some((column, false)) => Some(format!("{column} IN {}", date_list(&dates))),
        Some((column, true)) => Some(format!("{column} >= {}", date_lit(&dates[0]))),
    };
    step.rows = batches.iter().map(RecordBatch::num_rows).sum();
    let started = std::time::Instant::now();
    let (batches, predicate) = match predicate {
        Some(p) if whole && !dates.is_empty() => (with_kept_rows(&ctx, mart.name, &schema, batches, &p).await?, None),
        p => (batches, p),
    };
    match tables::replace(lake, &target_uri, schema, batches, predicate.as_deref(), mart.partition, &markers).await? {
        Upserted::Committed { version, .. } => step.version = Some(version),
        Upserted::AlreadyDone => step.note = "a concurrent run already built it".into(),
    }
    tracing::debug!(mart = mart.name, millis = started.elapsed().as_millis() as u64, "gold write");
    Ok(step)
}

/// The whole table of an unpartitioned mart after an update: the new rows, then the current rows
/// (`<mart>_current`) that `predicate` does not replace (those a `replaceWhere` would keep: the
/// predicate not true), in the new rows' schema.
async fn with_kept_rows(ctx: &SessionContext, mart: &str, schema: &SchemaRef, mut batches: Vec<RecordBatch>, predicate: &str) -> Result<Vec<RecordBatch>> {
    let columns: Vec<String> = schema.fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
    let sql = format!("SELECT {} FROM \"{mart}_current\" WHERE ({predicate}) IS NOT TRUE", columns.join(", "));
    let (_, kept) = tables::query(ctx, &format!("{mart}: its current rows"), &sql).await?;
    for b in kept {
        let cast = b.columns().iter().zip(schema.fields()).map(|(c, f)| alkasba_lake::arrow::compute::cast(c, f.data_type())).collect::<std::result::Result<Vec<_>, _>>();
        let batch = cast.and_then(|c| RecordBatch::try_new(schema.clone(), c)).map_err(|e| Error::query(format!("{mart}: its current rows in the new rows' schema"), e))?;
        batches.push(batch);
    }
    Ok(batches)
}

/// The stages of a full build (or of a `Dates`, `From` or `Rebuild` update): the touched dates
/// when the SQL uses them, then the mart's SQL.
fn full_stages(mart: &Mart) -> Vec<Stage> {
    let mut out = Vec::new();
    if let Some(t) = mart.touched().filter(|_| mart.sql.contains("{touched")) {
        out.push(stage(TOUCHED, t));
    }
    out.push(stage("result", mart.sql));
    out
}

/// Registers `<input>_touched` (dates, column `d`): the partitions of the gold mart `input`
/// that its versions `from..=to` rewrote, read from its log; every partition on a first build
/// (`from` 0) or when the log cannot tell.
async fn register_touched(ctx: &SessionContext, input: &str, table: &DeltaTable, from: i64, to: i64) -> Result<()> {
    let column = mart(input)?.partition.ok_or_else(|| Error::Config(format!("gold/{input} is not partitioned: which of its rows moved cannot be read from its log")))?;
    let known = match from {
        0 => None,
        f if f > to => Some(Vec::new()),
        f => tables::touched_partitions(table, column, f, to).await?,
    };
    let values = match known {
        Some(values) => values,
        None => tables::partition_values(table, column)?,
    };
    register_dates(ctx, &format!("{input}_touched"), input, column, &values)
}

/// Partition values of the gold mart `input`'s `column` as dates; a value that is not a date is
/// an error naming it.
fn partition_dates(input: &str, column: &str, values: &[String]) -> Result<Vec<NaiveDate>> {
    values.iter().map(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|e| Error::Data { what: format!("{input}: partition {column}={v}"), reason: e.to_string() })).collect()
}

/// Registers partition values (dates as text) as `name`, one date column `d`.
fn register_dates(ctx: &SessionContext, name: &str, input: &str, column: &str, values: &[String]) -> Result<()> {
    let days: Vec<i32> = partition_dates(input, column, values)?.into_iter().map(Date32Type::from_naive_date).collect();
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Date32Array::from(days))]).map_err(|e| Error::query(name, e))?;
    tables::register_batches(ctx, name, schema, vec![batch])
}

/// `{<input>_latest}` for every partitioned gold input the stages name so: its newest partition
/// value, from the table's file list (no file is read), so that a mart over "the last N days"
/// of it reads only those partitions (a `max()` subquery would read them all).
fn latest_lists<'a>(mart: &str, inputs: impl Iterator<Item = (&'a str, &'a str, &'a DeltaTable)>, stages: &[Stage]) -> Result<Lists> {
    let mut out = Lists::new();
    for (layer, name, table) in inputs {
        let key = format!("{name}_latest");
        if layer != "gold" || !stages.iter().any(|s| s.sql.contains(&format!("{{{key}"))) {
            continue;
        }
        let column = self::mart(name)?.partition.ok_or_else(|| Error::Config(format!("{mart} reads {{{key}}}, but gold/{name} is not partitioned")))?;
        let latest = partition_dates(name, column, &tables::partition_values(table, column)?)?.into_iter().max();
        out.push((key, latest.into_iter().collect()));
    }
    Ok(out)
}

/// Named date lists filling `{<name>}` and `{<name>_from}` in the stages' SQL.
type Lists = Vec<(String, Vec<NaiveDate>)>;

/// The touched dates among the named date lists (added, empty, when missing).
fn touched_list(lists: &mut Lists) -> &mut Vec<NaiveDate> {
    let i = match lists.iter().position(|(n, _)| n == TOUCHED) {
        Some(i) => i,
        None => {
            lists.push((TOUCHED.to_string(), Vec::new()));
            lists.len() - 1
        }
    };
    &mut lists[i].1
}

/// Runs `stages` in order, each with the date lists of the stages before it filled in; every
/// stage but the last is registered under its name, and one with a date column `d` adds its
/// dates to `lists`. Gives the last stage's result; `None` when `stop_untouched` and the
/// `touched` stage found nothing.
async fn run_stages(ctx: &SessionContext, mart: &str, stages: &[Stage], lists: &mut Lists, stop_untouched: bool) -> Result<Option<Changes>> {
    for (i, st) in stages.iter().enumerate() {
        let started = std::time::Instant::now();
        let sql = fill(st.sql, lists.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
        let what = format!("mart {mart}, stage {}", st.name);
        if st.name == TOUCHED {
            let (schema, batches) = tables::query(ctx, &what, &format!("SELECT DISTINCT d FROM ({sql}) t WHERE d IS NOT NULL")).await?;
            let dates = column_dates(&batches, &schema, "d", mart)?;
            tracing::debug!(mart, stage = st.name, dates = dates.len(), millis = started.elapsed().as_millis() as u64, "gold stage");
            let empty = dates.is_empty();
            lists.retain(|(n, _)| n != TOUCHED);
            lists.push((TOUCHED.to_string(), dates));
            if empty && stop_untouched {
                return Ok(None);
            }
            continue;
        }
        let (schema, batches) = tables::query(ctx, &what, &sql).await?;
        tracing::debug!(mart, stage = st.name, rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(), millis = started.elapsed().as_millis() as u64, "gold stage");
        if i + 1 == stages.len() {
            return Ok(Some((schema, batches)));
        }
        if schema.column_with_name("d").is_some_and(|(_, f)| f.data_type() == &DataType::Date32) {
            let dates = column_dates(&batches, &schema, "d", mart)?;
            lists.retain(|(n, _)| n != st.name);
            lists.push((st.name.to_string(), dates));
        }
        let _ = ctx.deregister_table(st.name);
        tables::register_batches(ctx, st.name, schema, batches)?;
    }
    Err(Error::query(mart, "a mart needs at least one stage"))
}

/// The distinct dates of `column` in `batches`.
fn column_dates(batches: &[RecordBatch], schema: &SchemaRef, column: &str, mart: &str) -> Result<Vec<NaiveDate>> {
    let i = schema.index_of(column).map_err(|e| Error::query(mart, e))?;
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(i).as_primitive_opt::<Date32Type>().ok_or_else(|| Error::query(mart, format!("{column} is not a date")))?;
        out.extend((0..a.len()).filter(|j| !a.is_null(*j)).filter_map(|j| a.value_as_date(j)));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// What a full build of `mart` would hold now, computed from its inputs and written nowhere:
/// the reference an incremental build must equal.
pub async fn compute(lake: &Lake, mart: &Mart) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let ctx = tables::session();
    let mut opened = Vec::new();
    for input in mart.inputs {
        let table = tables::open(lake, &uri(lake, input.layer, input.table)?).await?.ok_or_else(|| Error::query(mart.name, format!("no table {}/{} yet", input.layer, input.table)))?;
        tables::register(&ctx, input.table, &table).await?;
        tables::register_as_inserts(&ctx, &format!("{}_changes", input.table), &table).await?;
        if input.layer == "gold" && full_stages(mart).iter().any(|s| s.sql.contains(&format!("{}_touched", input.table))) {
            register_touched(&ctx, input.table, &table, 0, table.version().unwrap_or_default() as i64).await?;
        }
        opened.push((input, table));
    }
    let stages = full_stages(mart);
    let mut lists = latest_lists(mart.name, opened.iter().map(|(i, t)| (i.layer, i.table, t)), &stages)?;
    run_stages(&ctx, mart.name, &stages, &mut lists, false).await?.ok_or_else(|| Error::query(mart.name, "no result"))
}

/// The schema of the mart's current table (for a commit that only moves markers).
async fn target_schema(target: Option<&DeltaTable>, mart: &str) -> Result<SchemaRef> {
    let t = target.ok_or_else(|| Error::query(mart, "no table to move markers on"))?;
    let provider = t.table_provider().await.map_err(|e| Error::query(mart, e))?;
    let (schema, _) = tables::plain(provider.schema(), Vec::new())?;
    Ok(schema)
}

/// An empty change read with `table`'s columns.
async fn empty_changes(table: &DeltaTable) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let uri = table.table_url().clone();
    let provider = table.table_provider().await.map_err(|e| Error::query(&uri, e))?;
    let mut fields: Vec<Field> = provider.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(CHANGE_TYPE, DataType::Utf8, true));
    tables::plain(Arc::new(Schema::new(fields)), Vec::new())
}

/// A mart's weight when slots are short: its queries (stages) plus those of the heaviest chain
/// of marts that read it. A rough cost, but it tells the chains apart: `customer_firsts` and the
/// heavier mart over it run eleven queries, `daily_sales` and the heavier of its two three.
fn chain_weight(m: &Mart) -> usize {
    let own = match m.update {
        Update::Fold { stages, .. } => stages.len(),
        _ => full_stages(m).len(),
    };
    own + MARTS.iter().filter(|d| d.inputs.iter().any(|i| i.layer == "gold" && i.table == m.name)).map(chain_weight).max().unwrap_or(0)
}

/// How the marts are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateOptions {
    /// Marts built at the same time (1: one after another).
    pub concurrency: usize,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        Self { concurrency: 2 }
    }
}

/// Builds every mart (or only `only`) whose inputs moved, up to `opts.concurrency` at the same
/// time: a mart starts as soon as the marts it reads (among those built in this run) are done,
/// so a small mart derived from `daily_sales` does not wait for `daily_product_sales`. Steps
/// come back in [`MARTS`] order. A failed mart does not stop the others (their commits stand),
/// only the marts that read it; the first error is returned after them. No mart starts once
/// `keep_going` says the deadline is near; the next run resumes.
pub async fn aggregate(lake: &Lake, opts: &AggregateOptions, only: Option<&[String]>, keep_going: impl Fn() -> bool) -> Result<Vec<MartStep>> {
    // Shared with the transform, exclusive of an erasure (see `lease`): a mart computed from
    // silver before an erasure and committed after it would hold the erased tokens.
    let steps = lease::fenced(lake, &lease::owner("aggregate"), lease::Mode::Shared, aggregate_steps(lake, opts, only, keep_going)).await?;
    // For the operations dashboard (EMF in Lambda; nothing where no recorder is installed):
    // marts committed, and each one's build time.
    metrics::counter!("MartsBuilt").increment(steps.iter().filter(|s| s.version.is_some()).count() as u64);
    for s in steps.iter().filter(|s| s.version.is_some()) {
        metrics::histogram!("MartBuildMs").record(s.millis as f64);
    }
    Ok(steps)
}

async fn aggregate_steps(lake: &Lake, opts: &AggregateOptions, only: Option<&[String]>, keep_going: impl Fn() -> bool) -> Result<Vec<MartStep>> {
    if let Some(only) = only {
        for name in only {
            mart(name)?;
        }
    }
    let wanted: Vec<&'static Mart> = MARTS.iter().filter(|m| only.is_none_or(|o| o.iter().any(|n| n == m.name))).collect();
    let opens = Arc::new(Opens::default());
    let slots = tokio::sync::Semaphore::new(opts.concurrency.max(1));
    // Per mart: `Some(true)` once built, `Some(false)` once it failed or did not start.
    let done: HashMap<&str, tokio::sync::watch::Sender<Option<bool>>> = wanted.iter().map(|m| (m.name, tokio::sync::watch::channel(None).0)).collect();
    let (opens, slots, done, keep_going) = (&opens, &slots, &done, &keep_going);
    // Marts take free slots in this order (the semaphore is first come, first served): the
    // heaviest chains first, so that a long chain does not start last and run alone at the end.
    let mut order: Vec<&'static Mart> = wanted.clone();
    order.sort_by_key(|m| std::cmp::Reverse(chain_weight(m)));
    let builds = order.iter().copied().map(|m| async move {
        let result = async {
            for dep in m.inputs.iter().filter(|i| i.layer == "gold") {
                let Some(tx) = done.get(dep.table) else { continue };
                let mut rx = tx.subscribe();
                match rx.wait_for(Option::is_some).await.map(|v| *v) {
                    Ok(Some(true)) => {}
                    _ => return Ok(None),
                }
            }
            let _slot = slots.acquire().await.map_err(|e| Error::query(m.name, e))?;
            if !keep_going() {
                tracing::warn!(mart = m.name, "not started: the deadline is near; the next run resumes here");
                return Ok(None);
            }
            // Each build is a task of its own, so that two builds run on two threads: polled
            // together in this future, their planning, log reads and Parquet writes took turns
            // on one thread (perf: the two-at-a-time incremental run used 1.4 of 2 cores).
            let (lake, opens) = (lake.clone(), Arc::clone(opens));
            let build = tracing::Instrument::instrument(async move { build_with(&lake, m, &opens).await }, tracing::info_span!("mart", mart = m.name));
            tokio::spawn(build).await.map_err(|e| Error::query(m.name, format!("the build task failed: {e}")))?.map(Some)
        }
        .await;
        if let Some(tx) = done.get(m.name) {
            tx.send_replace(Some(matches!(result, Ok(Some(_)))));
        }
        result
    });
    let mut results: HashMap<&str, Result<Option<MartStep>>> = order.iter().map(|m| m.name).zip(futures::future::join_all(builds).await).collect();
    let mut out = Vec::new();
    let mut failed = None;
    for m in &wanted {
        let Some(r) = results.remove(m.name) else { continue };
        match r {
            Ok(Some(s)) => {
                tracing::info!(mart = %s.mart, mode = %s.mode, dates = s.dates, rows = s.rows, version = ?s.version, millis = s.millis, note = %s.note, "gold step");
                out.push(s);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(mart = m.name, error = %e, "gold step failed");
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::UpsertSpec;
    use alkasba_lake::StorageConfig;
    use alkasba_lake::arrow::array::{BooleanArray, Date32Array, Float64Array, Int64Array, StringArray};
    use alkasba_lake::arrow::compute::cast;

    /// (order_id, seq, customer, day of month, paid, total).
    type Order = (i64, i64, &'static str, u32, bool, f64);

    async fn upsert_orders(lake: &Lake, rows: &[Order], marker: i64) {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Int64, true),
            Field::new("seq", DataType::Int64, true),
            Field::new("customer_token", DataType::Utf8, true),
            Field::new("order_date", DataType::Date32, true),
            Field::new("is_paid", DataType::Boolean, true),
            Field::new("total_mad", DataType::Float64, true),
        ]));
        // Day d of October 2026 (past 31: into November).
        let day = |d: u32| (NaiveDate::from_ymd_opt(2026, 10, 1).unwrap() + chrono::Days::new(d as u64 - 1) - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                Arc::new(Date32Array::from(rows.iter().map(|r| day(r.3)).collect::<Vec<_>>())),
                Arc::new(BooleanArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(rows.iter().map(|r| r.5).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        let spec = UpsertSpec { keys: &["order_id"], seq: "seq", partition: Some("order_date") };
        tables::upsert(lake, &uri(lake, "silver", "orders").unwrap(), schema, vec![b], spec, &[("test".into(), marker)]).await.unwrap();
    }

    fn text(batches: &[RecordBatch]) -> Vec<String> {
        let mut out: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let cols: Vec<_> = b.columns().iter().map(|c| cast(c, &DataType::Utf8).unwrap()).collect();
                (0..b.num_rows()).map(move |i| cols.iter().map(|c| alkasba_lake::arrow::util::display::array_value_to_string(c, i).unwrap()).collect::<Vec<_>>().join("|")).collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    }

    async fn stored(lake: &Lake, mart: &str) -> Vec<String> {
        text(&lake.scan(&uri(lake, "gold", mart).unwrap(), None, &[]).await.unwrap())
    }

    #[tokio::test]
    async fn customer_marts_fold_changes_exactly_like_a_full_build() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), StorageConfig { endpoint_url: None, region: "us-east-1".into() }).unwrap();
        let customer_marts: Vec<&Mart> = ["customer_firsts", "customer_activity", "customer_cohorts"].iter().map(|n| mart(n).unwrap()).collect();
        upsert_orders(
            &lake,
            &[
                (1, 1, "a", 5, true, 10.0),
                (2, 1, "a", 20, true, 20.0),
                (3, 1, "b", 12, true, 30.0),
                (4, 1, "c", 25, true, 5.0),
                (5, 1, "d", 7, false, 1.0),
                (8, 1, "f", 12, true, 3.0),
                (10, 1, "g", 28, true, 6.0),
                (11, 1, "g", 34, true, 8.0),
            ],
            1,
        )
        .await;
        for m in &customer_marts {
            assert_eq!(build(&lake, m).await.unwrap().mode, "full");
        }
        assert_eq!(stored(&lake, "customer_firsts").await, ["a|2026-10-05|2026-10-01", "b|2026-10-12|2026-10-01", "c|2026-10-25|2026-10-01", "f|2026-10-12|2026-10-01", "g|2026-10-28|2026-10-01"]);
        // a's first order is cancelled (its first date moves later: a rescan), b orders earlier
        // (moves earlier), c's first order stays paid with a new status (no rescan needed),
        // d pays (a new customer), e orders and is cancelled within the same changes, f orders
        // again later (not a candidate, but in a partition b's move rewrites: kept), g's first
        // order is cancelled and their first date moves into November, a month nothing touched.
        upsert_orders(
            &lake,
            &[
                (1, 2, "a", 5, false, 10.0),
                (6, 2, "b", 3, true, 7.0),
                (4, 2, "c", 25, true, 5.0),
                (5, 2, "d", 7, true, 1.0),
                (7, 2, "e", 9, true, 4.0),
                (9, 2, "f", 22, true, 2.0),
                (10, 2, "g", 28, false, 6.0),
            ],
            2,
        )
        .await;
        upsert_orders(&lake, &[(7, 3, "e", 9, false, 4.0)], 3).await;
        for m in &customer_marts {
            let step = build(&lake, m).await.unwrap();
            assert_eq!(step.mode, "incremental", "{step:?}");
            let (_, want) = compute(&lake, m).await.unwrap();
            assert_eq!(stored(&lake, m.name).await, text(&want), "{}", m.name);
        }
        assert_eq!(
            stored(&lake, "customer_firsts").await,
            ["a|2026-10-20|2026-10-01", "b|2026-10-03|2026-10-01", "c|2026-10-25|2026-10-01", "d|2026-10-07|2026-10-01", "f|2026-10-12|2026-10-01", "g|2026-11-03|2026-11-01"]
        );
        // Nothing new: skipped, nothing written.
        assert_eq!(build(&lake, customer_marts[0]).await.unwrap().mode, "skipped");
    }

    #[tokio::test]
    async fn a_mart_over_an_input_built_again_is_built_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(&format!("file://{}", dir.path().display()), StorageConfig { endpoint_url: None, region: "us-east-1".into() }).unwrap();
        let (firsts, activity) = (mart("customer_firsts").unwrap(), mart("customer_activity").unwrap());
        upsert_orders(&lake, &[(1, 1, "a", 5, true, 10.0)], 1).await;
        build(&lake, firsts).await.unwrap();
        build(&lake, activity).await.unwrap();
        upsert_orders(&lake, &[(2, 1, "b", 7, true, 20.0)], 2).await;
        build(&lake, firsts).await.unwrap();
        build(&lake, activity).await.unwrap();
        upsert_orders(&lake, &[(3, 1, "c", 9, true, 30.0)], 3).await;
        // customer_firsts is deleted and built again: its versions start over, below the
        // marker customer_activity holds for it, and its log cannot say what moved.
        std::fs::remove_dir_all(dir.path().join("gold/customer_firsts")).unwrap();
        assert_eq!(build(&lake, firsts).await.unwrap().mode, "full");
        let step = build(&lake, activity).await.unwrap();
        assert_eq!(step.mode, "full", "{step:?}");
        assert!(step.note.contains("gold/customer_firsts was built again"), "{step:?}");
        let (_, want) = compute(&lake, activity).await.unwrap();
        assert_eq!(stored(&lake, "customer_activity").await, text(&want));
        assert_eq!(stored(&lake, "customer_activity").await, ["2026-10-05|1|1|0", "2026-10-07|1|1|0", "2026-10-09|1|1|0"]);
    }
}
