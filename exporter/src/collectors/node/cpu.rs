//! `cpu` collector: `node_cpu_seconds_total` and `node_cpu_guest_seconds_total` from
//! /proc/stat (procfs-core's `KernelStats`). node_cpu_info is off by default in 1.5
//! (`--collector.cpu.info`), so it is not published.

use super::{Ctx, NodeCollector, NodeError, parse_err, read};
use crate::metrics::{Families, Family};
use procfs_core::{ExplicitSystemInfo, FromBufReadSI, KernelStats};

pub struct Cpu;

/// USER_HZ: the unit of /proc/stat, fixed at 100 by the kernel ABI on every architecture
/// node_exporter supports (procfs' Go library assumes the same).
pub const USER_HZ: u64 = 100;

pub fn system_info() -> ExplicitSystemInfo {
    ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: USER_HZ,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    }
}

/// The ids of the per-CPU lines, in order (`KernelStats` keeps the lines, not their ids, and
/// an offline CPU leaves a gap).
pub fn cpu_ids(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_ascii_whitespace().next()?.strip_prefix("cpu"))
        .filter(|id| !id.is_empty())
        .collect()
}

impl NodeCollector for Cpu {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("stat");
        let text = read(&path)?;
        let stats = KernelStats::from_buf_read(text.as_bytes(), &system_info())
            .map_err(|e| parse_err(&path, e))?;
        let ids = cpu_ids(&text);
        let mut secs = Family::counter(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
        );
        let mut guest = Family::counter(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
        );
        let hz = USER_HZ as f64;
        for (id, t) in ids.iter().zip(&stats.cpu_time) {
            for (mode, ticks) in [
                ("idle", t.idle),
                ("iowait", t.iowait.unwrap_or(0)),
                ("irq", t.irq.unwrap_or(0)),
                ("nice", t.nice),
                ("softirq", t.softirq.unwrap_or(0)),
                ("steal", t.steal.unwrap_or(0)),
                ("system", t.system),
                ("user", t.user),
            ] {
                secs.add(&[("cpu", id), ("mode", mode)], ticks as f64 / hz);
            }
            guest.add(
                &[("cpu", id), ("mode", "nice")],
                t.guest_nice.unwrap_or(0) as f64 / hz,
            );
            guest.add(
                &[("cpu", id), ("mode", "user")],
                t.guest.unwrap_or(0) as f64 / hz,
            );
        }
        out.push(secs);
        out.push(guest);
        Ok(())
    }
}
