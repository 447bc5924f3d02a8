//! A chart of what the alert's expression did in the last hour, for the message.
//!
//! One entry point: [`ChartService::for_alert`]. It takes the expression from the alert
//! (`chart_query` annotation, else the `generatorURL`'s `g0.expr`), splits off a plain
//! comparison's threshold (`expr`), asks Prometheus for the range (`prom`), draws a PNG
//! (`render`) and keeps it behind a signed expiring URL (`serve`) — all under one deadline
//! per message. Past the deadline, or with Prometheus down, it returns no image and a
//! one-line note for the message; a message is never late because of a chart.
//!
//! Charts are rendered once per alert and message, not per channel: the channels' workers
//! that send the same alert event within [`REUSE_FOR`] share one render (concurrent callers
//! wait for the first instead of querying again).

pub mod expr;
pub mod images;
pub mod prom;
pub mod render;
pub mod settings;
pub mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

pub use settings::ChartSettings;

use crate::core::annotations;
use crate::core::model::AlertEvent;
use crate::plan::routing::RouteTree;
use crate::render::chart::{ChartDelivery, ChartOutcome, EMAIL_CID};

/// How long a render is reused for the same alert event by other channels.
pub const REUSE_FOR: Duration = Duration::from_secs(60);

type Memo = HashMap<String, (Instant, Arc<OnceCell<ChartOutcome>>)>;
type ContextMemo = HashMap<String, (Instant, Arc<OnceCell<table::ContextTable>>)>;

/// Everything a single-alert message gets from Prometheus: the chart and the context table,
/// produced under one deadline (see [`ChartService::attachments`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachments {
    pub chart: ChartOutcome,
    pub context: table::ContextTable,
}

impl Attachments {
    /// The one line a message says when it carries less than it should (chart or context
    /// unavailable), `None` when nothing is missing.
    pub fn note(&self) -> Option<String> {
        match (&self.chart.note, &self.context.note) {
            (Some(c), Some(x)) if c != x => Some(format!("{c}; {x}")),
            (Some(c), _) => Some(c.clone()),
            (None, Some(x)) => Some(x.clone()),
            (None, None) => None,
        }
    }

    /// Mark `event` with what a channel delivering charts as `delivery` shows: the image URL
    /// (DingTalk, Slack), the inline image's cid (email), the context rows and the note.
    pub fn annotate(&self, event: &mut AlertEvent, delivery: ChartDelivery) {
        let ann = &mut event.annotations;
        match delivery {
            ChartDelivery::Url => {
                if let Some(u) = &self.chart.url {
                    ann.insert(annotations::CHART_URL.into(), u.clone());
                }
            }
            ChartDelivery::Inline if self.chart.png.is_some() => {
                ann.insert(annotations::CHART_CID.into(), EMAIL_CID.into());
            }
            _ => {}
        }
        if let Some(n) = self.note() {
            ann.insert(annotations::CHART_NOTE.into(), n);
        }
        if !self.context.rows.is_empty() {
            let rows: Vec<(&str, &str)> = self
                .context
                .rows
                .iter()
                .map(|r| (r.title.as_str(), r.value.as_str()))
                .collect();
            ann.insert(
                annotations::CONTEXT.into(),
                serde_json::to_string(&rows).unwrap_or_default(),
            );
        }
    }
}

/// Built from the config with the channels (in `Live`); cheap to clone. The image cache is
/// carried across reloads so URLs already sent keep working.
#[derive(Clone)]
pub struct ChartService {
    settings: ChartSettings,
    prom: Option<prom::PromClient>,
    tz: Tz,
    public_url: Option<String>,
    secret: Option<String>,
    images: Arc<images::ImageCache>,
    memo: Arc<Mutex<Memo>>,
    context_memo: Arc<Mutex<ContextMemo>>,
    /// The route tree, for each alert's route `context:` queries.
    routes: Arc<RouteTree>,
}

impl std::fmt::Debug for ChartService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChartService")
            .field("settings", &self.settings)
            .field("tz", &self.tz)
            .finish_non_exhaustive()
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl ChartService {
    /// Built from the chart settings, the zone of the axis, where links point (`public_url`)
    /// and what signs them, and the route tree (for each alert's route `context:` queries).
    pub fn new(
        settings: ChartSettings,
        tz: Tz,
        public_url: Option<&str>,
        secret: Option<String>,
        routes: RouteTree,
    ) -> ChartService {
        ChartService {
            prom: settings.prometheus.clone().map(prom::PromClient::new),
            images: Arc::new(images::ImageCache::new(settings.cache_entries)),
            settings,
            tz,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            secret,
            memo: Arc::default(),
            context_memo: Arc::default(),
            routes: Arc::new(routes),
        }
    }

    /// Keep serving the images of the service this one replaces (config reload).
    pub fn keep_images_of(&mut self, previous: &ChartService) {
        previous.images.set_capacity(self.settings.cache_entries);
        self.images = previous.images.clone();
    }

    /// The signing secret of chart URLs (`None`: chart links are off).
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }

    pub fn images(&self) -> &images::ImageCache {
        &self.images
    }

    pub fn settings(&self) -> &ChartSettings {
        &self.settings
    }

    /// True when `prometheus_url` is configured.
    pub fn enabled(&self) -> bool {
        self.prom.is_some()
    }

    /// The deadline for a message starting now (`chart.deadline`, default 2 s).
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.settings.deadline
    }

    /// The chart for one alert of a message, ready by `deadline` or not at all.
    ///
    /// Never fails and never outlives the deadline by more than scheduling: a down or slow
    /// Prometheus, an expression Prometheus refuses, or a render past the deadline become
    /// `note` ("chart unavailable: …"); an expression without data renders a chart that says
    /// "no data". Resolved alerts and a router without `prometheus_url` get nothing.
    pub async fn for_alert(&self, alert: &AlertEvent, deadline: Instant) -> ChartOutcome {
        let Some(client) = &self.prom else {
            return ChartOutcome::default();
        };
        if alert.status != crate::core::model::Status::Firing {
            return ChartOutcome::default();
        }
        let Some(expression) = prom::alert_expression(alert) else {
            return ChartOutcome::note(
                "no chart: the alert names no expression (generatorURL or a chart_query annotation)"
                    .into(),
            );
        };
        let key = format!(
            "{}\0{}\0{}\0{}",
            alert.fingerprint, alert.status, alert.starts_at, expression
        );
        let cell = {
            let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            memo.retain(|_, (at, _)| now.duration_since(*at) < REUSE_FOR);
            memo.entry(key)
                .or_insert_with(|| (now, Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        let work = cell.get_or_init(|| self.produce(client, alert, expression, deadline));
        match tokio::time::timeout_at(deadline, work).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => ChartOutcome::note(format!(
                "chart unavailable: not ready within the {} ms deadline",
                self.settings.deadline.as_millis()
            )),
        }
    }

    /// Chart and context table for a single-alert message, both by `deadline` (queried
    /// concurrently). Each is produced once per alert event and shared by the channels (see
    /// [`REUSE_FOR`]); a router without `prometheus_url` gets empty attachments at once.
    pub async fn attachments(&self, alert: &AlertEvent, deadline: Instant) -> Attachments {
        let (chart, context) = tokio::join!(
            self.for_alert(alert, deadline),
            self.context(alert, deadline)
        );
        Attachments { chart, context }
    }

    /// The context table for `alert` (the `chart.context` queries that apply to its labels).
    pub async fn context(&self, alert: &AlertEvent, deadline: Instant) -> table::ContextTable {
        let Some(client) = &self.prom else {
            return table::ContextTable::default();
        };
        // The alert's route's queries, else the router-wide ones (default: the trading book).
        let queries = self
            .routes
            .context_for(&alert.labels)
            .unwrap_or(&self.settings.context);
        if alert.status != crate::core::model::Status::Firing
            || !queries
                .iter()
                .any(|q| table::expand(&q.query, &alert.labels).is_some())
        {
            return table::ContextTable::default();
        }
        let key = format!(
            "{}\0{}\0{}",
            alert.fingerprint, alert.status, alert.starts_at
        );
        let cell = {
            let mut memo = self.context_memo.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            memo.retain(|_, (at, _)| now.duration_since(*at) < REUSE_FOR);
            memo.entry(key)
                .or_insert_with(|| (now, Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        let time = crate::core::clock::now().timestamp_millis() as f64 / 1000.0;
        let work = cell.get_or_init(|| table::run(client, queries, &alert.labels, time, deadline));
        match tokio::time::timeout_at(deadline, work).await {
            Ok(t) => t.clone(),
            Err(_) => table::ContextTable {
                rows: Vec::new(),
                note: Some(
                    "context unavailable: Prometheus did not answer within the deadline".into(),
                ),
            },
        }
    }

    async fn produce(
        &self,
        client: &prom::PromClient,
        alert: &AlertEvent,
        expression: String,
        deadline: Instant,
    ) -> ChartOutcome {
        let plan = expr::plan(&expression);
        let now = crate::core::clock::now();
        let end = now.timestamp_millis() as f64 / 1000.0;
        let points = (self.settings.width / 2).max(60);
        let series = match client
            .query_range(&plan.plot, end, self.settings.range, points, deadline)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(alert = alert.alertname(), error = %e, "no chart for the alert");
                return ChartOutcome::note(format!("chart unavailable: {e}"));
            }
        };
        let mut title = format!("{}: {}", alert.alertname(), plan.plot);
        if let Some((op, v)) = plan.threshold {
            title.push_str(&format!("  ({} {})", op.as_str(), render::number(v)));
        }
        let settings = self.settings.clone();
        let tz = self.tz;
        let start = alert.starts_at as f64 / 1000.0;
        let plot = plan.plot.clone();
        let threshold = plan.threshold;
        // Drawing is CPU work: off the async threads. A render past the deadline is
        // abandoned by the caller and finishes unobserved (bounded by the image size).
        let job = tokio::task::spawn_blocking(move || {
            render::render(&render::ChartSpec {
                title: &title,
                expr: &plot,
                series: &series,
                threshold,
                start: Some(start),
                from: end - settings.range.as_secs_f64(),
                to: end,
                tz,
                width: settings.width,
                height: settings.height,
                max_series: settings.max_series,
                cjk_font: settings.cjk_font,
            })
        });
        let rendered = match tokio::time::timeout_at(deadline, job).await {
            Err(_) => {
                return ChartOutcome::note(format!(
                    "chart unavailable: not drawn within the {} ms deadline",
                    self.settings.deadline.as_millis()
                ));
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "chart rendering panicked");
                return ChartOutcome::note("chart unavailable: rendering failed".into());
            }
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "chart rendering failed");
                return ChartOutcome::note("chart unavailable: rendering failed".into());
            }
            Ok(Ok(Ok(r))) => r,
        };
        let png = Arc::new(rendered.png);
        let id = chart_id(alert, now.timestamp_nanos_opt().unwrap_or_default());
        let now_s = now.timestamp();
        let expires = now_s + self.settings.link_ttl.as_secs() as i64;
        let url = match (&self.secret, &self.public_url) {
            (Some(secret), Some(base)) => {
                self.images.insert(id.clone(), png.clone(), expires, now_s);
                Some(format!(
                    "{base}/charts/{}.png",
                    images::token(secret, &id, expires)
                ))
            }
            _ => None,
        };
        ChartOutcome {
            png: Some(png),
            url,
            note: None,
        }
    }
}

/// 128 bits, unique per render: the alert, the instant and a process counter.
fn chart_id(alert: &AlertEvent, nanos: i64) -> String {
    let mut h = Sha256::new();
    h.update(alert.fingerprint.as_bytes());
    h.update(alert.starts_at.to_le_bytes());
    h.update(nanos.to_le_bytes());
    h.update(SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}
