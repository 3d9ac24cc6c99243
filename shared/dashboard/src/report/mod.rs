//! The monthly BI report: one self-contained HTML file (its data, its styles, the chart library
//! and the code that draws the charts all inside it; it loads nothing) and its PDF, printed by
//! headless Chromium. The numbers come from the dashboard's own query catalogue, run over the
//! gold and ops tables for the month, so the report and the pages agree.

use std::path::Path;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath};
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::params::{Filters, Grain};
use crate::{Error, Result};

const TEMPLATE: &str = include_str!("template.html");

/// The month `YYYY-MM` as its first and last day.
pub fn month(s: &str) -> Result<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").map_err(|_| Error::bad("month", format!("{s:?} is not a month (YYYY-MM)")))?;
    let next = first.checked_add_months(chrono::Months::new(1)).ok_or_else(|| Error::bad("month", format!("{s:?} is out of range")))?;
    Ok((first, next - chrono::Duration::days(1)))
}

/// The month before the one `day` is in (what a report run on the 1st covers).
pub fn previous_month(day: NaiveDate) -> String {
    let first = day.with_day(1).unwrap_or(day);
    let prev = first.checked_sub_months(chrono::Months::new(1)).unwrap_or(first);
    prev.format("%Y-%m").to_string()
}

/// One section's query and the period it covers.
struct Part {
    key: &'static str,
    query: &'static str,
    /// Months before the report's month the period starts (trends and cohorts look back).
    months_back: u32,
}

const PARTS: &[Part] = &[
    Part { key: "kpis", query: "sales_kpis", months_back: 0 },
    Part { key: "monthly", query: "monthly", months_back: 11 },
    Part { key: "daily", query: "sales_series", months_back: 0 },
    Part { key: "categories", query: "category_sales", months_back: 0 },
    Part { key: "top", query: "top_products", months_back: 0 },
    Part { key: "cohorts", query: "cohorts", months_back: 5 },
    Part { key: "price_index", query: "price_index", months_back: 0 },
    Part { key: "undercuts", query: "undercuts", months_back: 0 },
    Part { key: "alerts", query: "alerts_period", months_back: 0 },
    Part { key: "quality", query: "quality_period", months_back: 0 },
    Part { key: "forecast", query: "forecast", months_back: 0 },
    Part { key: "forecast_accuracy", query: "forecast_accuracy", months_back: 0 },
    Part { key: "stockouts", query: "stockouts", months_back: 0 },
];

/// A rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    /// `YYYY-MM`.
    pub month: String,
    /// The self-contained HTML.
    pub html: String,
    /// The data it shows (each section's query answer).
    pub data: Value,
}

/// Runs the report's queries for `month` (`YYYY-MM`) and renders the HTML, with `echarts` (the
/// chart library's source, as the dashboard serves it) inlined.
pub async fn build(engine: &Engine, month_name: &str, echarts: &str, generated_at: chrono::DateTime<chrono::Utc>) -> Result<Report> {
    let (from, to) = month(month_name)?;
    let answers = futures::future::try_join_all(PARTS.iter().map(|p| async move {
        let start = from.checked_sub_months(chrono::Months::new(p.months_back)).unwrap_or(from);
        let filters = Filters { from: start, to, currency: None, category: None, product: None, grain: Grain::Day };
        let answer = match engine.run(p.query, &filters).await {
            Ok(a) => json!(a),
            // A table not built yet (the forecast, the alerts before any event): the section
            // says so.
            Err(Error::NoTable(t)) => json!({"columns": [], "rows": [], "missing": t}),
            Err(e) => return Err(e),
        };
        Ok::<_, Error>((p.key, answer))
    }))
    .await?;
    let data = json!({
        "month": month_name,
        "month_name": from.format("%B %Y").to_string(),
        "from": from.to_string(),
        "to": to.to_string(),
        "generated_at": generated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        "answers": answers.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<serde_json::Map<_, _>>(),
    });
    // Inside <script> elements: no "</" may close them early.
    let data_text = data.to_string().replace("</", "<\\/");
    let html = TEMPLATE.replacen("/*DATA*/", &data_text, 1).replacen("/*ECHARTS*/", &echarts.replace("</script", "<\\/script"), 1);
    Ok(Report { month: month_name.to_string(), html, data })
}

/// Where reports are kept in the lake: `reports/<YYYY-MM>/alkasba-report-<YYYY-MM>.{html,pdf}`.
pub fn object_name(month: &str, ext: &str) -> String {
    format!("reports/{month}/alkasba-report-{month}.{ext}")
}

/// The chart library as the dashboard serves it (published to `_dashboard/` in the lake).
pub async fn echarts(store: &dyn ObjectStore) -> Result<String> {
    let path = format!("{}/echarts.min.js", alkasba_lake::layout::DASHBOARD_ASSETS);
    let bytes = crate::http::read_object(store, &path).await?.ok_or_else(|| Error::Config(format!("{path} is missing: publish the dashboard first (alkasba dashboard publish)")))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Object { path, reason: "not UTF-8".into() })
}

/// Writes the report (and its PDF, when there is one) under `reports/` in the lake; returns the
/// object names.
pub async fn save(store: &dyn ObjectStore, report: &Report, pdf: Option<&[u8]>) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (ext, body) in [("html", Some(report.html.as_bytes())), ("pdf", pdf)] {
        let Some(body) = body else { continue };
        let name = object_name(&report.month, ext);
        store.put(&ObjectPath::from(name.as_str()), PutPayload::from(body.to_vec())).await.map_err(|e| Error::Object { path: name.clone(), reason: e.to_string() })?;
        written.push(name);
    }
    Ok(written)
}

/// How long Chromium may take to print a report.
const PRINT_TIMEOUT: Duration = Duration::from_secs(120);

/// Prints `html` to PDF with headless Chromium at `chromium` (Debian's package here; a Chromium
/// layer in Lambda). The file is written to a private temporary directory and removed.
pub async fn pdf(html: &str, chromium: &Path) -> Result<Vec<u8>> {
    let err = |what: &str, e: &dyn std::fmt::Display| Error::Object { path: "report.pdf".into(), reason: format!("{what}: {e}") };
    let dir = std::env::temp_dir().join(format!("alkasba-report-{}-{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| err("creating a temporary directory", &e))?;
    let (page, out) = (dir.join("report.html"), dir.join("report.pdf"));
    let result = async {
        tokio::fs::write(&page, html).await.map_err(|e| err("writing the page", &e))?;
        let mut cmd = tokio::process::Command::new(chromium);
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw", "--virtual-time-budget=20000"])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(format!("--print-to-pdf={}", out.display()))
            .arg(format!("file://{}", page.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let run = tokio::time::timeout(PRINT_TIMEOUT, cmd.output()).await.map_err(|_| err("printing", &format!("{} took over {PRINT_TIMEOUT:?}", chromium.display())))?;
        let output = run.map_err(|e| err(&format!("running {}", chromium.display()), &e))?;
        if !output.status.success() {
            let tail: String = String::from_utf8_lossy(&output.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(err("printing", &format!("{} exited with {}: {tail}", chromium.display(), output.status)));
        }
        let pdf = tokio::fs::read(&out).await.map_err(|e| err("reading the PDF Chromium printed", &e))?;
        if !pdf.starts_with(b"%PDF") {
            return Err(err("printing", &"Chromium wrote something that is not a PDF"));
        }
        Ok(pdf)
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step_back() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(month("2026-02").unwrap(), (d("2026-02-01"), d("2026-02-28")));
        assert_eq!(month("2024-12").unwrap(), (d("2024-12-01"), d("2024-12-31")));
        assert!(matches!(month("2026-13"), Err(Error::BadParam { .. })));
        assert!(matches!(month("October"), Err(Error::BadParam { .. })));
        assert_eq!(previous_month(d("2026-11-01")), "2026-10");
        assert_eq!(previous_month(d("2026-01-15")), "2025-12");
    }

    #[test]
    fn nothing_in_the_data_can_close_the_script_early() {
        let html = TEMPLATE.replacen("/*DATA*/", &json!({"x": "</script><script>alert(1)</script>"}).to_string().replace("</", "<\\/"), 1);
        assert_eq!(html.matches("</script>").count(), TEMPLATE.matches("</script>").count());
    }
}
