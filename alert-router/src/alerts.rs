//! Active escalated alerts over HTTP: the JSON API (`GET /api/v1/alerts`, `POST
//! /api/v1/alerts/{fingerprint}/ack`), the ack-link pages (`GET /ack/{token}` only shows a
//! confirmation form, so a link-preview bot fetching it never acknowledges; `POST /ack/{token}`
//! acknowledges) and the status page at `/`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::ack::{self, TokenError};
use crate::store::{AckOutcome, AlertView};
use crate::template::format_time;

/// Largest ack request body: a name, nothing more.
pub const MAX_ACK_BODY: usize = 4096;
/// Longest name recorded as the acknowledger.
const MAX_BY_CHARS: usize = 128;

fn json_err(status: StatusCode, error: &str, reason: String) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "reason": reason})),
    )
        .into_response()
}

fn store_unavailable(e: &crate::store::StoreError) -> Response {
    tracing::warn!(error = %e, "store unavailable");
    json_err(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "cannot reach the store; retry".into(),
    )
}

/// `GET /api/v1/alerts`
pub async fn list(State(app): State<Arc<App>>) -> Response {
    match app.store.list_alerts().await {
        Ok(alerts) => axum::Json(json!({ "alerts": alerts })).into_response(),
        Err(e) => store_unavailable(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
}

fn valid_by(by: &str) -> Result<String, String> {
    let by = by.trim();
    if by.is_empty() {
        return Err("\"by\" must name who acknowledges".into());
    }
    if by.chars().count() > MAX_BY_CHARS || by.chars().any(char::is_control) {
        return Err(format!(
            "\"by\" must be at most {MAX_BY_CHARS} printable characters"
        ));
    }
    Ok(by.to_string())
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, Box<Response>> {
    axum::body::to_bytes(body, MAX_ACK_BODY).await.map_err(|_| {
        Box::new(json_err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body exceeds {MAX_ACK_BODY} bytes"),
        ))
    })
}

/// Acknowledge and wake the workers so the announcement goes out now.
async fn do_ack(
    app: &App,
    fingerprint: &str,
    by: &str,
) -> Result<AckOutcome, crate::store::StoreError> {
    let out = app
        .store
        .ack(fingerprint, by, crate::worker::now_ms())
        .await?;
    if let AckOutcome::Acked { announced } = &out {
        app.metrics.escalation_acks.inc();
        let live = app.live();
        for ch in announced {
            if let Some(w) = live.wake.get(ch) {
                w.notify_one();
            }
        }
        tracing::info!(fingerprint, by, channels = ?announced, "alert acknowledged; escalation stopped");
    }
    Ok(out)
}

/// `POST /api/v1/alerts/{fingerprint}/ack` with `{"by": "name"}`.
pub async fn ack_api(
    State(app): State<Arc<App>>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    Path(fingerprint): Path<String>,
    body: Body,
) -> Response {
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let by = match serde_json::from_slice::<AckBody>(&bytes)
        .map_err(|e| format!("body must be {{\"by\": \"name\"}}: {e}"))
        .and_then(|b| valid_by(&b.by))
    {
        Ok(by) => by,
        Err(reason) => return json_err(StatusCode::BAD_REQUEST, "bad_request", reason),
    };
    // A logged-in person acks as themselves; the API token acts for the name it sends.
    let by = match principal {
        Some(axum::Extension(p)) if p.method == crate::auth::AuthMethod::BasicAuth => p.name,
        _ => by,
    };
    match do_ack(&app, &fingerprint, &by).await {
        Ok(AckOutcome::Acked { announced }) => axum::Json(
            json!({"status": "acked", "fingerprint": fingerprint, "by": by, "announced": announced}),
        )
        .into_response(),
        Ok(AckOutcome::AlreadyAcked { by, at }) => (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": "already_acked", "reason": format!("already acknowledged by {by}"), "by": by, "at": at})),
        )
            .into_response(),
        Ok(AckOutcome::NotActive) => json_err(
            StatusCode::NOT_FOUND,
            "not_active",
            format!("no firing escalated alert has fingerprint {fingerprint:?}"),
        ),
        Err(e) => store_unavailable(&e),
    }
}

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        [("cache-control", "no-store"), ("x-robots-tag", "noindex")],
        Html(format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>",
            t = esc(title)
        )),
    )
        .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1em;max-width:48em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ccc;padding:.4em;text-align:left;vertical-align:top}\
button{font-size:1.1em;padding:.5em 1em}input{font-size:1.1em;padding:.4em}\
@media(max-width:600px){table,tbody,tr,td,th{display:block}thead{display:none}td{border:0}tr{border-bottom:2px solid #999;padding:.5em 0}}";

fn token_problem(e: &TokenError) -> Response {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        _ => StatusCode::FORBIDDEN,
    };
    page(
        status,
        "Ack link refused",
        &format!("<p>{}. Nothing was acknowledged.</p>", esc(&e.to_string())),
    )
}

fn verify_token(app: &App, token: &str) -> Result<String, Box<Response>> {
    let live = app.live();
    let Some(secret) = &live.config.ack_secret else {
        return Err(Box::new(page(
            StatusCode::NOT_FOUND,
            "Ack links are disabled",
            "<p>ROUTER_ACK_SECRET is not set.</p>",
        )));
    };
    ack::verify(secret, token, crate::worker::now_ms() / 1000).map_err(|e| {
        tracing::warn!(error = %e, "ack link refused");
        Box::new(token_problem(&e))
    })
}

/// `GET /ack/{token}`: a confirmation page; never acknowledges.
pub async fn ack_link_page(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let fp = match verify_token(&app, &token) {
        Ok(fp) => fp,
        Err(r) => return *r,
    };
    let alert = match app.store.list_alerts().await {
        Ok(list) => list.into_iter().find(|a| a.fingerprint == fp),
        Err(e) => return store_unavailable(&e),
    };
    let Some(a) = alert else {
        return page(
            StatusCode::NOT_FOUND,
            "Alert not active",
            "<p>This alert is resolved or has no running escalation.</p>",
        );
    };
    if let Some(by) = &a.acked_by {
        return page(
            StatusCode::OK,
            "Already acknowledged",
            &format!(
                "<p><b>{}</b> was acknowledged by {} at {}.</p>",
                esc(&a.alertname),
                esc(by),
                esc(&format_time(a.acked_at.unwrap_or(0)))
            ),
        );
    }
    page(
        StatusCode::OK,
        "Acknowledge this alert?",
        &format!(
            "<p><b>{}</b> ({}) {}</p><form method=\"post\" action=\"/ack/{}\">\
             <p><label>Your name <input name=\"by\" required maxlength=\"{MAX_BY_CHARS}\" autocomplete=\"name\"></label></p>\
             <p><button type=\"submit\">Acknowledge</button></p></form>",
            esc(&a.alertname),
            esc(&a.severity),
            esc(&a.summary),
            esc(&token)
        ),
    )
}

/// The form of the ack-link page.
#[derive(Deserialize)]
pub struct AckForm {
    by: Option<String>,
}

/// `POST /ack/{token}` (form `by=name`): acknowledges.
pub async fn ack_link_post(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    form: Result<axum::extract::Form<AckForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let fp = match verify_token(&app, &token) {
        Ok(fp) => fp,
        Err(r) => return *r,
    };
    let form: AckForm = match form {
        Ok(axum::extract::Form(f)) => f,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                &format!("<p>{}</p>", esc(&e.body_text())),
            );
        }
    };
    let by = match valid_by(form.by.as_deref().unwrap_or("")) {
        Ok(b) => b,
        Err(reason) => return page(StatusCode::BAD_REQUEST, "Bad request", &esc(&reason)),
    };
    match do_ack(&app, &fp, &by).await {
        Ok(AckOutcome::Acked { .. }) => page(
            StatusCode::OK,
            "Acknowledged",
            &format!(
                "<p>Acknowledged by {}. The remaining escalation steps are cancelled.</p><p><a href=\"/\">Status</a></p>",
                esc(&by)
            ),
        ),
        Ok(AckOutcome::AlreadyAcked { by, at }) => page(
            StatusCode::CONFLICT,
            "Already acknowledged",
            &format!(
                "<p>Already acknowledged by {} at {}.</p>",
                esc(&by),
                esc(&format_time(at))
            ),
        ),
        Ok(AckOutcome::NotActive) => page(
            StatusCode::NOT_FOUND,
            "Alert not active",
            "<p>This alert is resolved or has no running escalation.</p>",
        ),
        Err(e) => store_unavailable(&e),
    }
}

fn status_row(a: &AlertView, ack_url: Option<String>) -> String {
    let notified: Vec<String> = a
        .notified
        .iter()
        .map(|n| {
            format!(
                "step {} {} ({})",
                n.step,
                esc(&n.channel),
                esc(&format_time(n.sent_at))
            )
        })
        .collect();
    let next = match (a.next_step, a.next_step_at) {
        (Some(s), Some(t)) => format!("step {s} at {}", esc(&format_time(t))),
        _ => "none".into(),
    };
    let ack = match (&a.acked_by, ack_url) {
        (Some(by), _) => format!(
            "acknowledged by {} at {}",
            esc(by),
            esc(&format_time(a.acked_at.unwrap_or(0)))
        ),
        (None, Some(url)) => format!(
            "<form method=\"post\" action=\"{}\"><input name=\"by\" placeholder=\"your name\" required maxlength=\"{MAX_BY_CHARS}\"> <button type=\"submit\">Ack</button></form>",
            esc(&url)
        ),
        (None, None) => "(set ROUTER_ACK_SECRET for ack buttons)".into(),
    };
    format!(
        "<tr><td><b>{}</b><br>{} · {}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&a.alertname),
        esc(&a.severity),
        esc(&a.policy),
        esc(&a.summary),
        a.current_step.map_or("-".to_string(), |s| s.to_string()),
        next,
        if notified.is_empty() {
            "nobody yet".into()
        } else {
            notified.join("<br>")
        },
        ack
    )
}

/// `GET /`: active escalated alerts. Shows channel names, not the contacts behind them (the
/// page needs no login, and phone numbers are personal data).
pub async fn status_page(State(app): State<Arc<App>>) -> Response {
    let alerts = match app.store.list_alerts().await {
        Ok(a) => a,
        Err(e) => return store_unavailable(&e),
    };
    let live = app.live();
    let expires = crate::worker::now_ms() / 1000 + 3600;
    let rows: String = alerts
        .iter()
        .map(|a| {
            let url = live
                .config
                .ack_secret
                .as_ref()
                .map(|s| format!("/ack/{}", ack::token(s, &a.fingerprint, expires)));
            status_row(a, url)
        })
        .collect();
    let body = if alerts.is_empty() {
        "<p>No active escalations.</p>".to_string()
    } else {
        format!(
            "<table><thead><tr><th>Alert</th><th>Step</th><th>Next step</th><th>Notified</th><th>Ack</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    page(
        StatusCode::OK,
        &format!("quantwatch-alert-router: {} active", alerts.len()),
        &format!(
            "{body}<p><small>{} · <a href=\"/metrics\">metrics</a> · <code>POST /webhook/alertmanager</code></small></p>",
            env!("CARGO_PKG_VERSION")
        ),
    )
}
