//! Self metrics (names fixed by the project; dashboards and rules depend on them).

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub webhooks: IntCounterVec,
    pub notifications: IntCounterVec,
    pub send_duration: HistogramVec,
    pub queue_depth: IntGauge,
    pub oldest_pending: Gauge,
    pub permanent_errors: IntCounterVec,
    /// Notifications handed from a blocked or refusing channel to its fallback.
    pub failovers: IntCounterVec,
    pub store_up: IntGauge,
    /// Escalation step notifications delivered (one per step and channel).
    pub escalation_steps: prometheus::IntCounter,
    /// Delivery time minus due time of escalation steps: the firing precision.
    pub escalation_lateness: prometheus::Histogram,
    pub escalation_acks: prometheus::IntCounter,
    /// Calls of calling channels (voice) by outcome: `placed`, then what the receipt said.
    pub calls: IntCounterVec,
    /// Call-status receipts pushed to the router, by what became of them.
    pub call_receipts: IntCounterVec,
    /// Per heartbeat monitor, when it was last heard (Unix seconds; see `heartbeat`).
    pub heartbeat_last_seen: prometheus::GaugeVec,
    /// Outcome of the last SIGHUP reload, published as Prometheus and the exporter publish
    /// theirs (`quantwatch_router_config_last_reload_*`), so a refused reload can page.
    pub reload: std::sync::Arc<quantwatch_web::reload::ReloadStatus>,
    /// Rows deleted by retention, by table.
    pub retention_pruned: IntCounterVec,
    /// Write transactions retention's deletes took (each one holds intake back at most once).
    pub retention_batches: prometheus::IntCounter,
    /// When the last retention run on this store ended successfully (Unix seconds), by this
    /// replica or, where replicas share PostgreSQL, by the one holding the lease.
    pub retention_last_run: Gauge,
    /// How long the last retention run took, pauses between batches included.
    pub retention_last_duration: Gauge,
    /// The store's size in bytes (SQLite: the file, PostgreSQL: the router's tables).
    pub store_size: IntGauge,
    /// SQLite's own heap in this process (page caches, schemas, prepared statements).
    pub sqlite_heap: IntGauge,
    /// The C allocator's bytes by `state` (`in_use`, `free`): a leak grows `in_use`, a
    /// fragmented heap `free`.
    pub heap: IntGaugeVec,
}

/// The prefix of the router's reload families (`<prefix>_config_last_reload_successful`).
pub const RELOAD_PREFIX: &str = "quantwatch_router";

/// Webhook outcomes, pre-created so each series exists at 0 from the start.
pub const WEBHOOK_OUTCOMES: [&str; 6] = [
    "accepted",
    "duplicate",
    "bad_request",
    "unauthorized",
    "too_large",
    "store_error",
];
pub const NOTIFICATION_OUTCOMES: [&str; 5] = ["sent", "retry", "failed", "rate_limited", "split"];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let webhooks = IntCounterVec::new(
            Opts::new(
                "quantwatch_router_webhooks_received_total",
                "Alertmanager webhook requests by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let notifications = IntCounterVec::new(
            Opts::new(
                "quantwatch_router_notifications_total",
                "Notifications by channel and outcome (sent, retry, failed, rate_limited).",
            ),
            &["channel", "outcome"],
        )
        .expect("valid metric");
        let send_duration = HistogramVec::new(
            HistogramOpts::new(
                "quantwatch_router_send_duration_seconds",
                "Duration of one vendor send.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["channel"],
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new(
            "quantwatch_router_queue_depth",
            "Pending outbox rows (notifications not yet delivered).",
        )
        .expect("valid metric");
        let oldest_pending = Gauge::new(
            "quantwatch_router_oldest_pending_seconds",
            "Age of the oldest pending notification (0 when none).",
        )
        .expect("valid metric");
        let permanent_errors = IntCounterVec::new(
            Opts::new(
                "quantwatch_router_channel_permanent_errors_total",
                "Sends refused for a reason retrying cannot heal (bad signature, invalid key).",
            ),
            &["channel"],
        )
        .expect("valid metric");
        let failovers = IntCounterVec::new(
            Opts::new(
                "quantwatch_router_failovers_total",
                "Notifications handed from a blocked or refusing channel to a fallback channel.",
            ),
            &["from", "to"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "quantwatch_router_build_info",
                "Build information; value is 1.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let store_up = IntGauge::new(
            "quantwatch_router_store_up",
            "1 when the last store operation succeeded.",
        )
        .expect("valid metric");
        let escalation_steps = prometheus::IntCounter::new(
            "quantwatch_router_escalation_steps_sent_total",
            "Escalation step notifications delivered (one per step and channel).",
        )
        .expect("valid metric");
        let escalation_lateness = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "quantwatch_router_escalation_step_lateness_seconds",
                "Delivery time minus due time of an escalation step.",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0]),
        )
        .expect("valid metric");
        let escalation_acks = prometheus::IntCounter::new(
            "quantwatch_router_escalation_acks_total",
            "Alerts acknowledged (API, ack link or status page).",
        )
        .expect("valid metric");
        let calls = IntCounterVec::new(
            Opts::new(
                "quantwatch_router_calls_total",
                "Calls of calling channels by outcome (placed; answered, no_answer, busy, failed, no_receipt from receipts and timeouts; flow_control, refused when the vendor would not call a number).",
            ),
            &["channel", "outcome"],
        )
        .expect("valid metric");
        let call_receipts = IntCounterVec::new(
            Opts::new(
                "quantwatch_router_call_receipts_total",
                "Call-status receipts pushed by the vendor, by outcome (stored, unknown_call, unauthorized, bad_request, store_error).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let heartbeat_last_seen = prometheus::GaugeVec::new(
            Opts::new(
                "quantwatch_router_heartbeat_last_seen_seconds",
                "When each heartbeat monitor was last heard (Unix seconds); for one never heard, when the router started expecting it.",
            ),
            &["name"],
        )
        .expect("valid metric");
        for c in [
            Box::new(heartbeat_last_seen.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(escalation_steps.clone()),
            Box::new(escalation_lateness.clone()),
            Box::new(escalation_acks.clone()),
            Box::new(webhooks.clone()),
            Box::new(notifications.clone()),
            Box::new(send_duration.clone()),
            Box::new(queue_depth.clone()),
            Box::new(oldest_pending.clone()),
            Box::new(permanent_errors.clone()),
            Box::new(failovers.clone()),
            Box::new(build_info),
            Box::new(store_up.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        let retention_pruned = IntCounterVec::new(
            Opts::new(
                "quantwatch_router_retention_pruned_rows_total",
                "Rows deleted by retention, by table.",
            ),
            &["table"],
        )
        .expect("valid metric");
        let retention_batches = prometheus::IntCounter::new(
            "quantwatch_router_retention_batches_total",
            "Delete transactions retention ran (each holds intake back at most once).",
        )
        .expect("valid metric");
        let retention_last_run = Gauge::new(
            "quantwatch_router_retention_last_run_timestamp_seconds",
            "When the last retention run on this store ended successfully, by this replica or another (Unix seconds; 0 before the first).",
        )
        .expect("valid metric");
        let retention_last_duration = Gauge::new(
            "quantwatch_router_retention_last_run_duration_seconds",
            "Duration of the last retention run, pauses between batches included.",
        )
        .expect("valid metric");
        let store_size = IntGauge::new(
            "quantwatch_router_store_size_bytes",
            "Size of the store: SQLite page_count x page_size; PostgreSQL the router's tables with indexes and TOAST.",
        )
        .expect("valid metric");
        let sqlite_heap = IntGauge::new(
            "quantwatch_router_sqlite_heap_bytes",
            "Memory SQLite holds in this process: every connection's page cache, schema and prepared statements (0 with PostgreSQL).",
        )
        .expect("valid metric");
        let heap = IntGaugeVec::new(
            Opts::new(
                "quantwatch_router_heap_bytes",
                "The C allocator's heap: state=in_use (allocated) or free (kept for reuse; its whole pages are given back to the kernel every minute, and then no longer resident).",
            ),
            &["state"],
        )
        .expect("valid metric");
        for c in [
            Box::new(sqlite_heap.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(heap.clone()),
            Box::new(retention_pruned.clone()),
            Box::new(retention_batches.clone()),
            Box::new(retention_last_run.clone()),
            Box::new(retention_last_duration.clone()),
            Box::new(store_size.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        for c in [calls.clone(), call_receipts.clone()] {
            registry
                .register(Box::new(c))
                .expect("metric names are unique");
        }
        for o in WEBHOOK_OUTCOMES {
            webhooks.with_label_values(&[o]);
        }
        Metrics {
            registry,
            webhooks,
            notifications,
            send_duration,
            queue_depth,
            oldest_pending,
            permanent_errors,
            failovers,
            store_up,
            escalation_steps,
            escalation_lateness,
            escalation_acks,
            calls,
            call_receipts,
            heartbeat_last_seen,
            reload: std::sync::Arc::new(quantwatch_web::reload::ReloadStatus::new()),
            retention_pruned,
            retention_batches,
            retention_last_run,
            retention_last_duration,
            store_size,
            sqlite_heap,
            heap,
        }
    }

    /// Pre-create a channel's series at 0 so rates and alerts work from the first scrape.
    pub fn init_channel(&self, channel: &str) {
        for o in NOTIFICATION_OUTCOMES {
            self.notifications.with_label_values(&[channel, o]);
        }
        self.permanent_errors.with_label_values(&[channel]);
        // An empty histogram (count 0) so latency panels and rules see the channel too.
        self.send_duration.with_label_values(&[channel]);
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        let mut text = String::from_utf8(buf).expect("the text format is UTF-8");
        text.push_str(&self.reload.exposition(RELOAD_PREFIX));
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
