//! `stat` collector: context switches, forks, interrupts, boot time and process counts from
//! /proc/stat (procfs-core's `KernelStats`; it has no `intr` field, so that one line is read
//! here).

use super::{Ctx, NodeCollector, NodeError, cpu, parse_err, read};
use crate::metrics::Families;
use procfs_core::{FromBufReadSI, KernelStats};

pub struct Stat;

impl NodeCollector for Stat {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("stat");
        let text = read(&path)?;
        let s = KernelStats::from_buf_read(text.as_bytes(), &cpu::system_info())
            .map_err(|e| parse_err(&path, e))?;
        let intr = text
            .lines()
            .find_map(|l| l.strip_prefix("intr "))
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| parse_err(&path, "no intr line"))?;
        out.counter(
            "node_intr_total",
            "Total number of interrupts serviced.",
            intr,
        );
        out.counter(
            "node_context_switches_total",
            "Total number of context switches.",
            s.ctxt as f64,
        );
        out.counter(
            "node_forks_total",
            "Total number of forks.",
            s.processes as f64,
        );
        out.gauge(
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            s.btime as f64,
        );
        out.gauge(
            "node_procs_running",
            "Number of processes in runnable state.",
            s.procs_running.unwrap_or(0) as f64,
        );
        out.gauge(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            s.procs_blocked.unwrap_or(0) as f64,
        );
        Ok(())
    }
}
