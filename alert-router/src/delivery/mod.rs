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

use serde::Deserialize;

use crate::context::ChartService;
use crate::core::metrics::Metrics;
use crate::core::settings::{Problem, duration};
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

/// The `delivery:` section as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileDelivery {
    pub retry_initial: Option<String>,
    pub retry_max: Option<String>,
    pub lease: Option<String>,
    pub poll_interval: Option<String>,
    pub round_interval: Option<String>,
    pub batch_max: Option<usize>,
}

/// Validate the `delivery:` section (durations like "30s", a batch of at least one).
pub fn validate(d: &FileDelivery, file: &str, p: &mut Vec<Problem>) -> Settings {
    let delivery = Settings {
        retry_initial: duration(
            p,
            file,
            "delivery.retry_initial",
            d.retry_initial.as_deref(),
            Duration::from_secs(1),
        ),
        retry_max: duration(
            p,
            file,
            "delivery.retry_max",
            d.retry_max.as_deref(),
            Duration::from_secs(300),
        ),
        lease: duration(
            p,
            file,
            "delivery.lease",
            d.lease.as_deref(),
            Duration::from_secs(120),
        ),
        poll_interval: duration(
            p,
            file,
            "delivery.poll_interval",
            d.poll_interval.as_deref(),
            Duration::from_secs(1),
        ),
        round_interval: duration(
            p,
            file,
            "delivery.round_interval",
            d.round_interval.as_deref(),
            Duration::from_millis(100),
        ),
        batch_max: d.batch_max.unwrap_or(500),
    };
    if delivery.batch_max == 0 {
        p.push(Problem {
            file: file.into(),
            key: "delivery.batch_max".into(),
            reason: "must be at least 1".into(),
        });
    }
    delivery
}
