//! `infiniband` collector: RDMA adapters under `/sys/class/infiniband` (Mellanox/NVIDIA
//! ConnectX and friends, the kernel-bypass NICs of low-latency trading): port state, rate and
//! the port counters, as node_exporter 1.5 with procfs 0.8's reading (data counters are in
//! 4-byte words, `N/A (no PMA)` leaves a counter out, any other unparsable counter fails the
//! collector). No `/sys/class/infiniband` is "no data".

use super::sysfs::{go_uint, io_err, list, sys_read};
use super::{Ctx, NodeCollector, NodeError, parse_err};
use crate::metrics::{Families, Family, Kind};
use std::collections::BTreeMap;
use std::path::Path;

pub struct Infiniband;

/// (sysfs counter under `counters/` or `counters_ext/`, multiplier, metric suffix, help).
type Counter = (&'static str, u64, &'static str, &'static str);

const COUNTERS: [Counter; 22] = [
    (
        "excessive_buffer_overrun_errors",
        1,
        "excessive_buffer_overrun_errors_total",
        "Number of times that OverrunErrors consecutive flow control update periods occurred, each having at least one overrun error.",
    ),
    (
        "link_downed",
        1,
        "link_downed_total",
        "Number of times the link failed to recover from an error state and went down",
    ),
    (
        "link_error_recovery",
        1,
        "link_error_recovery_total",
        "Number of times the link successfully recovered from an error state",
    ),
    (
        "local_link_integrity_errors",
        1,
        "local_link_integrity_errors_total",
        "Number of times that the count of local physical errors exceeded the threshold specified by LocalPhyErrors.",
    ),
    (
        "multicast_rcv_packets",
        1,
        "multicast_packets_received_total",
        "Number of multicast packets received (including errors)",
    ),
    (
        "multicast_xmit_packets",
        1,
        "multicast_packets_transmitted_total",
        "Number of multicast packets transmitted (including errors)",
    ),
    (
        "port_rcv_constraint_errors",
        1,
        "port_constraint_errors_received_total",
        "Number of packets received on the switch physical port that are discarded",
    ),
    (
        "port_rcv_data",
        4,
        "port_data_received_bytes_total",
        "Number of data octets received on all links",
    ),
    (
        "port_rcv_discards",
        1,
        "port_discards_received_total",
        "Number of inbound packets discarded by the port because the port is down or congested",
    ),
    (
        "port_rcv_errors",
        1,
        "port_errors_received_total",
        "Number of packets containing an error that were received on this port",
    ),
    (
        "port_rcv_packets",
        1,
        "port_packets_received_total",
        "Number of packets received on all VLs by this port (including errors)",
    ),
    (
        "port_rcv_remote_physical_errors",
        1,
        "port_receive_remote_physical_errors_total",
        "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port.",
    ),
    (
        "port_rcv_switch_relay_errors",
        1,
        "port_receive_switch_relay_errors_total",
        "Number of packets that could not be forwarded by the switch.",
    ),
    (
        "port_xmit_constraint_errors",
        1,
        "port_constraint_errors_transmitted_total",
        "Number of packets not transmitted from the switch physical port",
    ),
    (
        "port_xmit_data",
        4,
        "port_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
    ),
    (
        "port_xmit_discards",
        1,
        "port_discards_transmitted_total",
        "Number of outbound packets discarded by the port because the port is down or congested",
    ),
    (
        "port_xmit_packets",
        1,
        "port_packets_transmitted_total",
        "Number of packets transmitted on all VLs from this port (including errors)",
    ),
    (
        "port_xmit_wait",
        1,
        "port_transmit_wait_total",
        "Number of ticks during which the port had data to transmit but no data was sent during the entire tick",
    ),
    (
        "symbol_error",
        1,
        "symbol_error_total",
        "Number of minor link errors detected on one or more physical lanes.",
    ),
    (
        "unicast_rcv_packets",
        1,
        "unicast_packets_received_total",
        "Number of unicast packets received (including errors)",
    ),
    (
        "unicast_xmit_packets",
        1,
        "unicast_packets_transmitted_total",
        "Number of unicast packets transmitted (including errors)",
    ),
    (
        "VL15_dropped",
        1,
        "vl15_dropped_total",
        "Number of incoming VL15 packets dropped due to resource limitations.",
    ),
];

const COUNTERS_EXT: [Counter; 8] = [
    (
        "port_multicast_rcv_packets",
        1,
        "legacy_multicast_packets_received_total",
        "Number of multicast packets received",
    ),
    (
        "port_multicast_xmit_packets",
        1,
        "legacy_multicast_packets_transmitted_total",
        "Number of multicast packets transmitted",
    ),
    (
        "port_rcv_data_64",
        4,
        "legacy_data_received_bytes_total",
        "Number of data octets received on all links",
    ),
    (
        "port_rcv_packets_64",
        1,
        "legacy_packets_received_total",
        "Number of data packets received on all links",
    ),
    (
        "port_unicast_rcv_packets",
        1,
        "legacy_unicast_packets_received_total",
        "Number of unicast packets received",
    ),
    (
        "port_unicast_xmit_packets",
        1,
        "legacy_unicast_packets_transmitted_total",
        "Number of unicast packets transmitted",
    ),
    (
        "port_xmit_data_64",
        4,
        "legacy_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
    ),
    (
        "port_xmit_packets_64",
        1,
        "legacy_packets_transmitted_total",
        "Number of data packets received on all links",
    ),
];

/// `4: ACTIVE` → 4.
fn state_id(s: &str) -> Option<f64> {
    let parts: Vec<&str> = s.split(':').collect();
    let [id, _] = parts.as_slice() else {
        return None;
    };
    id.trim().parse::<u32>().ok().map(f64::from)
}

/// `100 Gb/sec (4X EDR)` → bytes per second (the figure read as a 32-bit float, as upstream).
fn rate(s: &str) -> Option<f64> {
    let (figure, _) = s.split_once(' ')?;
    let v = figure.trim().parse::<f32>().ok()?;
    Some((f64::from(v) * 125_000_000.0) as u64 as f64)
}

fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

/// The counters of one `counters`/`counters_ext` directory, by metric suffix.
fn read_counters(
    dir: &Path,
    table: &[Counter],
    out: &mut BTreeMap<&'static str, f64>,
) -> Result<(), NodeError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let p = dir.join(&name);
        let value = match sys_read(&p) {
            Ok(v) => v,
            Err(e) if refused(&e) => continue,
            Err(e) => return Err(io_err(&p, e)),
        };
        let Some((_, mult, suffix, _)) = table.iter().find(|c| c.0 == name) else {
            continue;
        };
        match go_uint(&value) {
            Some(v) => {
                out.insert(suffix, v.wrapping_mul(*mult) as f64);
            }
            None if value.contains("N/A (no PMA)") => {}
            None => return Err(parse_err(&p, format!("not a counter: {value:?}"))),
        }
    }
    Ok(())
}

impl NodeCollector for Infiniband {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/infiniband");
        let mut info = Family::gauge(
            "node_infiniband_info",
            "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
        );
        let mut fams: BTreeMap<&'static str, Family> = BTreeMap::new();
        let mut add = |suffix: &'static str, help: &str, kind: Kind, dev: &str, port: &str, v| {
            fams.entry(suffix)
                .or_insert_with(|| Family::new(&format!("node_infiniband_{suffix}"), help, kind))
                .add(&[("device", dev), ("port", port)], v);
        };
        for dev in list(&root)? {
            let d = root.join(&dev);
            let read = |attr: &str, optional: bool| -> Result<String, NodeError> {
                let p = d.join(attr);
                match sys_read(&p) {
                    Ok(v) => Ok(v),
                    Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                        Ok(String::new())
                    }
                    Err(e) => Err(io_err(&p, e)),
                }
            };
            let board = read("board_id", false)?;
            let firmware = read("fw_ver", false)?;
            let hca = read("hca_type", true)?;
            info.add(
                &[
                    ("device", &dev),
                    ("board_id", &board),
                    ("firmware_version", &firmware),
                    ("hca_type", &hca),
                ],
                1.0,
            );
            let ports_dir = d.join("ports");
            let mut ports: Vec<(u32, String)> = Vec::new();
            for name in std::fs::read_dir(&ports_dir)
                .map_err(|e| io_err(&ports_dir, e))?
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
            {
                let n = name
                    .parse::<u32>()
                    .map_err(|e| parse_err(&ports_dir.join(&name), e))?;
                ports.push((n, name));
            }
            ports.sort();
            for (n, name) in ports {
                let pd = ports_dir.join(&name);
                let port = n.to_string();
                let whole = |f: &str| {
                    let p = pd.join(f);
                    std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))
                };
                let state = whole("state")?;
                let state = state_id(&state)
                    .ok_or_else(|| parse_err(&pd.join("state"), format!("{state:?}")))?;
                let phys = whole("phys_state")?;
                let phys = state_id(&phys)
                    .ok_or_else(|| parse_err(&pd.join("phys_state"), format!("{phys:?}")))?;
                let r = whole("rate")?;
                let r = rate(&r).ok_or_else(|| parse_err(&pd.join("rate"), format!("{r:?}")))?;
                let mut counters = BTreeMap::new();
                read_counters(&pd.join("counters"), &COUNTERS, &mut counters)?;
                let ext = pd.join("counters_ext");
                match std::fs::metadata(&ext) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    _ => read_counters(&ext, &COUNTERS_EXT, &mut counters)?,
                }
                add(
                    "state_id",
                    "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer)",
                    Kind::Gauge,
                    &dev,
                    &port,
                    state,
                );
                add(
                    "physical_state_id",
                    "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, 5: link up, 6: link error recover, 7: phytest)",
                    Kind::Gauge,
                    &dev,
                    &port,
                    phys,
                );
                add(
                    "rate_bytes_per_second",
                    "Maximum signal transfer rate",
                    Kind::Gauge,
                    &dev,
                    &port,
                    r,
                );
                for (_, _, suffix, help) in COUNTERS.iter().chain(COUNTERS_EXT.iter()) {
                    if let Some(v) = counters.get(suffix) {
                        add(suffix, help, Kind::Counter, &dev, &port, *v);
                    }
                }
            }
        }
        out.push(info);
        for (_, f) in fams {
            out.push(f);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_rates_read_as_procfs() {
        assert_eq!(state_id("4: ACTIVE\n"), Some(4.0));
        assert_eq!(state_id("ACTIVE"), None);
        assert_eq!(rate("100 Gb/sec (4X EDR)\n"), Some(12_500_000_000.0));
        assert_eq!(rate("2.5 Gb/sec (1X SDR)"), Some(312_500_000.0));
        assert_eq!(go_uint("0x10"), Some(16));
        assert_eq!(go_uint("N/A (no PMA)"), None);
    }
}
