//! `netclass` collector: `/sys/class/net/<iface>/*` properties (`node_network_up`,
//! `node_network_info`, `node_network_speed_bytes`, …). procfs-core covers /proc only, so
//! these one-value sysfs attributes are read directly. An attribute the kernel refuses (the
//! speed of a link that is down: EINVAL) is left out, as node_exporter does. Its device
//! filter (`--collector.netclass.ignored-devices`) defaults to none and is not configurable
//! here; netdev's `^lo$` does not apply (1.5 publishes `lo` here too).

use super::{Ctx, NodeCollector, NodeError, attr};
use crate::metrics::{Families, Family, Kind};

pub struct Netclass;

/// (metric suffix, sysfs attribute, kind) in node_exporter's order.
const PROPS: [(&str, &str, Kind); 14] = [
    ("address_assign_type", "addr_assign_type", Kind::Gauge),
    ("carrier", "carrier", Kind::Gauge),
    ("carrier_changes_total", "carrier_changes", Kind::Counter),
    (
        "carrier_up_changes_total",
        "carrier_up_count",
        Kind::Counter,
    ),
    (
        "carrier_down_changes_total",
        "carrier_down_count",
        Kind::Counter,
    ),
    ("device_id", "dev_id", Kind::Gauge),
    ("dormant", "dormant", Kind::Gauge),
    ("flags", "flags", Kind::Gauge),
    ("iface_id", "ifindex", Kind::Gauge),
    ("iface_link", "iflink", Kind::Gauge),
    ("iface_link_mode", "link_mode", Kind::Gauge),
    ("mtu_bytes", "mtu", Kind::Gauge),
    ("name_assign_type", "name_assign_type", Kind::Gauge),
    ("net_dev_group", "netdev_group", Kind::Gauge),
];

/// Decimal, or hex with `0x` (flags, dev_id), as Go's ParseInt(s, 0, 64).
fn number(s: &str) -> Option<f64> {
    match s.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok().map(|v| v as f64),
        None => s.parse::<i64>().ok().map(|v| v as f64),
    }
}

impl NodeCollector for Netclass {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let dir = ctx.paths.sys("class/net");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(NodeError::NoData),
            Err(source) => {
                return Err(NodeError::Io {
                    path: dir.display().to_string(),
                    source,
                });
            }
        };
        let mut devices: Vec<String> = rd
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        devices.sort();
        let mut up = Family::gauge(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
        );
        let mut info = Family::gauge(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        );
        let prop = |name: &str, kind| {
            Family::new(
                &format!("node_network_{name}"),
                &format!("Network device property: {name}"),
                kind,
            )
        };
        let mut props: Vec<Family> = PROPS.iter().map(|(n, _, k)| prop(n, *k)).collect();
        let mut speed = prop("speed_bytes", Kind::Gauge);
        let mut txq = prop("transmit_queue_length", Kind::Gauge);
        let mut proto = prop("protocol_type", Kind::Gauge);
        for dev in &devices {
            let d = dir.join(dev);
            let a = |name: &str| attr(&d.join(name));
            let operstate = a("operstate").unwrap_or_default();
            up.add(
                &[("device", dev)],
                if operstate == "up" { 1.0 } else { 0.0 },
            );
            info.add(
                &[
                    ("address", &a("address").unwrap_or_default()),
                    ("broadcast", &a("broadcast").unwrap_or_default()),
                    ("device", dev),
                    ("duplex", &a("duplex").unwrap_or_default()),
                    ("ifalias", &a("ifalias").unwrap_or_default()),
                    ("operstate", &operstate),
                ],
                1.0,
            );
            for ((_, file, _), fam) in PROPS.iter().zip(props.iter_mut()) {
                if let Some(v) = a(file).as_deref().and_then(number) {
                    fam.add(&[("device", dev)], v);
                }
            }
            if let Some(mbit) = a("speed").as_deref().and_then(number) {
                // Megabits per second to bytes per second; -1 (unknown) stays visible as in 1.5.
                speed.add(&[("device", dev)], (mbit * 1000.0 * 1000.0 / 8.0).trunc());
            }
            if let Some(v) = a("tx_queue_len").as_deref().and_then(number) {
                txq.add(&[("device", dev)], v);
            }
            if let Some(v) = a("type").as_deref().and_then(number) {
                proto.add(&[("device", dev)], v);
            }
        }
        out.push(up);
        out.push(info);
        for f in props {
            out.push(f);
        }
        out.push(speed);
        out.push(txq);
        out.push(proto);
        Ok(())
    }
}
