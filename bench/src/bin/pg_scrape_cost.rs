//! What one scrape costs the monitored PostgreSQL: statements, round trips of rows and rows
//! read, quantwatch-exporter beside Debian's postgres_exporter 0.11, on the same server, one
//! after the other (never both at once, so each delta is one exporter's).
//!
//! Statements and rows returned come from pg_stat_statements (calls, rows), rows read from
//! pg_stat_database (tup_returned + tup_fetched summed over databases). Both exporters are
//! connected to `postgres`, with their default flags; ours publishes more families
//! (pg_stat_user_tables, pg_statio_user_tables, pg_stat_statements, pg_wal,
//! pg_long_running_transactions) in the same statement.
//!
//! Run: `cargo build -p quantwatch-exporter && cargo run -p quantwatch-bench --bin pg_scrape_cost`
//! (the exporter binary is taken from the same target directory as this one).

use quantwatch_bench::scrape::{fetch, our_exporter};
use std::time::Duration;
use testkit::{App, GoExporter, Postgres};

const SCRAPES: usize = 50;

/// (statements, rows returned) since the last reset of pg_stat_statements, and rows read
/// (tup_returned + tup_fetched over every database) so far. The bench's own statements carry
/// a `bench-own` comment and are left out of the first two.
fn totals(pg: &Postgres) -> (f64, f64, f64) {
    let line = pg.psql(
        "postgres",
        "SELECT /* bench-own */ \
                (SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements \
                 WHERE query NOT LIKE '%bench-own%'), \
                (SELECT COALESCE(sum(rows), 0) FROM pg_stat_statements \
                 WHERE query NOT LIKE '%bench-own%'), \
                (SELECT sum(tup_returned + tup_fetched) FROM pg_stat_database)",
    );
    let v: Vec<f64> = line
        .split('|')
        .map(|x| x.trim().parse().expect("a number"))
        .collect();
    (v[0], v[1], v[2])
}

/// A backend that stays connected flushes its table statistics when idle, at most every
/// 10 s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL); psql's flush when they exit.
const FLUSH: Duration = Duration::from_secs(12);

fn scrape_n(client: &reqwest::blocking::Client, url: &str, n: usize) {
    for _ in 0..n {
        fetch(client, url);
    }
}

/// Per-scrape (statements, rows returned, rows read) for `url`.
fn measure(pg: &Postgres, client: &reqwest::blocking::Client, url: &str) -> (f64, f64, f64) {
    // Warm up: connections open, our catalog cached, prepared statements made.
    scrape_n(client, url, 3);
    std::thread::sleep(FLUSH);
    pg.psql(
        "postgres",
        "SELECT /* bench-own */ pg_stat_statements_reset()",
    );
    // What one reading session itself adds to rows read, to subtract.
    let x1 = totals(pg);
    std::thread::sleep(Duration::from_millis(500));
    let x2 = totals(pg);
    let own = x2.2 - x1.2;
    scrape_n(client, url, SCRAPES);
    std::thread::sleep(FLUSH);
    let y = totals(pg);
    let n = SCRAPES as f64;
    (y.0 / n, y.1 / n, (y.2 - x2.2 - own) / n)
}

fn main() {
    let ours_bin = our_exporter("run `cargo build -p quantwatch-exporter` first");
    let mut pg = Postgres::start();
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
    );
    pg.stop();
    pg.start_again();
    pg.psql(
        "postgres",
        "CREATE EXTENSION pg_stat_statements; \
         CREATE TABLE fills (id bigint PRIMARY KEY, qty int); \
         INSERT INTO fills SELECT g, g FROM generate_series(1, 1000) g",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("exporter.yml");
    std::fs::write(&cfg, "host:\n  enabled: false\n").expect("config");
    let ours = App::start(
        ours_bin.to_str().expect("utf-8 path"),
        &["--config", cfg.to_str().expect("utf-8 path")],
        &[("DATABASE_URL", &pg.url())],
    );
    let go = GoExporter::postgres(&pg.url());
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let o = measure(&pg, &client, &format!("{}/metrics", ours.url()));
    let g = measure(&pg, &client, &go.metrics_url());
    println!("PostgreSQL cost per scrape, {SCRAPES} scrapes each, same server (PostgreSQL 15):\n");
    println!("| exporter | statements | rows returned | rows read (tup_returned + tup_fetched) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| quantwatch-exporter | {:.2} | {:.1} | {:.0} |",
        o.0, o.1, o.2
    );
    println!(
        "| postgres_exporter 0.11 | {:.2} | {:.1} | {:.0} |",
        g.0, g.1, g.2
    );
}
