//! `vmstat` collector: /proc/vmstat (procfs-core's `VmStat`) fields matching node_exporter
//! 1.5's default `--collector.vmstat.fields`, untyped, as `node_vmstat_<field>`.

use super::{Ctx, NodeCollector, NodeError, proc_parse};
use crate::metrics::Families;
use procfs_core::VmStat;
use regex::Regex;

pub const DEFAULT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

pub struct Vmstat {
    fields: Option<Regex>,
}

impl Vmstat {
    pub fn new() -> Vmstat {
        Vmstat {
            fields: Regex::new(DEFAULT_FIELDS).ok(),
        }
    }
}

impl NodeCollector for Vmstat {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let vm: VmStat = proc_parse(ctx, "vmstat")?;
        let Some(fields) = &self.fields else {
            return Ok(());
        };
        let mut keys: Vec<(&String, &i64)> =
            vm.0.iter().filter(|(k, _)| fields.is_match(k)).collect();
        keys.sort();
        for (k, v) in keys {
            out.untyped(
                &format!("node_vmstat_{k}"),
                &format!("/proc/vmstat information field {k}."),
                *v as f64,
            );
        }
        Ok(())
    }
}
