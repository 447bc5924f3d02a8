//! Webhook ingest benchmark: the router's durable intake (SQLite WAL, synchronous=FULL, group
//! commit) next to a bare axum handler that answers 200 without storing, same payloads, same
//! client, same run. Prints a Markdown table.
//!
//! Usage: cargo run --release -p quantwatch-bench --bin router_ingest -- [SECONDS] [CONCURRENCY]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

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

async fn load(
    name: &'static str,
    url: String,
    secs: u64,
    concurrency: usize,
    seq: Arc<AtomicU64>,
) -> anyhow::Result<Result_> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, seq) = (client.clone(), url.clone(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let body = payload(seq.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    Ok(Result_ {
        name,
        requests: all.len() as u64,
        errors,
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// Start the router (zero config: log channel, its worker running) on a fresh SQLite file,
/// warm it up, measure it, stop it.
async fn bench_router(
    name: &'static str,
    synchronous: &str,
    secs: u64,
    concurrency: usize,
    seq: Arc<AtomicU64>,
) -> anyhow::Result<Result_> {
    let dir = tempfile::tempdir()?;
    let env: std::collections::HashMap<String, String> = [
        (
            "ROUTER_DATABASE_URL".to_string(),
            format!("sqlite://{}/router.db", dir.path().display()),
        ),
        (
            "ROUTER_SQLITE_SYNCHRONOUS".to_string(),
            synchronous.to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let cfg =
        quantwatch_alert_router::config::load(None, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhook/alertmanager", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = tokio::spawn(quantwatch_alert_router::serve(
        cfg,
        None,
        listener,
        async move {
            let _ = stopped.await;
        },
        None,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    load("warmup", url.clone(), 1, concurrency, seq.clone()).await?;
    let r = load(name, url, secs, concurrency, seq).await?;
    let _ = stop.send(());
    router
        .await
        .context("router task")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(r)
}

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

    let seq = Arc::new(AtomicU64::new(0));
    load("warmup", bare_url.clone(), 1, concurrency, seq.clone()).await?;
    let bare = load(
        "bare axum handler (no store)",
        bare_url,
        secs,
        concurrency,
        seq.clone(),
    )
    .await?;
    let full = bench_router(
        "router, SQLite synchronous=FULL (fsync per commit)",
        "full",
        secs,
        concurrency,
        seq.clone(),
    )
    .await?;
    let normal = bench_router(
        "router, SQLite synchronous=NORMAL",
        "normal",
        secs,
        concurrency,
        seq,
    )
    .await?;

    println!(
        "webhook ingest, {secs} s per target, {concurrency} concurrent clients, 1 alert per request"
    );
    println!();
    println!("| target | requests | errors | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in [&bare, &full, &normal] {
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
    for d in [&full, &normal] {
        let ratio = (d.requests as f64 / d.secs) / (bare.requests as f64 / bare.secs) * 100.0;
        println!(
            "{}: {ratio:.1} % of the bare handler's req/s (target >= 20 %), p99 {:.2} ms (target <= 20 ms)",
            d.name, d.p99_ms
        );
    }
    Ok(())
}
