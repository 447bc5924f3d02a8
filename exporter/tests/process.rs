//! The `process_*` families: every one Go's process collector (client_golang) publishes, as
//! Debian's node_exporter publishes them here — the same names, types and HELP — with values
//! computed as Go computes them from `/proc/<pid>`. The expected values are worked out by this
//! test from the `/proc` files themselves (parsed here, not with the exporter's parser), and
//! the same working is first checked against node_exporter's own figures for its process, so
//! it is Go's semantics that ours are held to.

use std::collections::BTreeMap;
use testkit::prom_text::{Exposition, parse};
use testkit::{App, GoExporter};

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

/// USER_HZ, the unit of `/proc/<pid>/stat`'s times (procfs' `userHZ`).
const USER_HZ: f64 = 100.0;

fn scrape_go(e: &GoExporter) -> Exposition {
    let (status, body) = testkit::http_get(&e.metrics_url());
    assert_eq!(status, 200);
    parse(&body)
}

/// `process_*` families: name -> (TYPE, HELP).
fn process_families(e: &Exposition) -> BTreeMap<String, (String, String)> {
    e.types
        .iter()
        .filter(|(n, _)| n.starts_with("process_"))
        .map(|(n, t)| {
            let help = e.helps.get(n).cloned().unwrap_or_default();
            (n.clone(), (t.clone(), help))
        })
        .collect()
}

/// What `/proc` says about a process, in the units Go publishes.
#[derive(Debug)]
struct Proc {
    cpu_seconds: f64,
    start_time: f64,
    vsize: f64,
    rss_bytes: f64,
    max_fds: f64,
    max_vsize: f64,
    open_fds: f64,
}

/// A soft limit of /proc/<pid>/limits as procfs parses it: `unlimited` is the largest uint64.
fn soft_limit(limits: &str, name: &str) -> f64 {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in limits:\n{limits}"));
    let soft = line[name.len()..].split_whitespace().next().unwrap();
    if soft == "unlimited" {
        u64::MAX as f64
    } else {
        soft.parse::<u64>().unwrap() as f64
    }
}

fn read_proc(pid: i32) -> Proc {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces and parentheses), from field 4
    // of proc(5) (state, field 3, skipped): field n is at n - 4.
    let rest: Vec<f64> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<f64>().unwrap())
        .collect();
    let field = |n: usize| rest[n - 4];
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    Proc {
        cpu_seconds: (field(14) + field(15)) / USER_HZ,
        start_time: btime + field(22) / USER_HZ,
        vsize: field(23),
        rss_bytes: field(24) * page,
        max_fds: soft_limit(&limits, "Max open files"),
        max_vsize: soft_limit(&limits, "Max address space"),
        open_fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as f64,
    }
}

/// Sets the soft limits of a running process (the hard ones stay).
fn set_soft_limits(pid: i32, nofile: u64, address_space: u64) {
    for (resource, soft) in [
        (libc::RLIMIT_NOFILE, nofile),
        (libc::RLIMIT_AS, address_space),
    ] {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit on a child of ours with valid pointers; reading first keeps the hard
        // limit.
        unsafe {
            assert_eq!(
                libc::prlimit(pid, resource, std::ptr::null(), &mut old),
                0,
                "prlimit read"
            );
            let new = libc::rlimit {
                rlim_cur: soft,
                rlim_max: old.rlim_max,
            };
            assert_eq!(
                libc::prlimit(pid, resource, &new, std::ptr::null_mut()),
                0,
                "prlimit {resource} of {pid} to {soft}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn value(e: &Exposition, name: &str) -> f64 {
    e.value(name, &[])
        .unwrap_or_else(|| panic!("{name} is not published"))
}

/// The families whose values are fixed for a process's life (or until its limits change):
/// equal to the `/proc` working, exactly.
fn assert_fixed_values(e: &Exposition, p: &Proc, who: &str) {
    assert_eq!(
        value(e, "process_start_time_seconds"),
        p.start_time,
        "{who}"
    );
    assert_eq!(value(e, "process_max_fds"), p.max_fds, "{who}");
    assert_eq!(
        value(e, "process_virtual_memory_max_bytes"),
        p.max_vsize,
        "{who}"
    );
}

#[test]
fn every_process_family_of_gos_collector_with_gos_help_types_and_values() {
    let node = GoExporter::node();
    let app = App::start(EXPORTER, &[], &[]);
    let pid = app.child_pid();

    let theirs = scrape_go(&node);
    let before = read_proc(pid);
    let ours = app.scrape();
    let after = read_proc(pid);

    // Names, types and HELP, family for family.
    let go = process_families(&theirs);
    assert_eq!(
        go.keys().collect::<Vec<_>>(),
        [
            "process_cpu_seconds_total",
            "process_max_fds",
            "process_open_fds",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
            "process_virtual_memory_max_bytes",
        ],
        "node_exporter 1.5's process families"
    );
    assert_eq!(process_families(&ours), go);

    // The working below reproduces node_exporter's own figures for its process (unlimited
    // address space included): it is Go's semantics.
    assert_fixed_values(&theirs, &read_proc(node.pid()), "node_exporter");
    // Ours, against the same working for our process.
    assert_fixed_values(&ours, &after, "ours");
    // CPU time only grows: the scrape's figure lies between the readings around it.
    let cpu = value(&ours, "process_cpu_seconds_total");
    assert!(
        before.cpu_seconds <= cpu && cpu <= after.cpu_seconds,
        "cpu {cpu} outside [{}, {}]",
        before.cpu_seconds,
        after.cpu_seconds
    );
    // Memory and descriptors move while a scrape runs (its connection, its buffers), so
    // these are compared with the readings around the scrape, widened by what one scrape
    // allocates and frees: glibc maps buffers above its 128 KiB threshold (the exposition
    // text, the response) and unmaps them when the scrape ends.
    let slack = 4.0 * 1024.0 * 1024.0;
    for (name, lo, hi) in [
        (
            "process_virtual_memory_bytes",
            before.vsize.min(after.vsize),
            before.vsize.max(after.vsize),
        ),
        (
            "process_resident_memory_bytes",
            before.rss_bytes.min(after.rss_bytes),
            before.rss_bytes.max(after.rss_bytes),
        ),
    ] {
        let v = value(&ours, name);
        assert!(
            lo - slack <= v && v <= hi + slack,
            "{name} {v} outside [{lo}, {hi}] ± {slack}"
        );
    }
    // Descriptors: the reading after the scrape lists /proc/PID/fd, whose own descriptor is
    // ours, not the exporter's; the scrape's connection is open in both.
    let fds = value(&ours, "process_open_fds");
    assert!(
        (fds - after.open_fds).abs() <= 2.0,
        "open fds {fds}, /proc lists {}",
        after.open_fds
    );

    // Limits set while both run: the soft ones are what both publish, equal to each other.
    for pid in [pid, node.pid()] {
        set_soft_limits(pid, 1000, 6 << 30);
    }
    let theirs = scrape_go(&node);
    let ours = app.scrape();
    for name in ["process_max_fds", "process_virtual_memory_max_bytes"] {
        assert_eq!(value(&ours, name), value(&theirs, name), "{name}");
    }
    assert_eq!(value(&ours, "process_max_fds"), 1000.0);
    assert_eq!(
        value(&ours, "process_virtual_memory_max_bytes"),
        6442450944.0
    );
    assert_fixed_values(&ours, &read_proc(pid), "ours, limits lowered");
}

/// The `GLIBC_TUNABLES` pairs of process `pid`, from its environment as the kernel shows it.
/// glibc parses the variable in place at start, ending each pair with a NUL, so the pairs
/// after the first appear as entries of their own right after it.
fn tunables_of(pid: i32) -> Vec<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let entries: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    let Some(at) = entries
        .iter()
        .position(|e| e.starts_with("GLIBC_TUNABLES="))
    else {
        return Vec::new();
    };
    let first = entries[at]["GLIBC_TUNABLES=".len()..].to_string();
    std::iter::once(first)
        .chain(
            entries[at + 1..]
                .iter()
                .take_while(|e| e.starts_with("glibc."))
                .cloned(),
        )
        .flat_map(|e| e.split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The exporter executes itself once more at start with glibc's per-thread malloc cache bounded
/// (`GLIBC_TUNABLES`, exporter/src/allocator.rs): the process that serves has the bound in its
/// environment, keeps its pid and its name, and an operator's other tunables are kept while
/// an operator's own tcache size is left exactly as given.
#[test]
fn runs_with_the_malloc_tcache_bound_and_keeps_the_operators_tunables() {
    for (given, expected) in [
        (None, vec!["glibc.malloc.tcache_max=128"]),
        (
            Some("glibc.malloc.perturb=0"),
            vec!["glibc.malloc.perturb=0", "glibc.malloc.tcache_max=128"],
        ),
        (
            Some("glibc.malloc.tcache_count=3"),
            vec!["glibc.malloc.tcache_count=3"],
        ),
    ] {
        let env: Vec<(&str, &str)> = given.map(|g| ("GLIBC_TUNABLES", g)).into_iter().collect();
        let app = App::start(EXPORTER, &[], &env);
        let pid = app.child_pid();
        assert_eq!(tunables_of(pid), expected, "given {given:?}");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(
            comm.trim_end(),
            "quantwatch-expo",
            "the kernel's 15-byte name"
        );
        let (status, body) = testkit::http_get(&format!("{}/metrics", app.url()));
        assert_eq!(status, 200);
        let e = parse(&body);
        assert_eq!(
            value(&e, "process_start_time_seconds"),
            read_proc(pid).start_time,
            "the process serving is the one started"
        );
    }
}
