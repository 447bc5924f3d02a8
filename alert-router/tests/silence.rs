//! Silences from the message against a real Alertmanager (Debian's `prometheus-alertmanager`):
//! the link from a DingTalk message opens a confirmation page; its form makes the silence
//! (exact matchers, creator, comment), Alertmanager stops sending the alert to the router, and
//! "until resolved" expires when the alert resolves. Forged, expired and ack-purpose links
//! create nothing; an unreachable Alertmanager is said so and nothing is recorded.

mod common;

use std::time::{Duration, Instant};

use common::{RouterUnderTest, start_on};
use quantwatch_alert_router::core::signing as ack;
use serde_json::{Value, json};
use testkit::Alertmanager;
use testkit::fakes::dingtalk::DingTalkFake;

const SECRET: &str = "silence-test-secret-0123456789abcdef";
const API: &str = "api-token-for-tests";

fn router_yaml(ding: &str, am_urls: &[String]) -> String {
    let urls: Vec<String> = am_urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "language: en\ndelivery:\n  poll_interval: 200ms\nchannels:\n  - type: dingtalk\n    name: ding\n    webhook_url: \"{ding}\"\nroute:\n  channels: [ding]\nalertmanager_urls: [{}]\nsilences:\n  check_interval: 300ms\n",
        urls.join(", ")
    )
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn bound() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

async fn start(listener: tokio::net::TcpListener, url: &str, yaml: &str) -> RouterUnderTest {
    start_on(
        listener,
        yaml,
        &[
            ("ROUTER_ACK_SECRET", SECRET),
            ("ROUTER_PUBLIC_URL", url),
            ("ROUTER_API_TOKEN", API),
        ],
    )
    .await
}

fn labels() -> Value {
    json!({"alertname": "FeedStale", "severity": "critical", "venue": "xshg"})
}

/// The `duration=resolved` link of the message, and the token in it.
fn resolved_link(text: &str) -> (String, String) {
    let start = text
        .find("[Silence until resolved](")
        .expect("until-resolved link")
        + 25;
    let url = &text[start..start + text[start..].find(')').unwrap()];
    assert!(url.ends_with("?duration=resolved"), "{url}");
    let token = url
        .split("/silence/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    (url.to_string(), token.to_string())
}

/// Webhooks the router got from Alertmanager (repeats of a known alert count as duplicates).
async fn accepted_webhooks(r: &RouterUnderTest) -> f64 {
    let mut n = 0.0;
    for o in ["accepted", "duplicate"] {
        n += r
            .metric(&format!(
                "quantwatch_router_webhooks_received_total{{outcome=\"{o}\"}}"
            ))
            .await
            .unwrap_or(0.0);
    }
    n
}

async fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn active(silences: &Value) -> Vec<Value> {
    silences
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"]["state"] != "expired")
        .cloned()
        .collect()
}

fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

#[test]
fn a_silence_link_silences_in_alertmanager_until_the_alert_resolves() {
    let rt = common::runtime();
    let fake = DingTalkFake::start("silence-token", None);
    let (listener, url) = rt.block_on(bound());
    // Repeating every 2 s, so a silence's effect is visible within seconds.
    let am = Alertmanager::start(&common::am_config(&url, "2s", None));
    let r = rt.block_on(start(
        listener,
        &url,
        &router_yaml(&fake.webhook_url(), &[am.url()]),
    ));
    let starts = now_ms() - 5_000;
    let alert = |ends: Option<i64>| {
        let mut a = json!({"labels": labels(), "annotations": {"summary": "feed stale"},
                           "startsAt": iso(starts)});
        if let Some(e) = ends {
            a["endsAt"] = iso(e).into();
        }
        json!([a])
    };
    am.post_alerts(&alert(None));
    let got = fake.server.wait_accepted(1, Duration::from_secs(30));
    let text = got[0]["markdown"]["text"].as_str().unwrap().to_string();
    assert!(text.contains("[Silence 1h]("), "{text}");
    assert!(text.contains("[Silence 4h]("), "{text}");
    let (link, token) = resolved_link(&text);
    assert!(
        link.starts_with(&format!("{url}/silence/silence.")),
        "{link}"
    );

    // Alertmanager repeats the alert to the router every couple of seconds.
    let before = rt.block_on(accepted_webhooks(&r));
    assert!(
        wait(Duration::from_secs(15), || rt
            .block_on(accepted_webhooks(&r))
            >= before + 2.0),
        "Alertmanager repeats before the silence"
    );

    // Opening the link only shows the form.
    let page = rt.block_on(async { reqwest::get(&link).await.unwrap().text().await.unwrap() });
    assert!(page.contains("Silence this alert?"), "{page}");
    assert!(page.contains("value=\"resolved\" checked"), "{page}");
    assert!(active(&am.silences()).is_empty(), "GET must not silence");

    let (status, page) = rt.block_on(post_form(
        &format!("{url}/silence/{token}"),
        &[("by", "alice"), ("duration", "resolved")],
    ));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("FeedStale is silenced by alice on 1 Alertmanager(s) until it resolves"),
        "{page}"
    );
    let silences = active(&am.silences());
    assert_eq!(silences.len(), 1, "{silences:?}");
    let s = &silences[0];
    assert_eq!(s["createdBy"], "alice");
    assert_eq!(s["status"]["state"], "active");
    let comment = s["comment"].as_str().unwrap();
    assert!(
        comment.contains("quantwatch-alert-router") && comment.contains("FeedStale"),
        "{comment}"
    );
    let mut matchers: Vec<(String, String, bool, bool)> = s["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["value"].as_str().unwrap().to_string(),
                m["isRegex"].as_bool().unwrap(),
                m["isEqual"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        vec![
            ("alertname".into(), "FeedStale".into(), false, true),
            ("severity".into(), "critical".into(), false, true),
            ("venue".into(), "xshg".into(), false, true),
        ]
    );

    // Alertmanager stops sending it: the router's webhook count stands still for several
    // repeat intervals (after one group interval for a flush already under way).
    std::thread::sleep(Duration::from_secs(2));
    let stopped_at = rt.block_on(accepted_webhooks(&r));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        rt.block_on(accepted_webhooks(&r)),
        stopped_at,
        "silenced: no more webhooks"
    );

    // Recorded: the router's list, the status page, the alert's history.
    let list = rt.block_on(r.api_get(API, "/api/v1/silences"));
    assert_eq!(list["silences"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["silences"][0]["duration"], "resolved");
    assert_eq!(list["silences"][0]["created_by"], "alice");
    let fp = list["silences"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let hist = rt.block_on(r.api_get(API, &format!("/api/v1/alerts/{fp}/history")));
    let actions: Vec<(&str, &str)> = hist["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"].as_str().unwrap().contains("silence"))
        .map(|h| (h["action"].as_str().unwrap(), h["by"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, vec![("silence_resolved", "alice")]);
    let (_, status_page) = rt.block_on(r.status_page(API));
    assert!(status_page.contains("<h2>Silences</h2>"), "{status_page}");
    assert!(
        status_page.contains("/expire\"><button type=\"submit\">Expire</button>"),
        "{status_page}"
    );

    // The alert resolves: the router finds out from Alertmanager and expires the silence.
    am.post_alerts(&alert(Some(now_ms() - 1_000)));
    assert!(
        wait(Duration::from_secs(20), || active(&am.silences())
            .is_empty()),
        "until-resolved silence expired: {}",
        am.silences()
    );
    // The router expires the silence in Alertmanager first and records it afterwards: wait
    // for its own record rather than reading it the moment Alertmanager's list is empty.
    assert!(
        wait(Duration::from_secs(20), || rt
            .block_on(r.api_get(API, "/api/v1/silences"))["silences"]
            == json!([])),
        "the router's silence list empty after the expiry: {}",
        rt.block_on(r.api_get(API, "/api/v1/silences"))
    );
    let hist = rt.block_on(r.api_get(API, &format!("/api/v1/alerts/{fp}/history")));
    assert!(
        hist["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["action"] == "unsilence"
                && h["by"] == "quantwatch-alert-router"
                && h["via"] == "resolved"),
        "{hist}"
    );
    rt.block_on(r.shutdown());
}

/// A router with one firing alert received through its webhook (no Alertmanager sends).
fn firing_router(
    rt: &tokio::runtime::Runtime,
    am_urls: &[String],
) -> (RouterUnderTest, String, i64, DingTalkFake) {
    let fake = DingTalkFake::start("silence-token-2", None);
    let (listener, url) = rt.block_on(bound());
    let r = rt.block_on(start(
        listener,
        &url,
        &router_yaml(&fake.webhook_url(), am_urls),
    ));
    let starts = "2026-01-01T00:00:00Z";
    let p = common::payload(
        "g",
        vec![common::alert(
            "BookStale",
            "firing",
            starts,
            &[("venue", "xshg")],
        )],
    );
    let (status, _) = rt.block_on(r.post(&p));
    assert_eq!(status, 200);
    (r, url, 1_767_225_600_000, fake)
}

#[test]
fn forged_expired_and_ack_links_are_refused_and_create_nothing() {
    let rt = common::runtime();
    let am = Alertmanager::start("route:\n  receiver: none\nreceivers:\n  - name: none\n");
    let (r, url, starts, _fake) = firing_router(&rt, &[am.url()]);
    let exp = now_ms() / 1000 + 600;
    let cases = [
        (
            ack::silence_token(
                "another-secret-of-at-least-32-bytes!",
                "fp-BookStale",
                starts,
                exp,
            ),
            403,
            "signature is wrong",
        ),
        (
            ack::silence_token(SECRET, "fp-BookStale", starts, now_ms() / 1000 - 1),
            410,
            "the link expired",
        ),
        (
            ack::token(SECRET, "fp-BookStale", starts, exp),
            403,
            "for another action",
        ),
        (
            ack::silence_token(SECRET, "fp-BookStale", starts - 60_000, exp),
            410,
            "earlier firing",
        ),
    ];
    for (token, want, words) in &cases {
        for get in [true, false] {
            let (status, page) = rt.block_on(async {
                let c = reqwest::Client::new();
                let u = format!("{url}/silence/{token}");
                let resp = if get {
                    c.get(u).send().await.unwrap()
                } else {
                    c.post(u)
                        .form(&[("by", "mallory"), ("duration", "4h")])
                        .send()
                        .await
                        .unwrap()
                };
                (resp.status().as_u16(), resp.text().await.unwrap())
            });
            assert_eq!(status, *want, "{page}");
            assert!(page.contains(words), "{words}: {page}");
        }
    }
    // A valid link opened (GET) also creates nothing.
    let good = ack::silence_token(SECRET, "fp-BookStale", starts, exp);
    let page = rt.block_on(async {
        reqwest::get(format!("{url}/silence/{good}?duration=4h"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(page.contains("value=\"4h\" checked"), "{page}");
    assert_eq!(am.silences(), json!([]), "Alertmanager holds no silence");
    let list = rt.block_on(r.api_get(API, "/api/v1/silences"));
    assert_eq!(list["silences"], json!([]));
    // A bad duration is refused too.
    let (status, page) = rt.block_on(post_form(
        &format!("{url}/silence/{good}"),
        &[("by", "bob"), ("duration", "forever")],
    ));
    assert_eq!(status, 400, "{page}");
    assert_eq!(am.silences(), json!([]));

    // A real one, then expired from the status page (authenticated, same-origin form); a
    // cross-site post is refused first and changes nothing.
    let (status, page) = rt.block_on(post_form(
        &format!("{url}/silence/{good}"),
        &[("by", "bob"), ("duration", "4h")],
    ));
    assert_eq!(status, 200, "{page}");
    assert_eq!(active(&am.silences()).len(), 1);
    let id = rt.block_on(r.api_get(API, "/api/v1/silences"))["silences"][0]["id"]
        .as_i64()
        .unwrap();
    let expire = |site: &'static str| {
        let u = format!("{url}/api/v1/silences/{id}/expire");
        rt.block_on(async move {
            let resp = reqwest::Client::new()
                .post(u)
                .bearer_auth(API)
                .header("sec-fetch-site", site)
                .form(&[("x", "1")])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    };
    let (status, _) = expire("cross-site");
    assert_eq!(status, 403);
    assert_eq!(active(&am.silences()).len(), 1, "still silenced");
    let (status, page) = expire("same-origin");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Silence expired"), "{page}");
    assert!(active(&am.silences()).is_empty(), "{}", am.silences());
    assert_eq!(
        rt.block_on(r.api_get(API, "/api/v1/silences"))["silences"],
        json!([])
    );
    let hist = rt.block_on(r.api_get(API, "/api/v1/alerts/fp-BookStale/history"));
    let trail: Vec<(String, String, String)> = hist["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"].as_str().unwrap().contains("silence"))
        .map(|h| {
            let f = |k: &str| h[k].as_str().unwrap_or("").to_string();
            (f("action"), f("by"), f("via"))
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            ("silence_4h".into(), "bob".into(), "link".into()),
            ("unsilence".into(), "api-token".into(), "page".into()),
        ]
    );
    rt.block_on(r.shutdown());
}

#[test]
fn an_unreachable_alertmanager_is_said_and_nothing_is_recorded() {
    let rt = common::runtime();
    let am = Alertmanager::start("route:\n  receiver: none\nreceivers:\n  - name: none\n");
    let dead_port = testkit::free_port();
    let dead = format!("http://127.0.0.1:{dead_port}");
    // The reachable one first: its silence is made, then undone when the second fails.
    let (r, url, starts, _fake) = firing_router(&rt, &[am.url(), dead.clone()]);
    let token = ack::silence_token(SECRET, "fp-BookStale", starts, now_ms() / 1000 + 600);
    let (status, page) = rt.block_on(post_form(
        &format!("{url}/silence/{token}"),
        &[("by", "alice"), ("duration", "1h")],
    ));
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("Alertmanager unreachable"), "{page}");
    // (minijinja escapes the slashes of the URL in HTML.)
    assert!(
        page.contains(&format!("127.0.0.1:{dead_port} cannot be reached")),
        "{page}"
    );
    assert!(page.contains("Nothing was silenced"), "{page}");
    assert!(
        active(&am.silences()).is_empty(),
        "undone: {}",
        am.silences()
    );
    let list = rt.block_on(r.api_get(API, "/api/v1/silences"));
    assert_eq!(list["silences"], json!([]));
    // Expiring: a silence Alertmanager does not know (it lost its state) or already expired
    // counts as expired; an unreachable one does not.
    let undone = am.silences()[0]["id"].as_str().unwrap().to_string();
    rt.block_on(async {
        use quantwatch_alert_router::plan::silence::{AmError, expire_one};
        let t = Duration::from_secs(5);
        assert!(expire_one(&am.url(), &undone, t).await.is_ok());
        assert!(
            expire_one(&am.url(), "00000000-0000-0000-0000-000000000000", t)
                .await
                .is_ok()
        );
        assert!(matches!(
            expire_one(&dead, &undone, t).await,
            Err(AmError::Unreachable { .. })
        ));
    });
    let hist = rt.block_on(r.api_get(API, "/api/v1/alerts/fp-BookStale/history"));
    assert!(
        !hist["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["action"].as_str().unwrap().contains("silence")),
        "{hist}"
    );
    rt.block_on(r.shutdown());
}

/// The store side on PostgreSQL (the same statements as SQLite, checked on the other
/// dialect): record with its audit entry, list while active, expire once.
#[test]
fn silences_are_recorded_and_expired_once_on_postgres() {
    use quantwatch_alert_router::store::{self, AmSilence, SilenceRecord};
    let rt = common::runtime();
    let pg = testkit::Postgres::start();
    let url = pg.create_database("router");
    rt.block_on(async {
        let s = store::open(&url, false).await.expect("open");
        let rec = SilenceRecord {
            id: 0,
            fingerprint: "fp-x".into(),
            starts_at: 1_000,
            alertname: "X".into(),
            labels: [("alertname".to_string(), "X".to_string())].into(),
            duration: "4h".into(),
            created_by: "alice".into(),
            created_at: 2_000,
            ends_at: 2_000 + 4 * 3_600_000,
            alertmanagers: vec![AmSilence {
                url: "http://am:9093".into(),
                id: "abc".into(),
            }],
            expired_at: None,
            expired_by: None,
        };
        let id = s
            .record_silence(&rec, "link", Some("10.0.0.1"))
            .await
            .unwrap();
        let list = s.active_silences(3_000, 10).await.unwrap();
        assert_eq!(list, vec![SilenceRecord { id, ..rec.clone() }]);
        assert!(
            s.active_silences(rec.ends_at, 10).await.unwrap().is_empty(),
            "ended"
        );
        assert!(
            s.expire_silence(id, "bob", "page", None, 4_000)
                .await
                .unwrap()
        );
        assert!(
            !s.expire_silence(id, "bob", "page", None, 4_001)
                .await
                .unwrap(),
            "once"
        );
        assert!(s.active_silences(3_000, 10).await.unwrap().is_empty());
        let audit: Vec<(String, String, String)> = s
            .recent_audit(10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.by, e.via))
            .collect();
        assert_eq!(
            audit,
            vec![
                ("unsilence".into(), "bob".into(), "page".into()),
                ("silence_4h".into(), "alice".into(), "link".into()),
            ]
        );
    });
}
