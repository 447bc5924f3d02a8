//! `netdev` collector: `node_network_{receive,transmit}_*_total` per device from
//! /proc/net/dev (procfs-core's `InterfaceDeviceStatus`), plus `receive_nohandler` from
//! sysfs (node_exporter 1.5 reads netlink's stats64, which has that counter and
//! /proc/net/dev does not).

use super::{Ctx, NodeCollector, NodeError, attr, proc_parse};
use crate::metrics::{Families, Family};
use procfs_core::net::{DeviceStatus, InterfaceDeviceStatus};

pub struct Netdev;

type Pick = fn(&DeviceStatus) -> u64;

const STATS: [(&str, Pick); 16] = [
    ("receive_bytes", |d| d.recv_bytes),
    ("receive_compressed", |d| d.recv_compressed),
    ("receive_drop", |d| d.recv_drop),
    ("receive_errs", |d| d.recv_errs),
    ("receive_fifo", |d| d.recv_fifo),
    ("receive_frame", |d| d.recv_frame),
    ("receive_multicast", |d| d.recv_multicast),
    ("receive_packets", |d| d.recv_packets),
    ("transmit_bytes", |d| d.sent_bytes),
    ("transmit_carrier", |d| d.sent_carrier),
    ("transmit_colls", |d| d.sent_colls),
    ("transmit_compressed", |d| d.sent_compressed),
    ("transmit_drop", |d| d.sent_drop),
    ("transmit_errs", |d| d.sent_errs),
    ("transmit_fifo", |d| d.sent_fifo),
    ("transmit_packets", |d| d.sent_packets),
];

impl NodeCollector for Netdev {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let all: InterfaceDeviceStatus = proc_parse(ctx, "net/dev")?;
        let mut devs: Vec<&DeviceStatus> = all
            .0
            .values()
            .filter(|d| !ctx.filters.netdev.excludes(&d.name))
            .collect();
        devs.sort_by(|a, b| a.name.cmp(&b.name));
        for (stat, pick) in STATS {
            let mut f = Family::counter(
                &format!("node_network_{stat}_total"),
                &format!("Network device statistic {stat}."),
            );
            for d in &devs {
                f.add(&[("device", &d.name)], pick(d) as f64);
            }
            out.push(f);
        }
        let mut nohandler = Family::counter(
            "node_network_receive_nohandler_total",
            "Network device statistic receive_nohandler.",
        );
        for d in &devs {
            let p = ctx
                .paths
                .sys(&format!("class/net/{}/statistics/rx_nohandler", d.name));
            if let Some(v) = attr(&p).and_then(|s| s.parse::<f64>().ok()) {
                nohandler.add(&[("device", &d.name)], v);
            }
        }
        out.push(nohandler);
        Ok(())
    }
}
