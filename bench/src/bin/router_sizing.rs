//! Router sizing: bytes of store per alert and per notification, on SQLite and PostgreSQL,
//! measured through the real binary. For each backend the router runs twice on a fresh store,
//! its root route notifying one channel, then three (log channels); N firings (100 per
//! webhook, label sets of `quantwatch_bench::alerts`) are posted and delivered, then their
//! N resolves, and the growth of `quantwatch_router_store_size_bytes` (SQLite: page_count ×
//! page_size; PostgreSQL: the router's tables with indexes and TOAST) is divided by N. Each
//! alert (firing + resolve) is notified twice per channel, so the three-channel run stores 4
//! more notifications per alert than the one-channel run: their difference / 4 is the cost of
//! one notification.
//!
//! Then the one-time conversion of a SQLite file made before retention (`auto_vacuum = NONE`)
//! to `INCREMENTAL` at start: a file of about 256 MiB is built with the migrations and timed
//! through `store::open` (the VACUUM that rewrites it).
//!
//!   cargo build --release -p quantwatch-alert-router -p quantwatch-bench
//!   target/release/router_sizing 20000 256

use std::time::{Duration, Instant};

use anyhow::Context;
use quantwatch_bench::alerts::{alert, unix_ms};
use testkit::{App, Postgres};

fn metric(client: &reqwest::blocking::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let text = client.get(format!("{base}/metrics")).send()?.text()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("{name} missing from /metrics"))
}

/// Wait until the queue is empty and the store size has stopped moving (the size is read by
/// the router at each retention run, every second here).
fn settled(client: &reqwest::blocking::Client, base: &str) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_millis(2500));
        let depth = metric(client, base, "quantwatch_router_queue_depth")?;
        let size = metric(client, base, "quantwatch_router_store_size_bytes")?;
        if depth == 0.0 && size == last {
            return Ok(size);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the router did not settle in 300 s"
        );
        last = size;
    }
}

fn post_all(
    client: &reqwest::blocking::Client,
    base: &str,
    n: u64,
    status: &str,
    t0: i64,
) -> anyhow::Result<()> {
    let url = format!("{base}/webhook/alertmanager");
    let ids: Vec<u64> = (0..n).collect();
    for chunk in ids.chunks(100) {
        // startsAt one millisecond apart: every firing distinct, label sets recurring.
        let alerts: Vec<serde_json::Value> = chunk
            .iter()
            .map(|&i| alert(i, status, &quantwatch_bench::alerts::rfc3339(t0 + i as i64)))
            .collect();
        let body = serde_json::json!({
            "version": "4", "groupKey": format!("{{}}:{{batch=\"{}\"}}", chunk[0] / 100),
            "status": status, "receiver": "router", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
            "truncatedAlerts": 0, "alerts": alerts,
        });
        let r = client.post(&url).json(&body).send()?;
        anyhow::ensure!(r.status().is_success(), "webhook answered {}", r.status());
    }
    Ok(())
}

/// Bytes per alert (firing + resolve, each notified on `channels` channels).
fn per_alert(bin: &str, db_url: &str, channels: usize, n: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("router.yml");
    let names = ["a", "b", "c"];
    let mut yaml = String::from("retention:\n  interval: 1s\nchannels:\n");
    for c in names {
        yaml.push_str(&format!("  - type: log\n    name: {c}\n"));
    }
    yaml.push_str(&format!(
        "route:\n  channels: [{}]\n",
        names[..channels].join(", ")
    ));
    std::fs::write(&cfg, yaml)?;
    let app = App::start(
        bin,
        &["--config", cfg.to_str().context("utf-8 path")?],
        &[("ROUTER_DATABASE_URL", db_url)],
    );
    let base = app.url();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let before = settled(&client, &base)?;
    let t0 = unix_ms();
    post_all(&client, &base, n, "firing", t0)?;
    post_all(&client, &base, n, "resolved", t0)?;
    let after = settled(&client, &base)?;
    Ok((after - before) / n as f64)
}

fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("quantwatch-alert-router");
    anyhow::ensure!(
        bin.exists(),
        "{} missing: cargo build --release -p quantwatch-alert-router",
        bin.display()
    );
    let bin = bin.to_str().context("utf-8 path")?.to_string();
    let mib: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(256);
    let pg = Postgres::start();
    println!("router_sizing: {n} alerts (firing + resolve) per run\n");
    println!(
        "| store | bytes per alert, 1 channel | bytes per alert, 3 channels | bytes per notification |"
    );
    println!("|---|---:|---:|---:|");
    for backend in ["SQLite", "PostgreSQL"] {
        let mut per = [0.0; 2];
        for (i, channels) in [1usize, 3].into_iter().enumerate() {
            let dir = tempfile::tempdir()?;
            let url = if backend == "SQLite" {
                format!("sqlite://{}/router.db", dir.path().display())
            } else {
                pg.create_database(&format!("sizing{channels}"))
            };
            per[i] = per_alert(&bin, &url, channels, n)?;
        }
        println!(
            "| {backend} | {:.0} | {:.0} | {:.0} |",
            per[0],
            per[1],
            (per[1] - per[0]) / 4.0
        );
    }
    drop(pg);
    conversion(mib)
}

/// Time the conversion of an old-format SQLite file of about `mib` MiB.
#[tokio::main(flavor = "current_thread")]
async fn conversion(mib: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("router.db");
    let url = format!("sqlite://{}", file.display());
    {
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
        let pool = sqlx::SqlitePool::connect_with(
            opts.create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
        )
        .await?;
        sqlx::migrate!("../alert-router/migrations/sqlite")
            .run(&pool)
            .await?;
        let payload = "x".repeat(2000);
        let rows = mib * 1024 * 1024 / 2200;
        let mut tx = pool.begin().await?;
        for i in 0..rows {
            sqlx::query(
                "INSERT INTO alert_events (group_key, fingerprint, status, starts_at, payload, received_at)
                 VALUES ('g', $1, 'firing', 1, $2, 1)",
            )
            .bind(format!("fp-{i}"))
            .bind(&payload)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    let size = std::fs::metadata(&file)?.len();
    let t = Instant::now();
    let store = quantwatch_alert_router::store::open(&url, false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let took = t.elapsed();
    drop(store);
    println!(
        "\nconversion of an old SQLite file (auto_vacuum NONE -> INCREMENTAL, one VACUUM at start): \
         {:.0} MiB in {:.2} s ({:.0} MiB/s)",
        size as f64 / 1_048_576.0,
        took.as_secs_f64(),
        size as f64 / 1_048_576.0 / took.as_secs_f64()
    );
    Ok(())
}
