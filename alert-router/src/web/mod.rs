//! The web part: the HTTP server and everything it serves — the authentication gate, the
//! Alertmanager webhook (intake), the API, the pages, and the ack, silence, heartbeat, receipt,
//! chart and runbook handlers.

pub mod alerts;
pub mod auth;
pub mod charts;
pub mod heartbeat;
pub mod intake;
pub mod pages;
pub mod receipts;
pub mod runbooks;
pub mod server;
pub mod silences;
