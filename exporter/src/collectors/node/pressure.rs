//! `pressure` collector: pressure stall information (/proc/pressure/*, procfs-core's
//! `CpuPressure`, `IoPressure`, `MemoryPressure`); totals are microseconds.

use super::{Ctx, NodeCollector, NodeError, proc_parse};
use crate::metrics::Families;
use procfs_core::{CpuPressure, IoPressure, MemoryPressure};

pub struct Pressure;

impl NodeCollector for Pressure {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        if !ctx.paths.proc("pressure").exists() {
            return Err(NodeError::NoData);
        }
        let us = |v: u64| v as f64 / 1e6;
        let cpu: CpuPressure = proc_parse(ctx, "pressure/cpu")?;
        out.counter(
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
            us(cpu.some.total),
        );
        let io: IoPressure = proc_parse(ctx, "pressure/io")?;
        out.counter(
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
            us(io.some.total),
        );
        out.counter(
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
            us(io.full.total),
        );
        let mem: MemoryPressure = proc_parse(ctx, "pressure/memory")?;
        out.counter(
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
            us(mem.some.total),
        );
        out.counter(
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
            us(mem.full.total),
        );
        Ok(())
    }
}
