//! `loadavg` collector: node_load1/5/15 from /proc/loadavg (procfs-core's `LoadAverage`).

use super::{Ctx, NodeCollector, NodeError, proc_parse};
use crate::metrics::Families;
use procfs_core::LoadAverage;

pub struct Loadavg;

impl NodeCollector for Loadavg {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let l: LoadAverage = proc_parse(ctx, "loadavg")?;
        // The kernel prints two decimals; procfs-core stores f32, so round back to them.
        let two = |v: f32| (f64::from(v) * 100.0).round() / 100.0;
        out.gauge("node_load1", "1m load average.", two(l.one));
        out.gauge("node_load5", "5m load average.", two(l.five));
        out.gauge("node_load15", "15m load average.", two(l.fifteen));
        Ok(())
    }
}
