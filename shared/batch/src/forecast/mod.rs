//! The forecast job: reads the daily series of the [`catalogue`] from gold, forecasts each one
//! with `alkasba_forecast` (rolling-origin backtest of the candidates, automatic choice,
//! calibrated intervals), and writes three gold tables for the run date:
//!
//! * `gold/forecast_daily`: every series' forecast, day by day, with 80% and 95% intervals;
//! * `gold/forecast_accuracy`: every candidate's backtest scores per series, the chosen one
//!   marked;
//! * `gold/forecast_stockouts`: per product, the forecast demand against the stock on hand and
//!   the day it runs out.
//!
//! Each table is partitioned by `run_date` and a run replaces its own run date's rows in one
//! commit: a rerun the same day gives the same rows (the computation is deterministic), earlier
//! runs stay so past forecasts can be compared with what happened.

pub mod catalogue;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alkasba_forecast::{Config, Kind, Outcome, Role, Series, forecast_many, stockout};
use alkasba_lake::Lake;
use alkasba_lake::layout;
use chrono::{Datelike, Days, NaiveDate};
use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

pub use catalogue::{FAMILIES, Family};

use crate::tables::{self, Upserted};
use crate::{Error, Result};

/// The tables the job writes: (name, what a row is).
pub const TABLES: [(&str, &str); 3] = [
    ("forecast_daily", "Per run date, series and forecast day: the chosen model's point forecast and its 80% and 95% prediction intervals."),
    ("forecast_accuracy", "Per run date, series and candidate model: the rolling-origin backtest's scores (MASE, sMAPE, MAE, interval coverage); `chosen` marks the model that made the forecast."),
    (
        "forecast_stockouts",
        "Per run date and product with managed stock: the stock on hand at the run, the forecast units over the horizon, and the day the stock runs out at that pace (null when it lasts beyond the horizon).",
    ),
];
/// The partition column of every forecast table.
pub const PARTITION: &str = "run_date";

/// What the job does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForecastOptions {
    /// Days forecast ahead.
    pub horizon: usize,
    /// Backtest cuts, a week apart.
    pub origins: usize,
    /// Days of history read (the most recent).
    pub history_days: usize,
    /// Products forecast: the best sellers of the last 91 days, at most this many.
    pub max_products: usize,
}

impl Default for ForecastOptions {
    fn default() -> Self {
        Self { horizon: 28, origins: 8, history_days: 730, max_products: 5_000 }
    }
}

/// One series' result.
#[derive(Debug, Clone)]
pub struct SeriesForecast {
    pub family: &'static str,
    pub series: String,
    pub outcome: Outcome,
}

/// A product's stock-out forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Stockout {
    pub product_id: i64,
    pub name: Option<String>,
    pub category: Option<String>,
    pub stock: i64,
    pub model: &'static str,
    pub units: f64,
    /// Forecast units per day over the horizon.
    pub daily_units: f64,
    /// Days after `as_of` until it runs out (0: out of stock now); `None` beyond the horizon.
    pub days: Option<usize>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct ForecastRun {
    pub run_date: NaiveDate,
    /// The last day of history the forecasts start after.
    pub as_of: NaiveDate,
    pub forecasts: Vec<SeriesForecast>,
    /// Series that could not be forecast, and why.
    pub failed: Vec<(String, String)>,
    pub stockouts: Vec<Stockout>,
    /// Rows committed per table (0 for a table left as it was).
    pub committed: Vec<(&'static str, usize)>,
}

/// Progress of the forecasting step: (series done, series in all).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

fn sql_date(d: NaiveDate) -> String {
    format!("DATE '{d}'")
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Data { what: "a forecast input".into(), reason: format!("column {name} is missing or of an unexpected type") })
}

fn date_of(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163).unwrap_or_default()
}

fn days_of(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - 719_163
}

/// Series values per key: (date, value) pairs as read.
type Raw = BTreeMap<String, Vec<(NaiveDate, f64)>>;

/// Reads the families' raw series from `from` on; `None` for a family whose input does not
/// exist yet.
async fn read(lake: &Lake, families: &[&'static Family], from: NaiveDate) -> Result<Vec<(&'static Family, Option<Raw>)>> {
    let ctx = tables::session();
    let mut registered: BTreeMap<&str, bool> = BTreeMap::new();
    for &input in families.iter().flat_map(|f| f.inputs.iter()) {
        if registered.contains_key(input) {
            continue;
        }
        let uri = lake.table(input)?;
        let present = match tables::open(lake, &uri).await? {
            Some(t) => {
                tables::register(&ctx, input.rsplit('/').next().unwrap_or(input), &t).await?;
                true
            }
            None => false,
        };
        registered.insert(input, present);
    }
    let mut out = Vec::with_capacity(families.len());
    for f in families {
        if !f.inputs.iter().all(|i| registered.get(i).copied().unwrap_or(false)) {
            out.push((*f, None));
            continue;
        }
        let sql = f.sql.replace("{from}", &sql_date(from));
        let (_, batches) = tables::query(&ctx, f.name, &format!("SELECT key, CAST(date AS DATE) AS date, value FROM ({sql}) s")).await?;
        let mut raw = Raw::new();
        for b in &batches {
            let (keys, dates, values) = (column::<StringArray>(b, "key")?, column::<Date32Array>(b, "date")?, column::<Float64Array>(b, "value")?);
            for i in 0..b.num_rows() {
                if keys.is_null(i) || dates.is_null(i) {
                    continue;
                }
                // A null sum (no rows) is a day without sales.
                let v = if values.is_null(i) { 0.0 } else { values.value(i) };
                raw.entry(keys.value(i).to_string()).or_default().push((date_of(dates.value(i)), v));
            }
        }
        out.push((*f, Some(raw)));
    }
    Ok(out)
}

/// A raw series as one value per day from its first day to `as_of` (missing days are 0), and
/// that first day.
fn dense(points: &[(NaiveDate, f64)], as_of: NaiveDate) -> (NaiveDate, Vec<f64>) {
    let Some(first) = points.iter().map(|p| p.0).filter(|d| *d <= as_of).min() else { return (as_of, Vec::new()) };
    let n = (as_of - first).num_days() as usize + 1;
    let mut y = vec![0.0; n];
    for (d, v) in points {
        if *d >= first && *d <= as_of {
            y[(*d - first).num_days() as usize] += v;
        }
    }
    (first, y)
}

/// The stock on hand per product id.
async fn stock(lake: &Lake) -> Result<BTreeMap<String, (Option<String>, Option<String>, i64)>> {
    let uri = lake.table(&layout::silver("products"))?;
    let Some(t) = tables::open(lake, &uri).await? else { return Ok(BTreeMap::new()) };
    let ctx = tables::session();
    tables::register(&ctx, "products", &t).await?;
    let (_, batches) = tables::query(&ctx, "stock on hand", catalogue::STOCK_SQL).await?;
    let mut out = BTreeMap::new();
    for b in &batches {
        let (keys, names, cats, stock) = (column::<StringArray>(b, "key")?, column::<StringArray>(b, "name")?, column::<StringArray>(b, "category_name")?, column::<Int64Array>(b, "stock")?);
        for i in 0..b.num_rows() {
            let text = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
            out.insert(keys.value(i).to_string(), (text(names), text(cats), stock.value(i)));
        }
    }
    Ok(out)
}

/// Runs the forecast for `run_date` (the day it runs: the history ends the day before, or at
/// the last day with sales if that is earlier). `only` limits it to some families (their rows
/// alone are replaced).
pub async fn run(lake: &Lake, opts: &ForecastOptions, run_date: NaiveDate, only: Option<&[String]>, progress: Progress<'_>) -> Result<ForecastRun> {
    let families: Vec<&'static Family> = match only {
        None => FAMILIES.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| catalogue::family(n).ok_or_else(|| Error::Config(format!("no forecast family {n:?}; families: {}", FAMILIES.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")))))
            .collect::<Result<_>>()?,
    };
    let yesterday = run_date.pred_opt().unwrap_or(run_date);
    let from = yesterday.checked_sub_days(Days::new(opts.history_days as u64)).unwrap_or(yesterday);
    let raw = read(lake, &families, from).await?;
    let last = raw.iter().filter_map(|(_, r)| r.as_ref()).flat_map(|r| r.values().flatten().map(|p| p.0)).filter(|d| *d <= yesterday).max();
    let Some(as_of) = last else {
        return Err(Error::Data {
            what: "forecast".into(),
            reason: format!(
                "no sales history up to {yesterday} in {}: run the aggregate job first",
                families.iter().flat_map(|f| f.inputs).collect::<BTreeSet<_>>().into_iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    };

    // The series to forecast: every key of every family, products limited to recent sellers.
    let mut jobs: Vec<Job> = Vec::new();
    for (f, r) in &raw {
        let Some(r) = r else { continue };
        let mut series: Vec<(String, (NaiveDate, Vec<f64>))> = r.iter().map(|(k, p)| (k.clone(), dense(p, as_of))).filter(|(_, (_, y))| !y.is_empty()).collect();
        if f.kind == Kind::Product {
            let recent = |y: &[f64]| y.iter().rev().take(91).sum::<f64>();
            series.retain(|(_, (_, y))| recent(y) > 0.0);
            series.sort_by(|a, b| recent(&b.1.1).total_cmp(&recent(&a.1.1)).then(a.0.cmp(&b.0)));
            series.truncate(opts.max_products);
        }
        for (k, (start, y)) in series {
            let name = if k == "total" { f.name.to_string() } else { format!("{}/{k}", f.name) };
            jobs.push(Job { family: f, name, start, y });
        }
    }
    let cfg = Config { horizon: opts.horizon, origins: opts.origins };
    let series: Vec<Series<'_>> = jobs.iter().map(|j| Series { y: &j.y, start: j.start, kind: j.family.kind, role: role(j, &jobs) }).collect();
    let results = forecast_many(&series, &cfg, progress);
    let mut forecasts = Vec::new();
    let mut failed = Vec::new();
    for (Job { family: f, name, .. }, r) in jobs.iter().zip(results) {
        match r {
            Ok(outcome) => forecasts.push(SeriesForecast { family: f.name, series: name.clone(), outcome }),
            Err(e) => failed.push((name.clone(), e.to_string())),
        }
    }

    let products_ran = families.iter().any(|f| f.name == catalogue::PRODUCT_UNITS);
    let stockouts = if products_ran { stockouts(lake, &forecasts).await? } else { Vec::new() };

    let mut committed = Vec::new();
    let run = sql_date(run_date);
    let family_filter = if only.is_some() { format!(" AND family IN ({})", families.iter().map(|f| format!("'{}'", f.name)).collect::<Vec<_>>().join(", ")) } else { String::new() };
    let predicate = format!("{PARTITION} = {run}{family_filter}");
    let (schema, batch) = daily_batch(run_date, as_of, &forecasts)?;
    committed.push(("forecast_daily", write(lake, "forecast_daily", schema, batch, &predicate).await?));
    let (schema, batch) = accuracy_batch(run_date, as_of, &forecasts)?;
    committed.push(("forecast_accuracy", write(lake, "forecast_accuracy", schema, batch, &predicate).await?));
    if products_ran {
        let (schema, batch) = stockout_batch(run_date, as_of, &stockouts)?;
        committed.push(("forecast_stockouts", write(lake, "forecast_stockouts", schema, batch, &format!("{PARTITION} = {run}")).await?));
    }
    Ok(ForecastRun { run_date, as_of, forecasts, failed, stockouts, committed })
}

/// The chosen model's score for a series and the seasonal naive baseline's, when tested.
pub fn chosen_and_baseline(f: &SeriesForecast) -> (Option<&alkasba_forecast::Score>, Option<&alkasba_forecast::Score>) {
    let chosen = f.outcome.scores.iter().find(|s| s.model == f.outcome.chosen);
    let naive = f.outcome.scores.iter().find(|s| s.model == alkasba_forecast::Model::SeasonalNaive);
    (chosen, naive)
}

/// The job's JSON answer: the run, the shop and category series' accuracy (products are too
/// many to list: their counts), the stock-outs within the horizon.
pub fn summary(run: &ForecastRun) -> serde_json::Value {
    use serde_json::json;
    let accuracy: Vec<serde_json::Value> = run
        .forecasts
        .iter()
        .filter(|f| f.family != catalogue::PRODUCT_UNITS)
        .map(|f| {
            let (chosen, naive) = chosen_and_baseline(f);
            json!({
                "series": f.series, "model": f.outcome.chosen.name(), "origins": f.outcome.origins,
                "mase": chosen.map(|s| s.mase), "naive_mase": naive.map(|s| s.mase),
                "coverage80": chosen.map(|s| s.coverage80), "coverage95": chosen.map(|s| s.coverage95),
            })
        })
        .collect();
    json!({
        "run_date": run.run_date.to_string(),
        "as_of": run.as_of.to_string(),
        "series": run.forecasts.len(),
        "products": run.forecasts.iter().filter(|f| f.family == catalogue::PRODUCT_UNITS).count(),
        "failed": run.failed.iter().map(|(s, e)| json!({"series": s, "error": e})).collect::<Vec<_>>(),
        "accuracy": accuracy,
        "stockouts_within_horizon": run.stockouts.iter().filter(|s| s.days.is_some()).count(),
        "committed": run.committed.iter().map(|(t, rows)| (format!("gold/{t}"), json!(rows))).collect::<serde_json::Map<_, _>>(),
    })
}

/// One series to forecast.
struct Job {
    family: &'static Family,
    name: String,
    /// The day of `y[0]`.
    start: NaiveDate,
    y: Vec<f64>,
}

/// Where a job's series sits in the shop (its calendar's source), from its family.
fn role(job: &Job, jobs: &[Job]) -> Role {
    let shop = job.family.shop.and_then(|name| jobs.iter().position(|j| j.name == name));
    match (job.family.shop, job.family.kind) {
        (None, _) => Role::Total,
        (Some(_), Kind::Product) => Role::Product { shop },
        (Some(_), _) => Role::Category { shop },
    }
}

/// Stock-out days of the forecast products with managed stock.
async fn stockouts(lake: &Lake, forecasts: &[SeriesForecast]) -> Result<Vec<Stockout>> {
    let stock = stock(lake).await?;
    let prefix = format!("{}/", catalogue::PRODUCT_UNITS);
    let mut out = Vec::new();
    for f in forecasts {
        let Some(key) = f.series.strip_prefix(&prefix) else { continue };
        let (Some((name, category, on_hand)), Ok(product_id)) = (stock.get(key), key.parse::<i64>()) else { continue };
        let point: Vec<f64> = f.outcome.forecast.iter().map(|d| d.point).collect();
        out.push(Stockout {
            product_id,
            name: name.clone(),
            category: category.clone(),
            stock: *on_hand,
            model: f.outcome.chosen.name(),
            units: point.iter().sum(),
            daily_units: point.iter().sum::<f64>() / point.len().max(1) as f64,
            days: stockout::stockout_day(&point, *on_hand as f64),
        });
    }
    Ok(out)
}

async fn write(lake: &Lake, name: &str, schema: SchemaRef, batch: RecordBatch, predicate: &str) -> Result<usize> {
    let uri = lake.table(&layout::gold(name))?;
    match tables::replace(lake, &uri, schema, vec![batch], Some(predicate), Some(PARTITION), &[]).await? {
        Upserted::Committed { rows, .. } => Ok(rows),
        Upserted::AlreadyDone => Ok(0),
    }
}

fn date_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Date32, nullable)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<(SchemaRef, RecordBatch)> {
    let schema = Arc::new(Schema::new(fields));
    let b = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Data { what: "building forecast rows".into(), reason: e.to_string() })?;
    Ok((schema, b))
}

fn repeat_date(d: NaiveDate, n: usize) -> ArrayRef {
    Arc::new(Date32Array::from(vec![days_of(d); n]))
}

/// The columns every row of `forecast_daily` and `forecast_accuracy` starts with: run_date,
/// as_of, and the family and series of the row's series (one entry per row).
fn series_columns(run_date: NaiveDate, as_of: NaiveDate, series: &[&SeriesForecast]) -> (Vec<Field>, Vec<ArrayRef>) {
    let n = series.len();
    (
        vec![date_field("run_date", false), date_field("as_of", false), Field::new("family", DataType::Utf8, false), Field::new("series", DataType::Utf8, false)],
        vec![
            repeat_date(run_date, n),
            repeat_date(as_of, n),
            Arc::new(StringArray::from(series.iter().map(|f| f.family).collect::<Vec<_>>())),
            Arc::new(StringArray::from(series.iter().map(|f| f.series.as_str()).collect::<Vec<_>>())),
        ],
    )
}

fn daily_batch(run_date: NaiveDate, as_of: NaiveDate, forecasts: &[SeriesForecast]) -> Result<(SchemaRef, RecordBatch)> {
    let rows: Vec<(&SeriesForecast, usize)> = forecasts.iter().flat_map(|f| (0..f.outcome.forecast.len()).map(move |h| (f, h))).collect();
    let value = |pick: fn(&alkasba_forecast::Day) -> f64| -> ArrayRef { Arc::new(Float64Array::from(rows.iter().map(|(f, h)| pick(&f.outcome.forecast[*h])).collect::<Vec<_>>())) };
    let (mut fields, mut columns) = series_columns(run_date, as_of, &rows.iter().map(|(f, _)| *f).collect::<Vec<_>>());
    fields.extend([
        date_field("date", false),
        Field::new("horizon", DataType::Int32, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("point", DataType::Float64, false),
        Field::new("lo80", DataType::Float64, false),
        Field::new("hi80", DataType::Float64, false),
        Field::new("lo95", DataType::Float64, false),
        Field::new("hi95", DataType::Float64, false),
    ]);
    columns.extend([
        Arc::new(Date32Array::from(rows.iter().map(|(_, h)| days_of(as_of) + *h as i32 + 1).collect::<Vec<_>>())) as ArrayRef,
        Arc::new(Int32Array::from(rows.iter().map(|(_, h)| *h as i32 + 1).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|(f, _)| f.outcome.chosen.name()).collect::<Vec<_>>())),
        value(|d| d.point),
        value(|d| d.lo80),
        value(|d| d.hi80),
        value(|d| d.lo95),
        value(|d| d.hi95),
    ]);
    batch(fields, columns)
}

fn accuracy_batch(run_date: NaiveDate, as_of: NaiveDate, forecasts: &[SeriesForecast]) -> Result<(SchemaRef, RecordBatch)> {
    let rows: Vec<(&SeriesForecast, &alkasba_forecast::Score)> = forecasts.iter().flat_map(|f| f.outcome.scores.iter().map(move |s| (f, s))).collect();
    let value = |pick: fn(&alkasba_forecast::Score) -> f64| -> ArrayRef { Arc::new(Float64Array::from(rows.iter().map(|(_, s)| pick(s)).collect::<Vec<_>>())) };
    let (mut fields, mut columns) = series_columns(run_date, as_of, &rows.iter().map(|(f, _)| *f).collect::<Vec<_>>());
    fields.extend([
        Field::new("model", DataType::Utf8, false),
        Field::new("chosen", DataType::Boolean, false),
        Field::new("origins", DataType::Int32, false),
        Field::new("points", DataType::Int64, false),
        Field::new("mase", DataType::Float64, false),
        Field::new("smape", DataType::Float64, false),
        Field::new("mae", DataType::Float64, false),
        Field::new("coverage80", DataType::Float64, false),
        Field::new("coverage95", DataType::Float64, false),
        Field::new("cumulative_error", DataType::Float64, false),
    ]);
    columns.extend([
        Arc::new(StringArray::from(rows.iter().map(|(_, s)| s.model.name()).collect::<Vec<_>>())) as ArrayRef,
        Arc::new(BooleanArray::from(rows.iter().map(|(f, s)| f.outcome.chosen == s.model).collect::<Vec<_>>())),
        Arc::new(Int32Array::from(rows.iter().map(|(f, _)| f.outcome.origins as i32).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|(_, s)| s.points as i64).collect::<Vec<_>>())),
        value(|s| s.mase),
        value(|s| s.smape),
        value(|s| s.mae),
        value(|s| s.coverage80),
        value(|s| s.coverage95),
        value(|s| s.cumulative),
    ]);
    batch(fields, columns)
}

fn stockout_batch(run_date: NaiveDate, as_of: NaiveDate, rows: &[Stockout]) -> Result<(SchemaRef, RecordBatch)> {
    let n = rows.len();
    batch(
        vec![
            date_field("run_date", false),
            date_field("as_of", false),
            Field::new("product_id", DataType::Int64, false),
            Field::new("product_name", DataType::Utf8, true),
            Field::new("category_name", DataType::Utf8, true),
            Field::new("stock_quantity", DataType::Int64, false),
            Field::new("model", DataType::Utf8, false),
            Field::new("forecast_units", DataType::Float64, false),
            Field::new("daily_units", DataType::Float64, false),
            Field::new("days_to_stockout", DataType::Int32, true),
            date_field("stockout_date", true),
        ],
        vec![
            repeat_date(run_date, n),
            repeat_date(as_of, n),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.product_id).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.name.as_deref()).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.category.as_deref()).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.stock).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.model).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.units).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.daily_units).collect::<Vec<_>>())),
            Arc::new(Int32Array::from(rows.iter().map(|r| r.days.map(|d| d as i32)).collect::<Vec<_>>())),
            Arc::new(Date32Array::from(rows.iter().map(|r| r.days.map(|d| days_of(as_of) + d as i32)).collect::<Vec<_>>())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_fills_missing_days_and_stops_at_as_of() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let y = dense(&[(d("2026-10-01"), 2.0), (d("2026-10-04"), 3.0), (d("2026-10-09"), 9.0)], d("2026-10-05"));
        assert_eq!(y, (d("2026-10-01"), vec![2.0, 0.0, 0.0, 3.0, 0.0]));
        assert!(dense(&[(d("2026-10-09"), 9.0)], d("2026-10-05")).1.is_empty());
        assert_eq!(date_of(days_of(d("2026-11-30"))), d("2026-11-30"));
        assert_eq!(days_of(d("1970-01-01")), 0);
    }
}
