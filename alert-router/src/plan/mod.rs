//! Plan: who is told what, when — routing, on-call rotations, escalation policies, rota
//! notices, heartbeats and the dead man's switch, silences. Pure `tick(inputs, store, now)`
//! functions: no loops, no wall clock, nothing of how a message is rendered or sent.

pub mod escalation;
pub mod heartbeat;
pub mod oncall;
pub mod rota;
pub mod routing;
pub mod silence;

use std::collections::BTreeMap;

use crate::core::language::Language;

/// What the planners read of the configuration in force, validated by each planner's own
/// `validate` and assembled by the app's config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub language: Language,
    /// Router-wide zone (`timezone`), for notices and pages.
    pub timezone: chrono_tz::Tz,
    pub routes: routing::RouteTree,
    /// Escalation policies by name; routes refer to them.
    pub policies: BTreeMap<String, escalation::Policy>,
    /// People, on-call rotations and time windows.
    pub directory: oncall::Directory,
    /// `alertmanager_urls` and `silences`.
    pub silences: silence::SilenceSettings,
    /// `rota`: handoffs, gaps, ack reminders.
    pub rota: rota::RotaSettings,
    /// The dead man's switch and heartbeat monitors.
    pub watch: heartbeat::Watches,
    /// The names of the configured channels (a reminder goes only where a channel exists).
    pub channels: Vec<String>,
}
