//! `diskstats` collector: /proc/diskstats (procfs-core's `DiskStats`) minus node_exporter's
//! default device exclusion (partitions, loop, ram), plus `node_disk_info` labelled from the
//! udev database (`/run/udev/data/b<major>:<minor>` under the root path) as node_exporter does.

use super::{Ctx, NodeCollector, NodeError, proc_parse};
use crate::metrics::{Families, Family, Kind};
use procfs_core::DiskStats;
use std::collections::HashMap;

pub struct Diskstats;

const SECTOR: f64 = 512.0;
const TICK: f64 = 0.001;

/// (name, kind, help) in /proc/diskstats field order after the device name.
const FIELDS: [(&str, Kind, &str); 17] = [
    (
        "reads_completed_total",
        Kind::Counter,
        "The total number of reads completed successfully.",
    ),
    (
        "reads_merged_total",
        Kind::Counter,
        "The total number of reads merged.",
    ),
    (
        "read_bytes_total",
        Kind::Counter,
        "The total number of bytes read successfully.",
    ),
    (
        "read_time_seconds_total",
        Kind::Counter,
        "The total number of seconds spent by all reads.",
    ),
    (
        "writes_completed_total",
        Kind::Counter,
        "The total number of writes completed successfully.",
    ),
    (
        "writes_merged_total",
        Kind::Counter,
        "The number of writes merged.",
    ),
    (
        "written_bytes_total",
        Kind::Counter,
        "The total number of bytes written successfully.",
    ),
    (
        "write_time_seconds_total",
        Kind::Counter,
        "This is the total number of seconds spent by all writes.",
    ),
    (
        "io_now",
        Kind::Gauge,
        "The number of I/Os currently in progress.",
    ),
    (
        "io_time_seconds_total",
        Kind::Counter,
        "Total seconds spent doing I/Os.",
    ),
    (
        "io_time_weighted_seconds_total",
        Kind::Counter,
        "The weighted # of seconds spent doing I/Os.",
    ),
    (
        "discards_completed_total",
        Kind::Counter,
        "The total number of discards completed successfully.",
    ),
    (
        "discards_merged_total",
        Kind::Counter,
        "The total number of discards merged.",
    ),
    (
        "discarded_sectors_total",
        Kind::Counter,
        "The total number of sectors discarded successfully.",
    ),
    (
        "discard_time_seconds_total",
        Kind::Counter,
        "This is the total number of seconds spent by all discards.",
    ),
    (
        "flush_requests_total",
        Kind::Counter,
        "The total number of flush requests completed successfully",
    ),
    (
        "flush_requests_time_seconds_total",
        Kind::Counter,
        "This is the total number of seconds spent by all flush requests.",
    ),
];

impl NodeCollector for Diskstats {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let stats: DiskStats = proc_parse(ctx, "diskstats")?;
        let mut fams: Vec<Family> = FIELDS
            .iter()
            .map(|(n, k, h)| Family::new(&format!("node_disk_{n}"), h, *k))
            .collect();
        let mut info = Family::gauge("node_disk_info", "Info of /sys/block/<block_device>.");
        for d in &stats.0 {
            if ctx.filters.diskstats.excludes(&d.name) {
                continue;
            }
            let udev = udev_properties(ctx, d.major, d.minor);
            let u = |k: &str| udev.get(k).map(String::as_str).unwrap_or("");
            let (major, minor) = (d.major.to_string(), d.minor.to_string());
            info.add(
                &[
                    ("device", &d.name),
                    ("major", &major),
                    ("minor", &minor),
                    ("model", u("ID_MODEL")),
                    ("path", u("ID_PATH")),
                    ("revision", u("ID_REVISION")),
                    ("serial", u("ID_SERIAL_SHORT")),
                    ("wwn", u("ID_WWN")),
                ],
                1.0,
            );
            let mut values = vec![
                d.reads as f64,
                d.merged as f64,
                d.sectors_read as f64 * SECTOR,
                d.time_reading as f64 * TICK,
                d.writes as f64,
                d.writes_merged as f64,
                d.sectors_written as f64 * SECTOR,
                d.time_writing as f64 * TICK,
                d.in_progress as f64,
                d.time_in_progress as f64 * TICK,
                d.weighted_time_in_progress as f64 * TICK,
            ];
            // Kernel 4.18+ adds discards, 5.5+ flushes: publish what the line has.
            if let (Some(a), Some(b), Some(c), Some(t)) = (
                d.discards,
                d.discards_merged,
                d.sectors_discarded,
                d.time_discarding,
            ) {
                values.extend([a as f64, b as f64, c as f64, t as f64 * TICK]);
                if let (Some(f), Some(ft)) = (d.flushes, d.time_flushing) {
                    values.extend([f as f64, ft as f64 * TICK]);
                }
            }
            for (fam, v) in fams.iter_mut().zip(values) {
                fam.add(&[("device", &d.name)], v);
            }
        }
        out.push(info);
        for f in fams {
            out.push(f);
        }
        Ok(())
    }
}

/// `E:KEY=value` lines of the device's udev record; empty when udev has none (containers).
fn udev_properties(ctx: &Ctx<'_>, major: i32, minor: i32) -> HashMap<String, String> {
    let path = ctx.paths.root(&format!("/run/udev/data/b{major}:{minor}"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("E:")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
