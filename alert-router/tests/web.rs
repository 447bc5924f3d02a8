//! The router's web layer: who may read alerts and stop escalations (a login or the API
//! token; signed links only for what they sign), what the webhook accepts, browser hardening,
//! TLS and basic auth from the same web config helpers as the exporter's, and stalled clients
//! that must not starve `/healthz` under the usual 1,024 open-files limit.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{alert, payload, start};
use serde_json::{Value, json};
use testkit::{App, free_port, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_quantwatch-alert-router");
const API: &str = "api-token-for-machines";
const WEBHOOK: &str = "webhook-token-for-alertmanager";
/// Only in the alert's summary: a body containing it leaked alert content.
const DISTINCTIVE: &str = "PnL-7731-drawdown-secret";

fn yaml() -> String {
    r#"language: en
delivery:
  poll_interval: 100ms
channels:
  - type: log
    name: log
route:
  channels: [log]
  escalation: crit
escalation_policies:
  crit:
    steps:
      - delay: 0s
        channels: [log]
      - delay: 10m
        channels: [log]
"#
    .to_string()
}

/// A router with a web config (alice/wonderland) and both tokens, holding one escalated alert
/// whose summary is [`DISTINCTIVE`].
async fn guarded() -> (common::RouterUnderTest, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let web = testkit::tls::web_config(dir.path(), false, &[("alice", "wonderland")]);
    let r = start(
        &yaml(),
        &[
            ("ROUTER_API_TOKEN", API),
            ("ROUTER_WEBHOOK_TOKEN", WEBHOOK),
            ("ROUTER_ACK_SECRET", "an-ack-secret-of-at-least-32-bytes!!"),
            ("ROUTER_WEB_CONFIG_FILE", web.path.to_str().unwrap()),
        ],
    )
    .await;
    let mut a = alert("LossLimit", "firing", "2026-01-01T00:00:00Z", &[]);
    a["annotations"]["summary"] = json!(DISTINCTIVE);
    let (s, body) = r
        .post_raw(
            serde_json::to_vec(&payload("g", vec![a])).unwrap(),
            Some(WEBHOOK),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    (r, dir)
}

async fn get(
    url: &str,
    auth: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = auth(reqwest::Client::new().get(url)).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_callers_get_401_and_not_a_byte_of_alert_content() {
    let (r, _dir) = guarded().await;
    // The alert is there for those who may see it.
    let (s, _, body) = get(&format!("{}/api/v1/alerts", r.url), |b| b.bearer_auth(API)).await;
    assert_eq!(s, 200);
    assert!(body.contains(DISTINCTIVE), "{body}");
    let (s, _, page) = get(&format!("{}/", r.url), |b| {
        b.basic_auth("alice", Some("wonderland"))
    })
    .await;
    assert_eq!(s, 200);
    assert!(page.contains(DISTINCTIVE), "{page}");

    for path in [
        "/",
        "/api/v1/alerts",
        "/api/v1/alerts/fp-LossLimit/history",
        "/api/v1/notifications",
        "/api/v1/some-future-endpoint",
    ] {
        let (s, h, body) = get(&format!("{}{path}", r.url), |b| b).await;
        assert_eq!(s, 401, "{path}: {body}");
        assert!(!body.contains(DISTINCTIVE), "{path}: {body}");
        assert!(!body.contains("LossLimit"), "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "unauthorized", "{path}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(
            h["www-authenticate"], "Basic realm=\"quantwatch-alert-router\"",
            "{path}"
        );
        // A wrong password and a wrong token are refused the same way.
        let (s, _, body) = get(&format!("{}{path}", r.url), |b| {
            b.basic_auth("alice", Some("wrong"))
        })
        .await;
        assert_eq!(s, 401, "{path}");
        assert!(!body.contains(DISTINCTIVE));
        let (s, _, _) = get(&format!("{}{path}", r.url), |b| b.bearer_auth("nope")).await;
        assert_eq!(s, 401, "{path}");
        let (s, _, _) = get(&format!("{}{path}", r.url), |b| {
            b.basic_auth("mallory", Some("wonderland"))
        })
        .await;
        assert_eq!(s, 401, "{path}");
    }
    // An ack over the API without credentials stops nothing.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/alerts/fp-LossLimit/ack", r.url))
        .json(&json!({"by": "mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Probes, metrics and the webhook stay anonymous (the webhook has its own token).
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            get(&format!("{}{path}", r.url), |b| b).await.0,
            200,
            "{path}"
        );
    }
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_by_a_logged_in_user_records_that_user() {
    let (r, _dir) = guarded().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/alerts/fp-LossLimit/ack", r.url))
        .basic_auth("alice", Some("wonderland"))
        .json(&json!({"by": "somebody-else"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, _, body) = get(&format!("{}/api/v1/alerts", r.url), |b| b.bearer_auth(API)).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["alerts"][0]["acked_by"], "alice", "{body}");
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_logins_or_token_the_protected_routes_say_what_to_configure() {
    // Zero-config start: the webhook and the log channel work, the page and API do not.
    let r = start("", &[]).await;
    let (s, _) = r
        .post(&payload(
            "g",
            vec![alert("ZeroConf", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await;
    assert_eq!(s, 200);
    for path in ["/", "/api/v1/alerts"] {
        let (s, h, body) = get(&format!("{}{path}", r.url), |b| b).await;
        assert_eq!(s, 401, "{path}");
        assert!(
            !h.contains_key("www-authenticate"),
            "no login exists to prompt for"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason.contains("basic_auth_users") && reason.contains("ROUTER_API_TOKEN"),
            "{reason}"
        );
        assert!(!body.contains("ZeroConf"));
    }
    r.shutdown().await;
}

/// Webhook bodies that a cross-site HTML form (or anything not JSON) can send.
const NOT_JSON: [(&str, &str); 4] = [
    ("text/plain", "{\"version\":\"4\"}"),
    ("application/x-www-form-urlencoded", "a=b"),
    (
        "multipart/form-data; boundary=x",
        "--x\r\n\r\n{}\r\n--x--\r\n",
    ),
    ("application/jsonp", "{}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_takes_json_only_and_alertmanager_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let web = testkit::tls::web_config(dir.path(), false, &[("am", "am-password")]);
    let r = start(
        "",
        &[
            ("ROUTER_API_TOKEN", API),
            ("ROUTER_WEBHOOK_TOKEN", WEBHOOK),
            ("ROUTER_WEB_CONFIG_FILE", web.path.to_str().unwrap()),
        ],
    )
    .await;
    let url = format!("{}/webhook/alertmanager", r.url);
    let c = reqwest::Client::new();
    let body = serde_json::to_vec(&payload(
        "g",
        vec![alert("Typed", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .unwrap();
    // The same JSON under another content type, and non-JSON bodies: 415, nothing stored.
    for (ct, b) in NOT_JSON
        .iter()
        .map(|(ct, b)| (*ct, b.as_bytes().to_vec()))
        .chain([("text/plain", body.clone())])
    {
        let resp = c
            .post(&url)
            .bearer_auth(WEBHOOK)
            .header("content-type", ct)
            .body(b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 415, "{ct}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "unsupported_media_type", "{ct}");
    }
    let none = c
        .post(&url)
        .bearer_auth(WEBHOOK)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 415, "no content type");
    assert!(r.notifications(API, "pending").await.is_empty());
    assert!(r.notifications(API, "sent").await.is_empty());

    // Alertmanager's http_config.basic_auth: any user, the token as password; or a web
    // config user. A wrong password is refused.
    let send = |user: &'static str, pass: &'static str, ct: &'static str| {
        c.post(&url)
            .basic_auth(user, Some(pass))
            .header("content-type", ct)
            .body(body.clone())
            .send()
    };
    assert_eq!(
        send("alertmanager", "wrong", "application/json")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        send("am", "wrong", "application/json")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        send("alertmanager", WEBHOOK, "application/json; charset=utf-8")
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let second = send("am", "am-password", "Application/JSON").await.unwrap();
    assert_eq!(second.status().as_u16(), 200);
    let v: Value = second.json().await.unwrap();
    assert_eq!(v["duplicates"], 1, "the same alert, recognised");
    let stored = common::eventually(Duration::from_secs(10), || async {
        r.notifications(API, "sent").await.len() == 1
    })
    .await;
    assert!(stored);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_answers_are_hardened_and_cross_site_posts_refused() {
    let (r, _dir) = guarded().await;
    let (s, h, _) = get(&format!("{}/", r.url), |b| {
        b.basic_auth("alice", Some("wonderland"))
    })
    .await;
    assert_eq!(s, 200);
    // An anonymous HTML page too: the refused ack link.
    let (s2, h2, _) = get(&format!("{}/ack/forged.token", r.url), |b| b).await;
    assert!(s2 == 403 || s2 == 410, "{s2}");
    for h in [h, h2] {
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let c = reqwest::Client::new();
    let post = |origin: Option<&'static str>, site: Option<&'static str>| {
        let mut b = c
            .post(format!("{}/ack/forged.token", r.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("by=mallory");
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        if let Some(s) = site {
            b = b.header("sec-fetch-site", s);
        }
        b.send()
    };
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (None, Some("cross-site")),
        (None, Some("same-site")),
        (Some("null"), None),
        (Some("https://evil.example"), Some("cross-site")),
    ] {
        let resp = post(origin, site).await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{origin:?} {site:?}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "forbidden", "{origin:?} {site:?}");
    }
    // Our own origin passes the gate and reaches the ack handler (which refuses the forged
    // token with its HTML page, not the JSON of the gate).
    let own: &'static str = Box::leak(r.url.clone().into_boxed_str());
    // Under `Referrer-Policy: no-referrer` a browser's same-origin form post says
    // `Origin: null`; Sec-Fetch-Site decides.
    for (origin, site) in [
        (Some(own), Some("same-origin")),
        (Some("null"), Some("same-origin")),
        (Some(own), None),
        (None, None),
    ] {
        let resp = post(origin, site).await.unwrap();
        assert_eq!(resp.status().as_u16(), 403);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{origin:?}"
        );
    }
    // A cross-site POST to the API with a browser's cached login is refused too.
    let resp = c
        .post(format!("{}/api/v1/alerts/fp-LossLimit/ack", r.url))
        .basic_auth("alice", Some("wonderland"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body("{\"by\":\"mallory\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (_, _, body) = get(&format!("{}/api/v1/alerts", r.url), |b| b.bearer_auth(API)).await;
    assert!(body.contains("\"acked_by\":null"), "{body}");
    r.shutdown().await;
}

fn check_config(args: &[&str]) -> (i32, String) {
    check_config_env(args, &[])
}

fn check_config_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("check-config")
        .env_remove("ROUTER_WEB_CONFIG_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_never_print_a_secret_and_bad_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.yml");
    let p = path.to_str().unwrap();
    for (yaml, expected) in [
        // Syntax error on the line holding the password.
        (
            "channels:\n  - type: email\n    name: mail\n    host: smtp\n    tls: starttls\n    password: [\"hunter2-leak\"\n    from: a@b\n    to: [c@d]\n",
            "channels[0].password: illegal placement of ':' indicator at line 7, column 9",
        ),
        // A type error on it.
        (
            "ack_secret: {value: hunter2-leak}\n",
            "ack_secret: expected string scalar at line 1, column 13",
        ),
        // A tab inside the secret's line.
        (
            "webhook:\n\ttoken: hunter2-leak\n",
            "line 2:2: tabs disallowed within this context (block indentation) at line 2, column 2",
        ),
        // Key paths: nested, through list indexes, under names of the operator's; a number
        // or a list where a secret went, never the secret.
        (
            "webhook:\n  max_body_bytes: ${SECRET}\n",
            "webhook.max_body_bytes: invalid u64 at line 2, column 19",
        ),
        (
            "route:\n  channels: [log]\n  routes:\n    - matchers: ['a=\"b\"']\n    - matchers: {team: ${SECRET}}\n",
            "route.routes[1].matchers: expected sequence start at line 5, column 17",
        ),
        (
            "escalation_policies:\n  desk:\n    steps:\n      - delay: 5m\n        channels: [log]\n      - delay: 10m\n        channels: [log]\n        rotations: {desk: ${SECRET}}\n",
            "escalation_policies.desk.steps[1].rotations: expected sequence start at line 8, column 20",
        ),
        (
            // Inside a `type:`-selected channel serde buffers the item: the path stops there.
            "channels:\n  - type: log\n    name: log\n  - type: webhook\n    name: ops\n    url: [${SECRET}]\n",
            "channels[1]: invalid type: sequence, expected a string at line 4, column 5",
        ),
    ] {
        std::fs::write(&path, yaml).unwrap();
        let (code, err) = check_config_env(&["--config", p], &[("SECRET", "hunter2-leak")]);
        assert_eq!(code, 64, "{yaml}: {err}");
        assert!(err.contains(&format!("{p}: {expected}\n")), "{yaml}: {err}");
        assert!(!err.contains("hunter2"), "a secret leaked: {err}");
    }
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Token: \"hunter2\\r\\nSet-Cookie: a=b\"\n",
    )
    .unwrap();
    std::fs::write(&path, "").unwrap();
    let w = web.to_str().unwrap();
    let (code, err) = check_config(&["--config", p, "--web.config.file", w]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains(&format!(
            "{w}: http_server_config.headers.X-Token: the value is not a valid HTTP header value"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn tls_and_basic_auth_from_the_same_web_config_as_the_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let web = testkit::tls::web_config(dir.path(), true, &[("alice", "wonderland")]);
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .arg("--web.config.file")
        .arg(&web.path)
        .current_dir(dir.path())
        .env_remove("ROUTER_API_TOKEN")
        .env_remove("ROUTER_DATABASE_URL");
    let mut child = testkit::Child::spawn(
        "router-tls",
        cmd,
        testkit::process::RunAs::Me,
        &dir.path().join("log"),
    );
    let client = web.client();
    let base = format!("https://localhost:{port}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            child.assert_running();
            client
                .get(format!("{base}/healthz"))
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200)
        }),
        "{}",
        child.log_tail()
    );
    let anon = client.get(format!("{base}/api/v1/alerts")).send().unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert!(anon.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(format!("{base}/api/v1/alerts"))
        .basic_auth("alice", Some("nope"))
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = client
        .get(format!("{base}/api/v1/alerts"))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.json::<Value>().unwrap(),
        json!({"alerts": [], "next": null})
    );
    // Plain HTTP to the TLS port gets nothing.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz"));
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

/// Reads until the server closes the connection (EOF or reset); false if it is still open
/// at `deadline`.
fn closed_by_server(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left.min(Duration::from_secs(1))));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 400/408 answer before the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return true, // reset
        }
    }
}

#[test]
fn stalled_connections_cannot_starve_healthz_or_the_webhook() {
    // This test holds 1,100 sockets; the router runs under the usual limit of 1,024.
    let nofile = testkit::app::raise_own_nofile(4096);
    assert!(
        nofile >= 2048,
        "need 2,048 open files for this test, have {nofile}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("router.yml");
    std::fs::write(
        &cfg,
        "web:\n  header_read_timeout: 2s\n  body_read_timeout: 2s\n",
    )
    .unwrap();
    let app = App::start_with_nofile(
        BIN,
        &["--config", cfg.to_str().unwrap()],
        &[("ROUTER_LOG_FORMAT", "json")],
        1024,
    );
    assert!(
        app.log().contains("\"max_connections\":512"),
        "half of 1,024 by default: {}",
        app.log()
    );
    let addr = format!("127.0.0.1:{}", app.port());
    let mut stalled = Vec::new();
    for i in 0..1100 {
        let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {i}: {e}"));
        match i % 3 {
            // Idle: connected, says nothing.
            0 => {}
            // Half-sent headers.
            1 => s
                .write_all(b"POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Ty")
                .unwrap(),
            // A body that never completes.
            _ => s
                .write_all(b"POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"version\":")
                .unwrap(),
        }
        stalled.push(s);
    }
    let started = Instant::now();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let health = client.get(format!("{}/healthz", app.url())).send().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body = serde_json::to_vec(&payload(
        "g",
        vec![alert("AfterFlood", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .unwrap();
    let hook = client
        .post(format!("{}/webhook/alertmanager", app.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(hook.status().as_u16(), 200);
    let answered = started.elapsed();
    // Every stalled connection is closed by the server after its timeout (2 s, plus the
    // wait of those queued behind the limit).
    let deadline = Instant::now() + Duration::from_secs(30);
    let open: Vec<usize> = stalled
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| (!closed_by_server(s, deadline)).then_some(i))
        .collect();
    assert!(
        open.is_empty(),
        "{} stalled connections still open: {:?}",
        open.len(),
        &open[..open.len().min(10)]
    );
    assert!(
        answered < Duration::from_secs(20),
        "healthz and webhook took {answered:?}"
    );
    assert_eq!(app.get("/healthz").0, 200);
}

/// 1,100 connections that never send a byte, against a router started with a soft
/// open-files limit of 1,024 (systemd's default): it answers `/healthz` and the webhook at
/// once. With a higher hard limit it raised its soft limit at start (and so its connection
/// limit); with the hard limit at 1,024 too it closes the connections idle the longest to
/// make room, well before their header timeout (10 s by default) would.
fn idle_flood(soft: u64, hard: u64, max_connections: u64) {
    let nofile = testkit::app::raise_own_nofile(4096);
    assert!(
        nofile >= 2048,
        "need 2,048 open files for this test, have {nofile}"
    );
    let app = App::start_with_nofile_limits(BIN, &[], &[("ROUTER_LOG_FORMAT", "json")], soft, hard);
    let log = app.log();
    for want in [
        format!("\"soft_before\":{soft}"),
        format!("\"soft\":{hard}"),
        format!("\"hard\":{hard}"),
        format!("\"max_connections\":{max_connections}"),
    ] {
        assert!(log.contains(&want), "the log lacks {want}: {log}");
    }
    let addr = format!("127.0.0.1:{}", app.port()).parse().unwrap();
    let idle: Vec<TcpStream> = (0..1100)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("connect {i}: {e}"))
        })
        .collect();
    let started = Instant::now();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let health = client
        .get(format!("{}/healthz", app.url()))
        .send()
        .unwrap_or_else(|e| panic!("/healthz behind 1,100 idle connections: {e}"));
    assert_eq!(health.status().as_u16(), 200);
    let body = serde_json::to_vec(&payload(
        "g",
        vec![alert(
            "AfterIdleFlood",
            "firing",
            "2026-01-01T00:00:00Z",
            &[],
        )],
    ))
    .unwrap();
    let hook = client
        .post(format!("{}/webhook/alertmanager", app.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap_or_else(|e| panic!("the webhook behind 1,100 idle connections: {e}"));
    assert_eq!(hook.status().as_u16(), 200);
    let answered = started.elapsed();
    assert!(
        answered < Duration::from_secs(8),
        "healthz and webhook took {answered:?} behind 1,100 idle connections"
    );
    drop(idle);
}

#[test]
fn idle_connections_at_a_soft_limit_of_1024_raised_to_the_hard_limit() {
    idle_flood(1024, 8192, 4096);
}

#[test]
fn idle_connections_at_a_hard_limit_of_1024_are_closed_to_make_room() {
    idle_flood(1024, 1024, 512);
}

/// hyper's header timeout is also the first-byte deadline and the keep-alive idle limit: a
/// connection that never sends a byte, and one idle after its answer, are both closed by the
/// server once it passes (1 s here), not left open.
#[test]
fn idle_and_kept_alive_connections_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("router.yml");
    std::fs::write(&cfg, "web:\n  header_read_timeout: 1s\n").unwrap();
    let app = App::start(BIN, &["--config", cfg.to_str().unwrap()], &[]);
    let addr = format!("127.0.0.1:{}", app.port());
    let started = Instant::now();
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut kept = TcpStream::connect(&addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "answered, and kept alive");
    let deadline = Instant::now() + Duration::from_secs(20);
    assert!(
        closed_by_server(&mut silent, deadline),
        "a connection that never sent a byte is still open after 20 s"
    );
    assert!(
        closed_by_server(&mut kept, deadline),
        "an idle keep-alive connection is still open after 20 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the 1 s timeout: {:?}",
        started.elapsed()
    );
}
