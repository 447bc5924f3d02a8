//! `fibrechannel` collector: Fibre Channel HBAs under `/sys/class/fc_host` (SAN-attached
//! storage): `node_fibrechannel_info` and the port statistics, as node_exporter 1.5 with
//! procfs 0.8 (the `0x` of port ids and names dropped, a counter the driver reports as
//! all-ones — unsupported — left out, an absent counter published as 0). No
//! `/sys/class/fc_host` is "no data".

use super::sysfs::{go_uint, io_err, list, sys_read};
use super::{Ctx, NodeCollector, NodeError, parse_err};
use crate::metrics::{Families, Family};
use std::collections::BTreeMap;

pub struct FibreChannel;

/// (statistics file, metric suffix, help) in node_exporter's order.
const COUNTERS: [(&str, &str, &str); 14] = [
    (
        "dumped_frames",
        "dumped_frames_total",
        "Number of dumped frames",
    ),
    (
        "error_frames",
        "error_frames_total",
        "Number of errors in frames",
    ),
    (
        "invalid_crc_count",
        "invalid_crc_total",
        "Invalid Cyclic Redundancy Check count",
    ),
    ("rx_frames", "rx_frames_total", "Number of frames received"),
    (
        "rx_words",
        "rx_words_total",
        "Number of words received by host port",
    ),
    (
        "tx_frames",
        "tx_frames_total",
        "Number of frames transmitted by host port",
    ),
    (
        "tx_words",
        "tx_words_total",
        "Number of words transmitted by host port",
    ),
    (
        "seconds_since_last_reset",
        "seconds_since_last_reset_total",
        "Number of seconds since last host port reset",
    ),
    (
        "invalid_tx_word_count",
        "invalid_tx_words_total",
        "Number of invalid words transmitted by host port",
    ),
    (
        "link_failure_count",
        "link_failure_total",
        "Number of times the host port link has failed",
    ),
    (
        "loss_of_sync_count",
        "loss_of_sync_total",
        "Number of failures on either bit or transmission word boundaries",
    ),
    (
        "loss_of_signal_count",
        "loss_of_signal_total",
        "Number of times signal has been lost",
    ),
    (
        "nos_count",
        "nos_total",
        "Number Not_Operational Primitive Sequence received by host port",
    ),
    (
        "fcp_packet_aborts",
        "fcp_packet_aborts_total",
        "Number of aborted packets",
    ),
];

/// Host attributes procfs requires, in its order; those in `INFO` become labels.
const ATTRS: [&str; 11] = [
    "speed",
    "port_state",
    "port_type",
    "node_name",
    "port_id",
    "port_name",
    "fabric_name",
    "dev_loss_tmo",
    "symbolic_name",
    "supported_classes",
    "supported_speeds",
];

const INFO: [&str; 10] = [
    "speed",
    "port_state",
    "port_type",
    "port_id",
    "port_name",
    "fabric_name",
    "symbolic_name",
    "supported_classes",
    "supported_speeds",
    "dev_loss_tmo",
];

fn refused(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
        || e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

impl NodeCollector for FibreChannel {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/fc_host");
        let mut info = Family::gauge(
            "node_fibrechannel_info",
            "Non-numeric data from /sys/class/fc_host/<host>, value is always 1.",
        );
        let mut fams: Vec<Family> = COUNTERS
            .iter()
            .map(|(_, suffix, help)| Family::counter(&format!("node_fibrechannel_{suffix}"), help))
            .collect();
        for host in list(&root)? {
            let dir = root.join(&host);
            let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
            for a in ATTRS {
                let p = dir.join(a);
                let mut v = sys_read(&p).map_err(|e| io_err(&p, e))?;
                if matches!(a, "node_name" | "port_id" | "port_name" | "fabric_name") && v.len() > 2
                {
                    v = v.get(2..).unwrap_or_default().to_string();
                }
                attrs.insert(a, v);
            }
            let mut labels: Vec<(&str, &str)> = vec![("fc_host", host.as_str())];
            for a in INFO {
                labels.push((a, attrs.get(a).map_or("", String::as_str)));
            }
            info.add(&labels, 1.0);
            let stats = dir.join("statistics");
            let mut values: BTreeMap<String, u64> = BTreeMap::new();
            for name in std::fs::read_dir(&stats)
                .map_err(|e| io_err(&stats, e))?
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
            {
                if name == "reset_statistics" {
                    continue;
                }
                let p = stats.join(&name);
                let text = match sys_read(&p) {
                    Ok(t) => t,
                    Err(e) if refused(&e) => continue,
                    Err(e) => return Err(io_err(&p, e)),
                };
                if COUNTERS.iter().any(|c| c.0 == name) {
                    let v = go_uint(&text)
                        .ok_or_else(|| parse_err(&p, format!("not a counter: {text:?}")))?;
                    values.insert(name, v);
                }
            }
            for ((file, _, _), fam) in COUNTERS.iter().zip(fams.iter_mut()) {
                let v = values.get(*file).copied().unwrap_or(0);
                if v != u64::MAX {
                    fam.add(&[("fc_host", &host)], v as f64);
                }
            }
        }
        out.push(info);
        for f in fams {
            out.push(f);
        }
        Ok(())
    }
}
