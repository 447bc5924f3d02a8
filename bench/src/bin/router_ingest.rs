//! Webhook ingest benchmark: the router's durable intake (SQLite WAL, fsynced before each
//! 2xx, group commit) next to a bare axum handler that answers 200 without storing, same
//! payloads, same client, same run, taking turns in interleaved rounds. Prints a Markdown table.
//!
//! Usage: cargo run --release -p quantwatch-bench --bin router_ingest -- [SECONDS] [CONCURRENCY]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quantwatch_bench::router;
use quantwatch_bench::timing::{Latencies, timed};

struct Result_ {
    name: &'static str,
    requests: u64,
    errors: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn payload(n: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"Bench{n}\"}}"),
        "status": "firing",
        "receiver": "router",
        "groupLabels": {"alertname": format!("Bench{n}")},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": format!("Bench{n}"), "severity": "warning", "instance": "db1:9187", "job": "postgres"},
            "annotations": {"summary": "replication lag above 30s", "description": "standby db2 is 42s behind the primary"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=pg_replication_lag_seconds",
            "fingerprint": format!("{n:016x}"),
        }],
    }))
    .expect("json")
}

/// Latencies of successful requests, the failed count and the seconds spent.
#[derive(Default)]
struct Samples {
    lat: Latencies,
    errors: u64,
    secs: f64,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.lat.append(other.lat);
        self.errors += other.errors;
        self.secs += other.secs;
    }

    fn summary(self, name: &'static str) -> Result_ {
        Result_ {
            name,
            requests: self.lat.len() as u64,
            errors: self.errors,
            secs: self.secs,
            p50_ms: self.lat.ms(0.50),
            p99_ms: self.lat.ms(0.99),
        }
    }
}

async fn load(
    client: &reqwest::Client,
    url: &str,
    secs: f64,
    concurrency: usize,
    seq: &Arc<AtomicU64>,
) -> anyhow::Result<Samples> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, seq) = (client.clone(), url.to_string(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let body = payload(seq.fetch_add(1, Ordering::Relaxed));
                let req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                match timed(req).await {
                    Ok(a) if a.status.is_success() => lat.push(a.took),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut out = Samples::default();
    for t in tasks {
        let (l, e) = t.await?;
        out.lat.append(l);
        out.errors += e;
    }
    out.secs = start.elapsed().as_secs_f64();
    Ok(out)
}

/// A router under test: zero config (log channel, its worker running) on a fresh SQLite file.
struct RouterUnderTest {
    url: String,
    router: router::Router,
    _dir: tempfile::TempDir,
}

async fn start_router(synchronous: &str) -> anyhow::Result<RouterUnderTest> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}/router.db", dir.path().display());
    let router = router::start(
        None,
        &[
            ("ROUTER_DATABASE_URL", &db),
            ("ROUTER_SQLITE_SYNCHRONOUS", synchronous),
        ],
    )
    .await?;
    Ok(RouterUnderTest {
        url: format!("{}/webhook/alertmanager", router.base),
        router,
        _dir: dir,
    })
}

/// Wait until the router has delivered its backlog, so its worker does not run during the
/// next target's turn (its delivery during its own turn is part of what it costs).
async fn drain(client: &reqwest::Client, webhook_url: &str) -> anyhow::Result<()> {
    let metrics = webhook_url.replace("/webhook/alertmanager", "/metrics");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = client.get(&metrics).send().await?.text().await?;
        if text
            .lines()
            .any(|l| l.trim() == "quantwatch_router_queue_depth 0")
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the router at {webhook_url} did not drain its queue within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rounds per target: the targets take turns, so a slow minute on a shared machine falls on
/// all of them alike instead of on whichever ran then.
const ROUNDS: u32 = 5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let concurrency: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(32);

    // Bare handler: answers 200 without storing anything.
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_url = format!("http://{}/webhook/alertmanager", bare.local_addr()?);
    let app = axum::Router::new().route(
        "/webhook/alertmanager",
        axum::routing::post(|_b: axum::body::Bytes| async { "ok" }),
    );
    tokio::spawn(async move { axum::serve(bare, app).await });
    let full = start_router("full").await?;
    let normal = start_router("normal").await?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let seq = Arc::new(AtomicU64::new(0));
    let targets = [
        ("bare axum handler (no store)", bare_url.as_str()),
        (
            "router, SQLite synchronous=FULL (fsync before 2xx)",
            full.url.as_str(),
        ),
        ("router, SQLite synchronous=NORMAL", normal.url.as_str()),
    ];
    for (_, url) in targets {
        load(&client, url, 1.0, concurrency, &seq).await?;
    }
    let mut samples: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    let slice = secs as f64 / f64::from(ROUNDS);
    for _ in 0..ROUNDS {
        for (i, (_, url)) in targets.iter().enumerate() {
            samples[i].add(load(&client, url, slice, concurrency, &seq).await?);
            if i > 0 {
                drain(&client, url).await?;
            }
        }
    }
    let results: Vec<Result_> = samples
        .into_iter()
        .zip(targets)
        .map(|(s, (name, _))| s.summary(name))
        .collect();
    for r in [full, normal] {
        r.router.stop().await?;
    }

    println!(
        "webhook ingest, {secs} s per target in {ROUNDS} interleaved rounds, {concurrency} concurrent clients, 1 alert per request"
    );
    println!();
    println!("| target | requests | errors | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} |",
            r.name,
            r.requests,
            r.errors,
            r.requests as f64 / r.secs,
            r.p50_ms,
            r.p99_ms
        );
    }
    println!();
    let bare = &results[0];
    for d in &results[1..] {
        let ratio = (d.requests as f64 / d.secs) / (bare.requests as f64 / bare.secs) * 100.0;
        println!(
            "{}: {ratio:.1} % of the bare handler's req/s (target >= 20 %), p99 {:.2} ms (target <= 20 ms)",
            d.name, d.p99_ms
        );
    }
    Ok(())
}
