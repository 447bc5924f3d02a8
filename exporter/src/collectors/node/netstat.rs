//! `netstat` collector: the fields of /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6
//! that node_exporter 1.5's default `--collector.netstat.fields` selects, untyped, as
//! `node_netstat_<Proto>_<Field>`. procfs-core's `Snmp`/`Snmp6` are fixed structs without
//! `TcpExt`/`IpExt` (netstat), so these "header line / value line" tables are read generically.

use super::{Ctx, NodeCollector, NodeError, read};
use crate::metrics::Families;
use regex::Regex;

pub const DEFAULT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

pub struct Netstat {
    fields: Option<Regex>,
}

impl Netstat {
    pub fn new() -> Netstat {
        Netstat {
            fields: Regex::new(DEFAULT_FIELDS).ok(),
        }
    }
}

impl NodeCollector for Netstat {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let mut stats: Vec<(String, String, String)> = Vec::new();
        for file in ["net/netstat", "net/snmp"] {
            stats.extend(parse_tables(&read(&ctx.paths.proc(file))?));
        }
        if let Ok(text) = super::pseudofs::read_to_string(&ctx.paths.proc("net/snmp6")) {
            stats.extend(parse_snmp6(&text));
        }
        let Some(fields) = &self.fields else {
            return Ok(());
        };
        for (proto, name, value) in stats {
            let key = format!("{proto}_{name}");
            if !fields.is_match(&key) {
                continue;
            }
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            out.untyped(
                &format!("node_netstat_{key}"),
                &format!("Statistic {proto}{name}."),
                v,
            );
        }
        Ok(())
    }
}

/// `Proto: A B` followed by `Proto: 1 2` → (Proto, A, 1), (Proto, B, 2).
pub fn parse_tables(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((proto, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names
            .split_ascii_whitespace()
            .zip(values.split_ascii_whitespace())
        {
            out.push((proto.to_string(), n.to_string(), v.to_string()));
        }
    }
    out
}

/// `Ip6InOctets 5` → (Ip6, InOctets, 5): the protocol ends at the first `6`.
pub fn parse_snmp6(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            let (key, value) = (it.next()?, it.next()?);
            let six = key.find('6')?;
            Some((
                key[..=six].to_string(),
                key[six + 1..].to_string(),
                value.to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_snmp6() {
        let t = parse_tables("Tcp: RtoAlgorithm ActiveOpens\nTcp: 1 7\nUdp: InErrors\nUdp: 3\n");
        assert_eq!(t[1], ("Tcp".into(), "ActiveOpens".into(), "7".into()));
        assert_eq!(t[2], ("Udp".into(), "InErrors".into(), "3".into()));
        let s = parse_snmp6("Ip6InOctets  5\nUdpLite6InErrors 0\n");
        assert_eq!(s[1], ("UdpLite6".into(), "InErrors".into(), "0".into()));
    }
}
