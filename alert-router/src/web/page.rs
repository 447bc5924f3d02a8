//! Rendering the HTML pages: the embedded minijinja templates (HTML auto-escaping), the
//! stylesheet, a one-paragraph message page and the answer to an acknowledgement.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use serde_json::{Value, json};

use crate::render::template::format_time;
use crate::store::{AckOutcome, StoreError};

static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Names end in .html: minijinja's default turns HTML auto-escaping on for them.
    for (name, src) in [
        ("layout.html", include_str!("../../templates/layout.html")),
        ("message.html", include_str!("../../templates/message.html")),
        (
            "ack_link.html",
            include_str!("../../templates/ack_link.html"),
        ),
        ("status.html", include_str!("../../templates/status.html")),
        (
            "silence_link.html",
            include_str!("../../templates/silence_link.html"),
        ),
    ] {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("embedded template {name}: {e}"));
    }
    env
});

/// The stylesheet the pages link (`GET /static/style.css`).
pub const STYLE: &str = include_str!("../../templates/style.css");

/// `GET /static/style.css`
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

pub fn render(status: StatusCode, name: &str, ctx: Value) -> Response {
    match PAGES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::HeaderName::from_static("x-robots-tag"), "noindex"),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "cannot render page");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render page").into_response()
        }
    }
}

/// A page with a title and one paragraph of text.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    render(
        status,
        "message.html",
        json!({"title": title, "text": text, "status_link": false}),
    )
}

pub fn store_unavailable(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "store unavailable");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "Cannot reach the alert store; try again.",
    )
}

/// The page answering an acknowledgement from a link or the status page.
pub fn ack_result(out: Result<AckOutcome, StoreError>, by: &str) -> Response {
    match out {
        Ok(AckOutcome::Acked { .. }) => render(
            StatusCode::OK,
            "message.html",
            json!({"title": "Acknowledged", "status_link": true,
                   "text": format!("Acknowledged by {by}. The remaining escalation steps are cancelled.")}),
        ),
        Ok(AckOutcome::AlreadyAcked { by, at }) => message(
            StatusCode::CONFLICT,
            "Already acknowledged",
            &format!("Already acknowledged by {by} at {}.", format_time(at)),
        ),
        Ok(AckOutcome::NotActive) => not_active(),
        Ok(AckOutcome::OtherFiring) => other_firing(),
        Err(e) => store_unavailable(&e),
    }
}

pub fn not_active() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Alert not active",
        "This alert is resolved or has no running escalation.",
    )
}

pub fn other_firing() -> Response {
    message(
        StatusCode::GONE,
        "Ack link refused",
        "This link is for an earlier firing of the alert, which fires again since. Nothing was acknowledged.",
    )
}
