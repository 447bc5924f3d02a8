//! `time` collector: the clock, the local zone's offset and the kernel's clocksources.

use super::{Ctx, NodeCollector, NodeError, attr};
use crate::metrics::{Families, Family};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Time;

impl NodeCollector for Time {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        out.gauge(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            now.as_secs_f64(),
        );
        let (zone, offset) = local_zone();
        let mut z = Family::gauge(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
        );
        z.add(&[("time_zone", &zone)], offset as f64);
        out.push(z);
        let mut avail = Family::gauge(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
        );
        let mut current = Family::gauge(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
        );
        let dir = ctx.paths.sys("devices/system/clocksource");
        let mut devices: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let n = name.strip_prefix("clocksource")?.parse().ok()?;
                        Some((n, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        devices.sort();
        for (n, path) in devices {
            let device = n.to_string();
            if let Some(list) = attr(&path.join("available_clocksource")) {
                for cs in list.split_ascii_whitespace() {
                    avail.add(&[("clocksource", cs), ("device", &device)], 1.0);
                }
            }
            if let Some(cs) = attr(&path.join("current_clocksource")) {
                current.add(&[("clocksource", cs.trim()), ("device", &device)], 1.0);
            }
        }
        out.push(avail);
        out.push(current);
        Ok(())
    }
}

/// The local zone's abbreviation and offset now, as Go's `time.Now().Zone()` (chrono has
/// offsets but no abbreviations).
fn local_zone() -> (String, i64) {
    // SAFETY: time(NULL) has no preconditions; localtime_r fills the zeroed tm we own, and
    // tm_zone then points at a static string of the C library (or is null).
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return ("UTC".to_string(), 0);
        }
        let name = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        (name, tm.tm_gmtoff)
    }
}
