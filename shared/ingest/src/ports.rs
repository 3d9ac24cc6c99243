//! The port to the fetch-task queue and its dead-letter queue, with SQS and in-memory
//! implementations (secrets are read through `alkasba_runtime::SecretSource`).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::task::{DeadLetter, FetchTask};
use crate::{Error, Result};

/// Where tasks and dead letters go.
pub trait TaskQueue: Send + Sync {
    /// Enqueues fetch tasks.
    fn send_tasks(&self, tasks: &[FetchTask]) -> impl Future<Output = Result<()>> + Send;
    /// Enqueues one task to be delivered after `delay` (at most 15 minutes: SQS's limit).
    fn send_later(&self, task: &FetchTask, delay: Duration) -> impl Future<Output = Result<()>> + Send;
    /// Leaves a message on the dead-letter queue.
    fn send_dead(&self, letter: &DeadLetter) -> impl Future<Output = Result<()>> + Send;
}

/// SQS's longest delivery delay, in seconds.
pub const MAX_DELAY_SECS: u64 = 900;

/// SQS: the fetch-task queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    tasks_url: String,
    dead_url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, tasks_url: impl Into<String>, dead_url: impl Into<String>) -> Self {
        Self { client, tasks_url: tasks_url.into(), dead_url: dead_url.into() }
    }
}

impl TaskQueue for SqsQueue {
    async fn send_tasks(&self, tasks: &[FetchTask]) -> Result<()> {
        for chunk in tasks.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, t) in chunk.iter().enumerate() {
                let body = serde_json::to_string(t).map_err(|e| Error::Task(e.to_string()))?;
                entries.push(aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build().map_err(|e| Error::Task(e.to_string()))?);
            }
            let out = self.client.send_message_batch().queue_url(&self.tasks_url).set_entries(Some(entries)).send().await.map_err(|e| Error::aws("SQS", "SendMessageBatch", e))?;
            if !out.failed().is_empty() {
                let why: Vec<String> = out.failed().iter().map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default())).collect();
                return Err(Error::Aws { service: "SQS", operation: "SendMessageBatch", reason: why.join("; "), retryable: true });
            }
        }
        Ok(())
    }

    async fn send_later(&self, task: &FetchTask, delay: Duration) -> Result<()> {
        let body = serde_json::to_string(task).map_err(|e| Error::Task(e.to_string()))?;
        let secs = delay.as_secs().min(MAX_DELAY_SECS) as i32;
        self.client.send_message().queue_url(&self.tasks_url).message_body(body).delay_seconds(secs).send().await.map_err(|e| Error::aws("SQS", "SendMessage", e))?;
        Ok(())
    }

    async fn send_dead(&self, letter: &DeadLetter) -> Result<()> {
        let body = serde_json::to_string(letter).map_err(|e| Error::Task(e.to_string()))?;
        self.client.send_message().queue_url(&self.dead_url).message_body(body).send().await.map_err(|e| Error::aws("SQS", "SendMessage", e))?;
        Ok(())
    }
}

/// Keeps tasks and letters in memory (unit tests; the backfill command runs its own tasks).
/// A delayed task is queued at once, with its delay beside it in `delays`.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub tasks: Mutex<Vec<FetchTask>>,
    pub dead: Mutex<Vec<DeadLetter>>,
    pub delays: Mutex<Vec<Duration>>,
}

impl MemoryQueue {
    /// Takes every queued task.
    pub fn take_tasks(&self) -> Vec<FetchTask> {
        self.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default()
    }
}

impl TaskQueue for MemoryQueue {
    async fn send_tasks(&self, tasks: &[FetchTask]) -> Result<()> {
        self.tasks.lock().map_err(|_| Error::Task("queue poisoned".into()))?.extend_from_slice(tasks);
        Ok(())
    }
    async fn send_later(&self, task: &FetchTask, delay: Duration) -> Result<()> {
        self.delays.lock().map_err(|_| Error::Task("queue poisoned".into()))?.push(delay);
        self.send_tasks(std::slice::from_ref(task)).await
    }
    async fn send_dead(&self, letter: &DeadLetter) -> Result<()> {
        self.dead.lock().map_err(|_| Error::Task("queue poisoned".into()))?.push(letter.clone());
        Ok(())
    }
}
