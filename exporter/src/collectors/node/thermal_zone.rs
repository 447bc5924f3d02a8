//! `thermal_zone` collector: ACPI/platform thermal zones and cooling devices under
//! `/sys/class/thermal` (procfs' `ClassThermalZoneStats` / `ClassCoolingDeviceStats`
//! semantics: a zone whose sensor answers ENODATA is skipped, any other unreadable required
//! attribute fails the collector). No `/sys/class/thermal` publishes nothing, successfully.

use super::sysfs::{FileError, glob_numbered, io_err, read_i64, sys_read};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};

pub struct ThermalZone;

fn is_enodata(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error())
}

impl NodeCollector for ThermalZone {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let dir = ctx.paths.sys("class/thermal");
        let mut temp = Family::gauge("node_thermal_zone_temp", "Zone temperature in Celsius");
        'zones: for (name, zone) in glob_numbered(&dir, "thermal_zone") {
            let mut text = Vec::new();
            for attr in ["type", "policy"] {
                let p = zone.join(attr);
                match sys_read(&p) {
                    Ok(s) => text.push(s),
                    Err(e) if is_enodata(&e) => continue 'zones,
                    Err(e) => return Err(io_err(&p, e)),
                }
            }
            let p = zone.join("temp");
            let millis = match read_i64(&p) {
                Ok(v) => v,
                Err(FileError::Io(e)) if is_enodata(&e) => continue,
                Err(e) => return Err(e.at(&p)),
            };
            // procfs also reads `mode` and `passive`, failing on errors other than absence;
            // node_exporter publishes neither, but the failure decides success.
            let p = zone.join("mode");
            match sys_read(&p) {
                Ok(_) => {}
                Err(e) if is_enodata(&e) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) => {}
                Err(e) => return Err(io_err(&p, e)),
            }
            let p = zone.join("passive");
            match super::sysfs::read_u64(&p) {
                Ok(_) => {}
                Err(e) if e.is_absent() => {}
                Err(FileError::Io(e)) if is_enodata(&e) => continue,
                Err(e) => return Err(e.at(&p)),
            }
            temp.add(
                &[("zone", &name), ("type", &text[0])],
                millis as f64 / 1000.0,
            );
        }
        let mut cur = Family::gauge(
            "node_cooling_device_cur_state",
            "Current throttle state of the cooling device",
        );
        let mut max = Family::gauge(
            "node_cooling_device_max_state",
            "Maximum throttle state of the cooling device",
        );
        for (name, cd) in glob_numbered(&dir, "cooling_device") {
            let read = |attr: &str| {
                let p = cd.join(attr);
                sys_read(&p).map_err(|e| io_err(&p, e))
            };
            let int = |attr: &str| -> Result<i64, NodeError> {
                let p = cd.join(attr);
                read(attr)?
                    .parse::<i64>()
                    .map_err(|e| super::parse_err(&p, e))
            };
            let ty = read("type")?;
            let max_state = int("max_state")?;
            let cur_state = int("cur_state")?;
            cur.add(&[("name", &name), ("type", &ty)], cur_state as f64);
            max.add(&[("name", &name), ("type", &ty)], max_state as f64);
        }
        out.push(temp);
        out.push(cur);
        out.push(max);
        Ok(())
    }
}
