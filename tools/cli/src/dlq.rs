//! `alkasba dlq list|show|redrive`: the stack's dead-letter queues (fetch tasks, store events,
//! erasure requests). Listing peeks (a zero visibility timeout: nothing is taken); a redrive
//! moves letters back to their source queue, each sent before it is deleted, so a crash
//! mid-way leaves a letter in both queues at worst, never in neither (the fetcher's markers
//! and the real-time dedupe make a second copy harmless).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::stack::stack_outputs;

#[derive(Subcommand)]
pub enum Dlq {
    /// Counts and lists the letters waiting in the dead-letter queues.
    List {
        /// One queue (default: all three).
        #[arg(long, value_enum)]
        queue: Option<Queue>,
        /// At most this many letters per queue.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints one letter whole (its JSON body and attributes).
    Show {
        /// The letter's message id (from `dlq list`).
        message_id: String,
        /// Where to look (default: all three).
        #[arg(long, value_enum)]
        queue: Option<Queue>,
    },
    /// Moves letters back to their source queue, to be processed again.
    Redrive {
        #[arg(long, value_enum)]
        queue: Queue,
        /// Only these message ids (default: every letter).
        #[arg(long, value_delimiter = ',')]
        ids: Vec<String>,
        /// JSON summary.
        #[arg(long)]
        json: bool,
    },
}

/// A dead-letter queue of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Queue {
    /// Fetch tasks: pages given up on after their retry rounds.
    Fetch,
    /// Store events the real-time function could not apply.
    Events,
    /// Erasure requests that kept failing.
    Erasures,
}

impl Queue {
    const ALL: [Queue; 3] = [Queue::Fetch, Queue::Events, Queue::Erasures];

    fn name(self) -> &'static str {
        match self {
            Queue::Fetch => "fetch",
            Queue::Events => "events",
            Queue::Erasures => "erasures",
        }
    }

    /// (dead-letter queue output, source queue output) of the stack.
    fn outputs(self) -> (&'static str, &'static str) {
        match self {
            Queue::Fetch => ("FetchTasksDlqUrl", "FetchTasksQueueUrl"),
            Queue::Events => ("StoreEventsDlqUrl", "StoreEventsQueueUrl"),
            Queue::Erasures => ("ErasureRequestsDlqUrl", "ErasureRequestsQueueUrl"),
        }
    }

    /// One line saying what a letter is about (never a personal value: tasks carry URLs and
    /// numbers, store events sealed records, erasure requests an encrypted email).
    fn summary(self, body: &str) -> String {
        let Ok(v) = serde_json::from_str::<Value>(body) else { return format!("not JSON ({} bytes)", body.len()) };
        let s = |k: &str| v.get(k).map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).unwrap_or_else(|| "-".into());
        match self {
            Queue::Fetch => match v.get("task") {
                Some(t) if !t.is_null() => {
                    let ts = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                    format!("{}.{} run {} page {}: {}", ts("source"), ts("stream"), ts("run_id"), s("page"), s("reason"))
                }
                _ => format!("not a task: {}", s("reason")),
            },
            Queue::Events => format!("{} delivery {} key {}", s("topic"), s("delivery_id"), s("key")),
            Queue::Erasures => match (v.get("customer_id"), v.get("email_kms")) {
                (Some(id), _) if !id.is_null() => format!("customer id {id}"),
                (_, Some(e)) if !e.is_null() => "email (encrypted)".into(),
                _ => "not a request".into(),
            },
        }
    }
}

struct Urls {
    dlq: String,
    source: String,
}

async fn urls(sdk: &aws_config::SdkConfig, stack: Option<&str>, queue: Queue) -> Result<Urls> {
    let stack = stack.context("dlq needs --stack (its queues are the stack's outputs)")?;
    let outputs = stack_outputs(sdk, stack).await?;
    let (dlq, source) = queue.outputs();
    let get = |k: &str| outputs.get(k).cloned().with_context(|| format!("stack {stack} has no output {k} (deployed before this queue existed?)"));
    Ok(Urls { dlq: get(dlq)?, source: get(source)? })
}

/// Up to `limit` letters of `url`, peeked (visibility timeout 0), by message id.
async fn peek(sqs: &aws_sdk_sqs::Client, url: &str, limit: usize) -> Result<BTreeMap<String, Message>> {
    let mut seen = BTreeMap::new();
    let mut idle = 0;
    // SQS answers a sample of the queue: stop after two answers that bring nothing new.
    while seen.len() < limit && idle < 2 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .with_context(|| format!("receiving from {url}"))?;
        let before = seen.len();
        for m in got.messages() {
            if let Some(id) = m.message_id() {
                seen.entry(id.to_string()).or_insert_with(|| m.clone());
            }
        }
        idle = if seen.len() == before { idle + 1 } else { 0 };
    }
    Ok(seen)
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64> {
    let attrs =
        sqs.get_queue_attributes().queue_url(url).attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages).send().await.with_context(|| format!("reading {url}"))?;
    Ok(attrs.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)).and_then(|n| n.parse().ok()).unwrap_or(0))
}

fn sent_at(m: &Message) -> String {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn dlq(sdk: &aws_config::SdkConfig, stack: Option<&str>, command: Dlq) -> Result<()> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    match command {
        Dlq::List { queue, limit, json } => {
            for q in queue.map(|q| vec![q]).unwrap_or(Queue::ALL.to_vec()) {
                let u = urls(sdk, stack, q).await?;
                let letters = peek(&sqs, &u.dlq, limit).await?;
                let n = depth(&sqs, &u.dlq).await?;
                if json {
                    for (id, m) in &letters {
                        println!("{}", json!({"queue": q.name(), "message_id": id, "sent_at": sent_at(m), "summary": q.summary(m.body().unwrap_or_default())}));
                    }
                    continue;
                }
                println!("{} ({} waiting)", q.name(), n);
                for (id, m) in &letters {
                    println!("  {id}  {}  {}", sent_at(m), q.summary(m.body().unwrap_or_default()));
                }
            }
            Ok(())
        }
        Dlq::Show { message_id, queue } => {
            for q in queue.map(|q| vec![q]).unwrap_or(Queue::ALL.to_vec()) {
                let u = urls(sdk, stack, q).await?;
                if let Some(m) = peek(&sqs, &u.dlq, 10_000).await?.remove(&message_id) {
                    let body: Value = serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_else(|_| Value::String(m.body().unwrap_or_default().to_string()));
                    println!("{}", serde_json::to_string_pretty(&json!({"queue": q.name(), "message_id": message_id, "sent_at": sent_at(&m), "body": body}))?);
                    return Ok(());
                }
            }
            bail!("no letter {message_id} in the dead-letter queues (already redriven or expired after 14 days?)")
        }
        Dlq::Redrive { queue, ids, json } => {
            let u = urls(sdk, stack, queue).await?;
            let mut moved = Vec::new();
            let mut idle = 0;
            while idle < 2 {
                // Taken for a minute: long enough to send and delete; a crash gives it back.
                let got = sqs.receive_message().queue_url(&u.dlq).max_number_of_messages(10).visibility_timeout(60).send().await.context("receiving letters")?;
                let mut any = false;
                for m in got.messages() {
                    let (Some(id), Some(body), Some(handle)) = (m.message_id(), m.body(), m.receipt_handle()) else { continue };
                    if !ids.is_empty() && !ids.iter().any(|i| i == id) {
                        // Not asked for: visible again at once.
                        sqs.change_message_visibility().queue_url(&u.dlq).receipt_handle(handle).visibility_timeout(0).send().await.ok();
                        continue;
                    }
                    sqs.send_message().queue_url(&u.source).message_body(body).send().await.with_context(|| format!("sending {id} back"))?;
                    sqs.delete_message().queue_url(&u.dlq).receipt_handle(handle).send().await.with_context(|| format!("deleting {id} from the dead-letter queue"))?;
                    eprintln!("redriven {id}: {}", queue.summary(body));
                    moved.push(id.to_string());
                    any = true;
                }
                idle = if any { 0 } else { idle + 1 };
                if !ids.is_empty() && ids.iter().all(|i| moved.contains(i)) {
                    break;
                }
            }
            let missing: Vec<&String> = ids.iter().filter(|i| !moved.contains(i)).collect();
            if json {
                println!("{}", json!({"queue": queue.name(), "redriven": moved, "not_found": missing}));
            } else {
                println!("{} letter(s) sent back to the {} queue{}", moved.len(), queue.name(), if missing.is_empty() { String::new() } else { format!("; not found: {missing:?}") });
            }
            if !missing.is_empty() {
                bail!("{} letter(s) not found", missing.len());
            }
            Ok(())
        }
    }
}
