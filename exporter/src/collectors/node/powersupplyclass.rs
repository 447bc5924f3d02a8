//! `powersupplyclass` collector: `/sys/class/power_supply/*` (UPS, PSUs, batteries) as
//! node_exporter 1.5 publishes them: numeric attributes under `node_power_supply_<name>`
//! (micro-units to base units, tenths of a degree to degrees), the text ones as labels of
//! `node_power_supply_info` (only those present). As procfs' `PowerSupplyClass`, an attribute
//! the driver refuses (EINVAL, EOPNOTSUPP) is skipped and one that does not parse fails the
//! collector. No `/sys/class/power_supply` is "no data".

use super::sysfs::{go_uint, io_err, list};
use super::{Ctx, NodeCollector, NodeError, parse_err};
use crate::metrics::{Families, Family};
use std::collections::BTreeMap;

pub struct PowerSupplyClass;

/// sysfs file → (metric suffix, divisor); `None`: parsed (so it can fail) but not published.
const NUMERIC: &[(&str, Option<(&str, f64)>)] = &[
    ("authentic", Some(("authentic", 1.0))),
    ("calibrate", Some(("calibrate", 1.0))),
    ("capacity", Some(("capacity", 1.0))),
    ("capacity_alert_max", Some(("capacity_alert_max", 1.0))),
    ("capacity_alert_min", Some(("capacity_alert_min", 1.0))),
    ("cycle_count", Some(("cyclecount", 1.0))),
    ("online", Some(("online", 1.0))),
    ("present", Some(("present", 1.0))),
    ("time_to_empty_now", Some(("time_to_empty_seconds", 1.0))),
    ("time_to_full_now", Some(("time_to_full_seconds", 1.0))),
    ("current_boot", Some(("current_boot", 1e6))),
    ("current_max", Some(("current_max", 1e6))),
    ("current_now", Some(("current_ampere", 1e6))),
    ("energy_empty", Some(("energy_empty", 1e6))),
    ("energy_empty_design", Some(("energy_empty_design", 1e6))),
    ("energy_full", Some(("energy_full", 1e6))),
    ("energy_full_design", Some(("energy_full_design", 1e6))),
    ("energy_now", Some(("energy_watthour", 1e6))),
    ("voltage_boot", Some(("voltage_boot", 1e6))),
    ("voltage_max", Some(("voltage_max", 1e6))),
    ("voltage_max_design", Some(("voltage_max_design", 1e6))),
    ("voltage_min", Some(("voltage_min", 1e6))),
    ("voltage_min_design", Some(("voltage_min_design", 1e6))),
    ("voltage_now", Some(("voltage_volt", 1e6))),
    ("voltage_ocv", Some(("voltage_ocv", 1e6))),
    ("charge_control_limit", Some(("charge_control_limit", 1e6))),
    (
        "charge_control_limit_max",
        Some(("charge_control_limit_max", 1e6)),
    ),
    ("charge_counter", Some(("charge_counter", 1e6))),
    ("charge_empty", Some(("charge_empty", 1e6))),
    ("charge_empty_design", Some(("charge_empty_design", 1e6))),
    ("charge_full", Some(("charge_full", 1e6))),
    ("charge_full_design", Some(("charge_full_design", 1e6))),
    ("charge_now", Some(("charge_ampere", 1e6))),
    ("charge_term_current", Some(("charge_term_current", 1e6))),
    (
        "constant_charge_current",
        Some(("constant_charge_current", 1e6)),
    ),
    (
        "constant_charge_current_max",
        Some(("constant_charge_current_max", 1e6)),
    ),
    (
        "constant_charge_voltage",
        Some(("constant_charge_voltage", 1e6)),
    ),
    (
        "constant_charge_voltage_max",
        Some(("constant_charge_voltage_max", 1e6)),
    ),
    ("precharge_current", Some(("precharge_current", 1e6))),
    ("input_current_limit", Some(("input_current_limit", 1e6))),
    ("power_now", Some(("power_watt", 1e6))),
    ("temp", Some(("temp_celsius", 10.0))),
    ("temp_alert_max", Some(("temp_alert_max_celsius", 10.0))),
    ("temp_alert_min", Some(("temp_alert_min_celsius", 10.0))),
    ("temp_ambient", Some(("temp_ambient_celsius", 10.0))),
    ("temp_ambient_max", Some(("temp_ambient_max_celsius", 10.0))),
    ("temp_ambient_min", Some(("temp_ambient_min_celsius", 10.0))),
    ("temp_max", Some(("temp_max_celsius", 10.0))),
    ("temp_min", Some(("temp_min_celsius", 10.0))),
    ("charge_avg", None),
    ("current_avg", None),
    ("energy_avg", None),
    ("power_avg", None),
    ("time_to_empty_avg", None),
    ("time_to_full_avg", None),
    ("voltage_avg", None),
];

/// sysfs text attributes that become labels of `node_power_supply_info`.
const TEXT: [&str; 11] = [
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
    "scope",
];

/// Go's `strconv.ParseInt(s, 0, 64)`: a sign, then the base prefixes of
/// [`go_uint`](super::sysfs::go_uint) (`0x`, `0o`, `0b`, a leading `0` for octal).
fn go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = i128::from(go_uint(body)?);
    i64::try_from(if neg { -v } else { v }).ok()
}

fn refused(e: &std::io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::INVAL.raw_os_error())
        || code == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

impl NodeCollector for PowerSupplyClass {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/power_supply");
        let mut fams: BTreeMap<&str, Family> = BTreeMap::new();
        let mut info = Family::gauge(
            "node_power_supply_info",
            "info of /sys/class/power_supply/<power_supply>.",
        );
        for supply in list(&root)? {
            let dir = root.join(&supply);
            let rd = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
            let mut values: BTreeMap<String, String> = BTreeMap::new();
            for entry in rd.filter_map(Result::ok) {
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let Ok(file) = entry.file_name().into_string() else {
                    continue;
                };
                let p = dir.join(&file);
                match super::sysfs::sys_read(&p) {
                    Ok(v) => {
                        values.insert(file, v);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound || refused(&e) => {}
                    Err(e) => return Err(io_err(&p, e)),
                }
            }
            for &(file, publish) in NUMERIC {
                let Some(text) = values.get(file) else {
                    continue;
                };
                let v = go_int(text).ok_or_else(|| {
                    parse_err(&dir.join(file), format!("not an integer: {text:?}"))
                })?;
                if let Some((suffix, div)) = publish {
                    let name = format!("node_power_supply_{suffix}");
                    fams.entry(suffix)
                        .or_insert_with(|| {
                            Family::gauge(
                                &name,
                                &format!(
                                    "{suffix} value of /sys/class/power_supply/<power_supply>."
                                ),
                            )
                        })
                        .add(&[("power_supply", &supply)], v as f64 / div);
                }
            }
            let mut labels: Vec<(&str, &str)> = vec![("power_supply", supply.as_str())];
            for key in TEXT {
                if let Some(v) = values.get(key).filter(|v| !v.is_empty()) {
                    labels.push((key, v));
                }
            }
            info.add(&labels, 1.0);
        }
        for (_, f) in fams {
            out.push(f);
        }
        out.push(info);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::go_int;

    #[test]
    fn integers_parse_as_go_base_zero() {
        assert_eq!(go_int("42"), Some(42));
        assert_eq!(go_int("-7"), Some(-7));
        assert_eq!(go_int("0x1f"), Some(31));
        assert_eq!(go_int("010"), Some(8));
        assert_eq!(go_int("0"), Some(0));
        assert_eq!(go_int("abc"), None);
        assert_eq!(go_int(""), None);
        assert_eq!(go_int("--5"), None);
        assert_eq!(go_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(go_int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(go_int("9223372036854775808"), None);
    }
}
