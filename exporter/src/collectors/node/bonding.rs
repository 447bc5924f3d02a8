//! `bonding` collector: configured and MII-up slaves per bonding master from
//! `/sys/class/net/bonding_masters` (a trading host's redundant NIC pair degraded to one leg
//! shows as active < slaves). No bonding driver is "no data".

use super::sysfs::io_err;
use super::{Ctx, NodeCollector, NodeError, read_or_nodata};
use crate::metrics::{Families, Family};

pub struct Bonding;

impl NodeCollector for Bonding {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/net");
        let masters = read_or_nodata(&root.join("bonding_masters"))?;
        let mut slaves_f = Family::gauge(
            "node_bonding_slaves",
            "Number of configured slaves per bonding interface.",
        );
        let mut active_f = Family::gauge(
            "node_bonding_active",
            "Number of active slaves per bonding interface.",
        );
        for master in masters.split_whitespace() {
            let sp = root.join(master).join("bonding/slaves");
            let slaves = std::fs::read_to_string(&sp).map_err(|e| io_err(&sp, e))?;
            let (mut total, mut up) = (0u32, 0u32);
            for slave in slaves.split_whitespace() {
                let lower = root
                    .join(master)
                    .join(format!("lower_{slave}"))
                    .join("bonding_slave/mii_status");
                let state = match std::fs::read_to_string(&lower) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let old = root
                            .join(master)
                            .join(format!("slave_{slave}"))
                            .join("bonding_slave/mii_status");
                        std::fs::read_to_string(&old).map_err(|e| io_err(&old, e))?
                    }
                    other => other.map_err(|e| io_err(&lower, e))?,
                };
                total += 1;
                if state.trim() == "up" {
                    up += 1;
                }
            }
            slaves_f.add(&[("master", master)], f64::from(total));
            active_f.add(&[("master", master)], f64::from(up));
        }
        out.push(slaves_f);
        out.push(active_f);
        Ok(())
    }
}
