//! `arp` collector: `node_arp_entries` per device from /proc/net/arp (procfs-core's
//! `ArpEntries`).

use super::{Ctx, NodeCollector, NodeError, proc_parse};
use crate::metrics::{Families, Family};
use procfs_core::net::ArpEntries;
use std::collections::BTreeMap;

pub struct Arp;

impl NodeCollector for Arp {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let entries: ArpEntries = proc_parse(ctx, "net/arp")?;
        let mut by_dev: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &entries.0 {
            *by_dev.entry(e.device.as_str()).or_default() += 1;
        }
        let mut f = Family::gauge("node_arp_entries", "ARP entries by device");
        for (dev, n) in by_dev {
            f.add(&[("device", dev)], n as f64);
        }
        out.push(f);
        Ok(())
    }
}
