//! `nfs` collector: NFS client RPC statistics from `/proc/net/rpc/nfs` (procfs-core has no
//! parser for it; this is procfs 0.8's reading): packets by transport, RPC counts, and every
//! NFSv2/v3/v4 procedure under the method names node_exporter 1.5 publishes, zero for a
//! protocol version the kernel does not list. No file (no NFS client module) is "no data".

use super::{Ctx, NodeCollector, NodeError, parse_err, read_or_nodata};
use crate::metrics::{Families, Family};

pub struct Nfs;

pub(super) const V2: [&str; 18] = [
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write",
    "Create", "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];

pub(super) const V3: [&str; 22] = [
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];

const V4: [&str; 59] = [
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "LayoutGet",
    "GetDeviceInfo",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

/// The client statistics node_exporter publishes.
#[derive(Debug, Default, PartialEq)]
pub struct ClientStats {
    pub udp: u64,
    pub tcp: u64,
    pub tcp_connect: u64,
    pub rpc: [u64; 3],
    pub v2: Vec<u64>,
    pub v3: Vec<u64>,
    pub v4: Vec<u64>,
}

/// `procN <count> <values…>`: the count must match and reach `min`; fewer than `want`
/// values are padded with zeros (older kernels), more are ignored (newer ones).
pub(super) fn procedures(
    v: &[u64],
    min: usize,
    want: usize,
    line: &str,
) -> Result<Vec<u64>, String> {
    let count = v[0] as usize;
    if v.len() - 1 != count || count < min {
        return Err(format!("invalid procedure line {line:?}"));
    }
    let mut out: Vec<u64> = v[1..].iter().copied().take(want).collect();
    out.resize(want, 0);
    Ok(out)
}

pub fn parse(text: &str) -> Result<ClientStats, String> {
    let mut s = ClientStats {
        v2: vec![0; V2.len()],
        v3: vec![0; V3.len()],
        v4: vec![0; V4.len()],
        ..ClientStats::default()
    };
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 {
            return Err(format!("invalid NFS metric line {line:?}"));
        }
        let values = parts[1..]
            .iter()
            .map(|p| p.parse::<u64>())
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| format!("error parsing NFS metric line {line:?}: {e}"))?;
        match parts[0] {
            "net" => {
                let [_, udp, tcp, conn] = values[..] else {
                    return Err(format!("invalid Network line {line:?}"));
                };
                (s.udp, s.tcp, s.tcp_connect) = (udp, tcp, conn);
            }
            "rpc" => {
                let [a, b, c] = values[..] else {
                    return Err(format!("invalid RPC line {line:?}"));
                };
                s.rpc = [a, b, c];
            }
            "proc2" => s.v2 = procedures(&values, 18, V2.len(), line)?,
            "proc3" => s.v3 = procedures(&values, 22, V3.len(), line)?,
            "proc4" => s.v4 = procedures(&values, 0, V4.len(), line)?,
            other => return Err(format!("unknown NFS metric line {other:?}")),
        }
    }
    Ok(s)
}

impl NodeCollector for Nfs {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("net/rpc/nfs");
        let text = read_or_nodata(&path)?;
        let s = parse(&text).map_err(|e| parse_err(&path, e))?;
        let mut packets = Family::counter(
            "node_nfs_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
        );
        packets.add(&[("protocol", "udp")], s.udp as f64);
        packets.add(&[("protocol", "tcp")], s.tcp as f64);
        out.push(packets);
        out.counter(
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
            s.tcp_connect as f64,
        );
        out.counter(
            "node_nfs_rpcs_total",
            "Total number of RPCs performed.",
            s.rpc[0] as f64,
        );
        out.counter(
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
            s.rpc[1] as f64,
        );
        out.counter(
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
            s.rpc[2] as f64,
        );
        let mut requests = Family::counter(
            "node_nfs_requests_total",
            "Number of NFS procedures invoked.",
        );
        for (proto, names, values) in [
            ("2", &V2[..], &s.v2),
            ("3", &V3[..], &s.v3),
            ("4", &V4[..], &s.v4),
        ] {
            for (method, v) in names.iter().zip(values.iter()) {
                requests.add(&[("proto", proto), ("method", method)], *v as f64);
            }
        }
        out.push(requests);
        Ok(())
    }
}
