//! What a chart adds to a message: the time of `ChartService::attachments`, the path the worker
//! takes once per message (query_range over the last hour + render + PNG, concurrently with the
//! context table: the six trading-default instant queries for the alert's `strategy`), against
//! a local Prometheus of the harness, over a message without either (which adds nothing). Also the
//! heap a render allocates (a counting allocator: peak bytes above the level before the call,
//! and total bytes allocated). Prints a Markdown table.
//!
//! Usage: cargo run --release -p quantwatch-bench --bin chart_latency -- [RENDERS] [SERIES]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use quantwatch_alert_router::app::config;
use quantwatch_alert_router::core::model::{AlertEvent, Status};
use quantwatch_bench::percentile;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
            TOTAL.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// `n` series with values that move over the hour, and a threshold the chart draws.
fn expression(n: usize) -> String {
    let parts: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "label_replace(sin(vector(time()) / {}) + {i}, \"series\", \"s{i}\", \"\", \"\")",
                200 + 37 * i
            )
        })
        .collect();
    format!("({}) > {}", parts.join(" or "), n as f64 / 2.0)
}

fn alert(expr: &str, i: usize) -> AlertEvent {
    let url = reqwest::Url::parse_with_params("http://prometheus:9090/graph", &[("g0.expr", expr)])
        .expect("url");
    AlertEvent {
        group_key: "bench".into(),
        fingerprint: format!("{i:016x}"),
        status: Status::Firing,
        labels: [
            ("alertname".to_string(), "ChartBench".to_string()),
            ("strategy".to_string(), "alpha".to_string()),
        ]
        .into(),
        annotations: Default::default(),
        starts_at: chrono_now_ms() - 20 * 60 * 1000,
        ends_at: None,
        generator_url: Some(url.to_string()),
        receiver: None,
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let renders: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let series: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prom = testkit::servers::Prometheus::start("global:\n  scrape_interval: 15s\n", &[]);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("router.yml");
    std::fs::write(
        &path,
        format!(
            "timezone: Asia/Shanghai\nprometheus_url: \"{}\"\n",
            prom.url()
        ),
    )?;
    let env: HashMap<String, String> = [
        // Signing secrets are refused below 32 bytes.
        ("ROUTER_ACK_SECRET", "bench-bench-bench-bench-bench-32"),
        ("ROUTER_PUBLIC_URL", "https://router.example"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = config::load(Some(&path), &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let svc = cfg.chart_service();
    cfg.chart.prometheus.as_ref().context("prometheus_url")?;
    let expr = expression(series);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut with = Vec::with_capacity(renders);
    let mut without = Vec::with_capacity(renders);
    let mut peaks = Vec::with_capacity(renders);
    let mut totals = Vec::with_capacity(renders);
    let mut png_bytes = 0usize;
    let mut notes = 0usize;
    rt.block_on(async {
        // Warm-up: connection, font registration, Prometheus' query path.
        for i in 0..5 {
            let _ = svc
                .for_alert(&alert(&expr, 1_000_000 + i), svc.deadline())
                .await;
        }
        for i in 0..renders {
            // Without: the message as it is today — nothing to wait for.
            let t = Instant::now();
            std::hint::black_box(&expr);
            without.push(t.elapsed());
            let a = alert(&expr, i);
            let base = CURRENT.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let total0 = TOTAL.load(Ordering::Relaxed);
            let t = Instant::now();
            let deadline = svc.deadline();
            let att = svc.attachments(&a, deadline).await;
            with.push(t.elapsed());
            let (chart, context) = (att.chart, att.context);
            peaks.push(PEAK.load(Ordering::Relaxed).saturating_sub(base));
            totals.push(TOTAL.load(Ordering::Relaxed) - total0);
            if chart.png.is_none() || context.note.is_some() {
                notes += 1;
            }
            png_bytes = chart.png.map(|p| p.len()).unwrap_or(png_bytes);
        }
    });
    with.sort();
    without.sort();
    peaks.sort();
    totals.sort();
    let p = |v: &[Duration], q| percentile(v, q).map(ms).unwrap_or(f64::NAN);
    let kib = |v: &[usize], q| percentile(v, q).unwrap_or(0) as f64 / 1024.0;
    println!(
        "renders: {renders}, series per chart: {series}, size 800x300, range 1h (400 points per series), failed: {notes}"
    );
    println!();
    println!("| message | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    println!(
        "| without chart or context | {:.3} | {:.3} | {:.3} |",
        p(&without, 0.5),
        p(&without, 0.99),
        p(&without, 1.0)
    );
    println!(
        "| with chart + context table (6 queries) | {:.1} | {:.1} | {:.1} |",
        p(&with, 0.5),
        p(&with, 0.99),
        p(&with, 1.0)
    );
    println!();
    println!("| memory per render | p50 KiB | p99 KiB |");
    println!("|---|---|---|");
    println!(
        "| peak heap above the level before | {:.0} | {:.0} |",
        kib(&peaks, 0.5),
        kib(&peaks, 0.99)
    );
    println!(
        "| bytes allocated in total | {:.0} | {:.0} |",
        kib(&totals, 0.5),
        kib(&totals, 0.99)
    );
    println!("| PNG size | {:.0} | |", png_bytes as f64 / 1024.0);
    println!(
        "images held in memory after the run: {} (chart.cache_entries bounds them)",
        svc.images().len()
    );
    Ok(())
}
