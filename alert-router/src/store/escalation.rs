//! The stored escalation plan: the rows of a chain, planned in full when its firing alert is
//! stored (see `plan::escalation`), so nothing about a pending step lives only in memory.

use serde::{Deserialize, Serialize};

/// One outbox row of a planned chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// Milliseconds after the first notification.
    pub offset_ms: i64,
    /// Step number across repeats: run k's step i is `k * steps.len() + i`.
    pub step: i64,
    pub channel: String,
    pub mentions: Vec<String>,
}

/// The escalation part of an event stored at intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub policy: String,
    pub steps: Vec<PlannedStep>,
}
