//! quantwatch-alert-router: durable Alertmanager intake, routing and escalation.
//!
//! The implementation lands with the delivery issue; this crate exists so the workspace
//! layout of the contract is complete from the first commit.
