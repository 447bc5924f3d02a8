//! The status page's ack button in headless Chromium, driven over the W3C WebDriver protocol
//! (chromedriver speaks plain HTTP JSON, so reqwest is the client): type a name, click, and the
//! alert is acknowledged and the ack announced on the channel that was notified.

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
async fn status_page_ack_button_works_in_headless_chromium() {
    let fake = SlackFake::start("T000/B000/XXXX");
    // The status page needs a login: a basic_auth_users user of the web config.
    let dir = tempfile::tempdir().unwrap();
    let web = testkit::tls::web_config(dir.path(), false, &[("alice", "wonderland")]);
    let r = start(
        &format!(
            r#"language: en
delivery:
  poll_interval: 100ms
channels:
  - type: slack
    name: slack
    webhook_url: "{}"
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
"#,
            fake.webhook_url()
        ),
        &[
            ("ROUTER_API_TOKEN", "api"),
            ("ROUTER_PUBLIC_URL", "https://router.example"),
            ("ROUTER_ACK_SECRET", "secret"),
            ("ROUTER_WEB_CONFIG_FILE", web.path.to_str().unwrap()),
        ],
    )
    .await;
    r.post(&payload(
        "g",
        vec![alert("BrowserAck", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .await;
    assert_eq!(
        fake.server.wait_accepted(1, Duration::from_secs(10)).len(),
        1
    );

    let d = Driver::start().await;
    let logged_in = r.url.replacen("http://", "http://alice:wonderland@", 1);
    d.session("POST", "/url", json!({"url": format!("{logged_in}/")}))
        .await;
    let title = d.session("GET", "/title", Value::Null).await;
    assert_eq!(title, "quantwatch-alert-router: 1 active");
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
    let acked = common::eventually(Duration::from_secs(10), || async {
        d.session("GET", "/source", Value::Null)
            .await
            .as_str()
            .is_some_and(|s| s.contains("Acknowledged by alice"))
    })
    .await;
    assert!(acked, "{}", d.session("GET", "/source", Value::Null).await);
    let v: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts", r.url))
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
    let _ = d
        .http
        .delete(format!("{}/session/{}", d.base, d.session))
        .send()
        .await;
    drop(d);
    r.shutdown().await;
}
