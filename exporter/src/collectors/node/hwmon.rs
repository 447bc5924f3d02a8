//! `hwmon` collector: `/sys/class/hwmon/*` sensors (lm-sensors' source: temperatures, fans,
//! voltages, power) as node_exporter 1.5 names them. A sensor file is
//! `<type><number>_<property>` (`temp1_input`); the chip label comes from the resolved `device`
//! link (`platform_coretemp_0`, stable across module load order), else the `name` file, else
//! the hwmonN directory. Values of the chip's `device` directory (older drivers) are merged in.
//! Units follow node_exporter: milli-units to base units, micro-watts/joules to watts/joules.

use super::sysfs::{self, sys_read_raw};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family, Kind};
use regex::Regex;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::LazyLock;

pub struct Hwmon;

static FILENAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$").expect("static regex")
});
static INVALID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("[^a-z0-9:_]").expect("static regex"));

const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// Lower case, anything outside `[a-z0-9:_]` as `_`, outer `_` trimmed.
fn clean_name(s: &str) -> String {
    INVALID
        .replace_all(&s.to_lowercase(), "_")
        .trim_matches('_')
        .to_string()
}

/// `temp1_input` → ("temp", 1, "input"); `None` when the name is not a sensor file.
fn explode(name: &str) -> Option<(String, i64, String)> {
    let m = FILENAME.captures(name)?;
    let ty = m.name("type").map_or("", |x| x.as_str()).to_string();
    let id = match m.name("id").map(|x| x.as_str()) {
        Some(s) if !s.is_empty() => s.parse::<i64>().ok()?,
        _ => 0,
    };
    let prop = m.name("property").map_or("", |x| x.as_str()).to_string();
    Some((ty, id, prop))
}

/// sensor ("temp1") → property ("input", "" for a bare `temp1`) → raw value.
type SensorData = BTreeMap<String, BTreeMap<String, String>>;

fn collect_sensor_data(dir: &Path, data: &mut SensorData) -> std::io::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let Some((ty, id, prop)) = explode(&name) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&ty.as_str()) {
            continue;
        }
        // Unreadable attributes (a directory, EAGAIN from a broken driver) are left out.
        let Ok(raw) = sys_read_raw(&dir.join(&name)) else {
            continue;
        };
        let value = String::from_utf8_lossy(&raw).trim_matches('\n').to_string();
        data.entry(format!("{ty}{id}"))
            .or_default()
            .insert(prop, value);
    }
    Ok(())
}

/// The chip label: `<parent dir>_<device dir>` of the resolved `device` link, else the
/// cleaned `name` file, else the resolved hwmonN directory name.
fn chip_name(dir: &Path) -> Option<String> {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let name = dev
            .file_name()
            .map(|s| clean_name(&s.to_string_lossy()))
            .unwrap_or_default();
        let ty = dev
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| clean_name(&s.to_string_lossy()))
            .unwrap_or_default();
        if !ty.is_empty() && !name.is_empty() {
            return Some(format!("{ty}_{name}"));
        }
        if !name.is_empty() {
            return Some(name);
        }
    }
    if let Some(n) = human_chip_name(dir) {
        return Some(n);
    }
    let real = std::fs::canonicalize(dir).ok()?;
    let n = clean_name(&real.file_name()?.to_string_lossy());
    (!n.is_empty()).then_some(n)
}

fn human_chip_name(dir: &Path) -> Option<String> {
    let raw = std::fs::read(dir.join("name")).ok()?;
    let n = clean_name(&String::from_utf8_lossy(&raw));
    (!n.is_empty()).then_some(n)
}

/// The families of one scrape by name; a series already added is not added twice (client_golang
/// drops such a duplicate from node_exporter's output too).
#[derive(Default)]
struct Out {
    families: BTreeMap<String, Family>,
    seen: HashSet<(String, Vec<(String, String)>)>,
}

impl Out {
    fn add(&mut self, name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], v: f64) {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        if !self.seen.insert(key) {
            return;
        }
        self.families
            .entry(name.to_string())
            .or_insert_with(|| Family::new(name, help, kind))
            .add(labels, v);
    }
}

fn update_chip(dir: &Path, out: &mut Out) -> Result<(), NodeError> {
    let chip = chip_name(dir).ok_or_else(|| NodeError::Parse {
        path: dir.display().to_string(),
        reason: "no monitoring name can be derived".into(),
    })?;
    let mut data = SensorData::new();
    collect_sensor_data(dir, &mut data).map_err(|e| sysfs::io_err(dir, e))?;
    let device = dir.join("device");
    if std::fs::metadata(&device).is_ok() {
        collect_sensor_data(&device, &mut data).map_err(|e| sysfs::io_err(&device, e))?;
    }
    if let Some(human) = human_chip_name(dir) {
        out.add(
            "node_hwmon_chip_names",
            "Annotation metric for human-readable chip names",
            Kind::Gauge,
            &[("chip", &chip), ("chip_name", &human)],
            1.0,
        );
    }
    let g = Kind::Gauge;
    for (sensor, props) in &data {
        let Some((ty, _, _)) = explode(sensor) else {
            continue;
        };
        let labels = [("chip", chip.as_str()), ("sensor", sensor.as_str())];
        if let Some(text) = props.get("label") {
            out.add(
                "node_hwmon_sensor_label",
                "Label for given chip and sensor",
                g,
                &[("chip", &chip), ("sensor", sensor), ("label", text)],
                1.0,
            );
        }
        let bare = props.get("").map(String::as_str);
        match ty.as_str() {
            "beep_enable" => {
                let v = if bare == Some("1") { 1.0 } else { 0.0 };
                out.add(
                    "node_hwmon_beep_enabled",
                    "Hardware beep enabled",
                    g,
                    &labels,
                    v,
                );
                continue;
            }
            "vrm" => {
                if let Some(v) = bare.and_then(go_float) {
                    out.add(
                        "node_hwmon_voltage_regulator_version",
                        "Hardware voltage regulator",
                        g,
                        &labels,
                        v,
                    );
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = bare.and_then(go_float) {
                    out.add(
                        "node_hwmon_update_interval_seconds",
                        "Hardware monitor update interval",
                        g,
                        &labels,
                        v * 0.001,
                    );
                }
                continue;
            }
            _ => {}
        }
        let prefix = format!("node_hwmon_{ty}");
        for (element, value) in props {
            if element == "label" {
                continue;
            }
            let mut name = prefix.clone();
            if element == "input" {
                if bare.is_some() {
                    name.push_str("_input");
                }
            } else if !element.is_empty() {
                name.push('_');
                name.push_str(&clean_name(element));
            }
            let Some(v) = go_float(value) else {
                continue;
            };
            let el = element.as_str();
            let (name, help, value) = match (ty.as_str(), el) {
                (_, "fault" | "alarm") => (name, format!("Hardware sensor {el} status ({ty})"), v),
                (_, "beep") => (
                    format!("{name}_enabled"),
                    "Hardware monitor sensor has beeping enabled".to_string(),
                    v,
                ),
                ("in" | "cpu", _) => (
                    format!("{name}_volts"),
                    format!("Hardware monitor for voltage ({el})"),
                    v * 0.001,
                ),
                ("temp", e) if e != "type" => {
                    let e = if e.is_empty() { "input" } else { e };
                    (
                        format!("{name}_celsius"),
                        format!("Hardware monitor for temperature ({e})"),
                        v * 0.001,
                    )
                }
                ("curr", _) => (
                    format!("{name}_amps"),
                    format!("Hardware monitor for current ({el})"),
                    v * 0.001,
                ),
                ("energy", _) => {
                    out.add(
                        &format!("{name}_joule_total"),
                        &format!("Hardware monitor for joules used so far ({el})"),
                        Kind::Counter,
                        &labels,
                        v / 1_000_000.0,
                    );
                    continue;
                }
                ("power", "accuracy") => (
                    name,
                    "Hardware monitor power meter accuracy, as a ratio".to_string(),
                    v / 1_000_000.0,
                ),
                ("power", "average_interval" | "average_interval_min" | "average_interval_max") => {
                    (
                        format!("{name}_seconds"),
                        format!("Hardware monitor power usage update interval ({el})"),
                        v * 0.001,
                    )
                }
                ("power", _) => (
                    format!("{name}_watt"),
                    format!("Hardware monitor for power usage in watts ({el})"),
                    v / 1_000_000.0,
                ),
                ("humidity", _) => (
                    name,
                    format!(
                        "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({el})"
                    ),
                    v / 1_000_000.0,
                ),
                ("fan", "input" | "min" | "max" | "target") => (
                    format!("{name}_rpm"),
                    format!("Hardware monitor for fan revolutions per minute ({el})"),
                    v,
                ),
                _ => (name, format!("Hardware monitor {ty} element {el}"), v),
            };
            out.add(&name, &help, g, &labels, value);
        }
    }
    Ok(())
}

/// Go's `strconv.ParseFloat` for what sysfs holds (decimal, `inf`, `nan`).
fn go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

impl NodeCollector for Hwmon {
    fn update(&self, ctx: &Ctx<'_>, fams: &mut Families) -> Result<(), NodeError> {
        let root = ctx.paths.sys("class/hwmon");
        let names = sysfs::list(&root)?;
        let mut out = Out::default();
        let mut last_err = None;
        for name in names {
            let dir = root.join(&name);
            // A link to a directory, or a directory; anything else is not a chip.
            if !std::fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if let Err(e) = update_chip(&dir, &mut out) {
                last_err = Some(e);
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        for (_, f) in out.families {
            fams.push(f);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_file_names_split_as_node_exporter() {
        let e = explode;
        assert_eq!(e("temp1_input"), Some(("temp".into(), 1, "input".into())));
        assert_eq!(e("beep_enable"), Some(("beep_enable".into(), 0, "".into())));
        assert_eq!(
            e("power1_average_interval"),
            Some(("power".into(), 1, "average_interval".into()))
        );
        assert_eq!(e("pwm2"), Some(("pwm".into(), 2, "".into())));
        assert_eq!(e("1abc"), None);
        assert_eq!(clean_name("Core 0\n"), "core_0");
    }
}
