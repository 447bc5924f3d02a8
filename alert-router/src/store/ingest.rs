//! The group commit: concurrent webhook requests queue their events to one writer task that
//! stores everything waiting in one transaction, then answers each request. One fsync then
//! covers many webhooks, which is what makes durable intake fast on SQLite.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{RoutedEvent, Store};

/// Events of one request waiting for the group commit.
struct Job {
    events: Vec<RoutedEvent>,
    reply: oneshot::Sender<Result<Vec<bool>, IngestError>>,
}

/// Why a group commit stored nothing (every request in it gets the same answer).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct IngestError {
    pub message: String,
    /// The store's disk is full: the webhook says so in its 503.
    pub disk_full: bool,
}

impl IngestError {
    fn stopped() -> IngestError {
        IngestError {
            message: "the store writer has stopped".into(),
            disk_full: false,
        }
    }
}

impl From<IngestError> for String {
    fn from(e: IngestError) -> String {
        e.message
    }
}

/// Handle to the group-commit writer.
#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
}

/// Most events stored in one transaction; bounds the time one commit holds the write lock.
const MAX_EVENTS_PER_COMMIT: usize = 10_000;

impl Ingestor {
    /// Start the writer task; `after_commit` runs after each successful commit (wakes workers).
    pub fn start(store: Arc<dyn Store>, after_commit: impl Fn() + Send + 'static) -> Ingestor {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                let mut total = jobs[0].events.len();
                while total < MAX_EVENTS_PER_COMMIT {
                    match rx.try_recv() {
                        Ok(j) => {
                            total += j.events.len();
                            jobs.push(j);
                        }
                        Err(_) => break,
                    }
                }
                // One slice for the store; each job keeps only its count to take its flags back.
                let counts: Vec<usize> = jobs.iter().map(|j| j.events.len()).collect();
                let all: Vec<RoutedEvent> = jobs
                    .iter_mut()
                    .flat_map(|j| std::mem::take(&mut j.events))
                    .collect();
                match store.ingest(&all, crate::core::clock::now_ms()).await {
                    Ok(flags) => {
                        let mut it = flags.into_iter();
                        for (j, n) in jobs.into_iter().zip(counts) {
                            let mine: Vec<bool> = it.by_ref().take(n).collect();
                            let _ = j.reply.send(Ok(mine));
                        }
                        after_commit();
                    }
                    Err(e) => {
                        let err = IngestError {
                            message: e.to_string(),
                            disk_full: e.is_full(),
                        };
                        for j in jobs {
                            let _ = j.reply.send(Err(err.clone()));
                        }
                    }
                }
            }
        });
        Ingestor { tx }
    }

    /// Store events durably; per event, whether it was new.
    pub async fn ingest(&self, events: Vec<RoutedEvent>) -> Result<Vec<bool>, IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { events, reply })
            .await
            .map_err(|_| IngestError::stopped())?;
        rx.await.map_err(|_| IngestError::stopped())?
    }
}
