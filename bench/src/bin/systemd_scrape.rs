//! The systemd collector where it has work to do: Debian's node_exporter and ours, each with
//! only `--collector.systemd`, against one real systemd 252 manager holding a server's worth
//! of units, scraped in the same rounds as Prometheus scrapes. Prints a Markdown table.
//!
//! `bench/exporter.sh` measures on this VM, which runs no systemd (both collectors fail at
//! connect there); this is the other half. Needs root (the manager runs in its own mount
//! and PID namespaces, `testkit::systemd`).
//!
//! Run: `scripts/build-exporter --release && cargo run --release --locked -p quantwatch-bench --bin systemd_scrape`

use quantwatch_bench::scrape::{Target, WARMUP, ms, our_exporter, rss_kib};
use testkit::systemd::SystemdUser;
use testkit::{App, GoExporter};

const SCRAPES: usize = 500;
/// Started services (oneshot, kept active), timers and socket units: with the manager's own
/// ~25 units, about what `systemctl list-units` shows on a small Debian server.
const SERVICES: usize = 120;
const TIMERS: usize = 20;
const SOCKETS: usize = 10;

fn main() {
    let ours_bin = our_exporter("run `scripts/build-exporter --release` first");
    let mut units: Vec<(String, String)> = Vec::new();
    for i in 0..SERVICES {
        units.push((
            format!("svc-{i:03}.service"),
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n".into(),
        ));
    }
    for i in 0..TIMERS {
        units.push((
            format!("tick-{i:02}.timer"),
            "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=1h\n".into(),
        ));
        units.push((
            format!("tick-{i:02}.service"),
            "[Service]\nType=oneshot\nExecStart=/bin/true\n".into(),
        ));
    }
    for i in 0..SOCKETS {
        let port = testkit::free_port();
        units.push((
            format!("listen-{i:02}.socket"),
            format!("[Socket]\nListenStream=127.0.0.1:{port}\nAccept=yes\n"),
        ));
        units.push((
            format!("listen-{i:02}@.service"),
            "[Service]\nExecStart=/bin/true\nStandardInput=socket\n".into(),
        ));
    }
    let refs: Vec<(&str, &str)> = units
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let manager = SystemdUser::start(&refs);
    for (name, _) in &units {
        if !name.contains('@') && !name.starts_with("tick-") || name.ends_with(".timer") {
            manager.start_unit(name);
        }
    }
    // Let the timers fire once and the oneshots settle.
    std::thread::sleep(std::time::Duration::from_secs(3));

    let bus = manager.bus_address();
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", bus.as_str())];
    let args = ["--collector.disable-defaults", "--collector.systemd"];
    let ours = App::start(ours_bin.to_str().expect("utf-8 path"), &args, &env);
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let node = GoExporter::node_with_env(&owned, &env);
    let mut targets = [
        Target::new(
            "quantwatch-exporter",
            format!("{}/metrics", ours.url()),
            ours.child_pid(),
        ),
        Target::new("node_exporter 1.5 (Debian)", node.metrics_url(), node.pid()),
    ];
    for round in 0..WARMUP + SCRAPES {
        for i in 0..targets.len() {
            targets[(i + round) % targets.len()].scrape(round >= WARMUP);
        }
    }
    println!(
        "\n## The systemd collector on a live manager ({SCRAPES} rounds, after {WARMUP} warm-up)\n"
    );
    println!(
        "| exporter | node_* series | systemd collector p50 ms | scrape p50 ms | scrape p99 ms | RSS after scrapes (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for t in &targets {
        let mut col = t
            .collectors
            .get("node/systemd")
            .cloned()
            .unwrap_or_default();
        col.sort_by(f64::total_cmp);
        let col_p50 = quantwatch_bench::percentile(&col, 0.5)
            .map_or("–".to_string(), |s| format!("{:.2}", s * 1000.0));
        println!(
            "| {} | {} | {} | {} | {} | {:.1} |",
            t.name,
            t.series.1,
            col_p50,
            ms(t.p(0.50)),
            ms(t.p(0.99)),
            rss_kib(t.pid) as f64 / 1024.0
        );
    }
}
