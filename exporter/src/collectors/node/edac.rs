//! `edac` collector: ECC memory error counts per memory controller and chip-select row from
//! `/sys/devices/system/edac/mc` (a corrected-error rate that climbs is a DIMM to replace
//! before it takes the trading host down). No EDAC driver publishes nothing, successfully.

use super::sysfs::{glob_numbered, read_u64};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};

pub struct Edac;

impl NodeCollector for Edac {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let mut ce = Family::counter(
            "node_edac_correctable_errors_total",
            "Total correctable memory errors.",
        );
        let mut ue = Family::counter(
            "node_edac_uncorrectable_errors_total",
            "Total uncorrectable memory errors.",
        );
        let mut row_ce = Family::counter(
            "node_edac_csrow_correctable_errors_total",
            "Total correctable memory errors for this csrow.",
        );
        let mut row_ue = Family::counter(
            "node_edac_csrow_uncorrectable_errors_total",
            "Total uncorrectable memory errors for this csrow.",
        );
        for (mc, dir) in glob_numbered(&ctx.paths.sys("devices/system/edac/mc"), "mc") {
            let num = |d: &std::path::Path, f: &str| -> Result<f64, NodeError> {
                let p = d.join(f);
                read_u64(&p).map(|v| v as f64).map_err(|e| e.at(&p))
            };
            ce.add(&[("controller", &mc)], num(&dir, "ce_count")?);
            row_ce.add(
                &[("controller", &mc), ("csrow", "unknown")],
                num(&dir, "ce_noinfo_count")?,
            );
            ue.add(&[("controller", &mc)], num(&dir, "ue_count")?);
            row_ue.add(
                &[("controller", &mc), ("csrow", "unknown")],
                num(&dir, "ue_noinfo_count")?,
            );
            for (row, rdir) in glob_numbered(&dir, "csrow") {
                row_ce.add(
                    &[("controller", &mc), ("csrow", &row)],
                    num(&rdir, "ce_count")?,
                );
                row_ue.add(
                    &[("controller", &mc), ("csrow", &row)],
                    num(&rdir, "ue_count")?,
                );
            }
        }
        out.push(ce);
        out.push(ue);
        out.push(row_ce);
        out.push(row_ue);
        Ok(())
    }
}
