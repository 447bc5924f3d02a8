//! Alerts over the JSON API: `GET /api/v1/alerts` (escalated alerts with their chain, by page),
//! `POST /api/v1/alerts/{fingerprint}/ack` and `GET /api/v1/alerts/{fingerprint}/history`
//! (by page, like the listings).
//! The HTML pages (status page, ack-link pages) are in `pages`.
//!
//! An acknowledgement records the authenticated caller (`auth::Principal`, set by the web
//! layer); a typed name is only the fallback when there is none. The ack endpoint also takes
//! the status page's form post (`application/x-www-form-urlencoded`), so the page's button
//! needs no signed token: it is an authenticated request like any other API call.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequest, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::{Shared, listing};
use crate::store::{AckOutcome, AckRequest, AckVia, Cursor, HistoryEntry, HistoryItem, HistoryKey};
use crate::web::auth::{AuthMethod, Principal};

/// Largest ack request body: a name, nothing more.
pub const MAX_ACK_BODY: usize = 4096;
/// Longest name recorded as the acknowledger.
pub const MAX_BY_CHARS: usize = 128;

/// The connection's peer address, when the server provides it.
pub type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// The client address recorded in the audit trail: the TCP peer. Behind a reverse proxy that
/// is the proxy; `X-Forwarded-For` is not read (anyone can send it).
pub(crate) fn client_address(peer: &Peer) -> Option<String> {
    peer.as_ref()
        .map(|Extension(ConnectInfo(a))| a.ip().to_string())
}

fn json_err(status: StatusCode, error: &str, reason: String) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "reason": reason})),
    )
        .into_response()
}

pub(crate) fn store_unavailable(e: &crate::store::StoreError) -> Response {
    tracing::warn!(error = %e, "store unavailable");
    json_err(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "cannot reach the store; retry".into(),
    )
}

/// The query of `GET /api/v1/alerts` and of an alert's history.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/alerts?limit=&cursor=`: one page of the firing escalated alerts, oldest chain
/// first, `{"alerts": [...], "next": cursor | null}` (see `web::listing`).
pub async fn list(
    State(app): State<Arc<Shared>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let (limit, cursor) = match listing::query(q)
        .and_then(|q| listing::page_params(q.limit.as_deref(), q.cursor.as_deref()))
    {
        Ok(v) => v,
        Err(reason) => return listing::bad_request(reason),
    };
    match app.store.alerts_page(cursor.as_ref(), limit).await {
        Ok(page) => axum::Json(listing::page_json("alerts", &page)).into_response(),
        Err(e) => store_unavailable(&e),
    }
}

/// `GET /api/v1/alerts/{fingerprint}/history?limit=&cursor=`: one page of every event, step,
/// notification, call and acknowledgement of the alert (all its firings): the newest `limit`
/// entries before the cursor, oldest first, `{"fingerprint", "history": [...], "next"}`
/// where `next` leads further back (see `store::history`). 404 for an alert never received
/// or whose firings retention deleted (its audit rows may outlive it, in the audit trail,
/// not here).
pub async fn history(
    State(app): State<Arc<Shared>>,
    Path(fingerprint): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let params = listing::query(q)
        .and_then(|q| listing::page_params(q.limit.as_deref(), q.cursor.as_deref()))
        .and_then(|(limit, cursor)| {
            let before = cursor.as_ref().map(HistoryKey::from_cursor).transpose();
            before.map(|b| (limit, b)).map_err(|e| e.to_string())
        });
    let (limit, before) = match params {
        Ok(v) => v,
        Err(reason) => return listing::bad_request(reason),
    };
    match app
        .store
        .history_page(&fingerprint, before.as_ref(), limit)
        .await
    {
        Ok(None) => json_err(
            StatusCode::NOT_FOUND,
            "not_found",
            "no alert with this fingerprint is stored: never received, or resolved longer ago than retention.resolved_after and pruned".into(),
        ),
        Ok(Some(page)) => {
            let live = app.live();
            let entries: Vec<HistoryEntry> = page
                .items
                .into_iter()
                .map(|item| match item {
                    HistoryItem::Entry(e) => e,
                    // A call of a voice step, with its outcome ("called ann: no answer 03:02:11").
                    HistoryItem::Call(c) => crate::render::calls::history_entry(
                        &c,
                        &live.plan.directory,
                        live.plan.timezone,
                    ),
                })
                .collect();
            Json(json!({
                "fingerprint": fingerprint,
                "history": entries,
                "next": page.next.as_ref().map(Cursor::encode),
            }))
            .into_response()
        }
        Err(e) => store_unavailable(&e),
    }
}

/// The ack body: JSON from the API, a form from the status page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// Who acknowledges, when the caller is not authenticated as a person.
    by: Option<String>,
    /// The firing meant; when set, a later firing of the same alert is not acknowledged.
    starts_at: Option<i64>,
}

pub(crate) fn valid_by(by: &str) -> Result<String, String> {
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

/// Who acknowledges: the authenticated caller, else the typed name.
pub(crate) fn acker(principal: Option<&Principal>, typed: Option<&str>) -> Result<String, String> {
    match principal {
        // A person logged in acks as themselves, whatever the form says.
        Some(p) if p.method == AuthMethod::BasicAuth => valid_by(&p.name),
        // The API token is a machine acting for the name it sends.
        Some(p) => valid_by(typed.unwrap_or(&p.name)),
        None => valid_by(typed.unwrap_or("")),
    }
}

/// Acknowledge and wake the workers so the announcement goes out now.
pub(crate) async fn do_ack(
    app: &Shared,
    req: &AckRequest<'_>,
) -> Result<AckOutcome, crate::store::StoreError> {
    let out = app
        .store
        .acknowledge(req, crate::core::clock::now_ms())
        .await?;
    if let AckOutcome::Acked { announced } = &out {
        app.metrics.escalation_acks.inc();
        let live = app.live();
        for ch in announced {
            if let Some(w) = live.wake.get(ch) {
                w.notify_one();
            }
        }
        tracing::info!(fingerprint = req.fingerprint, by = req.by, via = req.via.as_str(),
            address = req.address.as_deref().unwrap_or("-"), channels = ?announced,
            "alert acknowledged; escalation stopped");
    }
    Ok(out)
}

/// `POST /api/v1/alerts/{fingerprint}/ack` with `{"by": "name", "starts_at": ms}` (both
/// optional when authenticated), or the status page's form (`starts_at=ms`).
pub async fn ack_api(
    State(app): State<Arc<Shared>>,
    headers: HeaderMap,
    principal: Option<Extension<Principal>>,
    peer: Peer,
    Path(fingerprint): Path<String>,
    body: Body,
) -> Response {
    let from_page = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let bytes = match axum::body::to_bytes(body, MAX_ACK_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return json_err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body exceeds {MAX_ACK_BODY} bytes"),
            );
        }
    };
    let parsed = if from_page {
        // axum's own form decoding, on the bytes already read under the limit.
        let req = axum::http::Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(bytes))
            .map_err(|e| e.to_string());
        match req {
            Ok(req) => axum::Form::<AckBody>::from_request(req, &())
                .await
                .map(|axum::Form(b)| b)
                .map_err(|e| e.body_text()),
            Err(e) => Err(e),
        }
    } else {
        serde_json::from_slice::<AckBody>(&bytes)
            .map_err(|e| format!("body must be {{\"by\": \"name\"}}: {e}"))
    };
    let principal = principal.map(|Extension(p)| p);
    let (by, starts_at) = match parsed
        .and_then(|b| acker(principal.as_ref(), b.by.as_deref()).map(|by| (by, b.starts_at)))
    {
        Ok(v) => v,
        Err(reason) if from_page => {
            return crate::web::page::message(StatusCode::BAD_REQUEST, "Bad request", &reason);
        }
        Err(reason) => return json_err(StatusCode::BAD_REQUEST, "bad_request", reason),
    };
    let req = AckRequest {
        fingerprint: &fingerprint,
        starts_at,
        by: &by,
        via: if from_page { AckVia::Page } else { AckVia::Api },
        address: client_address(&peer),
    };
    let out = do_ack(&app, &req).await;
    if from_page {
        return crate::web::page::ack_result(out, &by);
    }
    match out {
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
        Ok(AckOutcome::OtherFiring) => json_err(
            StatusCode::CONFLICT,
            "other_firing",
            "the alert fires again with another startsAt; nothing was acknowledged".into(),
        ),
        Err(e) => store_unavailable(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authenticated_user_wins_over_a_typed_name() {
        let alice = Principal {
            name: "alice".into(),
            method: AuthMethod::BasicAuth,
        };
        assert_eq!(acker(Some(&alice), Some("mallory")), Ok("alice".into()));
        assert_eq!(acker(Some(&alice), None), Ok("alice".into()));
        assert_eq!(acker(None, Some(" bob ")), Ok("bob".into()));
        assert!(acker(None, None).is_err());
        let token = Principal {
            name: "api-token".into(),
            method: AuthMethod::ApiToken,
        };
        assert_eq!(acker(Some(&token), Some("pagerbot")), Ok("pagerbot".into()));
        assert_eq!(acker(Some(&token), None), Ok("api-token".into()));
        assert!(acker(None, Some("a\nb")).is_err(), "no control characters");
    }
}
