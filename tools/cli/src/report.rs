//! `alkasba report`: the monthly BI report, here, as the scheduled `report` function makes it.

use std::path::PathBuf;
use std::sync::Arc;

use alkasba_dashboard::engine::Engine;
use alkasba_dashboard::report;
use anyhow::{Context, Result};

use crate::batch::batch_lake;

/// What to report and where.
pub struct ReportArgs {
    pub month: Option<String>,
    pub out: PathBuf,
    pub chromium: PathBuf,
    pub no_pdf: bool,
    pub upload: bool,
    /// One JSON object on stdout instead of one path per line.
    pub json: bool,
}

pub async fn run(sdk: &aws_config::SdkConfig, stack: Option<&str>, a: ReportArgs) -> Result<()> {
    let lake = Arc::new(batch_lake(sdk, stack).await?);
    let store = lake.object_store()?;
    let month = a.month.unwrap_or_else(|| report::previous_month(chrono::Utc::now().date_naive()));
    let echarts = report::echarts(store.as_ref()).await?;
    eprintln!("querying the gold and ops tables for {month}…");
    let built = report::build(&Engine::new(lake.clone()), &month, &echarts, chrono::Utc::now()).await?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let html_path = a.out.join(format!("alkasba-report-{month}.html"));
    std::fs::write(&html_path, &built.html).with_context(|| format!("writing {}", html_path.display()))?;
    let mut written = vec![html_path.display().to_string()];
    let (pdf, pdf_path) = if a.no_pdf {
        (None, None)
    } else {
        eprintln!("printing the PDF with {}…", a.chromium.display());
        let pdf = report::pdf(&built.html, &a.chromium).await?;
        let pdf_path = a.out.join(format!("alkasba-report-{month}.pdf"));
        std::fs::write(&pdf_path, &pdf).with_context(|| format!("writing {}", pdf_path.display()))?;
        written.push(pdf_path.display().to_string());
        (Some(pdf), Some(pdf_path.display().to_string()))
    };
    let mut uploaded = Vec::new();
    if a.upload {
        for name in report::save(store.as_ref(), &built, pdf.as_deref()).await? {
            uploaded.push(format!("{}/{name}", lake.root().as_str().trim_end_matches('/')));
        }
    }
    if a.json {
        println!("{}", serde_json::json!({ "month": month, "html": written[0], "pdf": pdf_path, "uploaded": uploaded }));
    } else {
        for line in written.iter().chain(&uploaded) {
            println!("{line}");
        }
    }
    Ok(())
}
