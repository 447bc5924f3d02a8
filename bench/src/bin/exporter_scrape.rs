//! Scrape latency and memory of quantwatch-exporter next to the three Go exporters it
//! replaces, on the same PostgreSQL and Redis, in one run. Prints a Markdown table.
//!
//! Run: `bench/exporter.sh` (builds release binaries, then runs this).

use quantwatch_bench::percentile;
use std::time::{Duration, Instant};
use testkit::{App, GoExporter, Postgres, Redis};

const SCRAPES: usize = 1000;
const WARMUP: usize = 20;

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn measure(client: &reqwest::blocking::Client, url: &str, n: usize) -> Stats {
    for _ in 0..WARMUP {
        fetch(client, url);
    }
    let mut lat: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            fetch(client, url);
            t.elapsed()
        })
        .collect();
    lat.sort();
    Stats {
        p50: percentile(&lat, 0.50).expect("at least one scrape"),
        p99: percentile(&lat, 0.99).expect("at least one scrape"),
    }
}

fn fetch(client: &reqwest::blocking::Client, url: &str) {
    let resp = client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
        .send()
        .expect("scrape");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let body = resp.bytes().expect("body");
    assert!(!body.is_empty());
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let exe = std::env::current_exe().expect("current exe");
    let ours_bin = exe.with_file_name("quantwatch-exporter");
    assert!(
        ours_bin.exists(),
        "{} missing: run `cargo build --release -p quantwatch-exporter` (bench/exporter.sh does)",
        ours_bin.display()
    );
    let mut pg = Postgres::start();
    let redis = Redis::start();
    for db in 0..4 {
        for i in 0..100 {
            redis.cli(&["-n", &db.to_string(), "SET", &format!("k{i}"), "v"]);
        }
    }
    let ours = App::start(
        ours_bin.to_str().expect("utf-8 path"),
        &[],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    );
    let ours_pid = ours.child_pid();
    let node = GoExporter::node();
    let pge = GoExporter::postgres(&pg.url());
    let rde = GoExporter::redis(&redis.url());
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let rows = [
        (
            "quantwatch-exporter (host+pg+redis)",
            format!("{}/metrics", ours.url()),
            ours_pid,
        ),
        ("node_exporter 1.5 (Debian)", node.metrics_url(), node.pid()),
        (
            "postgres_exporter 0.11 (Debian)",
            pge.metrics_url(),
            pge.pid(),
        ),
        ("redis_exporter 1.45 (Debian)", rde.metrics_url(), rde.pid()),
    ];
    let mut results = Vec::new();
    for (name, url, pid) in &rows {
        let s = measure(&client, url, SCRAPES);
        results.push((name, s, rss_kib(*pid)));
    }

    println!(
        "\n## Exporter scrape benchmark ({SCRAPES} sequential scrapes each, after {WARMUP} warm-up)\n"
    );
    println!("| exporter | p50 ms | p99 ms | RSS after scrapes (MiB) |");
    println!("|---|---:|---:|---:|");
    for (name, s, rss) in &results {
        println!(
            "| {name} | {} | {} | {:.1} |",
            ms(s.p50),
            ms(s.p99),
            *rss as f64 / 1024.0
        );
    }
    let go_p50: Duration = results[1..].iter().map(|r| r.1.p50).sum();
    let go_min_rss = results[1..].iter().map(|r| r.2).min().unwrap_or(0);
    let ratio = results[0].1.p50.as_secs_f64() / go_p50.as_secs_f64();
    let mem_ratio = results[0].2 as f64 / go_min_rss as f64;
    println!("\n| figure | measured | target |");
    println!("|---|---:|---:|");
    println!(
        "| our p50 / sum of Go p50s ({} ms) | {:.3} | ≤ 0.25 {} |",
        ms(go_p50),
        ratio,
        if ratio <= 0.25 { "✔" } else { "✘" }
    );
    println!(
        "| our RSS / smallest Go RSS ({:.1} MiB) | {:.3} | ≤ 0.5 {} |",
        go_min_rss as f64 / 1024.0,
        mem_ratio,
        if mem_ratio <= 0.5 { "✔" } else { "✘" }
    );

    // PostgreSQL down: 1,000 scrapes must not grow memory, descriptors or connections.
    pg.stop();
    let url = format!("{}/metrics", ours.url());
    for _ in 0..WARMUP {
        fetch(&client, &url);
    }
    let (rss0, fds0) = (rss_kib(ours_pid), open_fds(ours_pid));
    for _ in 0..SCRAPES {
        fetch(&client, &url);
    }
    let (rss1, fds1) = (rss_kib(ours_pid), open_fds(ours_pid));
    // A second round tells first-use page faults from a leak: a leak grows again.
    for _ in 0..SCRAPES {
        fetch(&client, &url);
    }
    let (rss2, fds2) = (rss_kib(ours_pid), open_fds(ours_pid));
    pg.start_again();
    let mut ours_conns = 0;
    let ok = testkit::wait_until(Duration::from_secs(20), || {
        fetch(&client, &url);
        ours_conns = pg
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'quantwatch-exporter'",
            )
            .parse()
            .unwrap_or(99);
        ours_conns >= 1
    });
    println!("\n## {SCRAPES} scrapes with PostgreSQL down\n");
    println!("| quantity | before | after 1,000 | after 2,000 | growth in the 2nd 1,000 |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| RSS (KiB) | {rss0} | {rss1} | {rss2} | {} |",
        rss2 as i64 - rss1 as i64
    );
    println!(
        "| open fds | {fds0} | {fds1} | {fds2} | {} |",
        fds2 as i64 - fds1 as i64
    );
    println!(
        "| PostgreSQL connections once it is back (pool max 2) | – | – | {ours_conns} | {} |",
        if ok && ours_conns <= 2 { "ok" } else { "LEAK" }
    );
}
