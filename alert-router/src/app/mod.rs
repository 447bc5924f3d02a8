//! The app: wiring. It assembles the configuration (each part validates its own section), builds
//! the channels and the chart service, starts the delivery workers, the background loops and
//! the web server, reloads on SIGHUP, and runs the CLI. Nothing imports it but `main.rs`.

pub mod cli;
pub mod config;
pub mod loops;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::channels::Channel;
use crate::context;
use crate::core::metrics::Metrics;
use crate::store;
use crate::store::Store;
use crate::web;
use config::{ChannelConfig, Config, ConfigErrors};

use cli::{Cli, Command};

/// Errors `run` reports to `main`, which maps them to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Exit 64 (EX_USAGE).
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Channel(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) => 64,
            _ => 1,
        }
    }
}

/// The configuration in force and what was built from it; swapped whole on reload.
pub struct Live {
    pub config: Config,
    pub channels: Vec<Arc<dyn Channel>>,
    pub wake: HashMap<String, Arc<Notify>>,
    /// Charts for messages (`context::ChartService::for_alert`) and the images behind `/charts/`.
    pub charts: context::ChartService,
}

impl Live {
    pub fn build(config: Config) -> Result<Live, RunError> {
        let channels = config.build_channels().map_err(RunError::Channel)?;
        let wake = channels
            .iter()
            .map(|c| (c.name().to_string(), Arc::new(Notify::new())))
            .collect();
        let charts = config.chart_service();
        Ok(Live {
            config,
            channels,
            wake,
            charts,
        })
    }
}

struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

/// Shared state of a running router.
pub struct App {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub ingest: store::ingest::Ingestor,
    /// Wakes the heartbeat watcher when a heartbeat was heard (it resolves at once).
    pub heartbeat_heard: Arc<Notify>,
    live: RwLock<Arc<Live>>,
    owner: String,
    workers: Mutex<Option<Workers>>,
    config_path: Option<std::path::PathBuf>,
    /// What the web part serves with (its own settings, swapped with `live`).
    pub web: Arc<web::Shared>,
}

impl App {
    pub fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn start_workers(self: &Arc<Self>) {
        let live = self.live();
        let (stop, rx) = watch::channel(false);
        let ctx = crate::delivery::WorkerCtx {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            delivery: live.config.delivery.clone(),
            owner: self.owner.clone(),
            charts: Some(live.charts.clone()),
        };
        let handles = live
            .channels
            .iter()
            .map(|ch| {
                let wake = live.wake.get(ch.name()).cloned().unwrap_or_default();
                tokio::spawn(crate::delivery::worker::run(
                    ch.clone(),
                    ctx.clone(),
                    wake,
                    rx.clone(),
                ))
            })
            .collect();
        if let Ok(mut w) = self.workers.lock() {
            *w = Some(Workers { stop, handles });
        }
    }

    /// Stop workers after their in-flight sends, waiting at most `grace`.
    async fn stop_workers(&self, grace: Duration) {
        let w = self.workers.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = w {
            let _ = w.stop.send(true);
            let all = futures_join(w.handles);
            if tokio::time::timeout(grace, all).await.is_err() {
                tracing::warn!(
                    "delivery workers did not stop within {grace:?}; their leased rows retry after the lease"
                );
            }
        }
    }

    /// Re-read the config file; keep the running config when the new one is invalid.
    pub async fn reload(self: &Arc<Self>) -> Result<(), RunError> {
        let cfg = config::load(self.config_path.as_deref(), &config::ProcessEnv)?;
        let mut live = Live::build(cfg)?;
        live.charts.keep_images_of(&self.live().charts);
        self.stop_workers(Duration::from_secs(30)).await;
        crate::core::timefmt::set_router_zone(live.config.plan.timezone);
        self.web.swap(web_settings(&live));
        if let Ok(mut l) = self.live.write() {
            *l = Arc::new(live);
        }
        self.start_workers();
        Ok(())
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// Start everything from a validated config and serve until `shutdown` resolves.
pub async fn serve(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    mut reload: Option<tokio::sync::mpsc::Receiver<()>>,
) -> Result<(), RunError> {
    let store = store::open(&config.database_url, config.sqlite_synchronous_full).await?;
    let metrics = Arc::new(Metrics::new());
    metrics.store_up.set(1);
    let live = Arc::new(Live::build(config)?);
    crate::core::timefmt::set_router_zone(live.config.plan.timezone);
    let app_slot: Arc<RwLock<Option<std::sync::Weak<App>>>> = Arc::new(RwLock::new(None));
    let slot = app_slot.clone();
    let ingest = store::ingest::Ingestor::start(store.clone(), move || {
        if let Some(app) = slot
            .read()
            .ok()
            .and_then(|s| s.as_ref().and_then(|w| w.upgrade()))
        {
            for n in app.live().wake.values() {
                n.notify_one();
            }
        }
    });
    let owner = format!(
        "{}-{}-{}",
        hostname(),
        std::process::id(),
        crate::core::clock::now_ms()
    );
    let heartbeat_heard = Arc::new(Notify::new());
    let web = Arc::new(web::Shared::new(
        store.clone(),
        metrics.clone(),
        ingest.clone(),
        heartbeat_heard.clone(),
        web_settings(&live),
    ));
    let app = Arc::new(App {
        store,
        metrics,
        ingest,
        heartbeat_heard,
        web,
        live: RwLock::new(live),
        owner,
        workers: Mutex::new(None),
        config_path,
    });
    if let Ok(mut s) = app_slot.write() {
        *s = Some(Arc::downgrade(&app));
    }
    app.start_workers();
    let watcher = tokio::spawn(loops::heartbeats(app.clone(), app.heartbeat_heard.clone()));
    let housekeeping = tokio::spawn(loops::housekeeping(app.clone()));
    // Expire "until resolved" silences of resolved alerts; announce handoffs, gaps, reminders.
    let silence_watch = tokio::spawn(loops::silences(app.clone()));
    let rota_watch = tokio::spawn(loops::rota(app.clone()));
    let retention = tokio::spawn(loops::retention(app.clone()));
    let heap = tokio::spawn(loops::heap());
    if let Some(rx) = reload.take() {
        let app = app.clone();
        let status = app.metrics.reload.clone();
        tokio::spawn(quantwatch_web::reload::reload_on_hangup(
            rx,
            status,
            move || {
                let app = app.clone();
                async move { app.reload().await }
            },
        ));
    }
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let web = app.live().config.web.clone();
    tracing::info!(
        %addr,
        tls = web.security.tls.is_some(),
        basic_auth = web.security.auth.is_some(),
        max_connections = web.limits.max_connections,
        "quantwatch-alert-router listening"
    );
    let routes = web
        .security
        .apply_headers(web::server::router(app.web.clone()));
    quantwatch_web::serve::serve(
        listener,
        routes,
        web.security.tls.clone(),
        web.limits,
        shutdown,
    )
    .await;
    tracing::info!("stopped accepting; finishing in-flight sends");
    app.stop_workers(Duration::from_secs(30)).await;
    housekeeping.abort();
    silence_watch.abort();
    rota_watch.abort();
    retention.abort();
    heap.abort();
    watcher.abort();
    Ok(())
}

/// The web part's settings out of the configuration in force.
fn web_settings(live: &Live) -> web::Settings {
    let c = &live.config;
    web::Settings {
        web: c.web.clone(),
        api_token: c.api_token.clone(),
        webhook_token: c.webhook_token.clone(),
        max_body_bytes: c.max_body_bytes,
        public_url: c.public_url.clone(),
        ack_secret: c.ack_secret.clone(),
        plan: c.plan.clone(),
        callback_tokens: c
            .channels
            .iter()
            .filter_map(|ch| match ch {
                ChannelConfig::AliyunVoice(v) => v.callback_token.clone(),
                _ => None,
            })
            .collect(),
        wake: live.wake.clone(),
        charts: live.charts.clone(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "router".into())
}

/// Entry point used by `main`: dispatch the subcommand.
pub async fn run(cli: Cli) -> Result<(), RunError> {
    let config = config::load(cli.config.as_deref(), &cli::CliEnv(&cli))?;
    match cli.command {
        None | Some(Command::Serve) => {
            let addr = config.listen_address.clone();
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|source| RunError::Listen { addr, source })?;
            serve(
                config,
                cli.config.clone(),
                listener,
                quantwatch_web::signals::shutdown_signal(),
                quantwatch_web::signals::hangup_channel(),
            )
            .await
        }
        Some(Command::CheckConfig) => {
            // Building channels also checks TLS material and templates.
            Live::build(config.clone())?;
            tracing::info!(source = %config.source, channels = config.channels.len(), "configuration is valid");
            Ok(())
        }
        Some(Command::TestSend { channel }) => cli::test_send(&config, &channel).await,
    }
}
