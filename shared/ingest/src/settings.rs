//! Every ingestion option: its environment variable, default and meaning, in one place. Read
//! once at start-up and validated; a wrong value stops the process with a message naming it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alkasba_lake::StorageConfig;
use alkasba_lake::options::Options;
use alkasba_pii::{KmsKeys, Tokenizer};
use alkasba_sources::{SecretRef, SecretStore};

use crate::catalog::Catalog;
use crate::control::Control;
use crate::fetcher::{Ingest, Tuning};
use crate::planner::parse_base_urls;
use crate::ports::SqsQueue;
use crate::{Error, Result};
use alkasba_lake::Lake;
use alkasba_runtime::{AwsSecrets, SecretSource};

/// (variable, default, meaning): the documentation of every option, printed by `--help` texts
/// and the function READMEs.
pub const OPTIONS: &[(&str, &str, &str)] = &[
    ("LAKE_ROOT", "", "Root of the lake: s3://<bucket> (required)."),
    ("STACK_NAME", "", "The deployment's stack: resolves ${stack} in secret names (required)."),
    ("FETCH_QUEUE_URL", "", "The fetch-task queue (required)."),
    ("FETCH_DLQ_URL", "", "Its dead-letter queue, for pages that cannot be fetched (required)."),
    ("PII_KEY_ID", "", "KMS key for data keys: ARN, id or alias/... (required)."),
    ("TOKEN_KEY_SECRET", "${stack}/pii/token-key", "Secrets Manager secret holding {\"key\": ...}, the HMAC key of email and phone tokens."),
    ("SOURCES_DIR", "(the shipped config/sources)", "Directory of source *.toml files."),
    ("SOURCE_BASE_URLS", "", "Base URL overrides: name=url,name=url."),
    ("PAGES_PER_TASK", "20", "Pages per planned task."),
    ("PAGES_PER_COMMIT", "100", "Pages per bronze commit."),
    ("FETCH_CONCURRENCY", "4", "Pages fetched at once by one fetcher."),
    ("FETCH_AHEAD_PAGES", "10", "Numbered pages of the next group fetched while a group commits (0: none); each is held parsed in memory until its group is processed."),
    ("DEADLINE_MARGIN_SECS", "20", "Stop starting pages this long before the invocation's deadline; the rest goes back to the queue."),
    ("MAX_RUN_AGE_SECS", "900", "An unfinished run older than this is superseded by the next plan."),
    ("PAGE_RETRY_ROUNDS", "4", "Rounds a failing page gets (each the source's whole retry policy) before it is dead-lettered."),
    ("PAGE_RETRY_DELAY_SECS", "30", "Pause before a failing page's second round; doubles each round, up to 900."),
    ("CRASH_AT", "", "Tests only: abort at these steps of a commit (before_write, before_bronze, after_commit), once each."),
    ("CRASH_ONCE_DIR", "", "Tests only: where CRASH_AT remembers the steps it crashed at."),
];

/// The options, typed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub lake_root: String,
    pub stack: String,
    pub fetch_queue_url: String,
    pub fetch_dlq_url: String,
    pub pii_key_id: String,
    pub token_key_secret: String,
    pub sources_dir: Option<PathBuf>,
    pub source_base_urls: String,
    pub tuning: Tuning,
}

impl Settings {
    /// Reads the options through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let o = Options::new(lookup, OPTIONS);
        let get = |k: &str| o.get(k);
        let required = |k: &str| o.required(k).map_err(Error::Config);
        let number = |k: &str, default: u64, range: std::ops::RangeInclusive<u64>| o.number(k, default, range).map_err(Error::Config);
        let stack = required("STACK_NAME")?;
        let lake_root = o.lake_root().map_err(Error::Config)?;
        let source_base_urls = get("SOURCE_BASE_URLS").unwrap_or_default();
        parse_base_urls(&source_base_urls)?;
        Ok(Self {
            lake_root,
            fetch_queue_url: required("FETCH_QUEUE_URL")?,
            fetch_dlq_url: required("FETCH_DLQ_URL")?,
            pii_key_id: required("PII_KEY_ID")?,
            token_key_secret: get("TOKEN_KEY_SECRET").unwrap_or_else(|| "${stack}/pii/token-key".into()).replace("${stack}", &stack),
            sources_dir: get("SOURCES_DIR").map(PathBuf::from),
            source_base_urls,
            tuning: Tuning {
                pages_per_task: number("PAGES_PER_TASK", 20, 1..=1000)?,
                pages_per_commit: number("PAGES_PER_COMMIT", 100, 1..=500)?,
                fetch_concurrency: number("FETCH_CONCURRENCY", 4, 1..=64)? as usize,
                fetch_ahead_pages: number("FETCH_AHEAD_PAGES", 10, 0..=500)?,
                deadline_margin: Duration::from_secs(number("DEADLINE_MARGIN_SECS", 20, 1..=600)?),
                max_run_age: Duration::from_secs(number("MAX_RUN_AGE_SECS", 900, 60..=86_400)?),
                page_retry_rounds: number("PAGE_RETRY_ROUNDS", 4, 1..=20)? as u32,
                page_retry_delay: Duration::from_secs(number("PAGE_RETRY_DELAY_SECS", 30, 1..=900)?),
                crash: crate::crash::CrashPoints::parse(get("CRASH_AT").as_deref(), get("CRASH_ONCE_DIR").as_deref()).map_err(Error::Config)?,
            },
            stack,
        })
    }

    /// Reads the options from the environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds the clients, reads the token key and every source's credentials.
    pub async fn build(&self, sdk: &aws_config::SdkConfig) -> Result<Ingest<SqsQueue, KmsKeys>> {
        let queue = self.sqs(sdk);
        self.build_with(sdk, queue).await
    }

    /// The tokenizer of the deployment's token key (one Secrets Manager read).
    pub async fn tokenizer(&self, sdk: &aws_config::SdkConfig) -> Result<Tokenizer> {
        let secrets = AwsSecrets::new(sdk, &self.stack);
        let json = SecretSource::get(&secrets, &SecretRef { store: SecretStore::SecretsManager, name: self.token_key_secret.clone() }).await?;
        self.tokens_from(&json)
    }

    fn tokens_from(&self, secret: &serde_json::Value) -> Result<Tokenizer> {
        let key = secret.get("key").and_then(|v| v.as_str()).ok_or_else(|| Error::Config(format!("secret {} has no string \"key\"", self.token_key_secret)))?;
        Tokenizer::new(key).map_err(Error::Pii)
    }

    /// The SQS queues these settings name.
    pub fn sqs(&self, sdk: &aws_config::SdkConfig) -> SqsQueue {
        SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &self.fetch_queue_url, &self.fetch_dlq_url)
    }

    /// [`Settings::build`] for the planner, which computes no token and so never reads the
    /// token key (its role may not): its tokenizer has a random key of its own, so a token it
    /// computed by mistake would match nothing in the lake.
    pub async fn build_planner(&self, sdk: &aws_config::SdkConfig) -> Result<Ingest<SqsQueue, KmsKeys>> {
        let storage = StorageConfig::from_env()?;
        let lake = Lake::new(&self.lake_root, storage)?;
        let control = Control::for_lake(&lake)?;
        let secrets = AwsSecrets::new(sdk, &self.stack);
        let catalog = Catalog::load(self.sources_dir.as_deref(), &parse_base_urls(&self.source_base_urls)?, &secrets).await?;
        let tokens = Tokenizer::new(&uuid::Uuid::new_v4().simple().to_string().repeat(2)).map_err(Error::Pii)?;
        let keys = Arc::new(KmsKeys::new(aws_sdk_kms_client(sdk), &self.pii_key_id));
        Ok(Ingest { catalog, lake, control, queue: self.sqs(sdk), keys, tokens, settings: self.tuning.clone() })
    }

    /// [`Settings::build`] with another task queue (the backfill command runs tasks itself).
    pub async fn build_with<Q: crate::ports::TaskQueue>(&self, sdk: &aws_config::SdkConfig, queue: Q) -> Result<Ingest<Q, KmsKeys>> {
        let storage = StorageConfig::from_env()?;
        let lake = Lake::new(&self.lake_root, storage)?;
        let control = Control::for_lake(&lake)?;
        let secrets = AwsSecrets::new(sdk, &self.stack);
        let token_ref = SecretRef { store: SecretStore::SecretsManager, name: self.token_key_secret.clone() };
        let base_urls = parse_base_urls(&self.source_base_urls)?;
        // The token key and the sources' secrets are read concurrently (cold start).
        let (token_json, catalog) = futures::try_join!(async { SecretSource::get(&secrets, &token_ref).await.map_err(Error::from) }, Catalog::load(self.sources_dir.as_deref(), &base_urls, &secrets))?;
        let tokens = self.tokens_from(&token_json)?;
        let keys = Arc::new(KmsKeys::new(aws_sdk_kms_client(sdk), &self.pii_key_id));
        Ok(Ingest { catalog, lake, control, queue, keys, tokens, settings: self.tuning.clone() })
    }
}

fn aws_sdk_kms_client(sdk: &aws_config::SdkConfig) -> alkasba_pii::KmsClient {
    alkasba_pii::KmsClient::new(sdk)
}
