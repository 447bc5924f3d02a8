//! Query cost of the router's read side with a year of history stored: the status page with
//! 3,000 escalated firing alerts, `GET /api/v1/alerts`, `GET /api/v1/alerts/{fp}/history` and
//! `GET /api/v1/notifications` with N resolved alerts (default 1,000,000) behind them, on
//! SQLite and on PostgreSQL. Requests are sequential (one client), so each figure is the cost
//! of one request, not of a queue. Prints a Markdown table with the targets (issue 22).
//!
//! Usage: cargo run --release -p quantwatch-bench --bin router_query_cost --
//!        [--store sqlite|postgres|both] [--resolved N] [--escalated N] [--flaps N] [--requests N]
//!
//! Seeding goes through the router's own store API (`Store::ingest`, `claim`, `mark_sent`,
//! `ack`), in batches of 1,000 alerts per group commit, not through hand-written INSERTs: the
//! rows are then exactly the ones the router writes (events, `alert_current`, `alert_state`,
//! the notify and escalate outbox rows, the steps a resolve cancels, the ack audit rows), and
//! stay so when the schema changes, at the price of a slower seed (minutes for 1,000,000
//! alerts). Each resolved alert fired, was notified and resolved (its resolve notified too);
//! one in ten was escalated: step 0 of a two-step chain sent, then resolved before step 1
//! (which the resolve deletes, as in production). One more alert flapped `--flaps` times
//! (default 2,000: 8,000 history entries), for the cost of a history page deep in its past.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use quantwatch_alert_router::core::model::{AlertEvent, Status};
use quantwatch_alert_router::store::escalation::{Plan, PlannedStep};
use quantwatch_alert_router::store::{RoutedEvent, Store};
use quantwatch_bench::router;
use quantwatch_bench::timing::{Latencies, timed};

const API: &str = "bench-api-token";
/// The zero-config router's one channel.
const CHANNEL: &str = "log";
/// One resolved alert in this many was escalated (a chain of two steps), as critical alerts
/// are among all: the others were notified once when firing and once when resolved.
const ESCALATED_SHARE: usize = 10;
/// Alerts per group commit while seeding.
const BATCH: usize = 1000;

struct Args {
    stores: Vec<&'static str>,
    resolved: usize,
    escalated: usize,
    flaps: usize,
    requests: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        stores: vec!["sqlite", "postgres"],
        resolved: 1_000_000,
        escalated: 3000,
        flaps: 2000,
        requests: 200,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--store" => {
                a.stores = match value.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["sqlite", "postgres"],
                    other => {
                        anyhow::bail!("--store must be sqlite, postgres or both, not {other:?}")
                    }
                }
            }
            "--resolved" => a.resolved = value.parse().context("--resolved")?,
            "--escalated" => a.escalated = value.parse().context("--escalated")?,
            "--flaps" => a.flaps = value.parse().context("--flaps")?,
            "--requests" => a.requests = value.parse().context("--requests")?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    anyhow::ensure!(a.requests > 0, "--requests must be at least 1");
    Ok(a)
}

fn event(fp: &str, name: &str, status: Status, starts_at: i64, ends_at: Option<i64>) -> AlertEvent {
    let labels = [
        ("alertname", name),
        ("severity", "critical"),
        ("instance", "db1:9187"),
        ("strategy", "alpha"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations = [
        ("summary", "replication lag above 30s"),
        ("description", "standby db2 is 42s behind the primary"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    AlertEvent {
        group_key: format!("{{}}:{{alertname=\"{name}\"}}"),
        fingerprint: fp.to_string(),
        status,
        labels,
        annotations,
        starts_at,
        ends_at,
        generator_url: Some(
            "http://prometheus:9090/graph?g0.expr=pg_replication_lag_seconds".into(),
        ),
        receiver: Some("router".into()),
    }
}

/// A chain of `steps` steps on the log channel, one hour apart after the first.
fn plan(steps: i64) -> Plan {
    Plan {
        policy: "desk".into(),
        steps: (0..steps)
            .map(|i| PlannedStep {
                offset_ms: i * 3_600_000,
                step: i,
                channel: CHANNEL.into(),
                mentions: vec!["ann".into()],
            })
            .collect(),
    }
}

/// Deliver (claim and mark sent) every row due at `now`, as the channel's worker would.
async fn deliver_due(store: &dyn Store, now: i64) -> anyhow::Result<usize> {
    let mut n = 0;
    loop {
        let rows = store.claim(CHANNEL, now, 1000, "bench", 60_000).await?;
        if rows.is_empty() {
            return Ok(n);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        store.mark_sent(&ids, now).await?;
        n += ids.len();
    }
}

/// `count` alerts that fired, were notified (step 0 too) and resolved 10 minutes later, one
/// every 20 s ending at `end`.
async fn seed_resolved(store: &dyn Store, count: usize, end: i64) -> anyhow::Result<()> {
    let start = Instant::now();
    let first = end - count as i64 * 20_000;
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let times: Vec<i64> = (done..done + n)
            .map(|i| first + i as i64 * 20_000)
            .collect();
        let fps: Vec<String> = (done..done + n).map(|i| format!("r{i:08x}")).collect();
        let firing: Vec<RoutedEvent> = fps
            .iter()
            .zip(&times)
            .enumerate()
            .map(|(i, (fp, t))| RoutedEvent {
                event: event(fp, &format!("Lag{}", t % 50), Status::Firing, *t, None),
                channels: vec![CHANNEL.into()],
                escalation: ((done + i) % ESCALATED_SHARE == 0).then(|| plan(2)),
            })
            .collect();
        let fired_at = times[n - 1] + 1000;
        store.ingest(&firing, fired_at).await?;
        deliver_due(store, fired_at).await?;
        let resolved: Vec<RoutedEvent> = fps
            .iter()
            .zip(&times)
            .map(|(fp, t)| RoutedEvent {
                event: event(
                    fp,
                    &format!("Lag{}", t % 50),
                    Status::Resolved,
                    *t,
                    Some(t + 600_000),
                ),
                channels: vec![CHANNEL.into()],
                escalation: None,
            })
            .collect();
        let resolved_at = fired_at + 600_000;
        store.ingest(&resolved, resolved_at).await?;
        deliver_due(store, resolved_at).await?;
        done += n;
        if done % 100_000 == 0 {
            eprintln!(
                "  seeded {done} resolved alerts in {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// The flapping alert of the deep history page.
const FLAPPER: &str = "flapper";

/// One alert that fired and resolved `flaps` times, a minute apart, ending before `end`, each
/// firing and resolve notified: four history entries a flap. One event per commit (a batch
/// holds one event of an alert).
async fn seed_flapping(store: &dyn Store, flaps: usize, end: i64) -> anyhow::Result<()> {
    let first = end - flaps as i64 * 60_000;
    for k in 0..flaps as i64 {
        let t = first + k * 60_000;
        for (status, at, ends_at) in [
            (Status::Firing, t + 1000, None),
            (Status::Resolved, t + 30_000, Some(t + 30_000)),
        ] {
            let ev = RoutedEvent {
                event: event(FLAPPER, "Flap", status, t, ends_at),
                channels: vec![CHANNEL.into()],
                escalation: None,
            };
            store.ingest(&[ev], at).await?;
            deliver_due(store, at).await?;
        }
    }
    Ok(())
}

/// The cursor of the history page `depth` entries back from the newest, read with pages of
/// 1,000 (unmeasured).
async fn deep_cursor(client: &reqwest::Client, base: &str, depth: usize) -> anyhow::Result<String> {
    let mut cursor = String::new();
    for _ in 0..depth / 1000 {
        let url = format!("{base}/api/v1/alerts/{FLAPPER}/history?limit=1000{cursor}");
        let a = timed(client.get(&url).bearer_auth(API)).await?;
        anyhow::ensure!(a.status.is_success(), "GET {url}: {}", a.status);
        let v: serde_json::Value = serde_json::from_slice(&a.body)?;
        let next = v["next"]
            .as_str()
            .with_context(|| format!("GET {url}: no next page"))?;
        cursor = format!("&cursor={next}");
    }
    Ok(cursor)
}

/// `count` escalated alerts firing now, step 0 of a three-step chain sent, every tenth
/// acknowledged (its announcement sent).
async fn seed_escalated(store: &dyn Store, count: usize, now: i64) -> anyhow::Result<()> {
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let firing: Vec<RoutedEvent> = (done..done + n)
            .map(|i| {
                let fp = format!("e{i:06x}");
                let t = now - (count - i) as i64 * 1000;
                RoutedEvent {
                    event: event(&fp, &format!("Drawdown{}", i % 40), Status::Firing, t, None),
                    channels: vec![CHANNEL.into()],
                    escalation: Some(plan(3)),
                }
            })
            .collect();
        store.ingest(&firing, now).await?;
        done += n;
    }
    deliver_due(store, now).await?;
    for i in (0..count).step_by(10) {
        store.ack(&format!("e{i:06x}"), "ann", now + 1).await?;
    }
    deliver_due(store, now + 1).await?;
    Ok(())
}

struct Figure {
    what: String,
    p50_ms: f64,
    p99_ms: f64,
    target: &'static str,
    bytes: usize,
}

/// `requests` sequential GETs of the paths `path(i)` yields (after 10 unmeasured ones), each
/// answered 200 with a body in which `expect` occurs.
async fn measure(
    client: &reqwest::Client,
    base: &str,
    what: &str,
    target: &'static str,
    requests: usize,
    expect: &str,
    path: impl Fn(usize) -> String,
) -> anyhow::Result<Figure> {
    let mut lat = Latencies::default();
    let mut bytes = 0;
    for i in 0..requests + 10 {
        let url = format!("{base}{}", path(i));
        let a = timed(client.get(&url).bearer_auth(API)).await?;
        let (status, body) = (a.status, a.text());
        anyhow::ensure!(status.is_success(), "GET {url}: {status}: {body}");
        anyhow::ensure!(
            body.contains(expect),
            "GET {url}: no {expect:?} in the answer"
        );
        if i >= 10 {
            lat.push(a.took);
            bytes = a.body.len();
        }
    }
    Ok(Figure {
        what: what.to_string(),
        p50_ms: lat.ms(0.50),
        p99_ms: lat.ms(0.99),
        target,
        bytes,
    })
}

async fn run(store_kind: &str, a: &Args) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let mut pg = None;
    let url = if store_kind == "postgres" {
        let server = testkit::Postgres::start();
        let url = server.create_database("router");
        pg = Some(server);
        url
    } else {
        format!("sqlite://{}/router.db", dir.path().display())
    };
    let store: Arc<dyn Store> = quantwatch_alert_router::store::open(&url, false).await?;
    let now = quantwatch_alert_router::core::clock::now_ms();
    let t = Instant::now();
    seed_resolved(store.as_ref(), a.resolved, now - 3_600_000).await?;
    eprintln!(
        "{store_kind}: {} resolved alerts seeded in {:.0} s",
        a.resolved,
        t.elapsed().as_secs_f64()
    );
    seed_escalated(store.as_ref(), a.escalated, now).await?;
    seed_flapping(store.as_ref(), a.flaps, now - 3_600_000).await?;
    drop(store);
    let router = router::start(
        None,
        &[("ROUTER_DATABASE_URL", &url), ("ROUTER_API_TOKEN", API)],
    )
    .await?;
    let client = reqwest::Client::new();
    let base = router.base.clone();
    let mut figures = Vec::new();
    figures.push(
        measure(
            &client,
            &base,
            &format!("status page `/`, {} escalated firing", a.escalated),
            "≤ 100 ms",
            a.requests,
            "Drawdown",
            |_| "/".into(),
        )
        .await?,
    );
    figures.push(
        measure(
            &client,
            &base,
            "`/api/v1/alerts` (default page)",
            "p99 ≤ 50 ms",
            a.requests,
            "\"alerts\"",
            |_| "/api/v1/alerts".into(),
        )
        .await?,
    );
    let resolved = a.resolved.max(1);
    figures.push(
        measure(
            &client,
            &base,
            "`/api/v1/alerts/{fp}/history` of a resolved alert",
            "p99 ≤ 50 ms",
            a.requests,
            "\"history\"",
            // Spread over the whole history: a multiplicative hash of the request number.
            |i| {
                let n = (i as u64).wrapping_mul(2_654_435_761) % resolved as u64;
                format!("/api/v1/alerts/r{n:08x}/history")
            },
        )
        .await?,
    );
    // Half-way back through the flapper's history, a whole number of 1,000-entry pages.
    let depth = a.flaps * 4 / 2000 * 1000;
    let cursor = deep_cursor(&client, &base, depth).await?;
    figures.push(
        measure(
            &client,
            &base,
            &format!(
                "`/api/v1/alerts/{{fp}}/history` page {} entries back of {} ({} flaps)",
                depth,
                a.flaps * 4,
                a.flaps
            ),
            "p99 ≤ 50 ms",
            a.requests,
            "\"history\"",
            |_| format!("/api/v1/alerts/{FLAPPER}/history?limit=100{cursor}"),
        )
        .await?,
    );
    figures.push(
        measure(
            &client,
            &base,
            "`/api/v1/notifications?state=failed` (none failed)",
            "-",
            a.requests,
            "\"notifications\"",
            |_| "/api/v1/notifications?state=failed".into(),
        )
        .await?,
    );
    router.stop().await?;
    drop(pg);
    Ok(figures)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = args()?;
    let mut all = Vec::new();
    for s in &a.stores {
        all.push((*s, run(s, &a).await?));
    }
    println!(
        "router query cost: {} resolved alerts stored (2 events and 2 sent notifications each, one in ten escalated with a chain step sent too), {} escalated firing (every tenth acknowledged), one alert flapped {} times, {} sequential requests per row",
        a.resolved, a.escalated, a.flaps, a.requests
    );
    println!();
    println!("| store | request | p50 ms | p99 ms | target | answer bytes |");
    println!("|---|---|---:|---:|---|---:|");
    for (s, figures) in &all {
        for f in figures {
            println!(
                "| {s} | {} | {:.1} | {:.1} | {} | {} |",
                f.what, f.p50_ms, f.p99_ms, f.target, f.bytes
            );
        }
    }
    Ok(())
}
