//! Delivery: one worker per channel claims due outbox rows, makes one attempt (render, shrink,
//! split, send — or call the step's people in turn) and settles the rows in one place (backoff,
//! reschedule, fail over, permanent). Vendor limits live beside it.

pub mod attempt;
pub mod calls;
pub mod limits;
pub mod settle;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use crate::context::ChartService;
use crate::core::metrics::Metrics;
use crate::store::Store;

/// Delivery tuning, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
    /// Least time between two delivery rounds of one channel.
    pub round_interval: Duration,
    pub batch_max: usize,
}

/// Everything a worker needs; cloned per channel.
#[derive(Clone)]
pub struct WorkerCtx {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub delivery: Settings,
    /// Lease owner name of this process (host + pid + start time).
    pub owner: String,
    /// Charts and context tables for single-alert messages (`None`, or a service without
    /// `prometheus_url`: messages go out without asking anyone).
    pub charts: Option<ChartService>,
}
