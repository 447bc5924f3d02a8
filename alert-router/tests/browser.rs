//! The router's pages in headless Chromium, driven over the W3C WebDriver protocol (chromedriver
//! speaks plain HTTP JSON, so reqwest is the client):
//! - a fresh browser with no login opens the ack link from the Slack message, types a name,
//!   clicks, and the alert is acknowledged and the ack announced on the channel notified;
//! - a logged-in user (a `basic_auth_users` login of the web config) acks from the status page
//!   and is recorded as themselves;
//! - a page of another origin that frames the router gets nothing (`frame-ancestors 'none'`),
//!   while a frame of its own origin loads (the control that shows the check can fail).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{alert, payload, start};
use serde_json::{Value, json};
use testkit::fakes::slack::SlackFake;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let bin = testkit::require("chromedriver", "chromium-driver");
        let port = testkit::free_port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let ready = common::eventually(Duration::from_secs(20), || async {
            http.get(format!("{base}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        let mut d = Driver {
            child,
            base,
            session: String::new(),
            http,
        };
        assert!(ready, "chromedriver did not start");
        let v = d
            .call(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args":
                    ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=390,844"]}}}}),
            )
            .await;
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        d
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("webdriver json");
        v["value"].clone()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Ends the browser session before chromedriver is killed (Drop), so Chromium exits cleanly.
    async fn close(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .session(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_link_works_in_a_fresh_headless_chromium_without_login() {
    let fake = SlackFake::start("T000/B000/XXXX");
    let (r, token) = router_with_a_paged_alert(&fake, "BrowserAck", &[]).await;

    let d = Driver::start().await;
    d.session(
        "POST",
        "/url",
        json!({"url": format!("{}/ack/{token}", r.url)}),
    )
    .await;
    let title = d.session("GET", "/title", Value::Null).await;
    assert_eq!(title, "Acknowledge this alert?");
    let input = d.find("input[name=by]").await;
    d.session(
        "POST",
        &format!("/element/{input}/value"),
        json!({"text": "alice"}),
    )
    .await;
    let button = d.find("button[type=submit]").await;
    d.session("POST", &format!("/element/{button}/click"), json!({}))
        .await;
    assert_acked_by_alice(&d, &r.url, &fake).await;
    d.close().await;
    r.shutdown().await;
}

/// After a click on an ack button: the page says so, the API records alice, and the channel
/// that was notified announces the ack.
async fn assert_acked_by_alice(d: &Driver, router: &str, fake: &SlackFake) {
    let acked = common::eventually(Duration::from_secs(10), || async {
        d.session("GET", "/source", Value::Null)
            .await
            .as_str()
            .is_some_and(|s| s.contains("Acknowledged by alice"))
    })
    .await;
    assert!(acked, "{}", d.session("GET", "/source", Value::Null).await);
    let v: Value = reqwest::Client::new()
        .get(format!("{router}/api/v1/alerts"))
        .bearer_auth("api")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["alerts"][0]["acked_by"], "alice");
    let got = fake.server.wait_accepted(2, Duration::from_secs(10));
    assert!(
        got[1].to_string().contains("acknowledged by alice"),
        "{got:?}"
    );
}

/// A router escalating to the Slack fake with one alert posted and its first message
/// received; returns the router and the ack token of that message's link, the link as a phone
/// would open it.
async fn router_with_a_paged_alert(
    fake: &SlackFake,
    alertname: &str,
    extra_env: &[(&str, &str)],
) -> (common::RouterUnderTest, String) {
    let mut env = vec![
        ("ROUTER_API_TOKEN", "api"),
        ("ROUTER_PUBLIC_URL", "https://router.example"),
        ("ROUTER_ACK_SECRET", "browser-test-ack-secret-32-bytes!"),
    ];
    env.extend_from_slice(extra_env);
    let r = start(
        &SLACK_ESCALATION.replace("WEBHOOK", &fake.webhook_url()),
        &env,
    )
    .await;
    r.post(&payload(
        "g",
        vec![alert(alertname, "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    let got = fake.server.wait_accepted(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let text = got[0].to_string();
    let token = regex::Regex::new(r"https://router\.example/ack/([A-Za-z0-9._-]+)\|")
        .unwrap()
        .captures(&text)
        .unwrap_or_else(|| panic!("no ack link in {text}"))[1]
        .to_string();
    (r, token)
}

const SLACK_ESCALATION: &str = r#"language: en
delivery:
  poll_interval: 100ms
channels:
  - type: slack
    name: slack
    webhook_url: "WEBHOOK"
route:
  channels: [slack]
  escalation: crit
escalation_policies:
  crit:
    steps:
      - delay: 0s
        channels: [slack]
      - delay: 10m
        channels: [slack]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_ack_by_a_logged_in_user_in_headless_chromium() {
    let fake = SlackFake::start("T000/B000/XXXX");
    let dir = tempfile::tempdir().unwrap();
    let web = testkit::tls::web_config(dir.path(), false, &[("alice", "wonderland")]);
    let (r, _) = router_with_a_paged_alert(
        &fake,
        "BrowserAck",
        &[("ROUTER_WEB_CONFIG_FILE", web.path.to_str().unwrap())],
    )
    .await;

    let d = Driver::start().await;
    let logged_in = r.url.replacen("http://", "http://alice:wonderland@", 1);
    d.session("POST", "/url", json!({"url": format!("{logged_in}/")}))
        .await;
    let title = d.session("GET", "/title", Value::Null).await;
    assert_eq!(title, "quantwatch-alert-router: 1 firing");
    let button = d.find("button[type=submit]").await;
    d.session("POST", &format!("/element/{button}/click"), json!({}))
        .await;
    assert_acked_by_alice(&d, &r.url, &fake).await;
    d.close().await;
    r.shutdown().await;
}

/// A one-page site on another loopback port (another origin): `/` frames `inner` (its own
/// page) and `framed` (a router page).
fn serve_framing_site(framed: String) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
                    break;
                }
            }
            let body = if line.starts_with("GET /inner") {
                "<p id=inner>inner-page-loaded</p>".to_string()
            } else {
                format!(
                    "<iframe id=own src=\"/inner\"></iframe><iframe id=router src=\"{framed}\"></iframe>"
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_origin_cannot_frame_the_router() {
    let fake = SlackFake::start("T000/B000/XXXX");
    let (r, token) = router_with_a_paged_alert(&fake, "FramedAck", &[]).await;
    // The ack page is anonymous, so only the frame policy can keep it out of the frame.
    let site = serve_framing_site(format!("{}/ack/{token}", r.url));

    let d = Driver::start().await;
    d.session("POST", "/url", json!({"url": format!("{site}/")}))
        .await;
    let frame_source = |id: &'static str| {
        let d = &d;
        async move {
            let el = d.find(&format!("iframe#{id}")).await;
            d.session("POST", "/frame", json!({"id": {ELEMENT: el}}))
                .await;
            let src = d
                .session("GET", "/source", Value::Null)
                .await
                .as_str()
                .unwrap_or_default()
                .to_string();
            d.session("POST", "/frame/parent", json!({})).await;
            src
        }
    };
    let own_loaded = common::eventually(Duration::from_secs(10), || async {
        frame_source("own").await.contains("inner-page-loaded")
    })
    .await;
    assert!(
        own_loaded,
        "the control frame of the site's own origin did not load"
    );
    let router = frame_source("router").await;
    assert!(
        !router.contains("Acknowledge this alert?") && !router.contains("FramedAck"),
        "the router's page rendered inside another origin's frame: {router}"
    );
    // The page itself still works when opened directly.
    d.session(
        "POST",
        "/url",
        json!({"url": format!("{}/ack/{token}", r.url)}),
    )
    .await;
    assert_eq!(
        d.session("GET", "/title", Value::Null).await,
        "Acknowledge this alert?"
    );
    d.close().await;
    r.shutdown().await;
}
