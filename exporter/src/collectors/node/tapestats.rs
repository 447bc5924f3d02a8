//! `tapestats` collector: SCSI tape drives (`/sys/class/scsi_tape/stN/stats`), the backup
//! target some desks still archive to. As node_exporter 1.5 with procfs 0.8: only `st<N>`
//! devices (not the `nst`/mode variants), every stats file must read and known ones parse, an
//! absent counter counts 0. No `/sys/class/scsi_tape` is "no data".

use super::sysfs::{go_uint, io_err, list, sys_read};
use super::{Ctx, NodeCollector, NodeError, parse_err};
use crate::metrics::{Families, Family, Kind};
use std::collections::BTreeMap;

pub struct Tapestats;

/// (stats file, metric, help, kind, scale) in node_exporter's order.
const STATS: [(&str, &str, &str, Kind, f64); 10] = [
    (
        "in_flight",
        "node_tape_io_now",
        "The number of I/Os currently outstanding to this device.",
        Kind::Gauge,
        1.0,
    ),
    (
        "io_ns",
        "node_tape_io_time_seconds_total",
        "The amount of time spent waiting for all I/O to complete (including read and write). This includes tape movement commands such as seeking between file or set marks and implicit tape movement such as when rewind on close tape devices are used.",
        Kind::Counter,
        0.000000001,
    ),
    (
        "other_cnt",
        "node_tape_io_others_total",
        "The number of I/Os issued to the tape drive other than read or write commands. The time taken to complete these commands uses the following calculation io_time_seconds_total-read_time_seconds_total-write_time_seconds_total",
        Kind::Counter,
        1.0,
    ),
    (
        "read_byte_cnt",
        "node_tape_read_bytes_total",
        "The number of bytes read from the tape drive.",
        Kind::Counter,
        1.0,
    ),
    (
        "read_cnt",
        "node_tape_reads_completed_total",
        "The number of read requests issued to the tape drive.",
        Kind::Counter,
        1.0,
    ),
    (
        "read_ns",
        "node_tape_read_time_seconds_total",
        "The amount of time spent waiting for read requests to complete.",
        Kind::Counter,
        0.000000001,
    ),
    (
        "resid_cnt",
        "node_tape_residual_total",
        "The number of times during a read or write we found the residual amount to be non-zero. This should mean that a program is issuing a read larger thean the block size on tape. For write not all data made it to tape.",
        Kind::Counter,
        1.0,
    ),
    (
        "write_byte_cnt",
        "node_tape_written_bytes_total",
        "The number of bytes written to the tape drive.",
        Kind::Counter,
        1.0,
    ),
    (
        "write_cnt",
        "node_tape_writes_completed_total",
        "The number of write requests issued to the tape drive.",
        Kind::Counter,
        1.0,
    ),
    (
        "write_ns",
        "node_tape_write_time_seconds_total",
        "The amount of time spent waiting for write requests to complete.",
        Kind::Counter,
        0.000000001,
    ),
];

/// `st` followed by digits only.
fn is_tape(name: &str) -> bool {
    name.strip_prefix("st")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl NodeCollector for Tapestats {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/scsi_tape");
        let mut fams: Vec<Family> = STATS
            .iter()
            .map(|(_, name, help, kind, _)| Family::new(name, help, *kind))
            .collect();
        for dev in list(&root)?.into_iter().filter(|d| is_tape(d)) {
            let dir = root.join(&dev).join("stats");
            let mut values: BTreeMap<String, u64> = BTreeMap::new();
            for name in list(&dir).map_err(|e| match e {
                NodeError::NoData => {
                    io_err(&dir, std::io::Error::from(std::io::ErrorKind::NotFound))
                }
                other => other,
            })? {
                let p = dir.join(&name);
                let text = sys_read(&p).map_err(|e| io_err(&p, e))?;
                if STATS.iter().any(|s| s.0 == name) {
                    let v = go_uint(&text)
                        .ok_or_else(|| parse_err(&p, format!("not a counter: {text:?}")))?;
                    values.insert(name, v);
                }
            }
            for ((file, _, _, _, scale), fam) in STATS.iter().zip(fams.iter_mut()) {
                // Multiplied by 1e-9 as upstream (not divided by 1e9: the last bit differs).
                let v = values.get(*file).copied().unwrap_or(0) as f64 * scale;
                fam.add(&[("device", &dev)], v);
            }
        }
        for f in fams {
            out.push(f);
        }
        Ok(())
    }
}
