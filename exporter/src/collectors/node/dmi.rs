//! `dmi` collector: `node_dmi_info` from `/sys/class/dmi/id` (vendor, board, BIOS, serials:
//! which box a series comes from when a desk runs several identical ones). Read once when the
//! collector is built, as node_exporter does (the firmware tables do not change while the
//! host runs); no `/sys/class/dmi/id` (most VMs, ARM boards) is "no data" on every scrape.
//! Attributes readable only by root (serials) are left out for an unprivileged exporter.

use super::sysfs::{io_err, list, sys_read};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};
use std::path::Path;

/// (sysfs file, label) for the attributes node_exporter publishes (not `chassis_type`).
const FIELDS: [(&str, &str); 20] = [
    ("bios_date", "bios_date"),
    ("bios_release", "bios_release"),
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("board_asset_tag", "board_asset_tag"),
    ("board_name", "board_name"),
    ("board_serial", "board_serial"),
    ("board_vendor", "board_vendor"),
    ("board_version", "board_version"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_version", "chassis_version"),
    ("product_family", "product_family"),
    ("product_name", "product_name"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
    ("product_version", "product_version"),
    ("sys_vendor", "system_vendor"),
];

pub struct Dmi {
    /// The labels, or why there are none (read once, at build).
    labels: Result<Vec<(&'static str, String)>, String>,
}

impl Dmi {
    pub fn new(sysfs: &Path) -> Dmi {
        Dmi {
            labels: read_dmi(&sysfs.join("class/dmi/id")).map_err(|e| e.to_string()),
        }
    }
}

fn read_dmi(dir: &Path) -> Result<Vec<(&'static str, String)>, NodeError> {
    let names = match list(dir) {
        Err(NodeError::NoData) => return Ok(Vec::new()),
        other => other?,
    };
    let mut labels = Vec::new();
    for name in names {
        let path = dir.join(&name);
        // Regular files only (not the `power`/`subsystem` links and directories).
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if name == "modalias" || name == "uevent" {
            continue;
        }
        // Every attribute is read (one failing for another reason than permission fails the
        // collector, as upstream); the known ones become labels.
        let value = match sys_read(&path) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => continue,
            Err(e) => return Err(io_err(&path, e)),
        };
        if let Some((_, label)) = FIELDS.iter().find(|(f, _)| *f == name) {
            labels.push((*label, value));
        }
    }
    Ok(labels)
}

impl NodeCollector for Dmi {
    fn update(&self, _ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let labels = self.labels.as_ref().map_err(|reason| NodeError::Parse {
            path: "class/dmi/id".into(),
            reason: reason.clone(),
        })?;
        if labels.is_empty() {
            return Err(NodeError::NoData);
        }
        let mut f = Family::gauge(
            "node_dmi_info",
            "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, product_sku, product_uuid, product_version, system_vendor if provided by DMI.",
        );
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        f.add(&pairs, 1.0);
        out.push(f);
        Ok(())
    }
}
