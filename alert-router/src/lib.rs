//! quantwatch-alert-router: durable Alertmanager intake, label routing, and delivery to
//! DingTalk, WeCom, Slack, email, Feishu, webhooks, SMS and phone that never loses an alert.
//!
//! The crate is built in one-way layers, each importing only those before it (see
//! ARCHITECTURE.md and `tests/layers.rs`): `core` → `store` → `plan` → `render` → `channels` →
//! `context` → `delivery` → `web` → `app`.

pub mod app;
pub mod channels;
pub mod context;
pub mod core;
pub mod delivery;
pub mod plan;
pub mod render;
pub mod store;
pub mod web;
