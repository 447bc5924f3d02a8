//! Every annotation the router sets on an event itself. They all start with
//! [`INTERNAL_PREFIX`], which the intake drops from incoming alerts: from outside they would
//! announce an ack that never happened or inject a chart.

/// Prefix of every annotation the router uses internally; refused from outside at intake.
pub const INTERNAL_PREFIX: &str = "quantwatch_";

/// Who acknowledged: makes an event an acknowledgement announcement (set by the store).
pub const ACKED_BY: &str = "quantwatch_acked_by";
/// When it was acknowledged, Unix milliseconds.
pub const ACKED_AT: &str = "quantwatch_acked_at";

/// Where the alert's Alertmanager lives (the webhook's `externalURL`); silence links fall back
/// to its form.
pub const EXTERNAL_URL: &str = "quantwatch_external_url";

/// Marks a rota notice (handoff, gap): not an alert, never escalated, never acked.
pub const NOTICE: &str = "quantwatch_notice";
/// Marks an ack reminder; the value is who acknowledged.
pub const REMINDER: &str = "quantwatch_reminder";

/// The chart image's URL (channels whose servers fetch it).
pub const CHART_URL: &str = "quantwatch_chart_url";
/// The chart's `Content-ID` in an email.
pub const CHART_CID: &str = "quantwatch_chart_cid";
/// The one line a message says when chart or context are missing.
pub const CHART_NOTE: &str = "quantwatch_chart_note";
/// The context table as a JSON list of `[title, value]` pairs.
pub const CONTEXT: &str = "quantwatch_context";
