//! The messages between planner, fetchers and the dead-letter queue.

use serde::{Deserialize, Serialize};
use url::Url;

/// Which pages a task covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pages {
    /// Page numbers `first..=last` of a paginator with a known total. `follow`: the run's last
    /// task, which keeps going while the store reports more pages (records that entered the
    /// filter during the run push others past the planned end).
    Range { first: u64, last: u64, follow: bool },
    /// The `step`-th page of a cursor chain, at `url`; each page names the next.
    Chain { step: u64 },
}

/// One unit of fetch work (an SQS message body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchTask {
    /// The run this task belongs to.
    pub run_id: String,
    pub source: String,
    pub stream: String,
    /// Task number within the run (its exactly-once marker is per task).
    pub task: u32,
    /// Range: the first page's URL (page parameter set per page). Chain: the URL of `step`.
    pub url: Url,
    pub pages: Pages,
    /// Rounds the first page of `pages` has already failed in (each round is the source's whole
    /// retry policy); the task comes back after a growing delay until `PAGE_RETRY_ROUNDS`, then
    /// the page is dead-lettered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
    /// 0 for a planned task; n for the n-th redrive of a dead-lettered page (its own exactly-once
    /// marker, since the planned task's marker has moved past the page).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redrive: u32,
    /// Requests per second a fetcher with no pace of its own yet (a new sandbox) opens with
    /// instead of slow start: the rate a fetcher of this source had reached when it last ended
    /// a task (see [`crate::control::LearnedPace`]), or its own when it sends the rest of a
    /// task on. `None`: slow start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<f64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl FetchTask {
    /// The Delta application id marking this task's commits. Its version is the last page
    /// committed (range) or the last step committed (chain): pages are committed in order, so a
    /// redelivered or continued task skips everything at or below it.
    pub fn app_id(&self) -> String {
        match self.redrive {
            0 => format!("ingest.{}.{}.{}.t{}", self.source, self.stream, self.run_id, self.task),
            r => format!("ingest.{}.{}.{}.t{}.r{r}", self.source, self.stream, self.run_id, self.task),
        }
    }
}

/// What the dead-letter queue receives when a page cannot be fetched or a task cannot be run.
/// Its `task` is what to run to redo the work (for a dead page: that page alone, as a redrive
/// with its own marker), so the letter itself can be moved back to the task queue (SQS's
/// redrive, or `alkasba dlq redrive`): the fetcher accepts a letter as well as a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The task, for a replay.
    pub task: Option<FetchTask>,
    /// The raw message when it could not be parsed as a task (never holds personal data: tasks
    /// carry URLs and numbers only).
    pub raw_message: Option<String>,
    /// The page, when one page failed.
    pub page: Option<u64>,
    pub url: Option<String>,
    /// Why.
    pub reason: String,
    pub status: Option<u16>,
    pub attempts: u32,
    /// The sealed raw response (`s3://.../errors/...`), if there was one.
    pub error_object: Option<String>,
    pub at: String,
}
