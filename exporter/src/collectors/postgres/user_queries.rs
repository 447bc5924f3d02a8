//! postgres_exporter's custom-query file (`--extend.query-path`, `queries.yaml`), read
//! unchanged and published the way postgres_exporter 0.11 publishes it, so a DBA's existing
//! file keeps producing the same series.
//!
//! The file maps a namespace to `query`, `metrics` (a list of one-key maps: column →
//! `usage`, `description`), `master` and `cache_seconds`. Each result column becomes
//! `<namespace>_<column>`: `LABEL` columns are labels of every other column's series, `GAUGE`
//! and `COUNTER` keep their type, `HISTOGRAM` reads `<column>` (bucket bounds),
//! `<column>_bucket`, `_sum`, `_count`, `DISCARD` is dropped, and a column not listed becomes
//! an untyped family ("Unknown metric from <namespace>"). `DURATION` is named
//! `<namespace>_<column>_milliseconds` and `MAPPEDMETRIC` `<namespace>_<column>`, both gauges
//! of the column's number *as it is*: 0.11 never applies their conversions (it reads every
//! column with its generic number conversion, and ignores a user file's `mapping`), so a
//! `'1.5s'` or `'on'` text publishes nothing there — and here, so the same file gives the same
//! series (checked against Debian's binary). A namespace that shares a built-in family's name
//! replaces it, as in postgres_exporter.
//!
//! Every query runs alone (its own statement, in our read-only session under
//! `statement_timeout`), so a failing query loses only its own families and is reported by
//! `pg_exporter_user_query_success{namespace}`; a file that cannot be read or parsed is
//! reported by postgres_exporter's `pg_exporter_user_queries_load_error{filename,hashsum}`.

use super::json::{label, number, rows};
use crate::metrics::{Families, Family};
use serde::Deserialize;
use sha2::Digest;
use sqlx::postgres::PgConnection;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
struct QueryDef {
    #[serde(default)]
    query: String,
    #[serde(default)]
    metrics: Vec<BTreeMap<String, ColumnDef>>,
    #[serde(default)]
    master: bool,
    #[serde(default)]
    cache_seconds: u64,
}

#[derive(Debug, Deserialize)]
struct ColumnDef {
    #[serde(default)]
    usage: String,
    #[serde(default)]
    description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Usage {
    Discard,
    Label,
    Counter,
    Gauge,
    MappedMetric,
    Duration,
    Histogram,
}

impl Usage {
    /// postgres_exporter's `stringToColumnUsage`: an unknown usage reads as DISCARD.
    fn parse(s: &str) -> Usage {
        match s {
            "LABEL" => Usage::Label,
            "COUNTER" => Usage::Counter,
            "GAUGE" => Usage::Gauge,
            "MAPPEDMETRIC" => Usage::MappedMetric,
            "DURATION" => Usage::Duration,
            "HISTOGRAM" => Usage::Histogram,
            _ => Usage::Discard,
        }
    }
}

/// One namespace of the file.
#[derive(Debug)]
pub struct UserQuery {
    pub namespace: String,
    query: String,
    columns: HashMap<String, (Usage, String)>,
    labels: Vec<String>,
    /// Only meaningful with several databases; we scrape one, which is the master.
    pub master: bool,
    cache: Duration,
}

/// The loaded file: its queries, and whether loading failed (reported, never fatal).
#[derive(Debug, Default)]
pub struct UserQueries {
    pub queries: Vec<UserQuery>,
    /// (filename, sha256 of the content, 1 when reading or parsing failed).
    pub load_status: Option<(String, String, f64)>,
}

impl UserQueries {
    /// Reads `path`; a file that cannot be read or parsed leaves no queries and a
    /// `load_error` of 1, as postgres_exporter does (the exporter keeps running).
    pub fn load(path: &Path) -> UserQueries {
        let filename = path.display().to_string();
        let content = match std::fs::read(path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(file = %filename, error = %e, "postgres: cannot read the query file");
                return UserQueries {
                    queries: Vec::new(),
                    load_status: Some((filename, String::new(), 1.0)),
                };
            }
        };
        let hashsum: String = sha2::Sha256::digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        match parse(&String::from_utf8_lossy(&content)) {
            Ok(queries) => {
                tracing::info!(file = %filename, namespaces = queries.len(), "postgres: query file loaded");
                UserQueries {
                    queries,
                    load_status: Some((filename, hashsum, 0.0)),
                }
            }
            Err(e) => {
                tracing::error!(file = %filename, error = %e, "postgres: invalid query file");
                UserQueries {
                    queries: Vec::new(),
                    load_status: Some((filename, hashsum, 1.0)),
                }
            }
        }
    }
}

/// Parses a queries.yaml text.
pub fn parse(text: &str) -> Result<Vec<UserQuery>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let defs: BTreeMap<String, QueryDef> =
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (namespace, def) in defs {
        let mut columns = HashMap::new();
        for m in def.metrics {
            for (col, c) in m {
                columns.insert(col, (Usage::parse(&c.usage), c.description));
            }
        }
        let mut labels: Vec<String> = columns
            .iter()
            .filter(|(_, (u, _))| *u == Usage::Label)
            .map(|(c, _)| c.clone())
            .collect();
        labels.sort();
        // Histogram companions are read with their histogram, never on their own.
        let histos: Vec<String> = columns
            .iter()
            .filter(|(_, (u, _))| *u == Usage::Histogram)
            .map(|(c, _)| c.clone())
            .collect();
        for h in histos {
            for suffix in ["_bucket", "_sum", "_count"] {
                columns.insert(format!("{h}{suffix}"), (Usage::Discard, String::new()));
            }
        }
        out.push(UserQuery {
            namespace,
            query: def.query,
            columns,
            labels,
            master: def.master,
            cache: Duration::from_secs(def.cache_seconds),
        });
    }
    Ok(out)
}

/// The user's query as a subquery: `;` and trailing whitespace removed.
fn wrapped(query: &str) -> String {
    let q = query.trim().trim_end_matches(';').trim_end();
    format!("SELECT json_agg(t)::text FROM ({q}\n) t")
}

impl UserQuery {
    /// Runs the query once and builds its families.
    async fn run(&self, conn: &mut PgConnection) -> Result<Families, sqlx::Error> {
        let text: Option<String> = sqlx::query_scalar(&wrapped(&self.query))
            .fetch_one(conn)
            .await?;
        let doc: serde_json::Value = match text {
            Some(t) => serde_json::from_str(&t).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            None => serde_json::Value::Null,
        };
        Ok(self.families(rows(Some(&doc))))
    }

    fn families(&self, result: &[serde_json::Value]) -> Families {
        let mut out: Vec<(String, Family)> = Vec::new();
        let mut family = |name: String, make: &dyn Fn(&str) -> Family| -> usize {
            match out.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    out.push((name.clone(), make(&name)));
                    out.len() - 1
                }
            }
        };
        let mut adds: Vec<(usize, Labels, Sample)> = Vec::new();
        for row in result {
            let Some(obj) = row.as_object() else { continue };
            let label_values: Vec<(String, String)> = self
                .labels
                .iter()
                .map(|l| (l.clone(), label(obj.get(l))))
                .collect();
            for (col, v) in obj {
                let ns = &self.namespace;
                match self.columns.get(col) {
                    Some((Usage::Discard | Usage::Label, _)) => {}
                    Some((u @ (Usage::Counter | Usage::Gauge | Usage::MappedMetric), help)) => {
                        let Some(x) = number(v) else { continue };
                        let counter = *u == Usage::Counter;
                        let i = family(format!("{ns}_{col}"), &|n| {
                            if counter {
                                Family::counter(n, help)
                            } else {
                                Family::gauge(n, help)
                            }
                        });
                        adds.push((i, label_values.clone(), Sample::Value(x)));
                    }
                    Some((Usage::Duration, help)) => {
                        let Some(x) = number(v) else { continue };
                        let i = family(format!("{ns}_{col}_milliseconds"), &|n| {
                            Family::gauge(n, help)
                        });
                        adds.push((i, label_values.clone(), Sample::Value(x)));
                    }
                    Some((Usage::Histogram, help)) => {
                        let bounds: Vec<f64> = rows(Some(v)).iter().filter_map(number).collect();
                        let counts: Vec<u64> = rows(obj.get(&format!("{col}_bucket")))
                            .iter()
                            .filter_map(|c| c.as_u64().or_else(|| c.as_f64().map(|f| f as u64)))
                            .collect();
                        let (Some(sum), Some(count)) = (
                            obj.get(&format!("{col}_sum")).and_then(number),
                            obj.get(&format!("{col}_count")).and_then(|c| c.as_u64()),
                        ) else {
                            continue;
                        };
                        let buckets: Vec<(f64, u64)> =
                            bounds.iter().copied().zip(counts.iter().copied()).collect();
                        let i = family(format!("{ns}_{col}"), &|n| Family::histogram(n, help));
                        adds.push((
                            i,
                            label_values.clone(),
                            Sample::Histogram(buckets, count, sum),
                        ));
                    }
                    None => {
                        let Some(x) = number(v) else { continue };
                        let i = family(format!("{ns}_{col}"), &|n| {
                            Family::untyped(n, &format!("Unknown metric from {ns}"))
                        });
                        adds.push((i, label_values.clone(), Sample::Value(x)));
                    }
                }
            }
        }
        for (i, labels, sample) in adds {
            let l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match sample {
                Sample::Value(x) => {
                    out[i].1.add(&l, x);
                }
                Sample::Histogram(b, count, sum) => {
                    out[i].1.add_histogram(&l, &b, count, sum);
                }
            }
        }
        let mut fams = Families::default();
        for (_, f) in out {
            fams.push(f);
        }
        fams
    }
}

/// (label name, value) pairs of one series.
type Labels = Vec<(String, String)>;

enum Sample {
    Value(f64),
    Histogram(Vec<(f64, u64)>, u64, f64),
}

/// Results kept for `cache_seconds`, per namespace.
#[derive(Default)]
pub struct Cache {
    entries: HashMap<String, (Instant, Vec<crate::metrics::MetricFamily>)>,
}

/// Runs every query (or takes it from the cache) and returns its families plus
/// `pg_exporter_user_query_success{namespace}`.
pub async fn collect(
    queries: &UserQueries,
    cache: &tokio::sync::Mutex<Cache>,
    conn: &mut PgConnection,
) -> Families {
    let mut fams = Families::default();
    let mut success = Family::gauge(
        "pg_exporter_user_query_success",
        "Whether the custom query of this namespace (--extend.query-path) succeeded in the last scrape (1) or failed (0).",
    );
    let mut cache = cache.lock().await;
    for q in &queries.queries {
        if let Some((at, cached)) = cache.entries.get(&q.namespace)
            && !q.cache.is_zero()
            && at.elapsed() <= q.cache
        {
            fams.0.extend(cached.iter().cloned());
            success.add(&[("namespace", &q.namespace)], 1.0);
            continue;
        }
        match q.run(&mut *conn).await {
            Ok(f) => {
                if !q.cache.is_zero() {
                    cache
                        .entries
                        .insert(q.namespace.clone(), (Instant::now(), f.0.clone()));
                }
                fams.0.extend(f.0);
                success.add(&[("namespace", &q.namespace)], 1.0);
            }
            Err(e) => {
                tracing::warn!(namespace = %q.namespace, error = %e, "postgres: custom query failed");
                success.add(&[("namespace", &q.namespace)], 0.0);
            }
        }
    }
    fams.push(success);
    fams
}

/// `pg_exporter_user_queries_load_error{filename,hashsum}`.
pub fn load_error_family(queries: &UserQueries, fams: &mut Families) {
    if let Some((file, hash, v)) = &queries.load_status {
        let mut f = Family::gauge(
            "pg_exporter_user_queries_load_error",
            "Whether the user queries file was loaded and parsed successfully (1 for error, 0 for success).",
        );
        f.add(&[("filename", file), ("hashsum", hash)], *v);
        fams.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode;
    use serde_json::json;

    #[test]
    fn columns_map_by_usage() {
        let qs = parse(
            "pg_orders:\n  query: \"SELECT 'a' AS side, 3 AS n, 2 AS total, 1500 AS age, 'x' AS st, 7 AS extra;\"\n  metrics:\n    - side:\n        usage: \"LABEL\"\n        description: \"Side\"\n    - n:\n        usage: \"GAUGE\"\n        description: \"Open\"\n    - total:\n        usage: \"COUNTER\"\n        description: \"All\"\n    - age:\n        usage: \"DURATION\"\n        description: \"Age\"\n    - st:\n        usage: \"MAPPEDMETRIC\"\n        description: \"State\"\n",
        )
        .unwrap();
        assert_eq!(qs.len(), 1);
        assert!(wrapped(&qs[0].query).ends_with("7 AS extra\n) t"));
        let f = qs[0].families(&[
            json!({"side": "a", "n": 3, "total": 2, "age": 1500, "st": "x", "extra": 7}),
            json!({"side": "b", "n": 1, "total": 1, "age": "1.5s", "st": 4, "extra": 7}),
        ]);
        let text = encode(&f.0);
        for want in [
            "# TYPE pg_orders_n gauge\npg_orders_n{side=\"a\"} 3\n",
            "# TYPE pg_orders_total counter\npg_orders_total{side=\"a\"} 2\n",
            "pg_orders_age_milliseconds{side=\"a\"} 1500\n",
            "# TYPE pg_orders_extra untyped\npg_orders_extra{side=\"a\"} 7\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // As 0.11: DURATION and MAPPEDMETRIC take the number as it is; text publishes nothing.
        assert!(text.contains("pg_orders_st{side=\"b\"} 4\n"), "{text}");
        assert!(!text.contains("pg_orders_st{side=\"a\"}"));
        assert!(!text.contains("pg_orders_age_milliseconds{side=\"b\"}"));
        assert!(!text.contains("pg_orders_side"));
    }

    #[test]
    fn a_broken_file_is_an_error_not_a_panic() {
        assert!(parse("pg_x: [unclosed").is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
