//! The exporter's own `process_*` families, as every Go exporter publishes them through
//! client_golang's process collector: dashboards (Node Exporter Full among them) and alerts
//! written for the Go exporters read these names, so they mean what Go's mean.
//!
//! Go reads them with prometheus/procfs from `/proc/<pid>`; we parse the same files with
//! procfs-core. The one difference is where Go is needlessly costly: the open descriptors
//! are counted from the size the kernel reports for `/proc/self/fd` (Linux ≥ 6.2, what
//! current procfs does too) before falling back to listing it, and the boot time is read
//! once (below).

use crate::collectors::node::cpu::{USER_HZ, system_info};
use crate::metrics::Families;
use procfs_core::process::{LimitValue, Limits, Stat};
use procfs_core::{FromBufReadSI, FromRead, KernelStats};
use std::sync::OnceLock;

/// Appends every family Go's process collector publishes on Linux (client_golang's
/// `processCollect`), each only when its file could be read and parsed, as Go does.
pub fn families(out: &mut Families) {
    if let Ok(stat) = Stat::from_file("/proc/self/stat") {
        let hz = USER_HZ as f64;
        out.counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            (stat.utime + stat.stime) as f64 / hz,
        );
        out.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            stat.vsize as f64,
        );
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            stat.rss as f64 * page_size(),
        );
        if let Some(boot) = boot_time() {
            out.gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot + stat.starttime as f64 / hz,
            );
        }
    }
    if let Some(n) = open_fds() {
        out.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            n as f64,
        );
    }
    if let Ok(limits) = Limits::from_file("/proc/self/limits") {
        out.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            limit(limits.max_open_files.soft_limit),
        );
        out.gauge(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            limit(limits.max_address_space.soft_limit),
        );
    }
}

/// A soft limit as Go publishes it: procfs parses `unlimited` as the largest uint64
/// (`RLIM_INFINITY`), which becomes 1.8446744073709552e+19 as a float.
fn limit(v: LimitValue) -> f64 {
    match v {
        LimitValue::Unlimited => u64::MAX as f64,
        LimitValue::Value(n) => n as f64,
    }
}

/// `btime` of /proc/stat, read at the first scrape. Go re-reads the whole of /proc/stat every
/// scrape for this one line (several KiB on a many-core host); the value moves only if the
/// wall clock is stepped, and the process's start time, which is what it serves, does not.
fn boot_time() -> Option<f64> {
    static BOOT: OnceLock<Option<f64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let text = std::fs::read("/proc/stat").ok()?;
        let stats = KernelStats::from_buf_read(text.as_slice(), &system_info()).ok()?;
        Some(stats.btime as f64)
    })
}

/// Open descriptors: the size of `/proc/self/fd` is their number since Linux 6.2 (0 before,
/// then the directory is listed, its own descriptor included, as Go counts it there).
fn open_fds() -> Option<usize> {
    match std::fs::metadata("/proc/self/fd") {
        Ok(m) if m.len() > 0 => Some(m.len() as usize),
        _ => std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count()),
    }
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as f64 }
}
