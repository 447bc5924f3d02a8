//! `pg_settings` → `pg_settings_*`, postgres_exporter's rules exactly.
//!
//! Every `bool`, `integer` and `real` setting becomes a gauge named `pg_settings_<name>` (dots
//! → underscores). Booleans are 1 when `on`. Numbers with a time unit are converted to seconds
//! and get the `_seconds` suffix; with a size unit, to bytes and `_bytes`. The value -1 means
//! "off/unlimited" and is kept as -1, unconverted. The help is the setting's short description,
//! plus " [Units converted to seconds.]" (or bytes) when a unit was converted.

use crate::metrics::Families;

/// One row of `pg_settings` (name, setting, unit or '', short_desc, vartype).
pub type Row = (String, String, String, String, String);

/// The SQL reading the rows, for the catalog statement.
pub const SQL: &str = "SELECT json_agg(json_build_array(name, setting, COALESCE(unit, ''), \
    short_desc, vartype)) FROM pg_settings WHERE vartype IN ('bool', 'integer', 'real')";

/// (suffix, factor) for a `pg_settings.unit`; `None` for a unit postgres_exporter does not
/// know (that setting is skipped and logged rather than published wrong).
fn unit(u: &str) -> Option<(&'static str, f64)> {
    const KIB: f64 = 1024.0;
    Some(match u {
        "" => ("", 1.0),
        "ms" => ("seconds", 1e-3),
        "s" => ("seconds", 1.0),
        "min" => ("seconds", 60.0),
        "h" => ("seconds", 3600.0),
        "d" => ("seconds", 86400.0),
        "B" => ("bytes", 1.0),
        "kB" => ("bytes", KIB),
        "MB" => ("bytes", KIB * KIB),
        "GB" => ("bytes", KIB * KIB * KIB),
        "TB" => ("bytes", KIB * KIB * KIB * KIB),
        "8kB" => ("bytes", 8.0 * KIB),
        "16kB" => ("bytes", 16.0 * KIB),
        "32kB" => ("bytes", 32.0 * KIB),
        "16MB" => ("bytes", 16.0 * KIB * KIB),
        "32MB" => ("bytes", 32.0 * KIB * KIB),
        "64MB" => ("bytes", 64.0 * KIB * KIB),
        _ => return None,
    })
}

/// (metric name, help, value) for one setting, or `None` when it cannot be published.
pub fn metric(row: &Row) -> Option<(String, String, f64)> {
    let (name, setting, u, desc, vartype) = row;
    let base = format!("pg_settings_{}", name.replace('.', "_"));
    match vartype.as_str() {
        "bool" => Some((base, desc.clone(), if setting == "on" { 1.0 } else { 0.0 })),
        "integer" | "real" => {
            let Ok(v) = setting.parse::<f64>() else {
                tracing::debug!(setting = %name, "postgres: non-numeric setting skipped");
                return None;
            };
            let Some((suffix, factor)) = unit(u) else {
                tracing::warn!(setting = %name, unit = %u, "postgres: unknown setting unit; skipped");
                return None;
            };
            if suffix.is_empty() {
                return Some((base, desc.clone(), v));
            }
            let v = if v == -1.0 { v } else { v * factor };
            Some((
                format!("{base}_{suffix}"),
                format!("{desc} [Units converted to {suffix}.]"),
                v,
            ))
        }
        _ => None,
    }
}

pub fn families(rows: &[Row], fams: &mut Families) {
    for row in rows {
        if let Some((name, help, v)) = metric(row) {
            fams.gauge(&name, &help, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, setting: &str, unit: &str, vartype: &str) -> Row {
        (
            name.into(),
            setting.into(),
            unit.into(),
            "desc".into(),
            vartype.into(),
        )
    }

    #[test]
    fn units_convert_as_postgres_exporter_does() {
        let m = |r: Row| metric(&r).unwrap();
        assert_eq!(
            m(row("work_mem", "4096", "kB", "integer")),
            (
                "pg_settings_work_mem_bytes".into(),
                "desc [Units converted to bytes.]".into(),
                4194304.0
            )
        );
        assert_eq!(
            m(row("shared_buffers", "16384", "8kB", "integer")).2,
            134217728.0
        );
        assert_eq!(
            m(row("wal_segment_size", "16777216", "B", "integer")).2,
            16777216.0
        );
        assert_eq!(
            m(row("checkpoint_timeout", "5", "min", "integer")),
            (
                "pg_settings_checkpoint_timeout_seconds".into(),
                "desc [Units converted to seconds.]".into(),
                300.0
            )
        );
        assert_eq!(m(row("vacuum_cost_delay", "2", "ms", "real")).2, 0.002);
        // -1 means "disabled" and is never converted.
        assert_eq!(
            m(row("log_min_duration_statement", "-1", "ms", "integer")).2,
            -1.0
        );
        assert_eq!(m(row("fsync", "on", "", "bool")).2, 1.0);
        assert_eq!(m(row("ssl", "off", "", "bool")).2, 0.0);
        assert_eq!(
            m(row("max_connections", "200", "", "integer")).0,
            "pg_settings_max_connections"
        );
        assert_eq!(
            m(row("auto_explain.log_min_duration", "-1", "ms", "integer")).0,
            "pg_settings_auto_explain_log_min_duration_seconds"
        );
        assert!(metric(&row("x", "1", "parsecs", "integer")).is_none());
    }
}
