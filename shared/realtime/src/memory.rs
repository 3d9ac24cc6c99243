//! In-memory ports for unit tests (the integration tests use LocalStack).

use std::sync::Mutex;

use crate::Result;
use crate::engine::{AlertPublisher, LakeSink, Outbox};
use crate::state::Alert;
use crate::webhook::EventQueue;

/// Keeps what was sent.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub sent: Mutex<Vec<String>>,
}

impl EventQueue for MemoryQueue {
    async fn send(&self, body: String) -> Result<()> {
        self.sent.lock().map_err(|_| crate::Error::Config("poisoned".into()))?.push(body);
        Ok(())
    }
}

/// Keeps the outboxes written, once per generation (as the Delta markers do).
#[derive(Debug, Default)]
pub struct MemoryLake {
    pub written: Mutex<Vec<Outbox>>,
    /// Events in each write, in order (one write = one commit per table in the Delta sink).
    pub writes: Mutex<Vec<usize>>,
}

impl LakeSink for MemoryLake {
    async fn write(&self, outboxes: &[Outbox]) -> Result<()> {
        let mut w = self.written.lock().map_err(|_| crate::Error::Config("poisoned".into()))?;
        // The Delta sink's high-water mark: generations at or below the highest written skip.
        let mark = w.iter().map(|o| o.generation).max().unwrap_or(0);
        self.writes.lock().map_err(|_| crate::Error::Config("poisoned".into()))?.push(outboxes.iter().map(|o| o.events.len()).sum());
        w.extend(outboxes.iter().filter(|o| o.generation > mark).cloned());
        Ok(())
    }
}

/// Keeps the alerts published.
#[derive(Debug, Default)]
pub struct MemoryAlerts {
    pub published: Mutex<Vec<Alert>>,
}

impl AlertPublisher for MemoryAlerts {
    async fn publish(&self, alert: &Alert) -> Result<()> {
        self.published.lock().map_err(|_| crate::Error::Config("poisoned".into()))?.push(alert.clone());
        Ok(())
    }
}
