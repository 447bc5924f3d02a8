//! `entropy` collector: the kernel's random pool (`/proc/sys/kernel/random/*`).

use super::{Ctx, NodeCollector, NodeError, parse_err, read};
use crate::metrics::Families;

pub struct Entropy;

impl NodeCollector for Entropy {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let num = |rel: &str| -> Result<f64, NodeError> {
            let p = ctx.paths.proc(rel);
            read(&p)?
                .trim()
                .parse::<f64>()
                .map_err(|e| parse_err(&p, e))
        };
        out.gauge(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            num("sys/kernel/random/entropy_avail")?,
        );
        out.gauge(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            num("sys/kernel/random/poolsize")?,
        );
        Ok(())
    }
}
