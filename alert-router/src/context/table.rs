//! The small table a page carries next to the chart: numbers read from Prometheus at send
//! time, by PromQL templates over the alert's labels (for a trading alert, the strategy's
//! book: equity, daily PnL, drawdown, gross exposure, open positions, largest position).
//!
//! A template names labels as `{{label}}`, always inside a double-quoted PromQL string
//! (`trading_equity{strategy="{{strategy}}"}`); the value is escaped for that string, so a
//! label value is data and can never change the query. A query whose labels the alert lacks
//! is left out. All queries run concurrently under the message's deadline; past it, or with
//! Prometheus down, the table is empty and `note` says why in one line.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::prom::PromClient;
use crate::plan::routing::{ContextQuery, Unit};

/// One row of the table: the title and the formatted value (`—` when Prometheus has none).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextRow {
    pub title: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextTable {
    pub rows: Vec<ContextRow>,
    pub note: Option<String>,
}

/// The body of a PromQL double-quoted string holding `v` exactly.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// `template` with every `{{label}}` replaced by the escaped label value; `None` when the
/// alert lacks a label it names (or a `{{` is not closed).
pub fn expand(template: &str, labels: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find("}}")?;
        let name = after[..end].trim();
        out.push_str(&escape(labels.get(name)?));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// `1234567.891` → `1,234,567.89`.
fn money(v: f64) -> String {
    let s = format!("{:.2}", v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && s != "0.00" { "-" } else { "" };
    format!("{sign}{grouped}.{frac}")
}

pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Money => money(v),
        Unit::Percent => format!("{:.2}%", v * 100.0),
        Unit::Count => format!("{}", v.round() as i64),
        Unit::Plain => super::render::number(v),
    }
}

/// Run the queries that apply to `labels` at `time` (Unix seconds) by `deadline`.
pub async fn run(
    client: &PromClient,
    queries: &[ContextQuery],
    labels: &BTreeMap<String, String>,
    time: f64,
    deadline: Instant,
) -> ContextTable {
    let mut set = tokio::task::JoinSet::new();
    let mut titles = Vec::new();
    for cq in queries {
        let Some(expr) = expand(&cq.query, labels) else {
            continue;
        };
        let i = titles.len();
        titles.push(cq.clone());
        let client = client.clone();
        set.spawn(async move { (i, client.query(&expr, time, deadline).await) });
    }
    let mut values: Vec<Option<String>> = vec![None; titles.len()];
    let mut failure = None;
    let all = async {
        while let Some(done) = set.join_next().await {
            let Ok((i, result)) = done else { continue };
            match result {
                Ok(samples) => {
                    let cq = &titles[i];
                    values[i] = samples.first().map(|(l, v)| {
                        let value = format_value(*v, cq.unit);
                        match cq.show_label.as_ref().and_then(|k| l.get(k)) {
                            Some(name) => format!("{name} {value}"),
                            None => value,
                        }
                    });
                }
                Err(e) => failure = Some(e),
            }
        }
    };
    if tokio::time::timeout_at(deadline, all).await.is_err() {
        return ContextTable {
            rows: Vec::new(),
            note: Some("context unavailable: Prometheus did not answer within the deadline".into()),
        };
    }
    if let Some(e) = failure {
        return ContextTable {
            rows: Vec::new(),
            note: Some(format!("context unavailable: {e}")),
        };
    }
    ContextTable {
        rows: titles
            .iter()
            .zip(values)
            .map(|(cq, v)| ContextRow {
                title: cq.title.clone(),
                value: v.unwrap_or_else(|| "—".into()),
            })
            .collect(),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::settings::trading_defaults;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_are_filled_as_string_data() {
        let l = labels(&[("strategy", r#"a"} or vector(666) # \x"#)]);
        assert_eq!(
            expand(r#"x{strategy="{{strategy}}"}"#, &l).unwrap(),
            r#"x{strategy="a\"} or vector(666) # \\x"}"#
        );
        assert_eq!(
            expand(r#"x{s="{{ strategy }}"}"#, &labels(&[("strategy", "s1")])).unwrap(),
            r#"x{s="s1"}"#
        );
        assert_eq!(expand(r#"x{s="{{missing}}"}"#, &l), None);
        assert_eq!(expand(r#"x{s="{{open"}"#, &l), None);
        assert_eq!(expand("up", &l).unwrap(), "up");
        assert_eq!(trading_defaults().len(), 6);
        assert!(
            trading_defaults()
                .iter()
                .all(|q| expand(&q.query, &labels(&[])).is_none())
        );
    }

    #[test]
    fn values_are_written_by_unit() {
        assert_eq!(format_value(1_234_567.891, Unit::Money), "1,234,567.89");
        assert_eq!(format_value(-1234.5, Unit::Money), "-1,234.50");
        assert_eq!(format_value(999.999, Unit::Money), "1,000.00");
        assert_eq!(format_value(-0.001, Unit::Money), "0.00");
        assert_eq!(format_value(-0.0425, Unit::Percent), "-4.25%");
        assert_eq!(format_value(3.0, Unit::Count), "3");
        assert_eq!(format_value(0.5, Unit::Plain), "0.5");
    }
}
