//! `softnet` collector: /proc/net/softnet_stat, one line of hex counters per CPU.

use super::{Ctx, NodeCollector, NodeError, read};
use crate::metrics::{Families, Family};

pub struct Softnet;

impl NodeCollector for Softnet {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let text = read(&ctx.paths.proc("net/softnet_stat"))?;
        let mut processed = Family::counter(
            "node_softnet_processed_total",
            "Number of processed packets",
        );
        let mut dropped =
            Family::counter("node_softnet_dropped_total", "Number of dropped packets");
        let mut squeezed = Family::counter(
            "node_softnet_times_squeezed_total",
            "Number of times processing packets ran out of quota",
        );
        for (cpu, line) in text.lines().enumerate() {
            let v: Vec<u64> = line
                .split_ascii_whitespace()
                .map(|x| u64::from_str_radix(x, 16).unwrap_or(0))
                .collect();
            if v.len() < 3 {
                continue;
            }
            let cpu = cpu.to_string();
            processed.add(&[("cpu", &cpu)], v[0] as f64);
            dropped.add(&[("cpu", &cpu)], v[1] as f64);
            squeezed.add(&[("cpu", &cpu)], v[2] as f64);
        }
        out.push(dropped);
        out.push(processed);
        out.push(squeezed);
        Ok(())
    }
}
