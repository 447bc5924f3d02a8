//! `nvme` collector: `node_nvme_info` from `/sys/class/nvme/<controller>` (firmware, model,
//! serial, state). No `/sys/class/nvme` is "no data"; a controller missing one of the four
//! attributes fails the collector, as procfs' `NVMeClass`.

use super::sysfs::{io_err, list, sys_read};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};

pub struct Nvme;

impl NodeCollector for Nvme {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/nvme");
        let mut info = Family::gauge(
            "node_nvme_info",
            "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
        );
        for dev in list(&root)? {
            let read = |attr: &str| {
                let p = root.join(&dev).join(attr);
                sys_read(&p).map_err(|e| io_err(&p, e))
            };
            let firmware = read("firmware_rev")?;
            let model = read("model")?;
            let serial = read("serial")?;
            let state = read("state")?;
            info.add(
                &[
                    ("device", &dev),
                    ("firmware_revision", &firmware),
                    ("model", &model),
                    ("serial", &serial),
                    ("state", &state),
                ],
                1.0,
            );
        }
        out.push(info);
        Ok(())
    }
}
