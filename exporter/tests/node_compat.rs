//! Drop-in parity with Debian's node_exporter 1.5 on this machine: every family it publishes
//! with its default flags (its own Go runtime aside) is ours too, with the same type, label
//! names and identity label values, equal stable values, and counters never behind it.
//! Plus node_exporter's flags, `--path.*` over a fixture tree, the textfile collector and a
//! hung pseudo-file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::prom_text::{Exposition, parse};
use testkit::{App, GoExporter};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

/// node_exporter families we do not publish, each with the reason. Empty: on this machine we
/// publish all of them. Collectors of 1.5 we do not implement (README lists them) publish
/// nothing here (no such hardware or filesystem); on a machine where one does, its families
/// show up in `missing` below and belong here with that reason. The hardware collectors we do
/// implement are compared on a fixture tree by `node_hardware.rs`.
const NOT_OURS: &[(&str, &str)] = &[];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/node")
}

fn scrape_go(e: &GoExporter) -> Exposition {
    let (status, body) = testkit::http_get(&e.metrics_url());
    assert_eq!(status, 200);
    parse(&body)
}

/// node_exporter's families minus its Go runtime and HTTP handler.
fn families(e: &Exposition) -> BTreeMap<String, String> {
    e.types
        .iter()
        .filter(|(n, _)| n.starts_with("node_"))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect()
}

fn label_values(e: &Exposition, family: &str) -> BTreeSet<BTreeMap<String, String>> {
    e.samples
        .iter()
        .filter(|s| s.name == family)
        .map(|s| s.labels.clone())
        .collect()
}

fn label_set(e: &Exposition, family: &str, label: &str) -> BTreeSet<String> {
    e.samples
        .iter()
        .filter(|s| s.name == family)
        .filter_map(|s| s.labels.get(label).cloned())
        .collect()
}

fn value_of(e: &Exposition, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
    e.samples
        .iter()
        .find(|s| s.name == name && &s.labels == labels)
        .map(|s| s.value)
}

#[test]
fn every_node_exporter_family_is_ours_with_its_type_labels_and_stable_values() {
    let node = GoExporter::node();
    let app = App::start(EXPORTER, &[], &[]);
    let before = scrape_go(&node);
    let ours = app.scrape();
    let theirs = families(&before);
    let mine = families(&ours);
    assert!(
        theirs.len() > 150,
        "node_exporter published {}",
        theirs.len()
    );

    let skipped: BTreeSet<&str> = NOT_OURS.iter().map(|(n, _)| *n).collect();
    let missing: Vec<&String> = theirs
        .keys()
        .filter(|n| !mine.contains_key(*n) && !skipped.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "node_exporter families we lack: {missing:#?}"
    );
    let extra: Vec<&String> = mine.keys().filter(|n| !theirs.contains_key(*n)).collect();
    assert!(
        extra.is_empty(),
        "families node_exporter does not have: {extra:#?}"
    );
    for (name, ty) in &theirs {
        if skipped.contains(name.as_str()) {
            assert!(!mine.contains_key(name), "{name} is excluded but published");
            continue;
        }
        assert_eq!(mine.get(name), Some(ty), "type of {name}");
        assert_eq!(
            ours.label_names(name),
            before.label_names(name),
            "label names of {name}"
        );
    }

    // Identity families: label values equal.
    for family in [
        "node_uname_info",
        "node_os_info",
        "node_os_version",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_network_info",
        "node_network_up",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_disk_info",
        "node_disk_reads_completed_total",
        "node_time_clocksource_current_info",
        "node_time_zone_offset_seconds",
        "node_udp_queues",
    ] {
        assert_eq!(
            label_values(&ours, family),
            label_values(&before, family),
            "label values of {family}"
        );
    }
    assert_eq!(
        label_set(&ours, "node_cpu_seconds_total", "cpu"),
        label_set(&before, "node_cpu_seconds_total", "cpu")
    );
    assert_eq!(
        label_set(&ours, "node_cpu_seconds_total", "mode"),
        label_set(&before, "node_cpu_seconds_total", "mode")
    );
    // Every collector we report on is one of node_exporter's, by its name, and succeeds or
    // fails as it does here (hwmon, nvme, mdadm, rapl, bonding, dmi, schedstat, infiniband,
    // fibrechannel, tapestats, nfs, nfsd, ipvs, zfs: "no data" on this VM; systemd: no system
    // bus), and we run every one of its default collectors.
    let their_collectors = label_set(&before, "node_scrape_collector_success", "collector");
    assert_eq!(
        label_set(&ours, "node_scrape_collector_success", "collector"),
        their_collectors,
        "our collectors against node_exporter's defaults"
    );
    for c in label_set(&ours, "node_scrape_collector_success", "collector") {
        assert!(
            their_collectors.contains(&c),
            "collector {c} unknown to node_exporter"
        );
        assert_eq!(
            ours.value("node_scrape_collector_success", &[("collector", &c)]),
            before.value("node_scrape_collector_success", &[("collector", &c)]),
            "success of collector {c}"
        );
    }

    // Stable quantities: value for value.
    for name in [
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_Hugepagesize_bytes",
        "node_boot_time_seconds",
        "node_filefd_maximum",
        "node_entropy_pool_size_bits",
        "node_nf_conntrack_entries_limit",
        "node_timex_tick_seconds",
    ] {
        assert_eq!(ours.value(name, &[]), before.value(name, &[]), "{name}");
        assert!(ours.value(name, &[]).is_some(), "{name} missing");
    }
    for family in [
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_network_speed_bytes",
        "node_network_mtu_bytes",
        "node_network_iface_id",
        "node_network_flags",
        "node_network_protocol_type",
        "node_os_version",
    ] {
        for labels in label_values(&before, family) {
            assert_eq!(
                value_of(&ours, family, &labels),
                value_of(&before, family, &labels),
                "{family}{labels:?}"
            );
        }
    }

    // Counters scraped after node_exporter's reading are never behind it.
    let mut counters = 0;
    for s in &before.samples {
        let fam = before.family_of(&s.name);
        if theirs.get(&fam).map(String::as_str) != Some("counter") || skipped.contains(fam.as_str())
        {
            continue;
        }
        let mine = value_of(&ours, &s.name, &s.labels)
            .unwrap_or_else(|| panic!("our {}{:?} missing", s.name, s.labels));
        // Both sides print the same ticks/microseconds divided the same way; allow rounding.
        assert!(
            mine + 1e-9 >= s.value,
            "{}{:?}: ours {mine} < node_exporter's earlier {}",
            s.name,
            s.labels,
            s.value
        );
        counters += 1;
    }
    assert!(counters > 100, "compared only {counters} counter series");
}

fn promtool_findings(body: &str) -> BTreeSet<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(testkit::require("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("promtool reads");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "promtool could not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(str::to_string)
    .collect()
}

#[test]
fn promtool_finds_nothing_in_our_node_families_that_node_exporter_does_not_have() {
    let node = GoExporter::node();
    let app = App::start(EXPORTER, &[], &[]);
    let theirs = promtool_findings(&testkit::http_get(&node.metrics_url()).1);
    let (status, body) = app.get("/metrics");
    assert_eq!(status, 200);
    let ours = promtool_findings(&body);
    let new: Vec<&String> = ours
        .iter()
        .filter(|l| l.starts_with("node_") && !theirs.contains(*l))
        .collect();
    assert!(
        new.is_empty(),
        "promtool complaints node_exporter does not have: {new:#?}"
    );
    // The inherited camelCase names are there on both sides (the check compares something).
    assert!(
        ours.iter().any(|l| l.starts_with("node_memory_")),
        "{ours:#?}"
    );
}

const ONLY_FIXTURE_COLLECTORS: &[&str] = &[
    "--collector.disable-defaults",
    "--collector.meminfo",
    "--collector.stat",
    "--collector.cpu",
    "--collector.loadavg",
    "--collector.diskstats",
    "--collector.netdev",
    "--collector.netclass",
    "--collector.filefd",
];

#[test]
fn path_flags_over_a_fixture_tree_give_exact_values() {
    let f = fixture();
    let procfs = format!("--path.procfs={}", f.join("proc").display());
    let sysfs = format!("--path.sysfs={}", f.join("sys").display());
    let rootfs = format!("--path.rootfs={}", f.join("root").display());
    let mut args: Vec<&str> = ONLY_FIXTURE_COLLECTORS.to_vec();
    args.extend([procfs.as_str(), sysfs.as_str(), rootfs.as_str()]);
    let app = App::start(EXPORTER, &args, &[]);
    let e = app.scrape();
    let v = |name: &str, labels: &[(&str, &str)]| e.value(name, labels);
    assert_eq!(v("node_memory_MemTotal_bytes", &[]), Some(2_097_152.0));
    assert_eq!(v("node_memory_Active_anon_bytes", &[]), Some(102_400.0));
    assert_eq!(v("node_memory_HugePages_Total", &[]), Some(0.0));
    assert_eq!(
        v("node_cpu_seconds_total", &[("cpu", "1"), ("mode", "user")]),
        Some(0.4)
    );
    assert_eq!(
        v("node_cpu_seconds_total", &[("cpu", "0"), ("mode", "idle")]),
        Some(5.0)
    );
    assert_eq!(
        v(
            "node_cpu_guest_seconds_total",
            &[("cpu", "1"), ("mode", "user")]
        ),
        Some(0.07)
    );
    assert_eq!(v("node_intr_total", &[]), Some(12345.0));
    assert_eq!(v("node_context_switches_total", &[]), Some(6789.0));
    assert_eq!(v("node_forks_total", &[]), Some(4242.0));
    assert_eq!(v("node_boot_time_seconds", &[]), Some(1_700_000_000.0));
    assert_eq!(v("node_procs_running", &[]), Some(3.0));
    assert_eq!(v("node_procs_blocked", &[]), Some(1.0));
    assert_eq!(v("node_load1", &[]), Some(0.5));
    assert_eq!(v("node_load15", &[]), Some(0.1));
    let vda = [("device", "vda")];
    assert_eq!(v("node_disk_reads_completed_total", &vda), Some(100.0));
    assert_eq!(v("node_disk_read_bytes_total", &vda), Some(1_024_000.0));
    assert_eq!(v("node_disk_written_bytes_total", &vda), Some(2_048_000.0));
    assert_eq!(v("node_disk_read_time_seconds_total", &vda), Some(0.05));
    assert_eq!(v("node_disk_io_time_seconds_total", &vda), Some(0.12));
    assert_eq!(v("node_disk_discarded_sectors_total", &vda), Some(64.0));
    assert_eq!(v("node_disk_flush_requests_total", &vda), Some(7.0));
    assert_eq!(
        v(
            "node_disk_info",
            &[
                ("device", "vda"),
                ("major", "254"),
                ("minor", "0"),
                ("model", "QWDISK"),
                ("serial", "S123"),
                ("path", ""),
            ]
        ),
        Some(1.0)
    );
    // node_exporter's default exclusion: partitions and loop devices.
    assert_eq!(
        label_set(&e, "node_disk_reads_completed_total", "device"),
        BTreeSet::from(["vda".to_string()])
    );
    let eth9 = [("device", "eth9")];
    assert_eq!(v("node_network_receive_bytes_total", &eth9), Some(5000.0));
    assert_eq!(v("node_network_receive_multicast_total", &eth9), Some(3.0));
    assert_eq!(v("node_network_transmit_packets_total", &eth9), Some(60.0));
    assert_eq!(v("node_network_receive_nohandler_total", &eth9), Some(0.0));
    // Debian's default netdev exclusion is ^lo$.
    assert_eq!(
        label_set(&e, "node_network_receive_bytes_total", "device"),
        BTreeSet::from(["eth9".to_string()])
    );
    assert_eq!(v("node_network_speed_bytes", &eth9), Some(125_000_000.0));
    assert_eq!(v("node_network_up", &eth9), Some(1.0));
    assert_eq!(v("node_network_mtu_bytes", &eth9), Some(1500.0));
    assert_eq!(v("node_network_flags", &eth9), Some(4099.0));
    assert_eq!(v("node_network_iface_id", &eth9), Some(2.0));
    assert_eq!(
        v(
            "node_network_info",
            &[
                ("device", "eth9"),
                ("address", "02:00:00:00:00:09"),
                ("broadcast", "ff:ff:ff:ff:ff:ff"),
                ("duplex", "full"),
                ("ifalias", ""),
                ("operstate", "up"),
            ]
        ),
        Some(1.0)
    );
    assert_eq!(v("node_filefd_allocated", &[]), Some(1024.0));
    assert_eq!(v("node_filefd_maximum", &[]), Some(65536.0));
    // Exactly the collectors switched on, each successful.
    let ran = label_set(&e, "node_scrape_collector_success", "collector");
    let want: BTreeSet<String> = ONLY_FIXTURE_COLLECTORS[1..]
        .iter()
        .map(|f| f.trim_start_matches("--collector.").to_string())
        .collect();
    assert_eq!(ran, want);
    for c in &want {
        assert_eq!(
            v("node_scrape_collector_success", &[("collector", c)]),
            Some(1.0),
            "{c}"
        );
    }
    assert!(!e.types.contains_key("node_uname_info"));
}

/// Copies the fixture's proc tree into `dir` (a FIFO cannot be committed).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_hung_proc_file_costs_its_collector_not_the_scrape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let proc = dir.path().join("proc");
    copy_tree(&fixture().join("proc"), &proc);
    std::fs::remove_file(proc.join("loadavg")).expect("rm");
    // Opening a FIFO nobody writes to blocks forever, like a read from a hung driver.
    let fifo =
        std::ffi::CString::new(proc.join("loadavg").to_string_lossy().as_bytes()).expect("path");
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let procfs = format!("--path.procfs={}", proc.display());
    let sysfs = format!("--path.sysfs={}", fixture().join("sys").display());
    let mut args: Vec<&str> = ONLY_FIXTURE_COLLECTORS.to_vec();
    args.extend([procfs.as_str(), sysfs.as_str()]);
    let app = App::start(EXPORTER, &args, &[]);
    for round in 0..3 {
        let (e, took) = app.scrape_with_timeout(2.0);
        assert!(took < Duration::from_secs(2), "round {round} took {took:?}");
        assert_eq!(
            e.value("node_scrape_collector_success", &[("collector", "loadavg")]),
            Some(0.0),
            "round {round}"
        );
        assert_eq!(
            e.value("node_scrape_collector_success", &[("collector", "meminfo")]),
            Some(1.0),
            "round {round}"
        );
        assert_eq!(
            e.value("node_memory_MemTotal_bytes", &[]),
            Some(2_097_152.0)
        );
        assert_eq!(e.value("node_load1", &[]), None);
    }
}

#[test]
fn textfile_merges_good_files_skips_malformed_ones_and_never_duplicates_a_builtin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("batch.prom"),
        "# HELP desk_reconciled_trades Trades reconciled by the nightly batch.\n# TYPE desk_reconciled_trades gauge\ndesk_reconciled_trades{desk=\"fx\"} 1234\nbatch_untyped 7\n",
    )
    .expect("write");
    std::fs::write(d.join("broken.prom"), "broken_metric{desk=\"fx\" 1\n").expect("write");
    std::fs::write(
        d.join("clash.prom"),
        "# TYPE node_load1 gauge\nnode_load1 99\n",
    )
    .expect("write");
    std::fs::write(d.join("ignored.txt"), "not_read 1\n").expect("write");
    let textfile = format!("--collector.textfile.directory={}", d.display());
    let procfs = format!("--path.procfs={}", fixture().join("proc").display());
    let app = App::start(
        EXPORTER,
        &[
            "--collector.disable-defaults",
            "--collector.textfile",
            "--collector.loadavg",
            &procfs,
            &textfile,
        ],
        &[],
    );
    let (status, body) = app.get("/metrics");
    assert_eq!(status, 200);
    let e = parse(&body);
    assert_eq!(
        e.value("desk_reconciled_trades", &[("desk", "fx")]),
        Some(1234.0)
    );
    assert_eq!(
        e.types.get("desk_reconciled_trades").map(String::as_str),
        Some("gauge")
    );
    assert_eq!(e.value("batch_untyped", &[]), Some(7.0));
    assert!(
        body.contains("# HELP batch_untyped Metric read from "),
        "{body}"
    );
    assert_eq!(e.value("node_textfile_scrape_error", &[]), Some(1.0));
    let batch = d.join("batch.prom").display().to_string();
    let mtime = std::fs::metadata(d.join("batch.prom"))
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs() as f64;
    assert_eq!(
        e.value("node_textfile_mtime_seconds", &[("file", &batch)]),
        Some(mtime)
    );
    let files = label_set(&e, "node_textfile_mtime_seconds", "file");
    assert!(
        !files.iter().any(|f| f.ends_with("broken.prom")),
        "{files:?}"
    );
    assert!(e.value("broken_metric", &[("desk", "fx")]).is_none());
    assert!(e.value("not_read", &[]).is_none());
    // The built-in node_load1 once, with the fixture's value, not the file's.
    assert_eq!(body.matches("# TYPE node_load1 ").count(), 1, "{body}");
    assert_eq!(e.matching("node_load1", &[]).len(), 1);
    assert_eq!(e.value("node_load1", &[]), Some(0.5));
    assert_eq!(
        e.value(
            "node_scrape_collector_success",
            &[("collector", "textfile")]
        ),
        Some(1.0)
    );
}

#[test]
fn unknown_flags_exit_64_naming_them() {
    for bad in [
        "--collector.nosuchthing",
        "--no-collector.bogus",
        "--path.nope=/x",
        "--bogus-flag",
    ] {
        let out = std::process::Command::new(EXPORTER)
            .arg(bad)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(64), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        let name = bad.split('=').next().unwrap_or(bad);
        assert!(err.contains(name), "{bad}: {err}");
    }
    let out = std::process::Command::new(EXPORTER)
        .args([
            "--collector.filesystem.mount-points-exclude=(",
            "check-config",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host.filesystem_mount_points_exclude"),
        "{err}"
    );
}
