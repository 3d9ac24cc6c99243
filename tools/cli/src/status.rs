//! `alkasba ingest status`: each stream's watermark and latest run.

use std::time::{Duration, Instant};

use alkasba_lake::StorageConfig;
use anyhow::{Result, bail};
use indicatif::ProgressBar;

use crate::stack::settings;

pub async fn status(sdk: &aws_config::SdkConfig, stack: Option<&str>, wait: Option<Duration>, json: bool) -> Result<()> {
    let s = settings(sdk, stack).await?;
    let lake = alkasba_lake::Lake::new(&s.lake_root, StorageConfig::from_env()?)?;
    let control = alkasba_ingest::control::Control::for_lake(&lake)?;
    let streams: Vec<(String, String)> =
        alkasba_ingest::catalog::source_files(s.sources_dir.as_deref())?.into_iter().flat_map(|f| f.streams.into_iter().map(move |st| (f.source.name.clone(), st.name))).collect();
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    let rows = loop {
        let rows = alkasba_ingest::runs::status(&lake, &control, &streams).await?;
        let Some(limit) = wait else { break rows };
        if let Some(dead) = rows.iter().find(|r| r.dead_pages > 0) {
            spinner.finish_and_clear();
            print_status(&rows, json);
            bail!("{}: run {} has {} page(s) in the dead-letter queue; it cannot complete (see the queue and errors/)", dead.stream, dead.latest_run.as_deref().unwrap_or("?"), dead.dead_pages);
        }
        let open: Vec<&str> = rows.iter().filter(|r| r.latest_run.is_some() && !r.completed).map(|r| r.stream.as_str()).collect();
        if open.is_empty() {
            break rows;
        }
        if started.elapsed() > limit {
            spinner.finish_and_clear();
            print_status(&rows, json);
            bail!("still running after {}: {}", humantime::format_duration(limit), open.join(", "));
        }
        let fetched: u64 = rows.iter().filter(|r| !r.completed).map(|r| r.fetched).sum();
        spinner.set_message(format!("waiting for {} run(s): {fetched} records so far", open.len()));
        spinner.tick();
        // Polling the ledger is the completion signal; nothing pushes it to us.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    spinner.finish_and_clear();
    print_status(&rows, json);
    Ok(())
}

fn print_status(rows: &[alkasba_ingest::runs::StreamStatus], json: bool) {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        return;
    }
    println!("{:<28} {:<28} {:<10} {:>12} {:>10} {:>5}  watermark", "stream", "latest run", "state", "pages", "records", "dead");
    for r in rows {
        let state = match (&r.latest_run, r.completed) {
            (None, _) => "never run",
            (Some(_), true) => "completed",
            (Some(_), false) => "running",
        };
        let pages = match r.pages_planned {
            Some(p) => format!("{}/{p}", r.pages_committed),
            None => r.pages_committed.to_string(),
        };
        println!("{:<28} {:<28} {:<10} {:>12} {:>10} {:>5}  {}", r.stream, r.latest_run.as_deref().unwrap_or("-"), state, pages, r.fetched, r.dead_pages, r.watermark.as_deref().unwrap_or("-"));
    }
}
