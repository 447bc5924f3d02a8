//! `schedstat` collector: per-CPU time running and waiting on the run queue from
//! `/proc/schedstat` (run-queue wait is how a latency-sensitive process learns it was starved
//! of a core). procfs-core has no parser for it; this reads it as procfs 0.8 does: every line
//! `cpuN` followed by nine numbers, the last three being running ns, waiting ns and timeslices.
//! No `/proc/schedstat` (a kernel without CONFIG_SCHEDSTATS) is "no data".

use super::{Ctx, NodeCollector, NodeError, read_or_nodata};
use crate::metrics::{Families, Family};
use regex::Regex;
use std::sync::LazyLock;

pub struct Schedstat;

static CPU_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"cpu(\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)")
        .expect("static regex")
});

impl NodeCollector for Schedstat {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let text = read_or_nodata(&ctx.paths.proc("schedstat"))?;
        let mut running = Family::counter(
            "node_schedstat_running_seconds_total",
            "Number of seconds CPU spent running a process.",
        );
        let mut waiting = Family::counter(
            "node_schedstat_waiting_seconds_total",
            "Number of seconds spent by processing waiting for this CPU.",
        );
        let mut slices = Family::counter(
            "node_schedstat_timeslices_total",
            "Number of timeslices executed by CPU.",
        );
        for line in text.lines() {
            let Some(m) = CPU_LINE.captures(line) else {
                continue;
            };
            let num = |i: usize| m[i].parse::<u64>().ok();
            // A field out of range skips the line, as procfs does.
            let (Some(run), Some(wait), Some(n)) = (num(8), num(9), num(10)) else {
                continue;
            };
            let cpu = [("cpu", &m[1])];
            running.add(&cpu, run as f64 / 1e9);
            waiting.add(&cpu, wait as f64 / 1e9);
            slices.add(&cpu, n as f64);
        }
        out.push(running);
        out.push(waiting);
        out.push(slices);
        Ok(())
    }
}
