//! Webhook intake: durable acceptance, deduplication, and refusals that store nothing.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use serde_json::json;

const API: &str = "api-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_once_and_recognises_retries_and_peer_duplicates() {
    let r = start(
        "channels:\n  - type: log\n    name: log\n",
        &[("ROUTER_API_TOKEN", API)],
    )
    .await;
    let p = payload(
        "{}:{alertname=\"A\"}",
        vec![
            alert("A", "firing", "2026-01-01T00:00:00Z", &[]),
            alert("B", "firing", "2026-01-01T00:00:00Z", &[]),
        ],
    );
    let (status, body) = r.post(&p).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["duplicates"], 0);
    // Alertmanager retrying, and a second peer sending the same group.
    let (status, body) = r.post(&p).await;
    assert_eq!(
        (status, body["accepted"].clone(), body["duplicates"].clone()),
        (200, json!(0), json!(2))
    );
    // A mixed group: A resolved (new), B still firing (duplicate), C new.
    let mixed = payload(
        "{}:{alertname=\"A\"}",
        vec![
            alert("A", "resolved", "2026-01-01T00:00:00Z", &[]),
            alert("B", "firing", "2026-01-01T00:00:00Z", &[]),
            alert("C", "firing", "2026-01-01T00:05:00Z", &[]),
        ],
    );
    let (status, body) = r.post(&mixed).await;
    assert_eq!(
        (status, body["accepted"].clone(), body["duplicates"].clone()),
        (200, json!(2), json!(1))
    );

    assert!(
        common::eventually(Duration::from_secs(10), || async {
            r.notifications(API, "sent").await.len() == 4
        })
        .await
    );
    let all = r.notifications(API, "sent").await;
    let mut names: Vec<(String, String)> = all
        .iter()
        .map(|n| {
            (
                n["alertname"].as_str().unwrap().to_string(),
                n["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("A".into(), "firing".into()),
            ("A".into(), "resolved".into()),
            ("B".into(), "firing".into()),
            ("C".into(), "firing".into())
        ]
    );
    assert_eq!(
        r.metric("quantwatch_router_webhooks_received_total{outcome=\"accepted\"}")
            .await,
        Some(2.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_webhooks_received_total{outcome=\"duplicate\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_notifications_total{channel=\"log\",outcome=\"sent\"}")
            .await,
        Some(4.0)
    );
    assert_eq!(r.metric("quantwatch_router_queue_depth").await, Some(0.0));
    assert_eq!(r.metric("quantwatch_router_store_up").await, Some(1.0));
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_get_their_status_and_store_nothing() {
    let r = start(
        "webhook:\n  max_body_bytes: 4096\n",
        &[
            ("ROUTER_API_TOKEN", API),
            ("ROUTER_WEBHOOK_TOKEN", "hook-secret"),
        ],
    )
    .await;
    let good = serde_json::to_vec(&payload(
        "g",
        vec![alert("A", "firing", "2026-01-01T00:00:00Z", &[])],
    ))
    .unwrap();

    let (s, b) = r.post_raw(good.clone(), None).await;
    assert_eq!(s, 401, "{b}");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("ROUTER_WEBHOOK_TOKEN"),
        "{b}"
    );
    let (s, _) = r.post_raw(good.clone(), Some("wrong")).await;
    assert_eq!(s, 401);

    let (s, b) = r
        .post_raw(b"{\"alerts\": [".to_vec(), Some("hook-secret"))
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["reason"].as_str().unwrap().contains("EOF"),
        "truncated body: {b}"
    );
    let (s, b) = r
        .post_raw(good[..good.len() / 2].to_vec(), Some("hook-secret"))
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = r.post_raw(b"not json".to_vec(), Some("hook-secret")).await;
    assert_eq!(s, 400, "{b}");
    let bad_status = serde_json::to_vec(&payload(
        "g",
        vec![alert("A", "pending", "2026-01-01T00:00:00Z", &[])],
    ))
    .unwrap();
    let (s, b) = r.post_raw(bad_status, Some("hook-secret")).await;
    assert_eq!(s, 400);
    assert_eq!(
        b["reason"],
        "alerts[0].status: \"pending\" is neither \"firing\" nor \"resolved\""
    );
    let bad_time =
        serde_json::to_vec(&payload("g", vec![alert("A", "firing", "yesterday", &[])])).unwrap();
    let (s, b) = r.post_raw(bad_time, Some("hook-secret")).await;
    assert_eq!(s, 400);
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .starts_with("alerts[0].startsAt:"),
        "{b}"
    );

    let big = payload(
        "g",
        (0..100)
            .map(|i| alert(&format!("Big{i}"), "firing", "2026-01-01T00:00:00Z", &[]))
            .collect(),
    );
    let (s, b) = r
        .post_raw(serde_json::to_vec(&big).unwrap(), Some("hook-secret"))
        .await;
    assert_eq!(s, 413, "{b}");
    assert!(b["reason"].as_str().unwrap().contains("4096"), "{b}");

    // Nothing of the above was stored.
    assert_eq!(
        r.notifications(API, "pending").await.len() + r.notifications(API, "sent").await.len(),
        0
    );
    assert_eq!(
        r.metric("quantwatch_router_webhooks_received_total{outcome=\"unauthorized\"}")
            .await,
        Some(2.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_webhooks_received_total{outcome=\"bad_request\"}")
            .await,
        Some(5.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_webhooks_received_total{outcome=\"too_large\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        r.metric("quantwatch_router_webhooks_received_total{outcome=\"accepted\"}")
            .await,
        Some(0.0)
    );

    // The right token and a good body are accepted.
    let (s, b) = r.post_raw(good, Some("hook-secret")).await;
    assert_eq!((s, b["accepted"].clone()), (200, json!(1)));
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requires_its_token_and_names_the_variable() {
    let r = start("", &[]).await;
    let resp = reqwest::get(format!("{}/api/v1/notifications", r.url))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert!(
        b["reason"].as_str().unwrap().contains("ROUTER_API_TOKEN"),
        "{b}"
    );
    assert_eq!(
        reqwest::get(format!("{}/healthz", r.url))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{}/readyz", r.url))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // The status page needs a login (alert text is sensitive); without any configured it
    // says what to configure.
    let landing = reqwest::get(format!("{}/", r.url)).await.unwrap();
    assert_eq!(landing.status().as_u16(), 401);
    assert!(landing.text().await.unwrap().contains("ROUTER_API_TOKEN"));
    let m = r.metrics().await;
    assert!(m.contains("quantwatch_router_build_info{version=\""), "{m}");
    assert!(
        m.contains("# TYPE quantwatch_router_oldest_pending_seconds gauge"),
        "{m}"
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_413_without_content_length() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = start("webhook:\n  max_body_bytes: 2048\n", &[]).await;
    let addr = r.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let chunk = "x".repeat(1500);
    let req = format!(
        "POST /webhook/alertmanager HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(resp.contains("exceeds 2048 bytes"), "{resp}");
    assert_eq!(
        r.metric("quantwatch_router_webhooks_received_total{outcome=\"too_large\"}")
            .await,
        Some(1.0)
    );
    r.shutdown().await;
}
