//! Router soak: a steady stream of alerts through the real webhook of the real binary
//! (SQLite store, retention on with short durations so pruning runs all along), for N minutes.
//! Every firing resolves `--lifetime` seconds later; label sets come back (a new firing of an
//! alert seen before) the way a desk's alerts flap. At minute 1, every `--every` minutes and at
//! the end it prints the router's resident memory (VmRSS, RssAnon), the SQLite file (+ WAL),
//! the webhook latency p50/p99 over the last minute and the rows retention pruned so far; then
//! a verdict: minute 1 against the last minute (RSS and p99 at most 10 % above minute 1), and the file size
//! flat once retention has reached its steady state.
//!
//! The minutes are counted after a warm-up under the same load (printed as `warm-up N` rows,
//! outside the verdict): until a firing has lived `lifetime`, stayed resolved `resolved_after`
//! and been pruned by the next run, the load is not yet the steady one (no resolves in the
//! first `lifetime` seconds, no deletes before retention's first prune) and the store and its
//! caches are still growing to their working size. Comparing that start with minute 30 would
//! measure the warm-up, not a drift.
//!
//! Build the router first (the bench starts the binary beside its own):
//!   cargo build --release -p quantwatch-alert-router -p quantwatch-bench
//!   target/release/router_soak --minutes 30
//! Options: --minutes N (30), --rate ALERTS_PER_S (20), --lifetime SECONDS (30),
//! --resolved-after DURATION (2m), --interval DURATION (30s), --every MINUTES (5),
//! --warmup MINUTES (lifetime + resolved_after + interval, rounded up, plus one).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use quantwatch_bench::alerts::{payload, rfc3339, unix_ms};
use testkit::App;

struct Args {
    minutes: u64,
    rate: u64,
    lifetime: u64,
    resolved_after: String,
    interval: String,
    every: u64,
    warmup: Option<u64>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        minutes: 30,
        rate: 20,
        lifetime: 30,
        resolved_after: "2m".into(),
        interval: "30s".into(),
        every: 5,
        warmup: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--minutes" => a.minutes = v.parse()?,
            "--rate" => a.rate = v.parse()?,
            "--lifetime" => a.lifetime = v.parse()?,
            "--resolved-after" => a.resolved_after = v,
            "--interval" => a.interval = v,
            "--every" => a.every = v.parse()?,
            "--warmup" => a.warmup = Some(v.parse()?),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!(
        a.minutes >= 1 && a.rate >= 1 && a.every >= 1,
        "values must be positive"
    );
    Ok(a)
}

/// (finished at, latency) of each answered webhook; errors counted apart.
#[derive(Default)]
struct Log {
    samples: VecDeque<(Instant, Duration)>,
    errors: u64,
    sent: u64,
}

/// `VmRSS` and `RssAnon` of a process, in KiB.
fn rss_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

fn file_len(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The sum of every sample of a family (all label sets).
fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Row {
    minute: i64,
    rss: u64,
    anon: u64,
    sqlite_heap: f64,
    heap_in_use: f64,
    heap_free: f64,
    db: u64,
    wal: u64,
    p50: f64,
    p99: f64,
    requests: usize,
    errors: u64,
    pruned: f64,
    runs: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn run(a: Args, app: &App, db: std::path::PathBuf) -> anyhow::Result<()> {
    let base = app.url();
    let pid = app.child_pid();
    let webhook = format!("{base}/webhook/alertmanager");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()?;
    let log = Arc::new(Mutex::new(Log::default()));
    let warmup = a.warmup.unwrap_or_else(|| a.steady_minutes());
    let start = Instant::now();
    let end = start + Duration::from_secs((warmup + a.minutes) * 60);
    // The load: open loop, one firing every 1/rate s, its resolve `lifetime` s later, each
    // request on its own task so a slow answer never slows the pace.
    let load = {
        let (client, log, webhook) = (client.clone(), log.clone(), webhook.clone());
        let (rate, lifetime) = (a.rate, a.lifetime);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pending: VecDeque<(Instant, u64, String)> = VecDeque::new();
            let mut n: u64 = 0;
            while Instant::now() < end {
                tick.tick().await;
                let now = Instant::now();
                let mut bodies = vec![];
                let starts_at = rfc3339(unix_ms());
                bodies.push(payload(n, "firing", &starts_at));
                pending.push_back((now + Duration::from_secs(lifetime), n, starts_at));
                n += 1;
                while pending.front().is_some_and(|p| p.0 <= now) {
                    let (_, m, s) = pending.pop_front().expect("front");
                    bodies.push(payload(m, "resolved", &s));
                }
                for body in bodies {
                    let (client, log, url) = (client.clone(), log.clone(), webhook.clone());
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let r = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await;
                        let ok = match r {
                            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                            Err(_) => false,
                        };
                        let mut l = log.lock().expect("log");
                        l.sent += 1;
                        if ok {
                            l.samples.push_back((Instant::now(), t.elapsed()));
                        } else {
                            l.errors += 1;
                        }
                    });
                }
            }
        })
    };

    println!(
        "router_soak: {} alerts/s (fire, resolve {} s later), {} min after {} min of warm-up, retention resolved_after {} interval {}, SQLite {}\n",
        a.rate,
        a.lifetime,
        a.minutes,
        warmup,
        a.resolved_after,
        a.interval,
        db.display()
    );
    println!(
        "| minute | VmRSS MiB | RssAnon MiB | heap in use MiB | heap free MiB | of which SQLite MiB | SQLite file MiB | WAL MiB | webhook p50 ms | p99 ms | answered (last min) | errors (total) | rows pruned (total) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows: Vec<Row> = Vec::new();
    let wal = db.with_file_name("router.db-wal");
    for k in 1..=warmup + a.minutes {
        tokio::time::sleep_until((start + Duration::from_secs(k * 60)).into()).await;
        // Minutes after the warm-up: 1 is the first measured minute.
        let minute = k as i64 - warmup as i64;
        let (mut lat, errors) = {
            let mut l = log.lock().expect("log");
            let cut = Instant::now() - Duration::from_secs(60);
            while l.samples.front().is_some_and(|s| s.0 < cut) {
                l.samples.pop_front();
            }
            (l.samples.iter().map(|s| s.1).collect::<Vec<_>>(), l.errors)
        };
        lat.sort();
        let pct = |q: f64| {
            quantwatch_bench::percentile(&lat, q)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(f64::NAN)
        };
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let (rss, anon) = rss_kib(pid);
        let row = Row {
            minute,
            rss,
            anon,
            sqlite_heap: metric_sum(&metrics, "quantwatch_router_sqlite_heap_bytes"),
            heap_in_use: metric_sum(&metrics, "quantwatch_router_heap_bytes{state=\"in_use\"}"),
            heap_free: metric_sum(&metrics, "quantwatch_router_heap_bytes{state=\"free\"}"),
            db: file_len(&db),
            wal: file_len(&wal),
            p50: pct(0.5),
            p99: pct(0.99),
            requests: lat.len(),
            errors,
            pruned: metric_sum(&metrics, "quantwatch_router_retention_pruned_rows_total"),
            runs: metric_sum(&metrics, "quantwatch_router_retention_batches_total") > 0.0,
        };
        if minute <= 1 || minute % a.every as i64 == 0 || minute == a.minutes as i64 {
            let mib = |b: u64| b as f64 / 1_048_576.0;
            println!(
                "| {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} |",
                if minute < 1 {
                    format!("warm-up {k}")
                } else {
                    minute.to_string()
                },
                row.rss as f64 / 1024.0,
                row.anon as f64 / 1024.0,
                row.heap_in_use / 1_048_576.0,
                row.heap_free / 1_048_576.0,
                row.sqlite_heap / 1_048_576.0,
                mib(row.db),
                mib(row.db + row.wal) - mib(row.db),
                row.p50,
                row.p99,
                row.requests,
                row.errors,
                row.pruned
            );
        }
        if minute >= 1 {
            rows.push(row);
        }
    }
    load.await?;
    verdict(&a, &rows);
    Ok(())
}

/// Minute 1 against the last: RSS and p99 at most 10 % higher; the file and the WAL flat (at
/// most 10 % larger) between the first minute after retention reached its steady state (and
/// not before a third of the run) and the last.
fn verdict(a: &Args, rows: &[Row]) {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return;
    };
    let ratio = |x: f64, y: f64| if x > 0.0 { y / x } else { f64::NAN };
    let within = |r: f64| (0.0..=1.10).contains(&r);
    let rss = ratio(first.rss as f64, last.rss as f64);
    let p99 = ratio(first.p99, last.p99);
    // The file is compared from a third of the run on: the WAL reaches its high-water mark
    // meanwhile (the warm-up covers retention's first runs).
    let steady_min = (a.minutes / 3).max(1) as i64;
    let steady = rows.iter().find(|r| r.minute >= steady_min && r.runs);
    println!();
    println!(
        "RSS minute 1 -> {}: {:.1} -> {:.1} MiB (x{rss:.3}, {}); RssAnon {:.1} -> {:.1} MiB",
        last.minute,
        first.rss as f64 / 1024.0,
        last.rss as f64 / 1024.0,
        if within(rss) {
            "at most +10 %"
        } else {
            "MORE than +10 %"
        },
        first.anon as f64 / 1024.0,
        last.anon as f64 / 1024.0,
    );
    println!(
        "p99 minute 1 -> {}: {:.2} -> {:.2} ms (x{p99:.3}, {})",
        last.minute,
        first.p99,
        last.p99,
        if within(p99) {
            "at most +10 %"
        } else {
            "MORE than +10 %"
        }
    );
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let file_ok = match steady {
        Some(s) if s.minute < last.minute => {
            // The main file and the WAL apart: the WAL is reused, never truncated, so its
            // size is a high-water mark reached in the first minutes; flat means it stopped.
            let f = ratio(s.db as f64, last.db as f64);
            let w = ratio(s.wal as f64, last.wal as f64);
            let word = |r: f64| if within(r) { "flat" } else { "NOT flat" };
            println!(
                "SQLite file minute {} (retention steady) -> {}: {:.2} -> {:.2} MiB (x{f:.3}, {}); \
                 WAL {:.2} -> {:.2} MiB (x{w:.3}, {})",
                s.minute,
                last.minute,
                mib(s.db),
                mib(last.db),
                word(f),
                mib(s.wal),
                mib(last.wal),
                word(w)
            );
            Some(within(f) && within(w))
        }
        _ => {
            println!(
                "SQLite file: n/a (retention reaches its steady state at minute {steady_min}; run longer)"
            );
            None
        }
    };
    let ok = within(rss) && within(p99) && file_ok != Some(false) && last.errors == 0;
    println!(
        "verdict: {} (errors {}, rows pruned {:.0})",
        if ok { "FLAT" } else { "NOT FLAT" },
        last.errors,
        last.pruned
    );
}

impl Args {
    /// Minutes until the load and the store are steady: rows resolve after `lifetime`, are
    /// pruned `resolved_after` later at the next run (`interval`); a minute more for that
    /// run's reclaim.
    fn steady_minutes(&self) -> u64 {
        (self.lifetime + secs(&self.resolved_after) + secs(&self.interval)).div_ceil(60) + 1
    }
}

/// Seconds of a duration as the router's config writes it (`30s`, `2m`, `1h`).
fn secs(d: &str) -> u64 {
    let d = d.trim();
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: u64 = n.parse().unwrap_or(0);
    n * match unit {
        "m" => 60,
        "h" => 3600,
        _ => 1,
    }
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("quantwatch-alert-router");
    anyhow::ensure!(
        bin.exists(),
        "{} missing: cargo build --release -p quantwatch-alert-router",
        bin.display()
    );
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("router.db");
    let cfg = dir.path().join("router.yml");
    std::fs::write(
        &cfg,
        format!(
            "retention:\n  resolved_after: {r}\n  audit_after: {r}\n  interval: {i}\n",
            r = a.resolved_after,
            i = a.interval
        ),
    )?;
    let url = format!("sqlite://{}", db.display());
    let app = App::start(
        bin.to_str().context("utf-8 path")?,
        &["--config", cfg.to_str().context("utf-8 path")?],
        &[("ROUTER_DATABASE_URL", &url)],
    );
    run(a, &app, db)
}
