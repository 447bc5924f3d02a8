//! `rapl` collector: Intel/AMD RAPL energy counters (`/sys/class/powercap/*/energy_uj`) in
//! joules, one family per zone name (`node_rapl_package_joules_total`, `…_core_…`,
//! `…_dram_…`), `index` from the `name-N` suffix and `path` the zone's sysfs directory, as
//! node_exporter 1.5 without `--collector.rapl.enable-zone-label`. No powercap, or powercap
//! readable only by root (kernels since 5.10), is "no data".

use super::sysfs::{FileError, clean, list, read_u64};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};
use regex::Regex;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

pub struct Rapl;

static UNSAFE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("_*[^0-9A-Za-z_]+_*").expect("static regex"));

/// `package-0` → (0, "package"); a name without a numeric suffix counts its repeats.
fn index_and_name(seen: &HashMap<String, i64>, name: &str) -> (i64, String) {
    let parts: Vec<&str> = name.split('-').collect();
    if let [base, n] = parts.as_slice()
        && let Ok(i) = n.parse::<i64>()
    {
        return (i, (*base).to_string());
    }
    (seen.get(name).copied().unwrap_or(0), name.to_string())
}

/// Absent or forbidden attributes make the whole collector "no data", as upstream.
fn nodata_or(e: FileError, p: &std::path::Path) -> NodeError {
    if e.is_absent() {
        NodeError::NoData
    } else {
        e.at(p)
    }
}

impl NodeCollector for Rapl {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/powercap");
        let entries = match list(&root) {
            Err(NodeError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                return Err(NodeError::NoData);
            }
            other => other?,
        };
        let mut seen: HashMap<String, i64> = HashMap::new();
        let mut fams: BTreeMap<String, Family> = BTreeMap::new();
        for entry in entries {
            let dir = root.join(&entry);
            let Ok(raw) = std::fs::read_to_string(dir.join("name")) else {
                continue;
            };
            let (index, name) = index_and_name(&seen, raw.trim());
            let p = dir.join("max_energy_range_uj");
            read_u64(&p).map_err(|e| nodata_or(e, &p))?;
            seen.insert(name.clone(), index + 1);
            let p = dir.join("energy_uj");
            let micro = read_u64(&p).map_err(|e| nodata_or(e, &p))?;
            let metric = format!("node_rapl_{}_joules_total", UNSAFE.replace_all(&name, "_"));
            fams.entry(metric.clone())
                .or_insert_with(|| {
                    Family::counter(&metric, &format!("Current RAPL {name} value in joules"))
                })
                .add(
                    &[("index", &index.to_string()), ("path", &clean(&dir))],
                    micro as f64 / 1_000_000.0,
                );
        }
        for (_, f) in fams {
            out.push(f);
        }
        Ok(())
    }
}
