//! The pages and API of silences: `GET|POST /silence/{token}` (the link's confirmation form
//! and its POST, anonymous: the signature is the credential), `GET /api/v1/silences` and the
//! status page's `POST /api/v1/silences/{id}/expire` (authenticated; cross-site posts are
//! refused by the web layer like the ack form's).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::core::signing::{self, Purpose, TokenError};
use crate::core::text::path_segment;
use crate::plan::silence::{Length, SilenceError, create, expire};
use crate::render::template::format_time;
use crate::store::{SilenceRecord, StoreError};
use crate::web::alerts::{MAX_BY_CHARS, Peer, acker, client_address};
use crate::web::auth::Principal;
use crate::web::page::{message, render};

fn refused(e: &TokenError) -> Response {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        _ => StatusCode::FORBIDDEN,
    };
    message(
        status,
        "Silence link refused",
        &format!("{e}. Nothing was silenced."),
    )
}

fn store_down(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "store unavailable");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "Cannot reach the alert store; nothing was silenced. Try again.",
    )
}

/// The firing a valid link names, or the page that says why not.
async fn firing(app: &Shared, token: &str) -> Result<AlertEvent, Box<Response>> {
    let live = app.live();
    let Some(secret) = &live.ack_secret else {
        return Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Silence links are disabled",
            "ROUTER_ACK_SECRET is not set.",
        )));
    };
    let link = signing::verify(
        secret,
        Purpose::Silence,
        token,
        crate::core::clock::now_ms() / 1000,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "silence link refused");
        Box::new(refused(&e))
    })?;
    if live.plan.silences.alertmanager_urls.is_empty() {
        return Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Silences are not configured",
            "The router has no alertmanager_urls; silence the alert in Alertmanager.",
        )));
    }
    match app.store.current_event(&link.fingerprint).await {
        Err(e) => Err(Box::new(store_down(&e))),
        Ok(Some(ev))
            if ev.status == crate::core::model::Status::Firing
                && ev.starts_at == link.starts_at =>
        {
            Ok(ev)
        }
        Ok(Some(ev)) if ev.status == crate::core::model::Status::Firing => Err(Box::new(message(
            StatusCode::GONE,
            "Silence link refused",
            "This link is for an earlier firing of the alert, which fires again since. Nothing was silenced.",
        ))),
        Ok(_) => Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Alert not active",
            "This alert is resolved; there is nothing to silence.",
        ))),
    }
}

#[derive(Deserialize)]
pub struct PageQuery {
    duration: Option<String>,
}

/// `GET /silence/{token}`: the confirmation form; never silences.
pub async fn link_page(
    State(app): State<Arc<Shared>>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let ev = match firing(&app, &token).await {
        Ok(ev) => ev,
        Err(r) => return *r,
    };
    let pick = q
        .duration
        .as_deref()
        .and_then(Length::parse)
        .unwrap_or(Length::Hour);
    let choices: Vec<Value> = Length::ALL
        .iter()
        .map(
            |l| json!({"value": l.as_str(), "label": l.label(Language::En), "checked": *l == pick}),
        )
        .collect();
    let labels: Vec<String> = ev.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    render(
        StatusCode::OK,
        "silence_link.html",
        json!({
            "title": "Silence this alert?",
            "alert": {
                "alertname": ev.alertname(),
                "severity": ev.labels.get("severity"),
                "summary": ev.annotations.get("summary"),
            },
            "labels": labels,
            "since": format_time(ev.starts_at),
            "token": path_segment(&token),
            "choices": choices,
            "alertmanagers": app.live().plan.silences.alertmanager_urls.len(),
            "max_by": MAX_BY_CHARS,
        }),
    )
}

/// The form of the silence-link page.
#[derive(Deserialize)]
pub struct SilenceForm {
    by: Option<String>,
    duration: Option<String>,
}

/// `POST /silence/{token}` (form `by`, `duration`): silences the firing the link names.
pub async fn link_post(
    State(app): State<Arc<Shared>>,
    principal: Option<Extension<Principal>>,
    peer: Peer,
    Path(token): Path<String>,
    form: Result<axum::extract::Form<SilenceForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let ev = match firing(&app, &token).await {
        Ok(ev) => ev,
        Err(r) => return *r,
    };
    let form = match form {
        Ok(axum::extract::Form(f)) => f,
        Err(e) => return message(StatusCode::BAD_REQUEST, "Bad request", &e.body_text()),
    };
    let principal = principal.map(|Extension(p)| p);
    let by = match acker(principal.as_ref(), form.by.as_deref()) {
        Ok(b) => b,
        Err(reason) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Bad request",
                &reason.replace("acknowledges", "silences"),
            );
        }
    };
    let Some(length) = form.duration.as_deref().and_then(Length::parse) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "\"duration\" must be 1h, 4h or resolved",
        );
    };
    let live = app.live();
    let created = create(
        &live.plan.silences,
        app.store.as_ref(),
        &ev,
        &by,
        length,
        "link",
        client_address(&peer),
        crate::core::clock::now_ms(),
    );
    match created.await {
        Ok(rec) => render(
            StatusCode::OK,
            "message.html",
            json!({
                "title": "Silenced",
                "status_link": true,
                "text": format!(
                    "{} is silenced by {by} on {} Alertmanager(s) {}.",
                    rec.alertname,
                    rec.alertmanagers.len(),
                    match length {
                        Length::UntilResolved => format!("until it resolves (at the latest {})", format_time(rec.ends_at)),
                        _ => format!("until {}", format_time(rec.ends_at)),
                    }
                ),
            }),
        ),
        Err(e) => failure(&e),
    }
}

fn failure(e: &SilenceError) -> Response {
    match e {
        SilenceError::Alertmanager(am) => {
            tracing::warn!(error = %am, "silence not made");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Alertmanager unreachable",
                &format!("{am}. Nothing was silenced; try again or silence it in Alertmanager."),
            )
        }
        SilenceError::NotConfigured => message(
            StatusCode::NOT_FOUND,
            "Silences are not configured",
            "The router has no alertmanager_urls.",
        ),
        SilenceError::Store(e) => store_down(e),
    }
}

/// Rows of the status page's "Silences" table.
pub fn status_rows(list: &[SilenceRecord]) -> Vec<Value> {
    list.iter()
        .map(|s| {
            json!({
                "id": s.id,
                "alertname": s.alertname,
                "labels": s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
                "by": s.created_by,
                "since": format_time(s.created_at),
                "until": match s.duration.as_str() {
                    "resolved" => format!("resolved (at the latest {})", format_time(s.ends_at)),
                    _ => format_time(s.ends_at),
                },
                "alertmanagers": s.alertmanagers.len(),
            })
        })
        .collect()
}

/// `GET /api/v1/silences`: the active silences the router made.
pub async fn list_api(State(app): State<Arc<Shared>>) -> Response {
    match app
        .store
        .active_silences(crate::core::clock::now_ms(), 1000)
        .await
    {
        Ok(list) => axum::Json(json!({"silences": list})).into_response(),
        Err(e) => crate::web::alerts::store_unavailable(&e),
    }
}

/// `POST /api/v1/silences/{id}/expire`: expire a silence the router made (the status page's
/// button posts a form; JSON callers get JSON). Records the authenticated caller.
pub async fn expire_api(
    State(app): State<Arc<Shared>>,
    headers: HeaderMap,
    principal: Option<Extension<Principal>>,
    peer: Peer,
    Path(id): Path<i64>,
) -> Response {
    let from_page = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let reply = |status: StatusCode, error: &str, text: String| {
        if from_page {
            message(status, "Silence", &text)
        } else {
            (status, axum::Json(json!({"error": error, "reason": text}))).into_response()
        }
    };
    let by = match principal {
        Some(Extension(p)) => p.name,
        None => return reply(StatusCode::UNAUTHORIZED, "unauthorized", "log in".into()),
    };
    let list = match app
        .store
        .active_silences(crate::core::clock::now_ms(), 1000)
        .await
    {
        Ok(l) => l,
        Err(e) => {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("cannot read the store: {e}"),
            );
        }
    };
    let Some(rec) = list.into_iter().find(|s| s.id == id) else {
        return reply(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no active silence {id} made by the router"),
        );
    };
    let via = if from_page { "page" } else { "api" };
    let live = app.live();
    let expired = expire(
        &live.plan.silences,
        app.store.as_ref(),
        &rec,
        &by,
        via,
        client_address(&peer),
        crate::core::clock::now_ms(),
    );
    match expired.await {
        Ok(_) if from_page => render(
            StatusCode::OK,
            "message.html",
            json!({"title": "Silence expired", "status_link": true,
                   "text": format!("The silence of {} is expired by {by}; Alertmanager notifies again.", rec.alertname)}),
        ),
        Ok(_) => axum::Json(json!({"status": "expired", "id": id, "by": by})).into_response(),
        Err(SilenceError::Alertmanager(e)) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "alertmanager_unreachable",
            format!("{e}. The silence stays active; try again."),
        ),
        Err(e) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
    }
}
