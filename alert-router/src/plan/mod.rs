//! Plan: who is told what, when — routing, on-call rotations, escalation policies, rota
//! notices, heartbeats and the dead man's switch, silences. Pure `tick(inputs, store, now)`
//! functions: no loops, no wall clock, nothing of how a message is rendered or sent.

pub mod escalation;
pub mod heartbeat;
pub mod oncall;
pub mod rota;
pub mod routing;
pub mod silence;
