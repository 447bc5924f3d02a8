//! `mdadm` collector: Linux software RAID from `/proc/mdstat` (procfs-core has no parser for
//! it, so this is procfs 0.8's `MDStat` reading): per array its state, required, active,
//! failed and spare disks, and blocks synced during a recovery, resync or check. No
//! `/proc/mdstat` (the md driver is not loaded) is "no data".

use super::{Ctx, NodeCollector, NodeError, parse_err, read_or_nodata};
use crate::metrics::{Families, Family};
use regex::Regex;
use std::sync::LazyLock;

pub struct Mdadm;

static STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]").expect("static regex")
});
static RECOVERY_BLOCKS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\((\d+)/\d+\)").expect("static regex"));
static RECOVERY_PCT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"= (.+)%").expect("static regex"));
static RECOVERY_FINISH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"finish=(.+)min").expect("static regex"));
static RECOVERY_SPEED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"speed=(.+)[A-Z]").expect("static regex"));

/// One array of `/proc/mdstat`.
#[derive(Debug, PartialEq)]
pub struct MdStat {
    pub name: String,
    /// active, inactive, recovering, resyncing or checking.
    pub state: String,
    pub disks_active: i64,
    pub disks_total: i64,
    pub disks_failed: i64,
    pub disks_spare: i64,
    pub blocks_total: i64,
    pub blocks_synced: i64,
}

/// (active, total, size) from an array's first two lines.
fn status_line(device_line: &str, status_line: &str) -> Result<(i64, i64, i64), String> {
    let size = status_line
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("unexpected statusLine {status_line:?}"))?
        .parse::<i64>()
        .map_err(|e| format!("unexpected statusLine {status_line:?}: {e}"))?;
    if device_line.contains("raid0") || device_line.contains("linear") {
        let total = device_line.matches('[').count() as i64;
        return Ok((total, total, size));
    }
    if device_line.contains("inactive") {
        return Ok((0, 0, size));
    }
    let m = STATUS
        .captures(status_line)
        .ok_or_else(|| format!("couldn't find all the substring matches: {status_line}"))?;
    let num = |i: usize| {
        m[i].parse::<i64>()
            .map_err(|e| format!("unexpected statusLine {status_line:?}: {e}"))
    };
    Ok((num(3)?, num(2)?, size))
}

/// Blocks synced of a recovery line; the other fields must parse too (procfs refuses the
/// file otherwise).
fn recovery_line(line: &str) -> Result<i64, String> {
    let bad = || format!("unexpected recoveryLine: {line}");
    let synced = RECOVERY_BLOCKS.captures(line).ok_or_else(bad)?[1]
        .parse::<i64>()
        .map_err(|e| e.to_string())?;
    for re in [&*RECOVERY_PCT, &*RECOVERY_FINISH, &*RECOVERY_SPEED] {
        let m = re.captures(line).ok_or_else(bad)?;
        m[1].trim()
            .parse::<f64>()
            .map_err(|e| format!("{line}: {e}"))?;
    }
    Ok(synced)
}

pub fn parse(text: &str) -> Result<Vec<MdStat>, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            return Err(format!(
                "not enough fields in mdline (expected at least 3): {line}"
            ));
        }
        let name = fields[0].to_string();
        let mut state = fields[2].to_string();
        if lines.len() <= i + 3 {
            return Err(format!(
                "error parsing {name:?}: too few lines for md device"
            ));
        }
        let failed = line.matches("(F)").count() as i64;
        let spare = line.matches("(S)").count() as i64;
        let (active, total, size) = status_line(line, lines[i + 1])?;
        let mut sync_idx = i + 2;
        if lines[i + 2].contains("bitmap") {
            sync_idx += 1;
        }
        let sync = lines[sync_idx];
        let mut synced = size;
        let recovering = sync.contains("recovery");
        let resyncing = sync.contains("resync");
        let checking = sync.contains("check");
        if recovering || resyncing || checking {
            state = if recovering {
                "recovering"
            } else if checking {
                "checking"
            } else {
                "resyncing"
            }
            .to_string();
            synced = if sync.contains("PENDING") || sync.contains("DELAYED") {
                0
            } else {
                recovery_line(sync).map_err(|e| format!("md device {name:?}: {e}"))?
            };
        }
        out.push(MdStat {
            name,
            state,
            disks_active: active,
            disks_total: total,
            disks_failed: failed,
            disks_spare: spare,
            blocks_total: size,
            blocks_synced: synced,
        });
    }
    Ok(out)
}

impl NodeCollector for Mdadm {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let path = ctx.paths.proc("mdstat");
        let text = read_or_nodata(&path)?;
        let arrays = parse(&text).map_err(|e| parse_err(&path, e))?;
        let mut required =
            Family::gauge("node_md_disks_required", "Total number of disks of device.");
        let mut disks = Family::gauge(
            "node_md_disks",
            "Number of active/failed/spare disks of device.",
        );
        let mut state = Family::gauge("node_md_state", "Indicates the state of md-device.");
        let mut blocks = Family::gauge("node_md_blocks", "Total number of blocks on device.");
        let mut synced = Family::gauge(
            "node_md_blocks_synced",
            "Number of blocks synced on device.",
        );
        for md in &arrays {
            let d = md.name.as_str();
            required.add(&[("device", d)], md.disks_total as f64);
            disks.add(
                &[("device", d), ("state", "active")],
                md.disks_active as f64,
            );
            disks.add(
                &[("device", d), ("state", "failed")],
                md.disks_failed as f64,
            );
            disks.add(&[("device", d), ("state", "spare")], md.disks_spare as f64);
            // node_exporter's state label values and the mdstat states they stand for.
            for (label, is) in [
                ("active", "active"),
                ("inactive", "inactive"),
                ("recovering", "recovering"),
                ("resync", "resyncing"),
                ("check", "checking"),
            ] {
                let v = if md.state == is { 1.0 } else { 0.0 };
                state.add(&[("device", d), ("state", label)], v);
            }
            blocks.add(&[("device", d)], md.blocks_total as f64);
            synced.add(&[("device", d)], md.blocks_synced as f64);
        }
        out.push(required);
        out.push(disks);
        out.push(state);
        out.push(blocks);
        out.push(synced);
        Ok(())
    }
}
