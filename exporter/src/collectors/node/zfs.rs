//! `zfs` collector: OpenZFS kstats under `/proc/spl/kstat/zfs` as node_exporter 1.5 publishes
//! them — every 64-bit kstat of arcstats, abdstats, dbuf_stats, dmu_tx, dnodestats, fm,
//! vdev_cache_stats, vdev_mirror_stats, xuio_stats, zfetchstats and zil as an untyped
//! `node_<subsystem>_<name>` (HELP the kstat's dotted name), per pool the `io` counters
//! (`node_zfs_zpool_*{zpool}`), per dataset the `objset-*` kstats
//! (`node_zfs_zpool_dataset_*{zpool,dataset}`) and the pool state. No ZFS module is "no
//! data"; a kstat file missing is skipped, one that does not parse fails the collector.

use super::{Ctx, NodeCollector, NodeError, parse_err, read};
use crate::metrics::{Families, Family, Kind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Zfs;

/// node_exporter's subsystem → kstat file.
const FILES: [(&str, &str); 11] = [
    ("zfs_abd", "abdstats"),
    ("zfs_arc", "arcstats"),
    ("zfs_dbuf", "dbuf_stats"),
    ("zfs_dmu_tx", "dmu_tx"),
    ("zfs_dnode", "dnodestats"),
    ("zfs_fm", "fm"),
    ("zfs_vdev_cache", "vdev_cache_stats"),
    ("zfs_vdev_mirror", "vdev_mirror_stats"),
    ("zfs_xuio", "xuio_stats"),
    ("zfs_zfetch", "zfetchstats"),
    ("zfs_zil", "zil"),
];

const POOL_STATES: [&str; 6] = [
    "online", "degraded", "faulted", "offline", "removed", "unavail",
];

/// One row of a kstat table node_exporter uses.
enum Row {
    /// A type-4 (uint64) kstat.
    Value(String, u64),
    /// The `dataset_name` of an objset file.
    Dataset(String),
}

/// The `name type data` table of a kstat file: its uint64 rows and dataset names.
fn kstat_rows(text: &str, what: &str) -> Result<Vec<Row>, String> {
    let mut header = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let p: Vec<&str> = line.split_whitespace().collect();
        if !header && p.len() == 3 && p == ["name", "type", "data"] {
            header = true;
            continue;
        }
        if !header || p.len() < 3 {
            continue;
        }
        if p[0] == "dataset_name" {
            out.push(Row::Dataset(p[2].to_string()));
            continue;
        }
        if p[1] == "4" {
            let v = p[2]
                .parse::<u64>()
                .map_err(|_| format!("could not parse expected integer value for {:?}", p[0]))?;
            out.push(Row::Value(p[0].to_string(), v));
        }
    }
    if !header {
        return Err(format!("did not parse a single {what:?} metric"));
    }
    Ok(out)
}

/// The entries `<pool>/<file>` of the kstat directory whose file name matches `keep`, in
/// glob order.
fn pool_files(base: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut pools: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    pools.sort();
    let mut out = Vec::new();
    for pool in pools {
        let Ok(rd) = std::fs::read_dir(base.join(&pool)) else {
            continue;
        };
        let mut files: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|f| keep(f))
            .collect();
        files.sort();
        for f in files {
            let p = base.join(&pool).join(&f);
            out.push((pool.clone(), f, p));
        }
    }
    out
}

#[derive(Default)]
struct Out(BTreeMap<String, Family>);

impl Out {
    fn add(&mut self, name: String, help: String, kind: Kind, labels: &[(&str, &str)], v: f64) {
        self.0
            .entry(name.clone())
            .or_insert_with(|| Family::new(&name, &help, kind))
            .add(labels, v);
    }
}

impl NodeCollector for Zfs {
    fn update(&self, ctx: &Ctx<'_>, fams: &mut Families) -> Result<(), NodeError> {
        let base = ctx.paths.proc("spl/kstat/zfs");
        if std::fs::metadata(&base).is_err() {
            return Err(NodeError::NoData);
        }
        let mut out = Out::default();
        for (subsystem, file) in FILES {
            let path = base.join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for row in kstat_rows(&text, file).map_err(|e| parse_err(&path, e))? {
                let Row::Value(name, v) = row else { continue };
                out.add(
                    format!("node_{subsystem}_{}", name.replace('-', "_")),
                    format!("kstat.zfs.misc.{file}.{name}"),
                    Kind::Untyped,
                    &[],
                    v as f64,
                );
            }
        }
        for (pool, file, path) in pool_files(&base, |f| f == "io") {
            let text = read(&path)?;
            let mut fields: Option<Vec<&str>> = None;
            for line in text.lines() {
                let l: Vec<&str> = line.split_whitespace().collect();
                let Some(names) = &fields else {
                    if l.len() >= 12 && l[0] == "nread" {
                        fields = Some(l);
                    }
                    continue;
                };
                for (i, field) in names.iter().enumerate() {
                    let v = l
                        .get(i)
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| parse_err(&path, format!("no integer for {field}")))?;
                    out.add(
                        format!("node_zfs_zpool_{}", field.replace('-', "_")),
                        format!("kstat.zfs.misc.{file}.{field}"),
                        Kind::Untyped,
                        &[("zpool", &pool)],
                        v as f64,
                    );
                }
            }
        }
        for (pool, file, path) in pool_files(&base, |f| f.starts_with("objset-")) {
            let text = read(&path)?;
            let mut dataset = String::new();
            let mut zpool = String::new();
            for row in kstat_rows(&text, &file).map_err(|e| parse_err(&path, e))? {
                match row {
                    Row::Dataset(ds) => {
                        dataset = ds;
                        zpool = pool.clone();
                    }
                    Row::Value(name, v) => out.add(
                        format!("node_zfs_zpool_dataset_{}", name.replace('-', "_")),
                        format!("kstat.zfs.misc.objset.{name}"),
                        Kind::Untyped,
                        &[("zpool", &zpool), ("dataset", &dataset)],
                        v as f64,
                    ),
                }
            }
        }
        for (pool, _, path) in pool_files(&base, |f| f == "state") {
            let text = read(&path)?;
            let state = text.lines().next().unwrap_or_default().to_lowercase();
            for s in POOL_STATES {
                out.add(
                    "node_zfs_zpool_state".into(),
                    "kstat.zfs.misc.state".into(),
                    Kind::Gauge,
                    &[("zpool", &pool), ("state", s)],
                    if state == s { 1.0 } else { 0.0 },
                );
            }
        }
        for (_, f) in out.0 {
            fams.push(f);
        }
        Ok(())
    }
}
