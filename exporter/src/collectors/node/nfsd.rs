//! `nfsd` collector: NFS server statistics from `/proc/net/rpc/nfsd` (reply cache, stale
//! handles, bytes, threads, RPC errors, and the NFSv2/v3 procedures and NFSv4 operations
//! node_exporter 1.5 publishes), read as procfs 0.8 reads it: an unknown line or a line of
//! the wrong width fails the collector, a line the kernel does not print counts zero. No
//! file (no NFS server) is "no data".

use super::nfs::{V2, V3, procedures};
use super::{Ctx, NodeCollector, NodeError, parse_err, read_or_nodata};
use crate::metrics::{Families, Family};
use std::collections::HashMap;

pub struct Nfsd;

/// NFSv4 operations published, with their position in the `proc4ops` values.
const V4_OPS: [(&str, usize); 33] = [
    ("Access", 3),
    ("Close", 4),
    ("Commit", 5),
    ("Create", 6),
    ("DelegPurge", 7),
    ("DelegReturn", 8),
    ("GetAttr", 9),
    ("GetFH", 10),
    ("Link", 11),
    ("Lock", 12),
    ("Lockt", 13),
    ("Locku", 14),
    ("Lookup", 15),
    ("LookupRoot", 16),
    ("Nverify", 17),
    ("Open", 18),
    ("OpenAttr", 19),
    ("OpenConfirm", 20),
    ("OpenDgrd", 21),
    ("PutFH", 22),
    ("Read", 25),
    ("ReadDir", 26),
    ("ReadLink", 27),
    ("Remove", 28),
    ("Rename", 29),
    ("Renew", 30),
    ("RestoreFH", 31),
    ("SaveFH", 32),
    ("SecInfo", 33),
    ("SetAttr", 34),
    ("Verify", 35),
    ("Write", 36),
    ("RelLockOwner", 37),
];

/// Line label → its values (procedure lines without their count), zero-filled when absent.
pub fn parse(text: &str) -> Result<HashMap<&'static str, Vec<u64>>, String> {
    let mut out: HashMap<&'static str, Vec<u64>> = HashMap::new();
    for (label, width) in [
        ("rc", 3),
        ("fh", 5),
        ("io", 2),
        ("th", 2),
        ("ra", 12),
        ("net", 4),
        ("rpc", 5),
        ("proc2", V2.len()),
        ("proc3", V3.len()),
        ("proc4", 2),
        ("proc4ops", 38),
    ] {
        out.insert(label, vec![0; width]);
    }
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 {
            return Err(format!("invalid NFSd metric line {line:?}"));
        }
        let label = parts[0];
        let raw = if label == "th" {
            if parts.len() < 3 {
                return Err(format!("invalid NFSd th metric line {line:?}"));
            }
            &parts[1..3]
        } else {
            &parts[1..]
        };
        let values = raw
            .iter()
            .map(|p| p.parse::<u64>())
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| format!("error parsing NFSd metric line {line:?}: {e}"))?;
        let exact = |n: usize| {
            if values.len() == n {
                Ok(values.clone())
            } else {
                Err(format!("invalid {label} line {line:?}"))
            }
        };
        let (key, v) = match label {
            "rc" => ("rc", exact(3)?),
            "fh" => ("fh", exact(5)?),
            "io" => ("io", exact(2)?),
            "th" => ("th", exact(2)?),
            "ra" => ("ra", exact(12)?),
            "net" => ("net", exact(4)?),
            "rpc" => ("rpc", exact(5)?),
            "proc2" => ("proc2", procedures(&values, 18, V2.len(), line)?),
            "proc3" => ("proc3", procedures(&values, 22, V3.len(), line)?),
            "proc4" => {
                if values[0] != 2 || values.len() != 3 {
                    return Err(format!("invalid V4Stats line {line:?}"));
                }
                ("proc4", values[1..].to_vec())
            }
            "proc4ops" => ("proc4ops", procedures(&values, 39, 38, line)?),
            other => return Err(format!("unknown NFSd metric line {other:?}")),
        };
        out.insert(key, v);
    }
    Ok(out)
}

impl NodeCollector for Nfsd {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("net/rpc/nfsd");
        let text = read_or_nodata(&path)?;
        let s = parse(&text).map_err(|e| parse_err(&path, e))?;
        let at = |k: &str, i: usize| s.get(k).and_then(|v| v.get(i)).copied().unwrap_or(0) as f64;
        out.counter(
            "node_nfsd_reply_cache_hits_total",
            "Total number of NFSd Reply Cache hits (client lost server response).",
            at("rc", 0),
        );
        out.counter(
            "node_nfsd_reply_cache_misses_total",
            "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
            at("rc", 1),
        );
        out.counter(
            "node_nfsd_reply_cache_nocache_total",
            "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
            at("rc", 2),
        );
        out.counter(
            "node_nfsd_file_handles_stale_total",
            "Total number of NFSd stale file handles",
            at("fh", 0),
        );
        out.counter(
            "node_nfsd_disk_bytes_read_total",
            "Total NFSd bytes read.",
            at("io", 0),
        );
        out.counter(
            "node_nfsd_disk_bytes_written_total",
            "Total NFSd bytes written.",
            at("io", 1),
        );
        out.gauge(
            "node_nfsd_server_threads",
            "Total number of NFSd kernel threads that are running.",
            at("th", 0),
        );
        out.gauge(
            "node_nfsd_read_ahead_cache_size_blocks",
            "How large the read ahead cache is in blocks.",
            at("ra", 0),
        );
        out.counter(
            "node_nfsd_read_ahead_cache_not_found_total",
            "Total number of NFSd read ahead cache not found.",
            at("ra", 11),
        );
        let mut packets = Family::counter(
            "node_nfsd_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
        );
        packets.add(&[("proto", "udp")], at("net", 1));
        packets.add(&[("proto", "tcp")], at("net", 2));
        out.push(packets);
        out.counter(
            "node_nfsd_connections_total",
            "Total number of NFSd TCP connections.",
            at("net", 3),
        );
        let mut errors = Family::counter(
            "node_nfsd_rpc_errors_total",
            "Total number of NFSd RPC errors by error type.",
        );
        errors.add(&[("error", "fmt")], at("rpc", 2));
        errors.add(&[("error", "auth")], at("rpc", 3));
        errors.add(&[("error", "cInt")], at("rpc", 4));
        out.push(errors);
        out.counter(
            "node_nfsd_server_rpcs_total",
            "Total number of NFSd RPCs.",
            at("rpc", 0),
        );
        let mut requests = Family::counter(
            "node_nfsd_requests_total",
            "Total number NFSd Requests by method and protocol.",
        );
        // NFSv2 and v3 without their Null procedure, as node_exporter.
        for (proto, key, names) in [("2", "proc2", &V2[..]), ("3", "proc3", &V3[..])] {
            for (i, method) in names.iter().enumerate().skip(1) {
                requests.add(&[("proto", proto), ("method", method)], at(key, i));
            }
        }
        for (method, i) in V4_OPS {
            requests.add(&[("proto", "4"), ("method", method)], at("proc4ops", i));
        }
        out.push(requests);
        Ok(())
    }
}
