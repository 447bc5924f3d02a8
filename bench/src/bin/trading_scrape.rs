//! Trading scrape cost versus history size.
//!
//! For each size (10k orders, then 1M orders / 5M fills / 1M equity snapshots, 50 strategies):
//! a fresh database with the reference schema (`quantwatch-exporter migrate`), history
//! generated server-side with `INSERT … SELECT generate_series` (summary triggers disabled
//! during the bulk load, then `trading_rebuild_summaries()`), the real exporter binary
//! started with only the trading collector, and sequential `GET /metrics`:
//! - scrape latency p50 / p99 / max (client side, whole HTTP scrape);
//! - the load each scrape puts on PostgreSQL: statements and rows returned
//!   (pg_stat_statements), rows read (seq_tup_read + idx_tup_read of the trading tables) and
//!   shared buffers touched.
//!
//! Run: `cargo build --release -p quantwatch-exporter -p quantwatch-bench &&
//!       target/release/trading_scrape [--scrapes N] [--large-orders N]`

use anyhow::{Context, Result, bail};
use quantwatch_bench::percentile;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::Postgres;

struct Size {
    label: &'static str,
    strategies: u64,
    orders: u64,
    fills_per_order: u64,
    snapshots: u64,
}

struct Row {
    label: &'static str,
    orders: u64,
    fills: u64,
    snapshots: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    collector_p99_ms: f64,
    statements: f64,
    rows_returned: f64,
    rows_read: f64,
    buffers: f64,
    bulk_load_s: f64,
}

fn exporter_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("QW_EXPORTER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().context("binary has a directory")?;
    let p = dir.join("quantwatch-exporter");
    if !p.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p quantwatch-exporter) or set QW_EXPORTER_BIN",
            p.display()
        );
    }
    Ok(p)
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generate(pg: &Postgres, db: &str, s: &Size) {
    let n = s.orders;
    let per = s.snapshots / s.strategies;
    pg.psql(
        db,
        &format!(
            "ALTER TABLE orders DISABLE TRIGGER USER;
             ALTER TABLE fills DISABLE TRIGGER USER;
             ALTER TABLE equity_snapshots DISABLE TRIGGER USER;
             INSERT INTO strategies (name, status, risk_budget, heartbeat_at)
             SELECT 's' || lpad(g::text, 3, '0'),
                    CASE WHEN g % 10 = 0 THEN 'paused' ELSE 'active' END,
                    CASE WHEN g % 7 = 0 THEN NULL ELSE 5000000 END, now() - g * interval '1 s'
             FROM generate_series(1, {strategies}) g;
             INSERT INTO orders (strategy_id, symbol, side, quantity, price, status, created_at, updated_at)
             SELECT 1 + g % {strategies}, 'SYM' || (g % 60),
                    CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END, 1 + g % 100,
                    100 + (g % 1000) / 10.0,
                    CASE WHEN g % 20 = 0 THEN 'cancelled' WHEN g % 33 = 0 THEN 'rejected'
                         WHEN g % 97 = 0 THEN 'new' WHEN g % 89 = 0 THEN 'partially_filled'
                         ELSE 'filled' END,
                    now() - interval '365 days' + g * (interval '365 days' / {n}),
                    now() - interval '365 days' + g * (interval '365 days' / {n})
             FROM generate_series(1, {n}) g;
             INSERT INTO fills (order_id, quantity, price, fee, filled_at)
             SELECT o.id, 1 + (o.id + k) % 7, 100 + (o.id % 500) / 10.0, 0.01 * k,
                    o.created_at + ((o.id * 7 + k * 13) % 5000) * interval '1 ms'
             FROM orders o CROSS JOIN generate_series(1, {fpo}) k;
             INSERT INTO equity_snapshots (strategy_id, ts, equity, realized_pnl)
             SELECT st, now() - interval '365 days' + i * (interval '365 days' / {per}),
                    1000000 + round((50000 * sin(i / 500.0 + st) + i * 0.5)::numeric, 2),
                    round((i * 0.25)::numeric, 2)
             FROM generate_series(1, {strategies}) st CROSS JOIN generate_series(1, {per}) i;
             INSERT INTO positions (strategy_id, symbol, quantity, avg_price, market_price)
             SELECT st, 'SYM' || k, CASE WHEN k % 3 = 0 THEN -(k + 1) ELSE k + 1 END, 100,
                    100 + k % 7
             FROM generate_series(1, {strategies}) st CROSS JOIN generate_series(0, 59) k;
             ALTER TABLE orders ENABLE TRIGGER USER;
             ALTER TABLE fills ENABLE TRIGGER USER;
             ALTER TABLE equity_snapshots ENABLE TRIGGER USER;
             SELECT trading_rebuild_summaries();",
            strategies = s.strategies,
            fpo = s.fills_per_order,
        ),
    );
    pg.psql(db, "VACUUM ANALYZE");
}

fn stats(pg: &Postgres, db: &str) -> (f64, f64, f64, f64) {
    let q = format!(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0),
                coalesce(sum(shared_blks_hit + shared_blks_read), 0)
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{db}')"
    );
    let s = pg.psql("postgres", &q);
    let v: Vec<f64> = s.split('|').map(|x| x.parse().unwrap_or(0.0)).collect();
    let read = pg.psql(
        db,
        "SELECT (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables)
              + (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes)",
    );
    (
        v.first().copied().unwrap_or(0.0),
        v.get(1).copied().unwrap_or(0.0),
        v.get(2).copied().unwrap_or(0.0),
        read.parse().unwrap_or(0.0),
    )
}

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_size(pg: &Postgres, bin: &PathBuf, s: &Size, scrapes: usize) -> Result<Row> {
    let db = format!(
        "bench_{}",
        s.label.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let url = pg.create_database(&db);
    let out = Command::new(bin)
        .args(["migrate", "--database-url", &url])
        .output()?;
    if !out.status.success() {
        bail!("migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let t0 = Instant::now();
    generate(pg, &db, s);
    let bulk_load_s = t0.elapsed().as_secs_f64();
    eprintln!("{}: history generated in {bulk_load_s:.1}s", s.label);

    let dir = tempfile_dir()?;
    let cfg = dir.join("exporter.yml");
    std::fs::write(&cfg, "host:\n  enabled: false\n")?;
    let port = testkit::free_port();
    let child = Command::new(bin)
        .args(["--config"])
        .arg(&cfg)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .env("TRADING_DATABASE_URL", &url)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _guard = Exporter(child);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    // Warm up: until the portfolio's one-time history pass has finished.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(r) = client.get(&metrics).send()
            && let Ok(body) = r.text()
            && body.contains("trading_portfolio_drawdown_ratio")
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the exporter never produced the portfolio drawdown");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..20 {
        client.get(&metrics).send()?.text()?;
    }
    // PostgreSQL's cumulative statistics are flushed by idle backends within ~10 s.
    std::thread::sleep(Duration::from_secs(11));
    pg.psql("postgres", "SELECT pg_stat_statements_reset()");
    let before = stats(pg, &db);
    let mut lat = Vec::with_capacity(scrapes);
    let mut coll = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        let t = Instant::now();
        let body = client.get(&metrics).send()?.text()?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if !body.contains("quantwatch_exporter_collector_success{collector=\"trading\"} 1") {
            bail!("trading collector failed:\n{body}");
        }
        if let Some(v) = body
            .lines()
            .find(|l| {
                l.starts_with(
                    "quantwatch_exporter_collector_duration_seconds{collector=\"trading\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            coll.push(v * 1000.0);
        }
    }
    std::thread::sleep(Duration::from_secs(11));
    let after = stats(pg, &db);
    lat.sort_by(f64::total_cmp);
    coll.sort_by(f64::total_cmp);
    let n = scrapes as f64;
    let count = |t: &str| -> u64 {
        pg.psql(&db, &format!("SELECT count(*) FROM {t}"))
            .parse()
            .unwrap_or(0)
    };
    Ok(Row {
        label: s.label,
        orders: count("orders"),
        fills: count("fills"),
        snapshots: count("equity_snapshots"),
        p50_ms: percentile(&lat, 0.50).unwrap_or(f64::NAN),
        p99_ms: percentile(&lat, 0.99).unwrap_or(f64::NAN),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        collector_p99_ms: percentile(&coll, 0.99).unwrap_or(f64::NAN),
        // The pg_stat_statements reset itself is not the exporter's.
        statements: (after.0 - before.0) / n,
        rows_returned: (after.1 - before.1) / n,
        rows_read: (after.3 - before.3) / n,
        buffers: (after.2 - before.2) / n,
        bulk_load_s,
    })
}

fn tempfile_dir() -> Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("qw-trading-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

fn main() -> Result<()> {
    let bin = exporter_binary()?;
    let scrapes = arg("--scrapes", 300) as usize;
    let large = arg("--large-orders", 1_000_000);
    let mut pg = Postgres::start();
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
    );
    pg.psql("postgres", "ALTER SYSTEM SET shared_buffers = '1GB'");
    pg.psql("postgres", "ALTER SYSTEM SET max_wal_size = '8GB'");
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET maintenance_work_mem = '512MB'",
    );
    pg.psql("postgres", "ALTER SYSTEM SET work_mem = '64MB'");
    pg.stop();
    pg.start_again();
    pg.psql(
        "postgres",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    );
    let sizes = [
        Size {
            label: "10k",
            strategies: 50,
            orders: 10_000,
            fills_per_order: 5,
            snapshots: 10_000,
        },
        Size {
            label: "1M",
            strategies: 50,
            orders: large,
            fills_per_order: 5,
            snapshots: large,
        },
    ];
    let mut rows = Vec::new();
    for s in &sizes {
        // pg_stat_statements is per database; create the extension view access there too.
        rows.push(run_size(&pg, &bin, s, scrapes)?);
    }
    println!(
        "| history | orders | fills | equity snapshots | scrape p50 ms | scrape p99 ms | scrape max ms | collector p99 ms | statements/scrape | rows returned/scrape | rows read/scrape | buffers/scrape |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.label,
            r.orders,
            r.fills,
            r.snapshots,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.collector_p99_ms,
            r.statements,
            r.rows_returned,
            r.rows_read,
            r.buffers
        );
    }
    if let [small, big] = rows.as_slice() {
        println!(
            "\np99 ratio {} / {}: {:.2} (target <= 3); p99 at {}: {:.2} ms (target <= 50 ms); bulk load {:.0}s + {:.0}s",
            big.label,
            small.label,
            big.p99_ms / small.p99_ms,
            big.label,
            big.p99_ms,
            small.bulk_load_s,
            big.bulk_load_s
        );
    }
    Ok(())
}
