//! `netstat` collector: the fields of /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6
//! that node_exporter 1.5's default `--collector.netstat.fields` selects, untyped, as
//! `node_netstat_<Proto>_<Field>`. procfs-core's `Snmp`/`Snmp6` are fixed structs without
//! `TcpExt`/`IpExt` (netstat), so these "header line / value line" tables are read generically.

use super::{Ctx, NodeCollector, NodeError, read};
use crate::metrics::Families;
use regex::Regex;
use std::collections::HashMap;
use std::sync::Mutex;

pub const DEFAULT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

pub struct Netstat {
    fields: Option<Regex>,
    /// `Proto_Field` → whether `fields` selects it. The kernel's field names do not change
    /// between scrapes, and matching ~400 of them against the selection every scrape was
    /// most of this collector's time.
    selected: Mutex<HashMap<String, bool>>,
}

/// More distinct names than any kernel has (~400): past it, a hostile `--path.procfs` tree
/// cannot grow the cache without bound; it starts over.
const MAX_CACHED: usize = 4096;

impl Netstat {
    pub fn new() -> Netstat {
        Netstat {
            fields: Regex::new(DEFAULT_FIELDS).ok(),
            selected: Mutex::new(HashMap::new()),
        }
    }
}

impl NodeCollector for Netstat {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let netstat = read(&ctx.paths.proc("net/netstat"))?;
        let snmp = read(&ctx.paths.proc("net/snmp"))?;
        let snmp6 = super::pseudofs::read_to_string(&ctx.paths.proc("net/snmp6")).ok();
        let Some(fields) = &self.fields else {
            return Ok(());
        };
        let mut stats = parse_tables(&netstat);
        stats.extend(parse_tables(&snmp));
        if let Some(text) = &snmp6 {
            stats.extend(parse_snmp6(text));
        }
        let mut selected = super::lock(&self.selected);
        let mut key = String::with_capacity(64);
        for (proto, name, value) in stats {
            key.clear();
            key.push_str(proto);
            key.push('_');
            key.push_str(name);
            let keep = match selected.get(key.as_str()) {
                Some(&keep) => keep,
                None => {
                    if selected.len() >= MAX_CACHED {
                        selected.clear();
                    }
                    let keep = fields.is_match(&key);
                    selected.insert(key.clone(), keep);
                    keep
                }
            };
            if !keep {
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
pub fn parse_tables(text: &str) -> Vec<(&str, &str, &str)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((proto, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        out.extend(
            names
                .split_ascii_whitespace()
                .zip(values.split_ascii_whitespace())
                .map(|(n, v)| (proto, n, v)),
        );
    }
    out
}

/// `Ip6InOctets 5` → (Ip6, InOctets, 5): the protocol ends at the first `6`.
pub fn parse_snmp6(text: &str) -> Vec<(&str, &str, &str)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            let (key, value) = (it.next()?, it.next()?);
            let six = key.find('6')?;
            Some((&key[..=six], &key[six + 1..], value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_snmp6() {
        let t = parse_tables("Tcp: RtoAlgorithm ActiveOpens\nTcp: 1 7\nUdp: InErrors\nUdp: 3\n");
        assert_eq!(t[1], ("Tcp", "ActiveOpens", "7"));
        assert_eq!(t[2], ("Udp", "InErrors", "3"));
        let s = parse_snmp6("Ip6InOctets  5\nUdpLite6InErrors 0\n");
        assert_eq!(s[1], ("UdpLite6", "InErrors", "0"));
    }
}
