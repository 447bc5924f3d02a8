//! hummingbot source scrape cost versus history size (issue 20's figure: 1,000,000 fills,
//! p99 ≤ 50 ms and ≤ 3 × the figure at a small database).
//!
//! For each size: a hummingbot database with hummingbot's own DDL (the `Order`, `OrderStatus`
//! and `TradeFill` statements of tests/fixtures/hummingbot/hbot.sqlite, which hummingbot's
//! models wrote), filled server-side by recursive CTEs: orders of two fills each, over two
//! strategies and five symbols, one fill every 10 s of history, each order with its created,
//! filled and completed statuses, the last 50 orders still open. The real exporter binary
//! reads it as a `hummingbot` source; after its first read has folded the history, the bench
//! scrapes it sequentially while a writer with hummingbot's settings (rollback journal, no
//! busy timeout) commits a filled order before every scrape, so each scrape folds new fills.
//! Printed: the first fold's time, scrape p50 / p99 / max (client side, whole HTTP scrape),
//! the trading_sources collector's own p99, and busy errors the writer saw.
//!
//! Run: `cargo build --release -p quantwatch-exporter -p quantwatch-bench &&
//!       target/release/hummingbot_scrape [--scrapes N] [--large-fills N]`

use anyhow::{Context, Result, bail};
use quantwatch_bench::scrape::{Target, fetch, ms, our_exporter};
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::hummingbot::FilledBuy;

const OPEN_ORDERS: i64 = 50;

/// hummingbot's connection settings (`testkit::hummingbot`).
async fn bot(path: &Path, create: bool) -> Result<SqliteConnection> {
    Ok(testkit::hummingbot::bot_connection(path, create).await?)
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hummingbot/hbot.sqlite")
}

/// A database of `fills` fills (two per order) ending now.
async fn generate(path: &Path, fills: i64) -> Result<()> {
    let mut fx = bot(&fixture(), false).await?;
    let ddl: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE tbl_name IN ('Order', 'OrderStatus', 'TradeFill') \
         AND sql IS NOT NULL ORDER BY type DESC",
    )
    .fetch_all(&mut fx)
    .await?;
    fx.close().await?;
    let mut c = bot(path, true).await?;
    for s in &ddl {
        sqlx::query(s).execute(&mut c).await?;
    }
    let orders = fills / 2;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let start = now - fills * 10_000;
    let mut tx = c.begin().await?;
    // Order n: strategy n % 2, symbol n % 5, created at start + 20 s · n, BUY on even n / 2.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO \"Order\" (id, config_file_path, strategy, market, symbol, base_asset,
             quote_asset, creation_timestamp, order_type, amount, leverage, price, last_status,
             last_update_timestamp, exchange_order_id, position)
         SELECT 'o' || i, 'conf.yml', 's' || (i % 2), 'binance', 'SYM' || (i % 5) || '-USDT',
             'SYM' || (i % 5), 'USDT', ?2 + 20000 * i, 'LIMIT', 2000000, 1,
             (100 + i % 7) * 1000000,
             CASE WHEN i >= ?1 - ?3 THEN 'OrderFilled'
                  WHEN (i / 2) % 2 = 0 THEN 'BuyOrderCompleted' ELSE 'SellOrderCompleted' END,
             ?2 + 20000 * i + 15000, 'x' || i, 'NIL' FROM n",
    )
    .bind(orders)
    .bind(start)
    .bind(OPEN_ORDERS)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO OrderStatus (order_id, timestamp, status)
         SELECT id, creation_timestamp, CASE WHEN (CAST(substr(id, 2) AS INTEGER) / 2) % 2 = 0
             THEN 'BuyOrderCreated' ELSE 'SellOrderCreated' END FROM \"Order\"",
    )
    .execute(&mut *tx)
    .await?;
    for k in 0..2 {
        sqlx::query(
            "INSERT INTO TradeFill (config_file_path, strategy, market, symbol, base_asset,
                 quote_asset, timestamp, order_id, trade_type, order_type, price, amount,
                 leverage, trade_fee, trade_fee_in_quote, exchange_trade_id, position)
             SELECT config_file_path, strategy, market, symbol, base_asset, quote_asset,
                 creation_timestamp + 500 + 10000 * ?1, id,
                 CASE WHEN (CAST(substr(id, 2) AS INTEGER) / 2) % 2 = 0 THEN 'BUY' ELSE 'SELL' END,
                 'LIMIT', price, 1000000, 1, '{}', 100000, id || '-' || ?1, 'NIL'
             FROM \"Order\"",
        )
        .bind(k)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO OrderStatus (order_id, timestamp, status)
             SELECT id, creation_timestamp + 500 + 10000 * ?1, 'OrderFilled' FROM \"Order\"",
        )
        .bind(k)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO OrderStatus (order_id, timestamp, status)
         SELECT id, last_update_timestamp, last_status FROM \"Order\"
         WHERE last_status LIKE '%Completed'",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    c.close().await?;
    Ok(())
}

/// One filled order, committed as hummingbot's recorder would; false on SQLITE_BUSY.
async fn write_one(c: &mut SqliteConnection, n: i64) -> Result<bool> {
    let id = format!("w{n}");
    let order = FilledBuy {
        id: &id,
        timestamp_ms: SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64,
        config_file_path: "conf.yml",
        strategy: "s0",
        symbol: "SYM0-USDT",
        price: 101_000_000,
        amount: 1_000_000,
    };
    Ok(order.commit(c).await?)
}

struct Row {
    fills: i64,
    generate_s: f64,
    first_fold_s: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    collector_p99_ms: f64,
    busy: u64,
    /// The exporter's anonymous resident memory after the scrapes, KiB.
    rss_anon_kib: u64,
}

fn run(fills: i64, scrapes: usize, rt: &tokio::runtime::Runtime) -> Result<Row> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("conf_pmm_1.sqlite");
    let t = Instant::now();
    rt.block_on(generate(&db, fills))?;
    let generate_s = t.elapsed().as_secs_f64();
    let config = dir.path().join("exporter.yml");
    std::fs::write(
        &config,
        format!(
            "trading:\n  sources:\n    - {{name: hbot, type: hummingbot, url: \"sqlite://{}\", starting_capital: 5000, timeout: 10s}}\n",
            db.display()
        ),
    )?;
    let port = testkit::free_port();
    let exe = our_exporter("cargo build --release -p quantwatch-exporter");
    let mut child: Child = Command::new(exe)
        .args([
            "--config",
            config.to_str().context("utf-8 path")?,
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let client = quantwatch_bench::scrape::client();
    let t = Instant::now();
    let result = (|| -> Result<Row> {
        loop {
            if t.elapsed() > Duration::from_secs(600) {
                bail!("the source did not come up within 10 minutes");
            }
            if let Ok(resp) = client.get(&url).send()
                && let Ok(body) = resp.text()
                && body.contains("trading_source_up{source=\"hbot\"} 1")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let first_fold_s = t.elapsed().as_secs_f64();
        let mut target = Target::new("ours", url.clone(), child.id() as i32);
        let mut w = rt.block_on(bot(&db, false))?;
        let mut busy = 0;
        for i in 0..(scrapes + quantwatch_bench::scrape::WARMUP) {
            if !rt.block_on(write_one(&mut w, i as i64))? {
                busy += 1;
            }
            target.scrape(i >= quantwatch_bench::scrape::WARMUP);
        }
        let body = fetch(&client, &url);
        let want = format!(
            "trading_fills_total{{source=\"hbot\",strategy=\"s0\",side=\"buy\"}} {}",
            fills / 4 + (scrapes + quantwatch_bench::scrape::WARMUP) as i64
        );
        if !body.contains(&want) {
            bail!("the last scrape does not count every fill ({want})");
        }
        let mut coll = target
            .collectors
            .get("trading_sources")
            .cloned()
            .unwrap_or_default();
        coll.sort_by(f64::total_cmp);
        let collector_p99_ms =
            quantwatch_bench::percentile(&coll, 0.99).unwrap_or(f64::NAN) * 1000.0;
        let (rss_anon_kib, _) = quantwatch_bench::scrape::rss_split_kib(child.id() as i32);
        Ok(Row {
            fills,
            generate_s,
            first_fold_s,
            p50: target.p(0.5),
            p99: target.p(0.99),
            max: target.p(1.0),
            collector_p99_ms,
            busy,
            rss_anon_kib,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn main() -> Result<()> {
    let mut scrapes = 300usize;
    let mut large = 1_000_000i64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scrapes" => scrapes = args.next().context("--scrapes N")?.parse()?,
            "--large-fills" => large = args.next().context("--large-fills N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for fills in [1_000, large] {
        let r = run(fills, scrapes, &rt)?;
        println!(
            "{:>9} fills: generated in {:.1} s, first fold {:.2} s; scrape p50 {} ms, p99 {} ms, max {} ms; trading_sources collector p99 {:.2} ms; writer SQLITE_BUSY {}; exporter RssAnon {} KiB",
            r.fills,
            r.generate_s,
            r.first_fold_s,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.collector_p99_ms,
            r.busy,
            r.rss_anon_kib
        );
        rows.push(r);
    }
    let (small, big) = (&rows[0], &rows[1]);
    let ratio = big.p99.as_secs_f64() / small.p99.as_secs_f64();
    println!(
        "p99 at {} fills / p99 at {} fills = {:.2} (budget ≤ 3); p99 {} ms (budget ≤ 50 ms)",
        big.fills,
        small.fills,
        ratio,
        ms(big.p99)
    );
    if ratio > 3.0 || big.p99 > Duration::from_millis(50) || big.busy + small.busy > 0 {
        bail!("over budget");
    }
    Ok(())
}
