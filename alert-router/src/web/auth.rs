//! Who is asking. The web layer authenticates the status page, history pages and `/api/v1/*`
//! (a `basic_auth_users` login or the `ROUTER_API_TOKEN` bearer) and inserts a [`Principal`]
//! into the request's extensions, so handlers record *who* acknowledged or silenced without
//! trusting a name typed into a form.

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A user of the web config's `basic_auth_users` (a human in a browser).
    BasicAuth,
    /// The `ROUTER_API_TOKEN` bearer (a machine).
    ApiToken,
}

/// The authenticated caller of a protected route (a request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The basic-auth user name, or `"api-token"` for the bearer.
    pub name: String,
    pub method: AuthMethod,
}

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use quantwatch_web::auth::{basic_credentials, bearer_token, secrets_equal};
use serde_json::json;

use super::Shared;

/// The realm browsers show in their login prompt.
pub const REALM: &str = "quantwatch-alert-router";

/// Routes anyone may call. Everything else — the status page, `/api/v1/*`, history pages and
/// any route added later — needs a login: the list is of exceptions, so a new route is
/// protected unless someone decides otherwise here.
/// - `/healthz`, `/readyz`: probes of orchestrators and load balancers, which hold no
///   credentials; they reveal only "up".
/// - `/metrics`: Prometheus scrapes it like every exporter; it carries counts and queue ages,
///   never alert text (labels are channel names and outcomes).
/// - `/webhook/alertmanager`: guarded by its own `ROUTER_WEBHOOK_TOKEN` (see `intake`).
/// - `/ack/`, `/silence/`, `/charts/`: signed, expiring links; the signature is the
///   credential, so a phone opening a link from a chat message needs no login.
/// - `/static/`: the stylesheet those anonymous pages load (the CSP forbids inline style);
///   fixed files, no alert content.
/// - `/runbooks/`: sections of the runbook document built into the binary; no alert data, and
///   a runbook link from a message must open on a phone without a login.
/// - `/callbacks/`: vendors' call-status pushes (Aliyun voice receipts). The vendor holds no
///   login and signs nothing; the handler checks the secret token that ends the configured
///   callback URL (`callback_token`), so only the vendor, which was given that URL, gets in.
pub fn is_anonymous(path: &str) -> bool {
    // No dot segments: what the gate sees is what the route table matches, and neither
    // normalises `..`, but a proxy in front might.
    let listed = matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/webhook/alertmanager"
    ) || [
        "/ack/",
        "/silence/",
        "/charts/",
        "/static/",
        "/runbooks/",
        "/callbacks/",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    listed && !path.contains("/.")
}

fn unauthorized(prompt: bool, reason: &str) -> Response {
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "unauthorized", "reason": reason})),
    )
        .into_response();
    if prompt {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"quantwatch-alert-router\""),
        );
    }
    resp
}

/// Who is asking, when the headers prove it: the `ROUTER_API_TOKEN` bearer or a
/// `basic_auth_users` login. `Err` is the reason to answer 401 with.
async fn authenticate(app: &Shared, headers: &HeaderMap) -> Result<Principal, &'static str> {
    let live = app.live();
    let users = live.web.security.auth.clone();
    let token = live.api_token.clone();
    if users.is_none() && token.is_none() {
        return Err(
            "no credentials are configured: add basic_auth_users to the web config (--web.config.file or ROUTER_WEB_CONFIG_FILE) for people, or set ROUTER_API_TOKEN for machines",
        );
    }
    if let Some(got) = bearer_token(headers) {
        return match &token {
            Some(t) if secrets_equal(got.as_bytes(), t.as_bytes()) => Ok(Principal {
                name: "api-token".into(),
                method: AuthMethod::ApiToken,
            }),
            _ => Err("wrong bearer token (ROUTER_API_TOKEN)"),
        };
    }
    if let Some((user, pass)) = basic_credentials(headers) {
        return match users {
            Some(auth) if auth.check_blocking(user.clone(), pass).await => Ok(Principal {
                name: user,
                method: AuthMethod::BasicAuth,
            }),
            _ => Err("wrong user name or password"),
        };
    }
    Err("log in (basic_auth_users of the web config) or send the ROUTER_API_TOKEN bearer")
}

/// The one gate of the route table: anonymous routes pass, every other request carries a
/// [`Principal`] in its extensions or is answered 401 with a JSON reason (and no alert
/// content). Browsers get `WWW-Authenticate` so they prompt for a login, when logins exist.
pub async fn require(State(app): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    if is_anonymous(req.uri().path()) {
        return next.run(req).await;
    }
    match authenticate(&app, req.headers()).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(reason) => {
            let prompt = app.live().web.security.auth.is_some();
            unauthorized(prompt, reason)
        }
    }
}

/// Whether the webhook may be called: no `ROUTER_WEBHOOK_TOKEN` means open (zero-config
/// start); with one, Alertmanager authenticates with `Authorization: Bearer TOKEN`
/// (`http_config.authorization`) or basic auth (`http_config.basic_auth`) whose password is
/// the token (any user name), and a `basic_auth_users` login of the web config works too.
pub async fn webhook_allowed(app: &Shared, headers: &HeaderMap) -> bool {
    let live = app.live();
    let Some(token) = live.webhook_token.clone() else {
        return true;
    };
    if let Some(got) = bearer_token(headers) {
        return secrets_equal(got.as_bytes(), token.as_bytes());
    }
    let Some((user, pass)) = basic_credentials(headers) else {
        return false;
    };
    if secrets_equal(pass.as_bytes(), token.as_bytes()) {
        return true;
    }
    match live.web.security.auth.clone() {
        Some(auth) => auth.check_blocking(user, pass).await,
        None => false,
    }
}

/// Refuses state-changing requests a browser sends on behalf of another site (a form on a
/// foreign page posting to `/ack/{token}` or, with cached basic-auth credentials, to the API):
/// `Sec-Fetch-Site` other than `same-origin`/`none`, or (without it) an `Origin` that is
/// neither this host nor `ROUTER_PUBLIC_URL`'s origin. Clients that send neither header
/// (Alertmanager, curl) pass.
pub async fn refuse_cross_site(
    State(app): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    // Sec-Fetch-Site, which every current browser sends, decides when present: our own pages
    // post with `same-origin` (or `none` when the user typed the request). The Origin header
    // cannot decide then: under our `Referrer-Policy: no-referrer` browsers send
    // `Origin: null` even for same-origin form posts. Without Sec-Fetch-Site (older browsers)
    // the Origin must be our host or ROUTER_PUBLIC_URL's origin.
    let refused = match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => {
            !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"))
        }
        None => match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            None => false,
            Some(origin) => {
                let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
                let same_host = origin.split_once("://").is_some_and(|(_, authority)| {
                    host.is_some_and(|h| authority.eq_ignore_ascii_case(h))
                });
                let public = app
                    .live()
                    .public_url
                    .as_deref()
                    .and_then(|u| reqwest::Url::parse(u).ok())
                    .map(|u| u.origin().ascii_serialization());
                !(same_host || public.is_some_and(|p| p.eq_ignore_ascii_case(origin)))
            }
        },
    };
    if refused {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "forbidden", "reason": "cross-site request refused: post from the router's own pages"})),
        )
            .into_response();
    }
    next.run(req).await
}

/// The Content-Security-Policy of every HTML answer: no script at all, styles only from our
/// own origin (no inline `style`), images from us or `data:`, forms post only to us, never
/// framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Browser hardening on every HTML answer (tokens live in URLs and alert text is sensitive:
/// no referrer, no caching, no framing); `nosniff` on every answer.
pub async fn harden(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html"));
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_probes_metrics_webhook_and_signed_links_are_anonymous() {
        for p in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/webhook/alertmanager",
            "/ack/abc",
            "/silence/abc",
            "/charts/x.png",
            "/static/style.css",
            "/callbacks/aliyun/voice/token",
        ] {
            assert!(is_anonymous(p), "{p}");
        }
        for p in [
            "/",
            "/api/v1/alerts",
            "/api/v1/alerts/fp/history",
            "/api/v1/notifications",
            "/ack",
            "/healthz/x",
            "/metrics/../api/v1/alerts",
            "/anything-new",
            "/ack/../api/v1/alerts",
            "/callbacks/../api/v1/alerts",
            "/callbacks",
        ] {
            assert!(!is_anonymous(p), "{p}");
        }
    }
}
