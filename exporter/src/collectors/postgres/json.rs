//! Reading the one JSON document a PostgreSQL statement returns.
//!
//! Each scrape asks PostgreSQL for one JSON document instead of running a dozen statements:
//! one round trip, one statement in `pg_stat_statements`, and views whose columns change
//! between PostgreSQL releases (`pg_stat_database`, `pg_stat_bgwriter`) are read whole with
//! `row_to_json`, so a column a new release adds shows up the way postgres_exporter's column
//! discovery shows it (untyped) without a code change.

use serde_json::Value;

/// A sample value the way postgres_exporter converts a column: numbers as they are, NULL as
/// NaN, booleans as 1/0, timestamps as Unix seconds, numeric text parsed; anything else
/// (a name, an LSN) is not a value (`None`).
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(f64::NAN),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp() as f64)
        }),
        _ => None,
    }
}

/// Like [`number`], but NULL is 0 (the families postgres_exporter fills with zeros).
pub fn number_or_zero(v: Option<&Value>) -> f64 {
    match v {
        None | Some(Value::Null) => 0.0,
        Some(v) => number(v).unwrap_or(0.0),
    }
}

/// A label value: text as it is, NULL as "", anything else in its JSON form.
pub fn label(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The rows of a `json_agg` (NULL when the query had no rows).
pub fn rows(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_convert_like_postgres_exporter() {
        assert!(number(&json!(null)).unwrap().is_nan());
        assert_eq!(number(&json!(12345678901234u64)), Some(12345678901234.0));
        assert_eq!(number(&json!(true)), Some(1.0));
        assert!(number(&json!("NaN")).unwrap().is_nan());
        assert_eq!(
            number(&json!("2026-11-30T02:34:05.668294+00:00")),
            Some(1796006045.0)
        );
        assert_eq!(number(&json!("0/16B3748")), None);
        assert_eq!(number_or_zero(Some(&json!(null))), 0.0);
        assert_eq!(label(Some(&json!(null))), "");
        assert_eq!(label(Some(&json!("5"))), "5");
    }
}
