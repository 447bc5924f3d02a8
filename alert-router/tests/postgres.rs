//! The PostgreSQL store: same intake semantics, 503 while the database is down and recovery
//! after, and two replicas sharing one outbox without sending a row twice.

mod common;

use std::time::Duration;

use common::{alert, payload, start};
use serde_json::json;
use testkit::Postgres;

const API: &str = "api-secret";

#[test]
fn postgres_store_dedups_answers_503_when_down_and_recovers() {
    let rt = common::runtime();
    let mut pg = Postgres::start();
    let url = pg.create_database("router");
    let r = rt.block_on(start(
        "delivery:\n  poll_interval: 200ms\n",
        &[("ROUTER_DATABASE_URL", &url), ("ROUTER_API_TOKEN", API)],
    ));
    let p = payload(
        "g",
        vec![
            alert("PgA", "firing", "2026-01-01T00:00:00Z", &[]),
            alert("PgB", "firing", "2026-01-01T00:00:00Z", &[]),
        ],
    );
    let (s, b) = rt.block_on(r.post(&p));
    assert_eq!((s, b["accepted"].clone()), (200, json!(2)));
    let (s, b) = rt.block_on(r.post(&p));
    assert_eq!((s, b["duplicates"].clone()), (200, json!(2)));
    assert!(
        rt.block_on(common::eventually(Duration::from_secs(10), || async {
            r.notifications(API, "sent").await.len() == 2
        }))
    );
    assert_eq!(
        pg.psql("router", "SELECT count(*) FROM outbox WHERE state = 'sent'")
            .trim(),
        "2"
    );
    assert_eq!(
        pg.psql("router", "SELECT count(*) FROM alert_events")
            .trim(),
        "2"
    );

    pg.stop();
    let (s, b) = rt.block_on(r.post(&payload(
        "g",
        vec![alert("PgC", "firing", "2026-01-01T00:00:00Z", &[])],
    )));
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"], "store_unavailable");
    assert_eq!(
        rt.block_on(r.metric("quantwatch_router_webhooks_received_total{outcome=\"store_error\"}")),
        Some(1.0)
    );
    let ready = rt.block_on(async {
        reqwest::get(format!("{}/readyz", r.url))
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(ready, 503);

    pg.start_again();
    // Alertmanager retries a 503; the retry succeeds once the database is back.
    let ok = rt.block_on(common::eventually(Duration::from_secs(20), || async {
        r.post(&payload(
            "g",
            vec![alert("PgC", "firing", "2026-01-01T00:00:00Z", &[])],
        ))
        .await
        .0 == 200
    }));
    assert!(ok, "accepted again after the database came back");
    assert!(
        rt.block_on(common::eventually(Duration::from_secs(10), || async {
            r.notifications(API, "sent").await.len() == 3
        }))
    );
    assert_eq!(
        pg.psql(
            "router",
            "SELECT count(*) FROM alert_events WHERE fingerprint = 'fp-PgC'"
        )
        .trim(),
        "1"
    );
    rt.block_on(r.shutdown());
}

#[test]
fn two_replicas_share_the_outbox_and_send_each_row_once() {
    let rt = common::runtime();
    let pg = Postgres::start();
    let url = pg.create_database("router");
    let yaml = "delivery:\n  poll_interval: 100ms\n  batch_max: 7\n";
    let a = rt.block_on(start(
        yaml,
        &[("ROUTER_DATABASE_URL", &url), ("ROUTER_API_TOKEN", API)],
    ));
    let b = rt.block_on(start(
        yaml,
        &[("ROUTER_DATABASE_URL", &url), ("ROUTER_API_TOKEN", API)],
    ));
    for i in 0..40 {
        let target = if i % 2 == 0 { &a } else { &b };
        let alerts = (0..5)
            .map(|j| {
                alert(
                    &format!("Rep{i:02}x{j}"),
                    "firing",
                    "2026-01-01T00:00:00Z",
                    &[],
                )
            })
            .collect();
        let (s, _) = rt.block_on(target.post(&payload(&format!("g{i}"), alerts)));
        assert_eq!(s, 200);
        // The same group through the other replica, as a second Alertmanager peer would.
        let other = if i % 2 == 0 { &b } else { &a };
        let alerts = (0..5)
            .map(|j| {
                alert(
                    &format!("Rep{i:02}x{j}"),
                    "firing",
                    "2026-01-01T00:00:00Z",
                    &[],
                )
            })
            .collect();
        let (s, body) = rt.block_on(other.post(&payload(&format!("g{i}"), alerts)));
        assert_eq!((s, body["duplicates"].clone()), (200, json!(5)));
    }
    assert!(
        rt.block_on(common::eventually(Duration::from_secs(20), || async {
            a.notifications(API, "pending").await.is_empty()
        }))
    );
    assert_eq!(
        pg.psql(
            "router",
            "SELECT count(*) FROM outbox WHERE state = 'sent' AND attempts = 1"
        )
        .trim(),
        "200"
    );
    assert_eq!(
        pg.psql("router", "SELECT count(*) FROM outbox").trim(),
        "200"
    );
    let sent_a = rt
        .block_on(
            a.metric("quantwatch_router_notifications_total{channel=\"log\",outcome=\"sent\"}"),
        )
        .unwrap_or(0.0);
    let sent_b = rt
        .block_on(
            b.metric("quantwatch_router_notifications_total{channel=\"log\",outcome=\"sent\"}"),
        )
        .unwrap_or(0.0);
    assert_eq!(
        sent_a + sent_b,
        200.0,
        "each row sent by exactly one replica ({sent_a} + {sent_b})"
    );
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
}

#[test]
fn a_hung_database_gets_503_in_bounded_time_not_a_hung_webhook() {
    let rt = common::runtime();
    let pg = Postgres::start();
    let url = pg.create_database("router");
    let r = rt.block_on(start(
        "",
        &[("ROUTER_DATABASE_URL", &url), ("ROUTER_API_TOKEN", API)],
    ));
    assert_eq!(
        rt.block_on(r.post(&payload(
            "g",
            vec![alert("Before", "firing", "2026-01-01T00:00:00Z", &[])]
        )))
        .0,
        200
    );
    pg.pause();
    let t0 = std::time::Instant::now();
    let ready = rt.block_on(async {
        reqwest::get(format!("{}/readyz", r.url))
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(ready, 503);
    let (s, b) = rt.block_on(r.post(&payload(
        "g",
        vec![alert("During", "firing", "2026-01-01T00:00:00Z", &[])],
    )));
    let waited = t0.elapsed();
    pg.resume();
    assert_eq!(s, 503, "{b}");
    assert!(
        waited < Duration::from_secs(25),
        "answered after {waited:?}"
    );
    // Alertmanager's retry lands once the database answers again; stored once either way.
    assert!(
        rt.block_on(common::eventually(Duration::from_secs(20), || async {
            r.post(&payload(
                "g",
                vec![alert("During", "firing", "2026-01-01T00:00:00Z", &[])],
            ))
            .await
            .0 == 200
        }))
    );
    assert_eq!(
        pg.psql(
            "router",
            "SELECT count(*) FROM alert_events WHERE fingerprint = 'fp-During'"
        )
        .trim(),
        "1"
    );
    rt.block_on(r.shutdown());
}
