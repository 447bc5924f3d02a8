//! The web part: the HTTP server and everything it serves — the authentication gate, the
//! Alertmanager webhook (intake), the API, the pages, and the ack, silence, heartbeat, receipt,
//! chart and runbook handlers. Handlers see [`Shared`]: the store, the metrics, the intake's
//! group commit and the [`Settings`] in force, never the whole configuration.

pub mod alerts;
pub mod auth;
pub mod charts;
pub mod heartbeat;
pub mod intake;
pub mod listing;
pub mod page;
pub mod pages;
pub mod receipts;
pub mod runbooks;
pub mod server;
pub mod silences;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::context::ChartService;
use crate::core::metrics::Metrics;
use crate::store::Store;
use crate::store::ingest::Ingestor;

/// The validated `web` settings: what the accept loop and the auth middleware need.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub config_file: Option<PathBuf>,
    /// TLS and headers are taken at start; `basic_auth_users` follow a SIGHUP reload.
    pub security: quantwatch_web::web_config::WebSecurity,
    pub limits: quantwatch_web::serve::Limits,
}

/// What the handlers read of the configuration in force; swapped whole on reload.
pub struct Settings {
    pub web: WebSettings,
    /// `ROUTER_API_TOKEN`: the bearer of machines.
    pub api_token: Option<String>,
    /// `ROUTER_WEBHOOK_TOKEN`: what Alertmanager sends.
    pub webhook_token: Option<String>,
    /// Largest webhook body accepted.
    pub max_body_bytes: usize,
    /// `ROUTER_PUBLIC_URL`: the origin the cross-site check accepts.
    pub public_url: Option<String>,
    /// Signs ack and silence links (`None`: links are off).
    pub ack_secret: Option<String>,
    /// Routing at intake, people and zone on the pages, silences, heartbeat monitors.
    pub plan: crate::plan::Settings,
    /// The `callback_token`s of the voice channels (the credential of receipt pushes).
    pub callback_tokens: Vec<String>,
    /// Per channel: wakes its delivery worker (new rows, a receipt asking for the next call).
    pub wake: HashMap<String, Arc<Notify>>,
    /// The images behind `/charts/`.
    pub charts: ChartService,
}

/// The state every handler shares.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub ingest: Ingestor,
    /// Wakes the heartbeat watcher when a heartbeat was heard (it resolves at once).
    pub heartbeat_heard: Arc<Notify>,
    live: RwLock<Arc<Settings>>,
}

impl Shared {
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        ingest: Ingestor,
        heartbeat_heard: Arc<Notify>,
        settings: Settings,
    ) -> Shared {
        Shared {
            store,
            metrics,
            ingest,
            heartbeat_heard,
            live: RwLock::new(Arc::new(settings)),
        }
    }

    /// The settings in force.
    pub fn live(&self) -> Arc<Settings> {
        self.live
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Put new settings in force (a reload).
    pub fn swap(&self, settings: Settings) {
        let mut l = self.live.write().unwrap_or_else(|p| p.into_inner());
        *l = Arc::new(settings);
    }
}
