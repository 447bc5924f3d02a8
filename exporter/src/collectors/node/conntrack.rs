//! `conntrack` collector: netfilter's connection-tracking table size and the per-CPU
//! statistics of /proc/net/stat/nf_conntrack summed over CPUs. Absent module → no data.

use super::{Ctx, NodeCollector, NodeError, parse_err, read, read_or_nodata};
use crate::metrics::Families;

pub struct Conntrack;

/// (column of /proc/net/stat/nf_conntrack, metric suffix, help).
const STATS: [(&str, &str, &str); 8] = [
    (
        "found",
        "found",
        "Number of searched entries which were successful.",
    ),
    (
        "invalid",
        "invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        "ignore",
        "ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    (
        "insert",
        "insert",
        "Number of entries inserted into the list.",
    ),
    (
        "insert_failed",
        "insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        "drop",
        "drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        "early_drop",
        "early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        "search_restart",
        "search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

impl NodeCollector for Conntrack {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let num = |rel: &str| -> Result<f64, NodeError> {
            let p = ctx.paths.proc(rel);
            read_or_nodata(&p)?
                .trim()
                .parse::<f64>()
                .map_err(|e| parse_err(&p, e))
        };
        out.gauge(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            num("sys/net/netfilter/nf_conntrack_count")?,
        );
        out.gauge(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            num("sys/net/netfilter/nf_conntrack_max")?,
        );
        let path = ctx.paths.proc("net/stat/nf_conntrack");
        if let Ok(text) = read(&path) {
            let mut lines = text.lines();
            let header: Vec<&str> = lines
                .next()
                .unwrap_or("")
                .split_ascii_whitespace()
                .collect();
            let mut sums = vec![0u64; header.len()];
            for line in lines {
                for (i, v) in line.split_ascii_whitespace().enumerate() {
                    if let (Some(s), Ok(n)) = (sums.get_mut(i), u64::from_str_radix(v, 16)) {
                        *s += n;
                    }
                }
            }
            for (col, name, help) in STATS {
                if let Some(i) = header.iter().position(|h| *h == col) {
                    out.gauge(
                        &format!("node_nf_conntrack_stat_{name}"),
                        help,
                        sums[i] as f64,
                    );
                }
            }
        }
        Ok(())
    }
}
