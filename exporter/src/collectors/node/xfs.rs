//! `xfs` collector: per-filesystem XFS statistics from `/sys/fs/xfs/<device>/stats/stats`
//! (XFS is what column stores such as kdb+ are usually run on). procfs-core has no parser
//! for it; this is procfs 0.8's reading: every line's values must be 32-bit counters (`xpc`
//! 64-bit), the known lines must have their exact width (or the collector fails), and a line
//! the kernel does not print counts zero. No XFS mounted publishes nothing, successfully.

use super::{Ctx, NodeCollector, NodeError, parse_err, read};
use crate::metrics::{Families, Family};
use std::collections::HashMap;
use std::path::PathBuf;

pub struct Xfs;

/// Line label → the value counts procfs accepts.
const WIDTHS: [(&str, &[usize]); 22] = [
    ("extent_alloc", &[4]),
    ("abt", &[4]),
    ("blk_map", &[7]),
    ("bmbt", &[4]),
    ("dir", &[4]),
    ("trans", &[3]),
    ("ig", &[7]),
    ("log", &[5]),
    ("push_ail", &[10]),
    ("xstrat", &[2]),
    ("rw", &[2]),
    ("attr", &[4]),
    ("icluster", &[3]),
    ("vnodes", &[7, 8]),
    ("buf", &[9]),
    ("xpc", &[3]),
    ("abtb2", &[15]),
    ("abtc2", &[15]),
    ("bmbt2", &[15]),
    ("ibt2", &[15]),
    ("qm", &[8, 9]),
    ("debug", &[1]),
];

/// (metric suffix, help, line, index) in node_exporter's order.
const METRICS: [(&str, &str, &str, usize); 39] = [
    (
        "extent_allocation_extents_allocated_total",
        "Number of extents allocated for a filesystem.",
        "extent_alloc",
        0,
    ),
    (
        "extent_allocation_blocks_allocated_total",
        "Number of blocks allocated for a filesystem.",
        "extent_alloc",
        1,
    ),
    (
        "extent_allocation_extents_freed_total",
        "Number of extents freed for a filesystem.",
        "extent_alloc",
        2,
    ),
    (
        "extent_allocation_blocks_freed_total",
        "Number of blocks freed for a filesystem.",
        "extent_alloc",
        3,
    ),
    (
        "allocation_btree_lookups_total",
        "Number of allocation B-tree lookups for a filesystem.",
        "abt",
        0,
    ),
    (
        "allocation_btree_compares_total",
        "Number of allocation B-tree compares for a filesystem.",
        "abt",
        1,
    ),
    (
        "allocation_btree_records_inserted_total",
        "Number of allocation B-tree records inserted for a filesystem.",
        "abt",
        2,
    ),
    (
        "allocation_btree_records_deleted_total",
        "Number of allocation B-tree records deleted for a filesystem.",
        "abt",
        3,
    ),
    (
        "block_mapping_reads_total",
        "Number of block map for read operations for a filesystem.",
        "blk_map",
        0,
    ),
    (
        "block_mapping_writes_total",
        "Number of block map for write operations for a filesystem.",
        "blk_map",
        1,
    ),
    (
        "block_mapping_unmaps_total",
        "Number of block unmaps (deletes) for a filesystem.",
        "blk_map",
        2,
    ),
    (
        "block_mapping_extent_list_insertions_total",
        "Number of extent list insertions for a filesystem.",
        "blk_map",
        3,
    ),
    (
        "block_mapping_extent_list_deletions_total",
        "Number of extent list deletions for a filesystem.",
        "blk_map",
        4,
    ),
    (
        "block_mapping_extent_list_lookups_total",
        "Number of extent list lookups for a filesystem.",
        "blk_map",
        5,
    ),
    (
        "block_mapping_extent_list_compares_total",
        "Number of extent list compares for a filesystem.",
        "blk_map",
        6,
    ),
    (
        "block_map_btree_lookups_total",
        "Number of block map B-tree lookups for a filesystem.",
        "bmbt",
        0,
    ),
    (
        "block_map_btree_compares_total",
        "Number of block map B-tree compares for a filesystem.",
        "bmbt",
        1,
    ),
    (
        "block_map_btree_records_inserted_total",
        "Number of block map B-tree records inserted for a filesystem.",
        "bmbt",
        2,
    ),
    (
        "block_map_btree_records_deleted_total",
        "Number of block map B-tree records deleted for a filesystem.",
        "bmbt",
        3,
    ),
    (
        "directory_operation_lookup_total",
        "Number of file name directory lookups which miss the operating systems directory name lookup cache.",
        "dir",
        0,
    ),
    (
        "directory_operation_create_total",
        "Number of times a new directory entry was created for a filesystem.",
        "dir",
        1,
    ),
    (
        "directory_operation_remove_total",
        "Number of times an existing directory entry was created for a filesystem.",
        "dir",
        2,
    ),
    (
        "directory_operation_getdents_total",
        "Number of times the directory getdents operation was performed for a filesystem.",
        "dir",
        3,
    ),
    (
        "inode_operation_attempts_total",
        "Number of times the OS looked for an XFS inode in the inode cache.",
        "ig",
        0,
    ),
    (
        "inode_operation_found_total",
        "Number of times the OS looked for and found an XFS inode in the inode cache.",
        "ig",
        1,
    ),
    (
        "inode_operation_recycled_total",
        "Number of times the OS found an XFS inode in the cache, but could not use it as it was being recycled.",
        "ig",
        2,
    ),
    (
        "inode_operation_missed_total",
        "Number of times the OS looked for an XFS inode in the cache, but did not find it.",
        "ig",
        3,
    ),
    (
        "inode_operation_duplicates_total",
        "Number of times the OS tried to add a missing XFS inode to the inode cache, but found it had already been added by another process.",
        "ig",
        4,
    ),
    (
        "inode_operation_reclaims_total",
        "Number of times the OS reclaimed an XFS inode from the inode cache to free memory for another purpose.",
        "ig",
        5,
    ),
    (
        "inode_operation_attribute_changes_total",
        "Number of times the OS explicitly changed the attributes of an XFS inode.",
        "ig",
        6,
    ),
    (
        "read_calls_total",
        "Number of read(2) system calls made to files in a filesystem.",
        "rw",
        1,
    ),
    (
        "write_calls_total",
        "Number of write(2) system calls made to files in a filesystem.",
        "rw",
        0,
    ),
    (
        "vnode_active_total",
        "Number of vnodes not on free lists for a filesystem.",
        "vnodes",
        0,
    ),
    (
        "vnode_allocate_total",
        "Number of times vn_alloc called for a filesystem.",
        "vnodes",
        1,
    ),
    (
        "vnode_get_total",
        "Number of times vn_get called for a filesystem.",
        "vnodes",
        2,
    ),
    (
        "vnode_hold_total",
        "Number of times vn_hold called for a filesystem.",
        "vnodes",
        3,
    ),
    (
        "vnode_release_total",
        "Number of times vn_rele called for a filesystem.",
        "vnodes",
        4,
    ),
    (
        "vnode_reclaim_total",
        "Number of times vn_reclaim called for a filesystem.",
        "vnodes",
        5,
    ),
    (
        "vnode_remove_total",
        "Number of times vn_remove called for a filesystem.",
        "vnodes",
        6,
    ),
];

/// One stats file: line label → values (the last line of a label wins, as procfs).
pub fn parse(text: &str) -> Result<HashMap<String, Vec<u64>>, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let label = fields[0];
        let values = fields[1..]
            .iter()
            .map(|f| {
                if label == "xpc" {
                    f.parse::<u64>().map_err(|e| e.to_string())
                } else {
                    f.parse::<u32>().map(u64::from).map_err(|e| e.to_string())
                }
            })
            .collect::<Result<Vec<u64>, String>>()
            .map_err(|e| format!("line {label}: {e}"))?;
        if let Some((_, widths)) = WIDTHS.iter().find(|(l, _)| *l == label) {
            if !widths.contains(&values.len()) {
                return Err(format!(
                    "incorrect number of values for XFS {label} stats: {}",
                    values.len()
                ));
            }
            out.insert(label.to_string(), values);
        }
    }
    Ok(out)
}

impl NodeCollector for Xfs {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("fs/xfs");
        // The glob `fs/xfs/*/stats/stats`, in lexical order.
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .map(|name| {
                        let p = root.join(&name).join("stats/stats");
                        (name, p)
                    })
                    .filter(|(_, p)| std::fs::symlink_metadata(p).is_ok())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut fams: Vec<Family> = METRICS
            .iter()
            .map(|(name, help, _, _)| Family::counter(&format!("node_xfs_{name}"), help))
            .collect();
        for (device, path) in files {
            let stats = parse(&read(&path)?).map_err(|e| parse_err(&path, e))?;
            for ((_, _, line, i), fam) in METRICS.iter().zip(fams.iter_mut()) {
                let v = stats
                    .get(*line)
                    .and_then(|v| v.get(*i))
                    .copied()
                    .unwrap_or(0);
                fam.add(&[("device", &device)], v as f64);
            }
        }
        for f in fams {
            out.push(f);
        }
        Ok(())
    }
}
