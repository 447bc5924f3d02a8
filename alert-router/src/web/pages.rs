//! The HTML pages: the status page at `/` (firing alerts by page, escalation state, recent
//! resolutions, the acknowledgement trail) and the ack-link pages (`GET /ack/{token}` only
//! shows a confirmation form, so a link-preview bot fetching it never acknowledges; `POST
//! /ack/{token}` acknowledges).
//!
//! Pages are minijinja templates (`alert-router/templates/*.html`, embedded) with HTML
//! auto-escaping, and carry no inline script or style (the stylesheet is `/static/style.css`),
//! so they work under `Content-Security-Policy: default-src 'none'; style-src 'self'`. The
//! status page never mints signed links: its ack buttons post to the authenticated API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::page::{ack_result, message, not_active, other_firing, render, store_unavailable};
use crate::core::signing::{self, Purpose, TokenError};
use crate::core::text::path_segment;
use crate::render::template::format_time;
use crate::store::{AckRequest, AckVia, AlertView, Cursor};
use crate::web::alerts::{MAX_BY_CHARS, Peer, acker, client_address, do_ack};
use crate::web::auth::Principal;

/// Resolutions shown on the status page.
const RECENT_RESOLVED: i64 = 20;
/// Audit entries shown on the status page (the history API has all of an alert's).
const RECENT_ACTIVITY: i64 = 50;
/// Calls shown on the status page: those of the last day, at most this many.
const RECENT_CALLS_MS: i64 = 86_400_000;
const MAX_CALLS: i64 = 1000;
/// Firing alerts per page of the status page; the rest are "N more" behind a next-page link.
pub const FIRING_PAGE: i64 = 100;
/// Counts of firing alerts stop here ("10000+"): a count reads one index entry per alert, so
/// even the count of a storm stays bounded.
pub const COUNT_CAP: i64 = 10_000;

fn token_problem(e: &TokenError) -> Response {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        _ => StatusCode::FORBIDDEN,
    };
    message(
        status,
        "Ack link refused",
        &format!("{e}. Nothing was acknowledged."),
    )
}

fn verify_token(app: &Shared, token: &str) -> Result<signing::Link, Box<Response>> {
    let live = app.live();
    let Some(secret) = &live.ack_secret else {
        return Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Ack links are disabled",
            "ROUTER_ACK_SECRET is not set.",
        )));
    };
    signing::verify(
        secret,
        Purpose::Ack,
        token,
        crate::core::clock::now_ms() / 1000,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "ack link refused");
        Box::new(token_problem(&e))
    })
}

/// `GET /ack/{token}`: a confirmation page; never acknowledges.
pub async fn ack_link_page(State(app): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let link = match verify_token(&app, &token) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let alert = match app
        .store
        .alert_views(std::slice::from_ref(&link.fingerprint))
        .await
    {
        Ok(list) => list.into_iter().find(|a| a.fingerprint == link.fingerprint),
        Err(e) => return store_unavailable(&e),
    };
    let Some(a) = alert else {
        return not_active();
    };
    if a.starts_at != link.starts_at {
        return other_firing();
    }
    if let Some(by) = &a.acked_by {
        return message(
            StatusCode::OK,
            "Already acknowledged",
            &format!(
                "{} was acknowledged by {by} at {}.",
                a.alertname,
                format_time(a.acked_at.unwrap_or(0))
            ),
        );
    }
    render(
        StatusCode::OK,
        "ack_link.html",
        json!({
            "title": "Acknowledge this alert?",
            "alert": a,
            "since": format_time(a.starts_at),
            "token": path_segment(&token),
            "max_by": MAX_BY_CHARS,
        }),
    )
}

/// The form of the ack-link page.
#[derive(Deserialize)]
pub struct AckForm {
    by: Option<String>,
}

/// `POST /ack/{token}` (form `by=name`): acknowledges the firing the link was made for.
pub async fn ack_link_post(
    State(app): State<Arc<Shared>>,
    principal: Option<Extension<Principal>>,
    peer: Peer,
    Path(token): Path<String>,
    form: Result<axum::extract::Form<AckForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let link = match verify_token(&app, &token) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let form: AckForm = match form {
        Ok(axum::extract::Form(f)) => f,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Bad request", &e.body_text()),
    };
    // A link is anonymous: the typed name is all there is, unless someone logged in uses it.
    let principal = principal.map(|Extension(p)| p);
    let by = match acker(principal.as_ref(), form.by.as_deref()) {
        Ok(b) => b,
        Err(reason) => return message(StatusCode::BAD_REQUEST, "Bad request", &reason),
    };
    let req = AckRequest {
        fingerprint: &link.fingerprint,
        starts_at: Some(link.starts_at),
        by: &by,
        via: AckVia::Link,
        address: client_address(&peer),
    };
    ack_result(do_ack(&app, &req).await, &by)
}

/// One firing alert as the status page's row shows it.
fn firing_row(a: &crate::store::CurrentAlert, esc: Option<&AlertView>) -> Value {
    let esc = esc.filter(|v| v.starts_at == a.starts_at);
    let notified: Vec<String> = esc
        .map(|v| {
            v.notified
                .iter()
                .map(|n| format!("step {} {} ({})", n.step, n.channel, format_time(n.sent_at)))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "fingerprint_path": path_segment(&a.fingerprint),
        "alertname": a.alertname,
        "severity": a.severity,
        "summary": a.summary,
        "starts_at": a.starts_at,
        "since": format_time(a.starts_at),
        "esc": esc.map(|v| json!({
            "policy": v.policy,
            "current_step": v.current_step,
            "next": match (v.next_step, v.next_step_at) {
                (Some(s), Some(t)) => Some(format!("step {s} at {}", format_time(t))),
                _ => None,
            },
        })),
        "notified": notified,
        "acked_by": esc.and_then(|v| v.acked_by.clone()),
        "acked_at": esc.and_then(|v| v.acked_at).map(format_time),
    })
}

/// The status page's query: `cursor`, where its firing list continues (the next-page link).
#[derive(Deserialize)]
pub struct StatusQuery {
    cursor: Option<String>,
}

/// A bounded count as people read it: "10000+" at the cap.
fn count_text(n: i64) -> String {
    if n >= COUNT_CAP {
        format!("{COUNT_CAP}+")
    } else {
        n.to_string()
    }
}

/// `GET /?cursor=`: the firing alerts (escalated or not) by page of [`FIRING_PAGE`], oldest
/// first, with their escalation state, then recent resolutions and the latest
/// acknowledgements with who, how and from where. Each part is one indexed query of at most a
/// page (the escalation of the page's alerts in one batch), so the page costs the same with
/// ten alerts firing or a storm of thousands, and a year of history behind them. Shows channel
/// names, not the contacts behind them (phone numbers are personal data).
pub async fn status_page(State(app): State<Arc<Shared>>, Query(q): Query<StatusQuery>) -> Response {
    let cursor = match q.cursor.as_deref().map(Cursor::parse).transpose() {
        Ok(c) => c,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Bad request", &e.to_string()),
    };
    let (page, total, resolved, audit) = match tokio::try_join!(
        app.store.firing_page(cursor.as_ref(), FIRING_PAGE),
        app.store.count_firing(None, COUNT_CAP),
        app.store.list_current("resolved", RECENT_RESOLVED),
        app.store.recent_audit(RECENT_ACTIVITY),
    ) {
        Ok(v) => v,
        Err(e) => return store_unavailable(&e),
    };
    let firing = page.items;
    let on_page: Vec<String> = firing.iter().map(|a| a.fingerprint.clone()).collect();
    let mut audited: Vec<String> = audit.iter().map(|e| e.fingerprint.clone()).collect();
    audited.sort_unstable();
    audited.dedup();
    let more = async {
        match &page.next {
            Some(next) => app.store.count_firing(Some(next), COUNT_CAP).await,
            None => Ok(0),
        }
    };
    let (escalated, audited, more) = match tokio::try_join!(
        app.store.alert_views(&on_page),
        app.store.current_of(&audited),
        more,
    ) {
        Ok(v) => v,
        Err(e) => return store_unavailable(&e),
    };
    let silences = match app
        .store
        .active_silences(crate::core::clock::now_ms(), 200)
        .await
    {
        Ok(s) => crate::web::silences::status_rows(&s),
        Err(e) => return store_unavailable(&e),
    };
    let by_fp: HashMap<&str, &AlertView> = escalated
        .iter()
        .map(|v| (v.fingerprint.as_str(), v))
        .collect();
    let names: HashMap<&str, &str> = audited
        .iter()
        .map(|a| (a.fingerprint.as_str(), a.alertname.as_str()))
        .collect();
    // Calls of voice steps, by firing: "called ann: no answer 03:02:11".
    let calls = app
        .store
        .recent_calls(crate::core::clock::now_ms() - RECENT_CALLS_MS, MAX_CALLS)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read recent calls");
            Vec::new()
        });
    let live = app.live();
    let mut calls_of: HashMap<(&str, i64), Vec<String>> = HashMap::new();
    for c in &calls {
        calls_of
            .entry((c.fingerprint.as_str(), c.starts_at))
            .or_default()
            .push(crate::render::calls::line(
                c,
                &live.plan.directory,
                live.plan.timezone,
            ));
    }
    let rows: Vec<Value> = firing
        .iter()
        .map(|a| {
            let mut row = firing_row(a, by_fp.get(a.fingerprint.as_str()).copied());
            row["calls"] = json!(
                calls_of
                    .get(&(a.fingerprint.as_str(), a.starts_at))
                    .cloned()
                    .unwrap_or_default()
            );
            row
        })
        .collect();
    let resolved: Vec<Value> = resolved
        .iter()
        .map(|a| {
            json!({
                "alertname": a.alertname, "severity": a.severity, "summary": a.summary,
                "since": format_time(a.starts_at),
                "ended": format_time(a.ends_at.unwrap_or(a.updated_at)),
            })
        })
        .collect();
    let activity: Vec<Value> = audit
        .iter()
        .map(|e| {
            json!({
                "at": format_time(e.at),
                "action": e.action,
                "alert": names.get(e.fingerprint.as_str()).copied().unwrap_or(e.fingerprint.as_str()),
                "by": e.by,
                "via": e.via,
                "address": e.address.as_deref().unwrap_or("unknown"),
            })
        })
        .collect();
    let (heartbeats, deadman) = match crate::plan::heartbeat::views(
        &app.live().plan,
        app.store.as_ref(),
        crate::core::clock::now_ms(),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return store_unavailable(&e),
    };
    let heartbeats: Vec<Value> = heartbeats
        .iter()
        .map(|h| json!({"name": h.name, "last_seen": h.last_seen_human, "status": h.status, "window": h.window}))
        .chain(deadman.iter().map(|d| {
            json!({"name": format!("Watchdog from {}", if d.alertmanager == "*" { "any Alertmanager" } else { d.alertmanager.as_str() }),
                   "last_seen": d.last_seen_human, "status": d.status})
        }))
        .collect();
    render(
        StatusCode::OK,
        "status.html",
        json!({
            "title": format!("quantwatch-alert-router: {} firing", count_text(total)),
            "firing": rows,
            "more": (more > 0).then(|| count_text(more)),
            "next": page.next.as_ref().map(Cursor::encode),
            "paged": cursor.is_some(),
            "resolved": resolved,
            "activity": activity,
            "silences": silences,
            "heartbeats": heartbeats,
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_at_its_cap_reads_as_at_least() {
        assert_eq!(count_text(0), "0");
        assert_eq!(count_text(COUNT_CAP - 1), "9999");
        assert_eq!(count_text(COUNT_CAP), "10000+");
    }
}
