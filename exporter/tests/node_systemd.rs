//! The systemd collector against a real systemd 252 (a user manager in its own namespaces,
//! `testkit::systemd`) whose units exercise every family node_exporter 1.5 publishes: a
//! failed oneshot, a running simple service, a oneshot that remains active, a service that
//! restarted once, a timer that fired and one that has not, a socket with `Accept=yes` that
//! accepted two connections and holds one, a templated instance whose name needs escaping, a
//! not-found and a masked unit (counted in the summary, never in `unit_state`), and a target
//! (left out by Debian's default exclude). Debian's node_exporter and ours read that bus
//! (`DBUS_SYSTEM_BUS_ADDRESS`), and every `node_systemd_*` family, HELP, TYPE, label set and
//! value must be identical — with the default flags, and with the three `enable-*` flags and
//! custom include/exclude. Then the failures: no bus (both fail the collector, publish
//! nothing), and a bus that accepts but never answers (our scrape still answers in time,
//! and leaks neither sockets nor threads).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use testkit::prom_text::{Exposition, parse};
use testkit::systemd::SystemdUser;
use testkit::{App, GoExporter};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

fn units(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "fails.service",
            "[Service]\nType=oneshot\nExecStart=/bin/false\n".into(),
        ),
        (
            "sleeper.service",
            "[Service]\nExecStart=/bin/sleep infinity\n".into(),
        ),
        (
            "done.service",
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n".into(),
        ),
        // Fails on its first run, stays up on its second: NRestarts 1.
        (
            "restarter.service",
            "[Service]\nExecStart=/bin/sh -c 'test -e %t/restarted || { touch %t/restarted; exit 1; }; exec sleep infinity'\nRestart=on-failure\nRestartSec=100ms\n".into(),
        ),
        (
            "fired.timer",
            "[Timer]\nOnActiveSec=1s\nAccuracySec=1ms\n".into(),
        ),
        (
            "fired.service",
            "[Service]\nType=oneshot\nExecStart=/bin/true\n".into(),
        ),
        (
            "idle.timer",
            "[Timer]\nOnActiveSec=1d\n".into(),
        ),
        (
            "idle.service",
            "[Service]\nType=oneshot\nExecStart=/bin/true\n".into(),
        ),
        (
            "echo.socket",
            format!("[Socket]\nListenStream=127.0.0.1:{port}\nAccept=yes\n"),
        ),
        (
            "echo@.service",
            "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n".into(),
        ),
        (
            "tmpl@.service",
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n".into(),
        ),
        (
            "extras.target",
            "[Unit]\nWants=missing.service masked.service\n".into(),
        ),
        ("masked.service", "/dev/null".into()),
    ]
}

/// The manager with every unit started and settled; the socket connection kept open.
struct Fixture {
    manager: SystemdUser,
    _open: TcpStream,
}

fn fixture() -> Fixture {
    let port = testkit::free_port();
    let units = units(port);
    let refs: Vec<(&str, &str)> = units.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let m = SystemdUser::start(&refs);
    for u in [
        "fails.service",
        "sleeper.service",
        "done.service",
        "restarter.service",
        "fired.timer",
        "idle.timer",
        "echo.socket",
        "tmpl@a\\x2db.service",
        "extras.target",
    ] {
        m.start_unit(u);
    }
    m.wait_property("fails.service", "Unit", "ActiveState", "s \"failed\"");
    m.wait_property("done.service", "Unit", "ActiveState", "s \"active\"");
    m.wait_property("restarter.service", "Service", "NRestarts", "u 1");
    m.wait_property("restarter.service", "Unit", "ActiveState", "s \"active\"");
    m.wait_property("echo.socket", "Unit", "ActiveState", "s \"active\"");
    m.wait_property(
        "tmpl@a\\x2db.service",
        "Unit",
        "ActiveState",
        "s \"active\"",
    );
    // One connection served and closed, one held open.
    let mut first = TcpStream::connect(("127.0.0.1", port)).expect("connect to echo.socket");
    first.write_all(b"ping").expect("write");
    first
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut back = String::new();
    first.read_to_string(&mut back).expect("read the echo");
    assert_eq!(back, "ping");
    drop(first);
    let open = TcpStream::connect(("127.0.0.1", port)).expect("connect to echo.socket");
    m.wait_property("echo.socket", "Socket", "NAccepted", "u 2");
    m.wait_property("echo.socket", "Socket", "NConnections", "u 1");
    // The fired timer's service ran and went back to inactive.
    let ok = testkit::wait_until(Duration::from_secs(20), || {
        m.property("fired.timer", "Timer", "LastTriggerUSec") != "t 0"
            && m.property("fired.service", "Unit", "ActiveState") == "s \"inactive\""
    });
    assert!(ok, "fired.timer did not fire");
    Fixture {
        manager: m,
        _open: open,
    }
}

fn comparable(name: &str) -> bool {
    name.starts_with("node_systemd_") || name == "node_scrape_collector_success"
}

/// Families, TYPE, HELP and every series with its value: identical.
fn assert_identical(theirs: &Exposition, ours: &Exposition, what: &str) {
    testkit::node::assert_identical_where(theirs, ours, what, comparable);
}

/// Both exporters with only the systemd collector and `flags`, against `bus`.
fn scrape_both(bus: &str, flags: &[&str]) -> (Exposition, Exposition) {
    let mut args = vec![
        "--collector.disable-defaults".to_string(),
        "--collector.systemd".to_string(),
    ];
    args.extend(flags.iter().map(|s| s.to_string()));
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", bus)];
    let node = GoExporter::node_with_env(&args, &env);
    let (status, body) = testkit::http_get(&node.metrics_url());
    assert_eq!(status, 200);
    let theirs = parse(&body);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = App::start(EXPORTER, &refs, &env);
    (theirs, app.scrape())
}

fn secs(busctl_usec: &str) -> f64 {
    let us: u64 = busctl_usec
        .trim_start_matches("t ")
        .parse()
        .unwrap_or_else(|e| panic!("{busctl_usec}: {e}"));
    us as f64 / 1e6
}

#[test]
fn systemd_families_match_node_exporter_exactly_with_default_and_custom_flags() {
    let f = fixture();
    let m = &f.manager;
    let bus = m.bus_address();

    // ---- node_exporter's defaults (Debian's exclude) ----
    let (theirs, ours) = scrape_both(&bus, &[]);
    assert_identical(&theirs, &ours, "default flags");
    let v = |name: &str, labels: &[(&str, &str)]| ours.value(name, labels);
    assert_eq!(
        v("node_scrape_collector_success", &[("collector", "systemd")]),
        Some(1.0)
    );
    // Version: the manager's, as node_exporter reads it.
    let version = m.manager_property("Version");
    let version = version.trim_start_matches("s ").trim_matches('"');
    let number: f64 = version
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .and_then(|s| {
            let mut parts = s.split('.');
            let major = parts.next()?;
            Some(match parts.next() {
                Some(minor) if !minor.is_empty() => format!("{major}.{minor}"),
                _ => major.to_string(),
            })
        })
        .and_then(|s| s.parse().ok())
        .expect("a numeric systemd version");
    assert!(number >= 252.0, "{version}");
    assert_eq!(
        v("node_systemd_version", &[("version", version)]),
        Some(number)
    );
    // fails.service failed, so the manager is degraded, not running.
    assert_eq!(m.manager_property("SystemState"), "s \"degraded\"");
    assert_eq!(v("node_systemd_system_running", &[]), Some(0.0));

    // The summary counts every unit the manager lists, by active state.
    let listed = m.list_units();
    let mut by_state: BTreeMap<String, f64> =
        ["active", "activating", "deactivating", "inactive", "failed"]
            .iter()
            .map(|s| (s.to_string(), 0.0))
            .collect();
    for (_, _, state) in &listed {
        *by_state.entry(state.clone()).or_insert(0.0) += 1.0;
    }
    let summary: BTreeMap<String, f64> = ours
        .matching("node_systemd_units", &[])
        .iter()
        .map(|s| (s.labels["state"].clone(), s.value))
        .collect();
    assert_eq!(summary, by_state);
    let load = |name: &str| {
        listed
            .iter()
            .find(|u| u.0 == name)
            .map(|u| u.1.as_str())
            .unwrap_or_else(|| panic!("{name} not listed: {listed:?}"))
    };
    assert_eq!(load("missing.service"), "not-found");
    assert_eq!(load("masked.service"), "masked");

    let state = |name: &str, st: &str, ty: &str| {
        v(
            "node_systemd_unit_state",
            &[("name", name), ("state", st), ("type", ty)],
        )
    };
    assert_eq!(state("fails.service", "failed", "oneshot"), Some(1.0));
    assert_eq!(state("fails.service", "active", "oneshot"), Some(0.0));
    assert_eq!(state("sleeper.service", "active", "simple"), Some(1.0));
    assert_eq!(state("done.service", "active", "oneshot"), Some(1.0));
    assert_eq!(state("restarter.service", "active", "simple"), Some(1.0));
    assert_eq!(
        state("tmpl@a\\x2db.service", "active", "oneshot"),
        Some(1.0)
    );
    assert_eq!(state("echo.socket", "active", ""), Some(1.0));
    assert_eq!(state("idle.timer", "active", ""), Some(1.0));
    // Every published unit is in the state the manager lists for it.
    for s in ours.matching("node_systemd_unit_state", &[]) {
        let name = &s.labels["name"];
        let listed_state = &listed
            .iter()
            .find(|u| &u.0 == name)
            .unwrap_or_else(|| panic!("{name} published but not listed"))
            .2;
        let want = if &s.labels["state"] == listed_state {
            1.0
        } else {
            0.0
        };
        assert_eq!(s.value, want, "{name} {:?}", s.labels);
    }
    let named = |name: &str| {
        ours.samples
            .iter()
            .filter(|s| s.name == "node_systemd_unit_state" && s.labels["name"] == name)
            .count()
    };
    // Five states per unit; not loaded: never; excluded by Debian's default: never.
    assert_eq!(named("fails.service"), 5);
    for absent in [
        "missing.service",
        "masked.service",
        "extras.target",
        "default.target",
        "-.slice",
        "init.scope",
    ] {
        assert_eq!(named(absent), 0, "{absent}");
    }
    let instances: Vec<&str> = ours
        .samples
        .iter()
        .filter(|s| s.name == "node_systemd_unit_state" && s.labels["name"].starts_with("echo@"))
        .map(|s| s.labels["name"].as_str())
        .collect();
    assert_eq!(
        instances.len(),
        5,
        "the held connection's instance: {instances:?}"
    );

    // Timers: the fired one at its trigger time, the other never.
    let fired = secs(&m.property("fired.timer", "Timer", "LastTriggerUSec"));
    assert!(fired > 1.7e9, "{fired}");
    assert_eq!(
        v(
            "node_systemd_timer_last_trigger_seconds",
            &[("name", "fired.timer")]
        ),
        Some(fired)
    );
    assert_eq!(
        v(
            "node_systemd_timer_last_trigger_seconds",
            &[("name", "idle.timer")]
        ),
        Some(0.0)
    );
    // Sockets: two accepted, one open, none refused; refused is a gauge in 1.5.
    let echo = [("name", "echo.socket")];
    assert_eq!(
        v("node_systemd_socket_accepted_connections_total", &echo),
        Some(2.0)
    );
    assert_eq!(
        v("node_systemd_socket_current_connections", &echo),
        Some(1.0)
    );
    assert_eq!(
        v("node_systemd_socket_refused_connections_total", &echo),
        Some(0.0)
    );
    assert_eq!(
        ours.types["node_systemd_socket_refused_connections_total"],
        "gauge"
    );
    assert_eq!(
        ours.types["node_systemd_socket_accepted_connections_total"],
        "counter"
    );
    // The optional families are off by default.
    for off in [
        "node_systemd_service_restart_total",
        "node_systemd_unit_start_time_seconds",
        "node_systemd_unit_tasks_current",
        "node_systemd_unit_tasks_max",
    ] {
        assert!(!ours.types.contains_key(off), "{off}");
    }

    // ---- the enable-* flags, a custom include and exclude ----
    let include = "--collector.systemd.unit-include=(fails|sleeper|done|restarter|tmpl@.+|echo.*)\\.(service|socket)|.+\\.target";
    let exclude = "--collector.systemd.unit-exclude=echo@.+|default\\.target";
    let (theirs, ours) = scrape_both(
        &bus,
        &[
            "--collector.systemd.enable-task-metrics",
            "--collector.systemd.enable-restarts-metrics",
            "--collector.systemd.enable-start-time-metrics",
            include,
            exclude,
        ],
    );
    assert_identical(&theirs, &ours, "enable-* flags, include/exclude");
    let v = |name: &str, labels: &[(&str, &str)]| ours.value(name, labels);
    let names: std::collections::BTreeSet<&str> = ours
        .samples
        .iter()
        .filter(|s| s.name == "node_systemd_unit_state")
        .map(|s| s.labels["name"].as_str())
        .collect();
    assert!(names.contains("extras.target") && names.contains("basic.target"));
    assert!(!names.contains("default.target") && !names.contains("fired.timer"));
    assert!(!names.iter().any(|n| n.starts_with("echo@")), "{names:?}");
    assert!(!names.contains("missing.service") && !names.contains("masked.service"));
    assert_eq!(
        v(
            "node_systemd_service_restart_total",
            &[("name", "restarter.service")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "node_systemd_service_restart_total",
            &[("name", "sleeper.service")]
        ),
        Some(0.0)
    );
    let started = secs(&m.property("sleeper.service", "Unit", "ActiveEnterTimestamp"));
    assert!(started > 1.7e9, "{started}");
    assert_eq!(
        v(
            "node_systemd_unit_start_time_seconds",
            &[("name", "sleeper.service")]
        ),
        Some(started)
    );
    // Not active: 0, without asking.
    assert_eq!(
        v(
            "node_systemd_unit_start_time_seconds",
            &[("name", "fails.service")]
        ),
        Some(0.0)
    );
    // Task counts are what the manager reports (none without cgroup accounting: then the
    // family is absent on both sides, which `assert_identical` checked).
    let tasks_max = m.property("sleeper.service", "Service", "TasksMax");
    let expected = match tasks_max.trim_start_matches("t ").parse::<u64>() {
        Ok(u64::MAX) | Err(_) => None,
        Ok(n) => Some(n as f64),
    };
    assert_eq!(
        v(
            "node_systemd_unit_tasks_max",
            &[("name", "sleeper.service")]
        ),
        expected,
        "{tasks_max}"
    );

    // ---- nothing failed any more: the manager is running ----
    m.busctl(&[
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "ResetFailed",
    ]);
    let ok = testkit::wait_until(Duration::from_secs(10), || {
        m.manager_property("SystemState") == "s \"running\""
    });
    assert!(ok, "{}", m.manager_property("SystemState"));
    let (theirs, ours) = scrape_both(&bus, &[]);
    assert_identical(&theirs, &ours, "running");
    assert_eq!(ours.value("node_systemd_system_running", &[]), Some(1.0));
    // (fails.service, reset and unreferenced, may be unloaded by now.)
    assert_eq!(
        ours.value("node_systemd_units", &[("state", "failed")]),
        Some(0.0)
    );
    assert!(
        ours.matching("node_systemd_unit_state", &[("state", "failed")])
            .iter()
            .all(|s| s.value == 0.0)
    );
}

#[test]
fn without_a_bus_both_fail_the_collector_and_publish_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = format!("unix:path={}", dir.path().join("nothing-here").display());
    let (theirs, ours) = scrape_both(&bus, &[]);
    assert_identical(&theirs, &ours, "no bus");
    for e in [&theirs, &ours] {
        assert_eq!(
            e.value("node_scrape_collector_success", &[("collector", "systemd")]),
            Some(0.0)
        );
        assert!(!e.types.keys().any(|n| n.starts_with("node_systemd_")));
    }
}

fn fds_and_threads(pid: i32) -> (usize, usize) {
    let count = |d: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{d}"))
            .map(|r| r.count())
            .unwrap_or_else(|e| panic!("/proc/{pid}/{d}: {e}"))
    };
    (count("fd"), count("task"))
}

#[test]
fn a_bus_that_never_answers_fails_the_collector_in_time_without_leaking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("silent");
    // Accepts connections (the backlog does) and never says a word.
    let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind a unix socket");
    let bus = format!("unix:path={}", path.display());
    let app = App::start(
        EXPORTER,
        &["--collector.disable-defaults", "--collector.systemd"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus)],
    );
    let mut baseline = None;
    for i in 0..4 {
        let start = Instant::now();
        let e = app.scrape();
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(2500),
            "scrape {i} took {took:?}"
        );
        assert_eq!(
            e.value("node_scrape_collector_success", &[("collector", "systemd")]),
            Some(0.0),
            "scrape {i}"
        );
        assert!(!e.types.keys().any(|n| n.starts_with("node_systemd_")));
        // The abandoned exchange is dropped once its deadline passes: the first scrape's
        // count is the baseline; after each later scrape the count must come back to it or
        // below (a leak grows it for good).
        match baseline {
            None => {
                std::thread::sleep(Duration::from_millis(1000));
                baseline = Some(fds_and_threads(app.child_pid()));
            }
            Some(b) => {
                let deadline = Instant::now() + Duration::from_secs(15);
                loop {
                    let now = fds_and_threads(app.child_pid());
                    if now.0 <= b.0 && now.1 <= b.1 {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "open fds and threads after scrape {i}: {now:?}, not back to {b:?} within 15 s"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    // Still serving.
    let (status, _) = app.get("/healthz");
    assert_eq!(status, 200);
}
