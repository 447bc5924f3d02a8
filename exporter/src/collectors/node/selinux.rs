//! `selinux` collector: `node_selinux_enabled` (and, when enabled, the mode and policy).

use super::{Ctx, NodeCollector, NodeError, attr};
use crate::metrics::Families;

pub struct Selinux;

impl NodeCollector for Selinux {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        // selinuxfs is mounted at /sys/fs/selinux when SELinux is enabled.
        let dir = ctx.paths.sys("fs/selinux");
        let Some(enforce) = attr(&dir.join("enforce")) else {
            out.gauge(
                "node_selinux_enabled",
                "SELinux is enabled, 1 is true, 0 is false",
                0.0,
            );
            return Ok(());
        };
        out.gauge(
            "node_selinux_enabled",
            "SELinux is enabled, 1 is true, 0 is false",
            1.0,
        );
        out.gauge(
            "node_selinux_current_mode",
            "SELinux is enforcing, 1 is true, 0 is false",
            if enforce.trim() == "1" { 1.0 } else { 0.0 },
        );
        Ok(())
    }
}
