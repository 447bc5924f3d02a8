//! Router-specific test helpers shared by this crate's integration tests: start the router
//! in-process on a free port with a temp SQLite store, and build Alertmanager payloads.
#![allow(dead_code)]

pub mod robots;
pub mod seed;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quantwatch_alert_router::app::{RunError, config, serve};
use quantwatch_alert_router::store::{HistoryEntry, HistoryItem, HistoryKey, Store};
use serde_json::{Value, json};

pub struct RouterUnderTest {
    pub url: String,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), RunError>>>,
}

/// Every entry of an alert's stored history (its calls left out), oldest first, read page by
/// page from the store; empty when no event of the alert is stored.
pub async fn history_of(store: &dyn Store, fp: &str) -> Vec<HistoryEntry> {
    let mut all: Vec<HistoryEntry> = Vec::new();
    let mut before = None;
    loop {
        let Some(page) = store
            .history_page(fp, before.as_ref(), 1000)
            .await
            .expect("history")
        else {
            return all;
        };
        let mut entries: Vec<HistoryEntry> = page
            .items
            .into_iter()
            .filter_map(|i| match i {
                HistoryItem::Entry(e) => Some(e),
                HistoryItem::Call(_) => None,
            })
            .collect();
        entries.append(&mut all);
        all = entries;
        match page.next {
            Some(c) => before = Some(HistoryKey::from_cursor(&c).expect("a cursor of ours")),
            None => return all,
        }
    }
}

/// Placeholder for the router's own address (`http://127.0.0.1:PORT`) in the YAML and env of
/// [`start`]: for `ROUTER_PUBLIC_URL` when a fake must fetch from the router.
pub const ROUTER_URL: &str = "{router_url}";

/// Start the router with this YAML (database defaults to a temp SQLite file).
pub async fn start(yaml: &str, env: &[(&str, &str)]) -> RouterUnderTest {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    start_on(listener, yaml, env).await
}

/// `start` on a listener bound beforehand (its URL can go into the router's own config and
/// into an Alertmanager's before the router runs).
pub async fn start_on(
    listener: tokio::net::TcpListener,
    yaml: &str,
    env: &[(&str, &str)],
) -> RouterUnderTest {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let yaml = yaml.replace(ROUTER_URL, &url);
    let mut vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.replace(ROUTER_URL, &url)))
        .collect();
    vars.entry("ROUTER_DATABASE_URL".into())
        .or_insert_with(|| format!("sqlite://{}/router.db", dir.path().display()));
    let path = dir.path().join("router.yml");
    std::fs::write(&path, yaml).expect("write config");
    let cfg =
        config::load(Some(&path), &vars).unwrap_or_else(|e| panic!("test config invalid: {e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve(
        cfg,
        None,
        listener,
        async move {
            let _ = stopped.await;
        },
        None,
    ));
    RouterUnderTest {
        url,
        dir,
        stop: Some(stop),
        handle: Some(handle),
    }
}

impl RouterUnderTest {
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("router task").expect("router exits cleanly");
        }
    }

    pub async fn post_raw(&self, body: Vec<u8>, token: Option<&str>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/webhook/alertmanager", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("webhook request");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn post(&self, payload: &Value) -> (u16, Value) {
        self.post_raw(serde_json::to_vec(payload).expect("json"), None)
            .await
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Value of one sample of /metrics, labels given as `k="v"` pairs in exposition order.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// `GET /api/v1/alerts/{fp}/history` with the API bearer, every page: the entries,
    /// oldest first.
    pub async fn history(&self, token: &str, fp: &str) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        let mut cursor = String::new();
        loop {
            let v: Value = reqwest::Client::new()
                .get(format!(
                    "{}/api/v1/alerts/{fp}/history?limit=1000{cursor}",
                    self.url
                ))
                .bearer_auth(token)
                .send()
                .await
                .expect("history")
                .json()
                .await
                .expect("history json");
            // Pages lead back in time: an older page goes before what was read.
            let mut page = v["history"].as_array().cloned().unwrap_or_default();
            page.append(&mut all);
            all = page;
            match v["next"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return all,
            }
        }
    }

    /// Whether the sample `series` of /metrics reaches exactly `value` within `timeout`.
    pub async fn metric_reaches(&self, series: &str, value: f64, timeout: Duration) -> bool {
        eventually(timeout, || async {
            self.metric(series).await == Some(value)
        })
        .await
    }

    /// `GET {path}` of the API with the bearer `token`: the JSON answer.
    pub async fn api_get(&self, token: &str, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("api")
            .json()
            .await
            .expect("api json")
    }

    /// `GET /` (the status page) with the API bearer: status and HTML.
    pub async fn status_page(&self, token: &str) -> (u16, String) {
        let resp = reqwest::Client::new()
            .get(format!("{}/", self.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("status page");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("status page body"))
    }

    pub async fn notifications(&self, token: &str, state: &str) -> Vec<Value> {
        let v: Value = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/notifications?state={state}&limit=1000",
                self.url
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("api")
            .json()
            .await
            .expect("api json");
        v["notifications"].as_array().cloned().unwrap_or_default()
    }
}

/// One alert in Alertmanager's webhook shape.
pub fn alert(name: &str, status: &str, starts_at: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(name));
    labels.insert("severity".into(), json!("critical"));
    for (k, v) in extra_labels {
        labels.insert(k.to_string(), json!(v));
    }
    json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": format!("{name} summary"), "description": format!("{name} description")},
        "startsAt": starts_at,
        "endsAt": if status == "resolved" { "2026-01-01T01:00:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus/graph",
        "fingerprint": format!("fp-{name}"),
    })
}

pub fn payload(group_key: &str, alerts: Vec<Value>) -> Value {
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "router",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
}

/// A config loaded from `yaml` and its store opened, without a running router: for tests
/// that drive the engines (`rota::tick`, intake, claim, ack) with a clock of their own. The
/// store is a SQLite file in the returned temp dir unless `url` names another (PostgreSQL).
pub async fn config_and_store(
    yaml: &str,
    url: Option<String>,
) -> (
    config::Config,
    std::sync::Arc<dyn quantwatch_alert_router::store::Store>,
    String,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("router.yml");
    std::fs::write(&path, yaml).expect("write config");
    let url = url.unwrap_or_else(|| format!("sqlite://{}/router.db", dir.path().display()));
    let env: HashMap<String, String> = [("ROUTER_DATABASE_URL".to_string(), url.clone())].into();
    let cfg = config::load(Some(&path), &env).unwrap_or_else(|e| panic!("config: {e}"));
    let store = quantwatch_alert_router::store::open(&url, false)
        .await
        .expect("open store");
    (cfg, store, url, dir)
}

/// How many notifications the router at `url` (a real binary, [`testkit::App`]) has sent, by
/// its API with the bearer `token` (blocking: for the tests that kill and restart it).
pub fn sent_count(url: &str, token: &str) -> usize {
    let v: Value = reqwest::blocking::Client::new()
        .get(format!("{url}/api/v1/notifications?state=sent&limit=100"))
        .bearer_auth(token)
        .send()
        .expect("api")
        .json()
        .expect("api json");
    v["notifications"].as_array().map_or(0, Vec::len)
}

/// A runtime of their own for the tests that run on a plain test thread (the harness is
/// blocking: PostgreSQL, Alertmanager, ...) and drive the in-process router on it.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// An Alertmanager config sending every group (by `alertname`, wait and interval 1 s) to the
/// router's webhook, resolved alerts too, repeating every `repeat_interval`; with a bearer
/// `token` when the router has `ROUTER_WEBHOOK_TOKEN`.
pub fn am_config(router_url: &str, repeat_interval: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| {
            format!(
                "        http_config:\n          authorization:\n            credentials: {t}\n"
            )
        })
        .unwrap_or_default();
    format!(
        r#"route:
  receiver: router
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: {repeat_interval}
receivers:
  - name: router
    webhook_configs:
      - url: "{router_url}/webhook/alertmanager"
        send_resolved: true
{auth}"#
    )
}

/// Poll an async condition until true or the timeout passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll `f` until it yields `Some` and return that; past `timeout`, fail the test saying that
/// `what` did not happen, with the last value seen (`f` yields it as `Err`).
pub async fn wait_for<T, L, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    L: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, L>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen: {last:#?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How many notifications in `state` (pending, sent, failed) the router at `url` (a real
/// binary) holds, by its API with the bearer `token` (blocking; at most 1,000 counted).
pub fn notification_count(url: &str, token: &str, state: &str) -> usize {
    let v: Value = reqwest::blocking::Client::new()
        .get(format!(
            "{url}/api/v1/notifications?state={state}&limit=1000"
        ))
        .bearer_auth(token)
        .send()
        .expect("api")
        .json()
        .expect("api json");
    v["notifications"].as_array().map_or(0, Vec::len)
}
