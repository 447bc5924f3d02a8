//! `ipvs` collector: the kernel's IP Virtual Server (LVS load balancing) totals from
//! `/proc/net/ip_vs_stats` and per-backend connections and weights from `/proc/net/ip_vs`,
//! with node_exporter 1.5's default backend labels (local_address, local_port,
//! remote_address, remote_port, proto, local_mark; `--collector.ipvs.backend-labels` is not
//! offered). procfs-core has no parser for these; this is procfs 0.8's reading. No
//! `ip_vs_stats` (module not loaded) is "no data".

use super::{Ctx, NodeCollector, NodeError, parse_err, read, read_or_nodata};
use crate::metrics::{Families, Family};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub struct Ipvs;

/// The five totals (hexadecimal in the file).
pub fn parse_stats(text: &str) -> Result<[u64; 5], String> {
    let lines: Vec<&str> = text.splitn(4, '\n').collect();
    if lines.len() != 4 {
        return Err("ip_vs_stats corrupt: too short".into());
    }
    let fields: Vec<&str> = lines[2].split_whitespace().collect();
    if fields.len() != 5 {
        return Err("ip_vs_stats corrupt: unexpected number of fields".into());
    }
    let mut out = [0u64; 5];
    for (o, f) in out.iter_mut().zip(fields) {
        *o = u64::from_str_radix(f, 16).map_err(|e| format!("{f:?}: {e}"))?;
    }
    Ok(out)
}

/// An address as Go's `net.IP.String()` prints it (IPv4-mapped IPv6 as dotted quad).
fn go_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// `0A000001:0050` or `[2620:0000:…:0001]:0050` → (address, port).
fn ip_port(s: &str) -> Result<(String, u16), String> {
    let ip = match s.len() {
        13 => {
            let n = u32::from_str_radix(s.get(0..8).unwrap_or_default(), 16)
                .map_err(|e| format!("{s:?}: {e}"))?;
            IpAddr::V4(Ipv4Addr::from(n))
        }
        46 => IpAddr::V6(
            s.get(1..40)
                .unwrap_or_default()
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("invalid IPv6 address: {s}"))?,
        ),
        _ => return Err(format!("unexpected IP:Port: {s}")),
    };
    let port = s
        .get(s.len() - 4..)
        .ok_or_else(|| format!("unexpected port: {s}"))?;
    let port = u16::from_str_radix(port, 16).map_err(|e| format!("{s:?}: {e}"))?;
    Ok((go_ip(ip), port))
}

/// One backend: labels in node_exporter's order, then weight, active, inactive.
type Backend = ([String; 6], [u64; 3]);

pub fn parse_backends(text: &str) -> Result<Vec<Backend>, String> {
    let mut out = Vec::new();
    let mut proto = String::new();
    let mut mark = String::new();
    let mut local: Option<(String, u16)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() || f[0] == "IP" || f[0] == "Prot" || f.get(1) == Some(&"RemoteAddress:Port")
        {
            continue;
        }
        match f[0] {
            "TCP" | "UDP" if f.len() >= 2 => {
                proto = f[0].to_string();
                mark.clear();
                local = Some(ip_port(f[1])?);
            }
            "FWM" if f.len() >= 2 => {
                proto = f[0].to_string();
                mark = f[1].to_string();
                local = None;
            }
            "->" if f.len() >= 6 => {
                let (raddr, rport) = ip_port(f[1])?;
                let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
                let (laddr, lport) = local.clone().unwrap_or_default();
                out.push((
                    [
                        laddr,
                        lport.to_string(),
                        raddr,
                        rport.to_string(),
                        proto.clone(),
                        mark.clone(),
                    ],
                    [num(f[3])?, num(f[4])?, num(f[5])?],
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

const LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

impl NodeCollector for Ipvs {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("net/ip_vs_stats");
        let totals = parse_stats(&read_or_nodata(&path)?).map_err(|e| parse_err(&path, e))?;
        let path = ctx.paths.proc("net/ip_vs");
        let backends = parse_backends(&read(&path)?).map_err(|e| parse_err(&path, e))?;
        for ((name, help), v) in [
            (
                "node_ipvs_connections_total",
                "The total number of connections made.",
            ),
            (
                "node_ipvs_incoming_packets_total",
                "The total number of incoming packets.",
            ),
            (
                "node_ipvs_outgoing_packets_total",
                "The total number of outgoing packets.",
            ),
            (
                "node_ipvs_incoming_bytes_total",
                "The total amount of incoming data.",
            ),
            (
                "node_ipvs_outgoing_bytes_total",
                "The total amount of outgoing data.",
            ),
        ]
        .into_iter()
        .zip(totals)
        {
            out.counter(name, help, v as f64);
        }
        // Backends with equal label values are summed (node_exporter keys them by the values
        // joined with "-").
        let mut sums: BTreeMap<String, ([String; 6], [u64; 3])> = BTreeMap::new();
        for (labels, v) in backends {
            let e = sums
                .entry(labels.join("-"))
                .or_insert_with(|| (labels.clone(), [0; 3]));
            e.0 = labels;
            for (s, x) in e.1.iter_mut().zip(v) {
                *s = s.wrapping_add(x);
            }
        }
        let mut active = Family::gauge(
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
        );
        let mut inactive = Family::gauge(
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
        );
        let mut weight = Family::gauge(
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
        );
        for (labels, [w, a, i]) in sums.into_values() {
            let pairs: Vec<(&str, &str)> = LABELS
                .iter()
                .zip(labels.iter())
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            active.add(&pairs, a as f64);
            inactive.add(&pairs, i as f64);
            weight.add(&pairs, w as f64);
        }
        out.push(active);
        out.push(inactive);
        out.push(weight);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_as_go_does() {
        assert_eq!(
            ip_port("C0A80016:0CEA"),
            Ok(("192.168.0.22".to_string(), 3306))
        );
        assert_eq!(
            ip_port("[2620:0000:0000:0000:0000:0000:0000:0001]:0050"),
            Ok(("2620::1".to_string(), 80))
        );
    }
}
