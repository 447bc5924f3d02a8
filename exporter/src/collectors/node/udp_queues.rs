//! `udp_queues` collector: bytes queued in UDP sockets, summed from /proc/net/udp and udp6
//! (procfs-core's `UdpNetEntries`).

use super::{Ctx, NodeCollector, NodeError, cpu, parse_err, read_or_nodata};
use crate::metrics::{Families, Family};
use procfs_core::FromBufReadSI;
use procfs_core::net::UdpNetEntries;

pub struct UdpQueues;

impl NodeCollector for UdpQueues {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let mut f = Family::gauge(
            "node_udp_queues",
            "Number of allocated memory in the kernel for UDP datagrams in bytes.",
        );
        let mut any = false;
        for (file, ip) in [("net/udp", "v4"), ("net/udp6", "v6")] {
            let path = ctx.paths.proc(file);
            let text = match read_or_nodata(&path) {
                Ok(t) => t,
                Err(NodeError::NoData) => continue,
                Err(e) => return Err(e),
            };
            let entries = UdpNetEntries::from_buf_read(text.as_bytes(), &cpu::system_info())
                .map_err(|e| parse_err(&path, e))?;
            let (tx, rx) = entries.0.iter().fold((0u64, 0u64), |(t, r), e| {
                (t + u64::from(e.tx_queue), r + u64::from(e.rx_queue))
            });
            f.add(&[("ip", ip), ("queue", "tx")], tx as f64);
            f.add(&[("ip", ip), ("queue", "rx")], rx as f64);
            any = true;
        }
        if !any {
            return Err(NodeError::NoData);
        }
        out.push(f);
        Ok(())
    }
}
