//! `bcache` collector: SSD caching of block devices, from `/sys/fs/bcache/<set-uuid>/`, as
//! node_exporter 1.5 (without `--collector.bcache.priorityStats`) with procfs 0.8's reading:
//! sizes are "human" (`1.2M`: the fraction is tenths of 1/1.024 as bcache prints it), an
//! absent attribute counts 0, an unreadable or unparsable one fails the collector. No bcache
//! publishes nothing, successfully.

use super::sysfs::glob_numbered;
use super::{Ctx, NodeCollector, NodeError, parse_err};
use crate::metrics::{Families, Family, Kind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Bcache;

/// `12.5` as bcache prints it: the digits after the point are tenths of 1/1.024.
fn pseudo_float(s: &str) -> Option<f64> {
    let mut parts = s.split('.');
    let int = parts.next()?.parse::<f64>().ok()?;
    match parts.next() {
        None => Some(int),
        Some(frac) => Some(int + frac.parse::<f64>().ok()? / 10.24),
    }
}

/// procfs' `dehumanize`: `4.0k`, `1.2M`, `512`.
fn dehumanize(s: &str) -> Option<u64> {
    let last = *s.as_bytes().last()?;
    if last > b'9' {
        let mul = match last {
            b'k' => 1u64 << 10,
            b'M' => 1 << 20,
            b'G' => 1 << 30,
            b'T' => 1 << 40,
            b'P' => 1 << 50,
            b'E' => 1 << 60,
            _ => 0,
        } as f64;
        let mant = pseudo_float(&s[..s.len() - 1])?;
        Some((mant * mul) as u64)
    } else {
        Some(s.parse::<f64>().ok()? as u64)
    }
}

fn dehumanize_signed(s: &str) -> Option<i64> {
    let v = dehumanize(s.strip_prefix('-').unwrap_or(s))? as i64;
    Some(if s.starts_with('-') {
        v.wrapping_neg()
    } else {
        v
    })
}

/// One attribute: absent is 0, anything else must read and parse.
fn value(dir: &Path, file: &str) -> Result<u64, NodeError> {
    let p = dir.join(file);
    match std::fs::read_to_string(&p) {
        Ok(text) => {
            // procfs drops the last byte (the newline) and nothing else.
            let mut t = text;
            t.pop();
            dehumanize(&t).ok_or_else(|| parse_err(&p, format!("not a size: {t:?}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(_) => Err(parse_err(&p, "failed to read")),
    }
}

/// (rate, target, proportional, integral, change) of `writeback_rate_debug`.
fn writeback(dir: &Path) -> Result<[f64; 5], NodeError> {
    let p = dir.join("writeback_rate_debug");
    let text = std::fs::read_to_string(&p).map_err(|_| parse_err(&p, "failed to read"))?;
    let mut out = [0.0; 5];
    for line in text.lines() {
        let last = line.split_whitespace().last().unwrap_or_default();
        let bad = || parse_err(&p, format!("line {line:?}"));
        let (i, v) = if line.starts_with("rate:") {
            (
                0,
                dehumanize(last.trim_end_matches("/sec")).ok_or_else(bad)? as f64,
            )
        } else if line.starts_with("dirty:") {
            dehumanize(last).ok_or_else(bad)?;
            continue;
        } else if line.starts_with("target:") {
            (1, dehumanize(last).ok_or_else(bad)? as f64)
        } else if line.starts_with("proportional:") {
            (2, dehumanize_signed(last).ok_or_else(bad)? as f64)
        } else if line.starts_with("integral:") {
            (3, dehumanize_signed(last).ok_or_else(bad)? as f64)
        } else if line.starts_with("change:") {
            (
                4,
                dehumanize_signed(last.trim_end_matches("/sec")).ok_or_else(bad)? as f64,
            )
        } else if line.starts_with("next io:") {
            last.trim_end_matches("ms")
                .parse::<i64>()
                .map_err(|_| bad())?;
            continue;
        } else {
            continue;
        };
        out[i] = v;
    }
    Ok(out)
}

/// The period statistics (`stats_total`) files, metric suffixes and help, in order.
const PERIOD: [(&str, &str, &str); 7] = [
    (
        "bypassed",
        "bypassed_bytes_total",
        "Amount of IO (both reads and writes) that has bypassed the cache.",
    ),
    (
        "cache_hits",
        "cache_hits_total",
        "Hits counted per individual IO as bcache sees them.",
    ),
    (
        "cache_misses",
        "cache_misses_total",
        "Misses counted per individual IO as bcache sees them.",
    ),
    (
        "cache_bypass_hits",
        "cache_bypass_hits_total",
        "Hits for IO intended to skip the cache.",
    ),
    (
        "cache_bypass_misses",
        "cache_bypass_misses_total",
        "Misses for IO intended to skip the cache.",
    ),
    (
        "cache_miss_collisions",
        "cache_miss_collisions_total",
        "Instances where data insertion from cache miss raced with write (data already present).",
    ),
    (
        "cache_readaheads",
        "cache_readaheads_total",
        "Count of times readahead occurred.",
    ),
];

/// Every period file procfs reads (five-minute ones too), so a bad one fails as upstream.
const PERIOD_FILES: [&str; 7] = [
    "bypassed",
    "cache_bypass_hits",
    "cache_bypass_misses",
    "cache_hits",
    "cache_miss_collisions",
    "cache_misses",
    "cache_readaheads",
];

#[derive(Default)]
struct Out(BTreeMap<&'static str, Family>);

impl Out {
    fn add(
        &mut self,
        suffix: &'static str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        v: f64,
    ) {
        self.0
            .entry(suffix)
            .or_insert_with(|| Family::new(&format!("node_bcache_{suffix}"), help, kind))
            .add(labels, v);
    }
}

fn period(dir: &Path) -> Result<Vec<u64>, NodeError> {
    let mut total = Vec::new();
    for f in PERIOD_FILES {
        value(&dir.join("stats_five_minute"), f)?;
    }
    for (f, _, _) in PERIOD {
        total.push(value(&dir.join("stats_total"), f)?);
    }
    Ok(total)
}

impl NodeCollector for Bcache {
    fn update(&self, ctx: &Ctx<'_>, fams: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("fs/bcache");
        // The glob `fs/bcache/*-*`: cache sets are named by UUID.
        let mut sets: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.contains('-'))
                    .map(|n| {
                        let p = root.join(&n);
                        (n, p)
                    })
                    .collect()
            })
            .unwrap_or_default();
        sets.sort();
        let mut out = Out::default();
        let g = Kind::Gauge;
        let c = Kind::Counter;
        for (uuid, dir) in sets {
            let u = uuid.as_str();
            let top: Vec<u64> = [
                "average_key_size",
                "btree_cache_size",
                "cache_available_percent",
                "congested",
                "root_usage_percent",
                "tree_depth",
            ]
            .iter()
            .map(|f| value(&dir, f))
            .collect::<Result<_, _>>()?;
            let internal: Vec<u64> = [
                "active_journal_entries",
                "btree_nodes",
                "btree_read_average_duration_us",
                "cache_read_races",
            ]
            .iter()
            .map(|f| value(&dir.join("internal"), f))
            .collect::<Result<_, _>>()?;
            period(&dir)?;
            let l = [("uuid", u)];
            out.add(
                "average_key_size_sectors",
                "Average data per key in the btree (sectors).",
                g,
                &l,
                top[0] as f64,
            );
            out.add(
                "btree_cache_size_bytes",
                "Amount of memory currently used by the btree cache.",
                g,
                &l,
                top[1] as f64,
            );
            out.add("cache_available_percent", "Percentage of cache device without dirty data, usable for writeback (may contain clean cached data).", g, &l, top[2] as f64);
            out.add("congested", "Congestion.", g, &l, top[3] as f64);
            out.add(
                "root_usage_percent",
                "Percentage of the root btree node in use (tree depth increases if too high).",
                g,
                &l,
                top[4] as f64,
            );
            out.add("tree_depth", "Depth of the btree.", g, &l, top[5] as f64);
            out.add(
                "active_journal_entries",
                "Number of journal entries that are newer than the index.",
                g,
                &l,
                internal[0] as f64,
            );
            out.add(
                "btree_nodes",
                "Total nodes in the btree.",
                g,
                &l,
                internal[1] as f64,
            );
            // Microseconds scaled as nanoseconds: node_exporter 1.5 publishes it so.
            out.add(
                "btree_read_average_duration_seconds",
                "Average btree read duration.",
                g,
                &l,
                internal[2] as f64 * 1e-9,
            );
            out.add("cache_read_races_total", "Counts instances where while data was being read from the cache, the bucket was reused and invalidated - i.e. where the pointer was stale after the read completed.", c, &l, internal[3] as f64);
            for (bdev, bdir) in glob_numbered(&dir, "bdev") {
                let name = format!("bdev{bdev}");
                let dirty = value(&bdir, "dirty_data")?;
                let wb = writeback(&bdir)?;
                let totals = period(&bdir)?;
                let l = [("uuid", u), ("backing_device", name.as_str())];
                out.add(
                    "dirty_data_bytes",
                    "Amount of dirty data for this backing device in the cache.",
                    g,
                    &l,
                    dirty as f64,
                );
                out.add(
                    "dirty_target_bytes",
                    "Current dirty data target threshold for this backing device in bytes.",
                    g,
                    &l,
                    wb[1],
                );
                out.add(
                    "writeback_rate",
                    "Current writeback rate for this backing device in bytes.",
                    g,
                    &l,
                    wb[0],
                );
                out.add(
                    "writeback_rate_proportional_term",
                    "Current result of proportional controller, part of writeback rate",
                    g,
                    &l,
                    wb[2],
                );
                out.add(
                    "writeback_rate_integral_term",
                    "Current result of integral controller, part of writeback rate",
                    g,
                    &l,
                    wb[3],
                );
                out.add(
                    "writeback_change",
                    "Last writeback rate change step for this backing device.",
                    g,
                    &l,
                    wb[4],
                );
                for ((_, suffix, help), v) in PERIOD.iter().zip(totals) {
                    out.add(suffix, help, c, &l, v as f64);
                }
            }
            for (cache, cdir) in glob_numbered(&dir, "cache") {
                let name = format!("cache{cache}");
                let l = [("uuid", u), ("cache_device", name.as_str())];
                let io_errors = value(&cdir, "io_errors")?;
                let metadata = value(&cdir, "metadata_written")?;
                let written = value(&cdir, "written")?;
                out.add(
                    "io_errors",
                    "Number of errors that have occurred, decayed by io_error_halflife.",
                    g,
                    &l,
                    io_errors as f64,
                );
                out.add(
                    "metadata_written_bytes_total",
                    "Sum of all non data writes (btree writes and all other metadata).",
                    c,
                    &l,
                    metadata as f64,
                );
                out.add(
                    "written_bytes_total",
                    "Sum of all data that has been written to the cache.",
                    c,
                    &l,
                    written as f64,
                );
            }
        }
        for (_, f) in out.0 {
            fams.push(f);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_read_as_procfs() {
        assert_eq!(dehumanize("542k"), Some(555_008));
        assert_eq!(dehumanize("1.2M"), Some(1_253_376));
        assert_eq!(dehumanize("12"), Some(12));
        assert_eq!(dehumanize_signed("-5.0k"), Some(-5120));
    }
}
