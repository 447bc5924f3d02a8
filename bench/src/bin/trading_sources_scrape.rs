//! Scrape cost of a freqtrade SQLite source versus its history.
//!
//! For 1,000 trades / 3,000 orders and 100,000 trades / 300,000 orders (the fixture
//! generator's rows plus copies made by `tests/fixtures/freqtrade/bulk.py`, rollback-journal
//! mode, so every read goes through the lock-free validation path): one release exporter per
//! size with only that source, one scrape each to fold the history (timed: what a restart
//! costs), 20 warm-up rounds, then rounds of one `GET /metrics` to each, alternately: p50 /
//! p99 / max of the whole HTTP scrape and p99 of the `trading_sources` collector.
//!
//! Run: `cargo build --release -p quantwatch-exporter -p quantwatch-bench &&
//!       target/release/trading_sources_scrape [--scrapes N]` (needs target/ft-venv, which
//!       scripts/test creates).

use quantwatch_bench::percentile;
use quantwatch_bench::scrape::{Target, ms, our_exporter};
use std::time::{Duration, Instant};
use testkit::App;
use testkit::freqtrade::run_script;

struct Row {
    trades: u64,
    orders: u64,
    first_ms: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    collector_p99_ms: f64,
}

fn main() {
    let mut scrapes = 300usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scrapes" => scrapes = args.next().and_then(|v| v.parse().ok()).unwrap_or(300),
            other => panic!("unknown argument {other:?} (--scrapes N)"),
        }
    }
    let exporter = our_exporter("cargo build --release -p quantwatch-exporter");
    // Both sizes run at once and are scraped alternately, so that both see the same load
    // from the rest of the machine (a shared 2-core VM: a p99 of a fraction of a millisecond
    // measured minutes apart is mostly noise).
    struct Run {
        _dir: tempfile::TempDir,
        app: App,
        target: Target,
        trades: u64,
        orders: u64,
        first_ms: f64,
    }
    let mut runs: Vec<Run> = Vec::new();
    for extra in [993u64, 99_993] {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("tradesv3.sqlite");
        let counts = run_script(
            "bulk.py",
            &[db.to_str().expect("UTF-8"), &extra.to_string()],
        );
        let mut it = counts
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (trades, orders) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        let cfg = dir.path().join("exporter.yml");
        std::fs::write(
            &cfg,
            format!(
                "host:\n  enabled: false\ntrading:\n  sources:\n    - {{name: ft, type: freqtrade, url: 'sqlite://{}', starting_capital: 1000, timeout: 60s}}\n",
                db.display()
            ),
        )
        .expect("write config");
        let app = App::start(
            exporter.to_str().expect("UTF-8"),
            &["--config", cfg.to_str().expect("UTF-8")],
            &[],
        );
        let url = format!("{}/metrics", app.url());
        let mut target = Target::new("ours", url, app.child_pid());
        // The first scrape folds all history (what a restart costs).
        let start = Instant::now();
        target.scrape(false);
        let first_ms = start.elapsed().as_secs_f64() * 1000.0;
        runs.push(Run {
            _dir: dir,
            app,
            target,
            trades,
            orders,
            first_ms,
        });
    }
    for _ in 0..20 {
        for r in runs.iter_mut() {
            r.target.scrape(false);
        }
    }
    for _ in 0..scrapes {
        for r in runs.iter_mut() {
            r.target.scrape(true);
        }
    }
    let mut rows = Vec::new();
    for r in &runs {
        let up = r
            .app
            .scrape()
            .value("trading_source_up", &[("source", "ft")]);
        assert_eq!(up, Some(1.0), "the source must be up after warm-up");
        let mut coll = r
            .target
            .collectors
            .get("trading_sources")
            .cloned()
            .unwrap_or_default();
        coll.sort_by(f64::total_cmp);
        rows.push(Row {
            trades: r.trades,
            orders: r.orders,
            first_ms: r.first_ms,
            p50: r.target.p(0.5),
            p99: r.target.p(0.99),
            max: r.target.p(1.0),
            collector_p99_ms: percentile(&coll, 0.99).unwrap_or(f64::NAN) * 1000.0,
        });
    }
    println!(
        "| trades | orders | first scrape (fold all) ms | scrape p50 ms | scrape p99 ms | scrape max ms | collector p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {} | {} | {} | {:.2} |",
            r.trades,
            r.orders,
            r.first_ms,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.collector_p99_ms
        );
    }
    let (small, large) = (&rows[0], &rows[1]);
    println!(
        "p99 at {} trades: {} ms (target ≤ 50 ms); p99 ratio large / small: {:.2} (target ≤ 3)",
        large.trades,
        ms(large.p99),
        large.p99.as_secs_f64() / small.p99.as_secs_f64()
    );
}
