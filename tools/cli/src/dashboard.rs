//! `alkasba dashboard`: publish the pages to the lake bucket, grant and revoke access.

use std::path::{Path, PathBuf};

use alkasba_dashboard::auth::{Access, key_hash, valid_user};
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::Subcommand;
use deltalake::logstore::object_store::{ObjectStoreExt, PutPayload, path::Path as ObjectPath};

use crate::batch::batch_lake;
use crate::stack::stack_outputs;

#[derive(Subcommand)]
pub enum Dashboard {
    /// Uploads the pages (web/dashboard and the pinned chart library from web/node_modules) to
    /// `_dashboard/` in the lake bucket, where the dashboard function serves them from.
    Publish {
        /// The project's web directory (after `npm ci --prefix web`).
        #[arg(long, default_value = "web")]
        web: PathBuf,
    },
    /// Grants `user` access: stores the SHA-256 of a new random access key in the stack's
    /// access secret and prints a sign-in link (shown once; grant again to replace the key).
    Grant {
        #[arg(long)]
        user: String,
        /// The dashboard's URL (default: the stack's DashboardUrl output).
        #[arg(long)]
        url: Option<String>,
    },
    /// Prints the dashboard's query catalogue: each query's page, meaning, tables and SQL (JSON
    /// lines), so an analyst can see how every number on the pages is computed (and the
    /// benchmark can run the same SQL in DuckDB).
    Queries,
    /// Revokes `user`: their sessions stop working within a minute.
    Revoke {
        #[arg(long)]
        user: String,
    },
}

/// The files published, from the web directory: (source, name under `_dashboard/`).
fn files(web: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let pages = web.join("dashboard");
    for e in std::fs::read_dir(&pages).with_context(|| format!("reading {}", pages.display()))? {
        let p = e?.path();
        if p.is_file() {
            let name = p.file_name().and_then(|n| n.to_str()).context("a file name that is not UTF-8")?.to_string();
            out.push((p, name));
        }
    }
    let echarts = web.join("node_modules/echarts/dist/echarts.min.js");
    if !echarts.is_file() {
        bail!("{} is missing: install the pinned front-end libraries first (npm ci --prefix {})", echarts.display(), web.display());
    }
    out.push((echarts, "echarts.min.js".into()));
    Ok(out)
}

async fn access_secret(sm: &aws_sdk_secretsmanager::Client, id: &str) -> Result<Access> {
    let v = sm.get_secret_value().secret_id(id).send().await.with_context(|| format!("reading secret {id}"))?;
    Ok(Access::parse(v.secret_string().context("the access secret has no string value")?)?)
}

async fn save(sm: &aws_sdk_secretsmanager::Client, id: &str, access: &Access) -> Result<()> {
    sm.put_secret_value().secret_id(id).secret_string(serde_json::to_string(access)?).send().await.with_context(|| format!("writing secret {id}"))?;
    Ok(())
}

pub async fn dashboard(sdk: &aws_config::SdkConfig, stack: Option<&str>, command: Dashboard) -> Result<()> {
    match command {
        Dashboard::Publish { web } => {
            let lake = batch_lake(sdk, stack).await?;
            let store = lake.object_store()?;
            let files = files(&web)?;
            for (src, name) in &files {
                let body = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
                let path = ObjectPath::from(format!("{}/{name}", alkasba_lake::layout::DASHBOARD_ASSETS));
                store.put(&path, PutPayload::from(body)).await.with_context(|| format!("uploading {path}"))?;
            }
            println!("published {} files to {}/{}/", files.len(), lake.root().as_str().trim_end_matches('/'), alkasba_lake::layout::DASHBOARD_ASSETS);
            Ok(())
        }
        Dashboard::Grant { user, url } => {
            let stack = stack.context("set --stack to name the stack whose dashboard to grant")?;
            if !valid_user(&user) {
                bail!("user name {user:?} must be 1-64 of [A-Za-z0-9._@-]");
            }
            let url = match url {
                Some(u) => u,
                None => stack_outputs(sdk, stack).await?.get("DashboardUrl").cloned().context("the stack has no DashboardUrl output (functions not deployed?): pass --url")?,
            };
            let sm = aws_sdk_secretsmanager::Client::new(sdk);
            let id = format!("{stack}/dashboard/access");
            let mut access = access_secret(&sm, &id).await?;
            let mut raw = [0u8; 32];
            rand::fill(&mut raw);
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            access.users.insert(user.clone(), key_hash(&key));
            save(&sm, &id, &access).await?;
            eprintln!("granted {user}; the key is shown once. Sign-in link:");
            println!("{}/login#user={user}&key={key}", url.trim_end_matches('/'));
            Ok(())
        }
        Dashboard::Queries => {
            for q in alkasba_dashboard::queries::QUERIES {
                let sources: serde_json::Map<String, serde_json::Value> = q.sources.iter().map(|s| (s.name.to_string(), serde_json::Value::String(s.path.resolve()))).collect();
                println!("{}", serde_json::json!({"name": q.name, "page": q.page, "about": q.about, "sources": sources, "sql": q.sql}));
            }
            Ok(())
        }
        Dashboard::Revoke { user } => {
            let stack = stack.context("set --stack to name the stack")?;
            let sm = aws_sdk_secretsmanager::Client::new(sdk);
            let id = format!("{stack}/dashboard/access");
            let mut access = access_secret(&sm, &id).await?;
            if access.users.remove(&user).is_none() {
                bail!("{user} has no access to revoke");
            }
            save(&sm, &id, &access).await?;
            println!("revoked {user}");
            Ok(())
        }
    }
}
