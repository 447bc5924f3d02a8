//! Scrape latency and memory of quantwatch-exporter next to the three Go exporters it
//! replaces, on the same PostgreSQL and Redis, in one run. Prints a Markdown table.
//!
//! Run: `bench/exporter.sh` (builds release binaries, then runs this).

use quantwatch_bench::scrape::{
    Target, WARMUP, client, fetch, ms, our_exporter, rss_kib, rss_split_kib,
};
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::{App, GoExporter, Postgres, Redis};

const SCRAPES: usize = 1000;

/// Resident KiB per mapping of `pid` (grouped by file name and permissions; `[heap]`,
/// `[stack]`, anonymous), largest first: where our memory goes.
fn rss_by_mapping(pid: i32) -> Vec<(String, u64, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut key = String::new();
    for l in smaps.lines() {
        let mut it = l.split_whitespace();
        let first = it.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            let perms = it.next().unwrap_or_default();
            let name = it
                .nth(3)
                .map_or("[anon]", |n| n.rsplit('/').next().unwrap_or(n));
            key = format!("{name} {perms}");
            continue;
        }
        let kib = || {
            it.clone()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match first {
            "Rss:" => by.entry(key.clone()).or_default().0 += kib(),
            "Private_Dirty:" => by.entry(key.clone()).or_default().1 += kib(),
            _ => {}
        }
    }
    let mut v: Vec<(String, u64, u64)> = by
        .into_iter()
        .filter(|(_, (rss, _))| *rss > 0)
        .map(|(k, (rss, dirty))| (k, rss, dirty))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.1));
    v
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The ELF type of the binary measured (`e_type`, bytes 16–17): the figures hold for a
/// position-independent executable (`DYN`), what ships.
fn elf_type(path: &std::path::Path) -> &'static str {
    use std::io::Read;
    let mut head = [0u8; 18];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    match (read, &head[16..18]) {
        (Ok(()), [3, 0]) => "DYN (position-independent executable)",
        (Ok(()), [2, 0]) => "EXEC (position-dependent)",
        _ => "unknown",
    }
}

fn main() {
    let ours_bin = our_exporter("run `scripts/build-exporter --release` (bench/exporter.sh does)");
    let ours_type = elf_type(&ours_bin);
    let mut pg = Postgres::start();
    let redis = Redis::start();
    for db in 0..4 {
        for i in 0..100 {
            redis.cli(&["-n", &db.to_string(), "SET", &format!("k{i}"), "v"]);
        }
    }
    // The three Go exporters cover host, PostgreSQL and Redis; the trading collector (which
    // DATABASE_URL would turn on) has no Go counterpart, so it is off for the comparison.
    let cfg_dir = tempfile::tempdir().expect("temp dir");
    let cfg = cfg_dir.path().join("exporter.yml");
    std::fs::write(&cfg, "trading:\n  enabled: false\n").expect("writing the config");
    let ours = App::start(
        ours_bin.to_str().expect("utf-8 path"),
        &["--config", cfg.to_str().expect("utf-8 path")],
        &[("DATABASE_URL", &pg.url()), ("REDIS_URL", &redis.url())],
    );
    let ours_pid = ours.child_pid();
    let node = GoExporter::node();
    let pge = GoExporter::postgres(&pg.url());
    let rde = GoExporter::redis(&redis.url());
    let mut targets = [
        Target::new(
            "quantwatch-exporter (host+pg+redis)",
            format!("{}/metrics", ours.url()),
            ours_pid,
        ),
        Target::new("node_exporter 1.5 (Debian)", node.metrics_url(), node.pid()),
        Target::new(
            "postgres_exporter 0.11 (Debian)",
            pge.metrics_url(),
            pge.pid(),
        ),
        Target::new("redis_exporter 1.45 (Debian)", rde.metrics_url(), rde.pid()),
    ];
    // Every round scrapes all four in turn, as one Prometheus scraping four targets would;
    // the order rotates so no exporter always runs right after another one's CPU burst.
    for round in 0..WARMUP + SCRAPES {
        for i in 0..targets.len() {
            let k = (i + round) % targets.len();
            targets[k].scrape(round >= WARMUP);
        }
    }
    let rss: Vec<u64> = targets.iter().map(|t| rss_kib(t.pid)).collect();
    let mappings = rss_by_mapping(ours_pid);
    let split: Vec<(u64, u64)> = targets.iter().map(|t| rss_split_kib(t.pid)).collect();

    println!(
        "\n## Exporter scrape benchmark ({SCRAPES} rounds scraping all four, after {WARMUP} warm-up rounds)\n"
    );
    println!(
        "Our binary: {}, ELF type {ours_type}.\n",
        ours_bin.display()
    );
    println!(
        "| exporter | series | node_* series | p50 ms | p99 ms | RSS after scrapes (MiB) | of which anon / file |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for ((t, rss), (anon, file)) in targets.iter().zip(&rss).zip(&split) {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} / {:.1} |",
            t.name,
            t.series.0,
            t.series.1,
            ms(t.p(0.50)),
            ms(t.p(0.99)),
            *rss as f64 / 1024.0,
            *anon as f64 / 1024.0,
            *file as f64 / 1024.0
        );
    }
    let go_p50: Duration = targets[1..].iter().map(|t| t.p(0.50)).sum();
    let go_min_rss = rss[1..].iter().copied().min().unwrap_or(0);
    let go_min_anon = split[1..].iter().map(|s| s.0).min().unwrap_or(0);
    let ratio = targets[0].p(0.50).as_secs_f64() / go_p50.as_secs_f64();
    let anon_ratio = split[0].0 as f64 / go_min_anon as f64;
    let mem_ratio = rss[0] as f64 / go_min_rss as f64;
    let mark = |ok: bool| if ok { "✔" } else { "✘" };
    println!("\n| figure | measured | target |");
    println!("|---|---:|---:|");
    println!(
        "| our p50 / sum of Go p50s ({} ms) | {:.3} | ≤ 0.25 {} |",
        ms(go_p50),
        ratio,
        mark(ratio <= 0.25)
    );
    println!(
        "| our anonymous RSS (`RssAnon`) / smallest Go one ({:.1} MiB) | {:.3} | ≤ 0.3 {} |",
        go_min_anon as f64 / 1024.0,
        anon_ratio,
        mark(anon_ratio <= 0.3)
    );
    println!(
        "| our RSS / smallest Go RSS ({:.1} MiB), for reference | {:.3} | – |",
        go_min_rss as f64 / 1024.0,
        mem_ratio,
    );
    let mut costs: Vec<(String, f64)> = targets[0]
        .collectors
        .iter()
        .map(|(c, v)| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            (c.clone(), v[v.len() / 2])
        })
        .collect();
    costs.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("\n### Our collectors by median duration (node/* run in turn inside `host`)\n");
    println!("| collector | p50 ms |");
    println!("|---|---:|");
    for (c, secs) in costs.iter().take(12) {
        println!("| {c} | {:.3} |", secs * 1000.0);
    }

    println!("\n### Our resident memory by mapping after the rounds (KiB)\n");
    println!("| mapping | RSS | of which private dirty |");
    println!("|---|---:|---:|");
    for (name, rss, dirty) in mappings.iter().filter(|m| m.1 >= 64) {
        println!("| `{name}` | {rss} | {dirty} |");
    }

    let client = client();
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
