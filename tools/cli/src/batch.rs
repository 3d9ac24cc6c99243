//! `alkasba batch transform|aggregate|maintain`: the batch layer run here through the same code
//! as its functions.

use std::time::Instant;

use alkasba_lake::StorageConfig;
use anyhow::{Context, Result};
use clap::Subcommand;

use crate::stack::stack_outputs;

#[derive(Subcommand)]
pub enum Batch {
    /// Bronze → silver: reads only the bronze versions committed since each silver table's
    /// marker, until every table is up to date.
    Transform {
        /// Silver tables (default: all, in dependency order).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// One JSON line per step instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Silver → gold: rebuilds the marts whose inputs moved (date-keyed marts: only the dates
    /// touched).
    Aggregate {
        /// Marts (default: all, in dependency order).
        #[arg(long, value_delimiter = ',')]
        marts: Vec<String>,
        /// One JSON line per mart instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compaction (z-order where it pays), checkpoint, vacuum and log clean-up of every table
    /// (or those whose path starts with one of `--tables`), each under its lease.
    Maintain {
        /// Table path prefixes (`silver/`, `gold/daily_sales`; default: every table).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// One JSON line per table instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints the data dictionary (docs/data-dictionary.md): every silver and gold table's grain
    /// and every column's meaning and unit.
    Dictionary,
    /// The Glue catalog's columns of every silver, gold and ops table, read from the tables'
    /// own schemas (Athena views need them in the catalog): printed, or written into the
    /// template's Glue definitions with `--write infra/template.yaml`. Tables not in the lake
    /// yet are left as they are.
    GlueColumns {
        /// The SAM template to update.
        #[arg(long)]
        write: Option<std::path::PathBuf>,
    },
}

/// The lake: `LAKE_ROOT`, else the stack's `LakeRoot` output.
pub async fn batch_lake(sdk: &aws_config::SdkConfig, stack: Option<&str>) -> Result<alkasba_lake::Lake> {
    let root = match std::env::var("LAKE_ROOT").ok().filter(|r| !r.trim().is_empty()) {
        Some(r) => r,
        None => {
            let stack = stack.context("set --stack (or LAKE_ROOT) to name the lake")?;
            stack_outputs(sdk, stack).await?.get("LakeRoot").cloned().with_context(|| format!("stack {stack} has no LakeRoot output"))?
        }
    };
    Ok(alkasba_lake::Lake::new(&root, StorageConfig::from_env()?)?)
}

pub async fn batch(sdk: &aws_config::SdkConfig, stack: Option<&str>, command: Batch) -> Result<()> {
    if let Batch::Dictionary = command {
        print!("{}", alkasba_batch::dictionary::markdown());
        return Ok(());
    }
    let lake = batch_lake(sdk, stack).await?;
    let started = Instant::now();
    let only = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let settings = alkasba_batch::settings::Settings::from_lookup(|k| if k == "LAKE_ROOT" { Some(lake.root().to_string()) } else { std::env::var(k).ok() })?;
    let json_lines = |items: &[serde_json::Value]| items.iter().for_each(|i| println!("{i}"));
    match command {
        Batch::Transform { tables, json } => {
            let steps = alkasba_batch::silver::transform(&lake, only(tables).as_deref(), settings.transform, || true).await?;
            if json {
                json_lines(&steps.iter().map(serde_json::to_value).collect::<std::result::Result<Vec<_>, _>>()?);
                return Ok(());
            }
            for s in &steps {
                let range = match (s.from, s.to) {
                    (Some(a), Some(b)) => format!("bronze {a}..={b}"),
                    _ => "-".into(),
                };
                println!("{:<18} {:<16} read {:>9}  merged {:>9}  version {:>5}  {}", s.table, range, s.read, s.merged, s.version.map(|v| v.to_string()).unwrap_or("-".into()), s.note);
            }
        }
        Batch::Aggregate { marts, json } => {
            let steps = alkasba_batch::gold::aggregate(&lake, &settings.aggregate, only(marts).as_deref(), || true).await?;
            if json {
                json_lines(&steps.iter().map(serde_json::to_value).collect::<std::result::Result<Vec<_>, _>>()?);
                return Ok(());
            }
            for s in &steps {
                println!("{:<24} {:<12} dates {:>5}  rows {:>9}  version {:>5}  {}", s.mart, s.mode, s.dates, s.rows, s.version.map(|v| v.to_string()).unwrap_or("-".into()), s.note);
            }
        }
        Batch::Maintain { tables, json } => {
            let reports = alkasba_batch::maintain::maintain(&lake, only(tables).as_deref(), &settings.maintain, || true).await?;
            if json {
                json_lines(&reports.iter().map(serde_json::to_value).collect::<std::result::Result<Vec<_>, _>>()?);
                return Ok(());
            }
            for r in &reports {
                println!(
                    "{:<36} files {:>6} -> {:<6} ({} partitions)  compacted {:>6}  vacuumed {:>6}  logs removed {:>4}  {}",
                    r.table, r.files_before, r.files_after, r.partitions, r.files_compacted, r.vacuumed, r.logs_removed, r.note
                );
            }
        }
        Batch::GlueColumns { write } => {
            let found = alkasba_batch::glue::lake_columns(&lake).await?;
            for spec in alkasba_batch::registry::registry().tables().iter().filter(|t| alkasba_batch::glue::catalogued(t.layer)) {
                match found.get(&spec.path) {
                    Some(cols) => println!("{:<36} {} columns", spec.path, cols.len()),
                    None => println!("{:<36} not in the lake yet: left as it is", spec.path),
                }
            }
            if let Some(path) = write {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                let new = alkasba_batch::glue::write_template(&text, &found)?;
                std::fs::write(&path, &new).with_context(|| format!("writing {}", path.display()))?;
                println!("{}: columns of {} tables written", path.display(), found.len());
            }
        }
        Batch::Dictionary => {}
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
