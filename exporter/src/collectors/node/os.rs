//! `os` collector: `node_os_info` and `node_os_version` from os-release(5) under the root path.

use super::{Ctx, NodeCollector, NodeError, read};
use crate::metrics::{Families, Family};
use std::collections::HashMap;

pub struct Os;

/// The os-release keys node_exporter labels `node_os_info` with, in its label order.
const INFO: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

impl NodeCollector for Os {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let primary = ctx.paths.root("/etc/os-release");
        let text = match read(&primary) {
            Ok(t) => t,
            Err(_) => read(&ctx.paths.root("/usr/lib/os-release"))?,
        };
        let kv = parse_os_release(&text);
        let get = |k: &str| kv.get(k).map(String::as_str).unwrap_or("");
        let mut info = Family::gauge(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
        );
        let labels: Vec<(&str, &str)> = INFO.iter().map(|(l, k)| (*l, get(k))).collect();
        info.add(&labels, 1.0);
        out.push(info);
        if let Some(v) = major_minor(get("VERSION_ID")) {
            let mut f = Family::gauge(
                "node_os_version",
                "Metric containing the major.minor part of the OS version.",
            );
            f.add(
                &[
                    ("id", get("ID")),
                    ("id_like", get("ID_LIKE")),
                    ("name", get("NAME")),
                ],
                v,
            );
            out.push(f);
        }
        Ok(())
    }
}

/// `KEY=value` lines; values may be single- or double-quoted with backslash escapes.
pub fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let unquoted = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            let inner = &v[1..v.len() - 1];
            let mut s = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                } else {
                    s.push(c);
                }
            }
            s
        } else {
            v.to_string()
        };
        out.insert(k.trim().to_string(), unquoted);
    }
    out
}

/// `12` → 12, `22.04.3` → 22.04 (node_exporter keeps major.minor).
fn major_minor(version_id: &str) -> Option<f64> {
    let mut parts = version_id.split('.');
    let major = parts.next().filter(|p| !p.is_empty())?;
    let s = match parts.next() {
        Some(minor) => format!("{major}.{minor}"),
        None => major.to_string(),
    };
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quoting_and_version() {
        let kv = parse_os_release(
            "NAME=\"Debian GNU/Linux\"\nID=debian\nPRETTY_NAME='A \\\"b\\\"'\n# c\nVERSION_ID=\"22.04.3\"\n",
        );
        assert_eq!(kv["NAME"], "Debian GNU/Linux");
        assert_eq!(kv["PRETTY_NAME"], "A \"b\"");
        assert_eq!(major_minor(&kv["VERSION_ID"]), Some(22.04));
        assert_eq!(major_minor("12"), Some(12.0));
        assert_eq!(major_minor(""), None);
    }
}
