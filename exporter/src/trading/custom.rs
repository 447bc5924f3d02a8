//! Custom SQL metrics: for teams whose schema differs from the reference one, each metric is
//! an operator-written query whose rows become samples. Every query runs in its own read-only
//! transaction with its own `statement_timeout` (and a client-side deadline a little longer,
//! for a server that hangs without answering), so one failing or slow query costs only its
//! own family: it is reported by `trading_custom_metric_success{metric} 0` and the rest of
//! the scrape goes on.

use crate::collectors::pg_conn::ConnPool;
use crate::config::{CustomMetric, CustomMetricType};
use crate::metrics::{Families, Family};
use crate::trading::session;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::Executor;
use sqlx::postgres::PgRow;
use sqlx::{Column, Row, TypeInfo};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Extra client-side wait beyond the query's own timeout before giving up on the server.
const CLIENT_GRACE: Duration = Duration::from_millis(500);

/// Runs every metric concurrently and returns their families plus the per-metric
/// success and duration families.
pub async fn collect(pool: &ConnPool, metrics: &[CustomMetric]) -> Families {
    let runs = metrics.iter().map(|m| async move {
        let start = Instant::now();
        let result = match tokio::time::timeout(m.timeout + CLIENT_GRACE, run_one(pool, m)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", m.timeout + CLIENT_GRACE)),
        };
        (m, result, start.elapsed().as_secs_f64())
    });
    let results = futures::future::join_all(runs).await;
    let mut fams = Families::default();
    let mut success = Family::gauge(
        "trading_custom_metric_success",
        "Whether the custom metric's query succeeded in the last scrape (1) or failed (0).",
    );
    let mut duration = Family::gauge(
        "trading_custom_metric_duration_seconds",
        "How long the custom metric's query took in the last scrape.",
    );
    for (m, result, secs) in results {
        let ok = match result {
            Ok(f) => {
                fams.push(f);
                true
            }
            Err(reason) => {
                tracing::warn!(metric = %m.name, error = %reason, "custom trading metric failed");
                false
            }
        };
        success.add(&[("metric", &m.name)], if ok { 1.0 } else { 0.0 });
        duration.add(&[("metric", &m.name)], secs);
    }
    fams.push(success);
    fams.push(duration);
    fams
}

async fn run_one(pool: &ConnPool, m: &CustomMetric) -> Result<Family, String> {
    let mut lease = session::begin(pool, m.timeout, "BEGIN READ ONLY").await?;
    lease
        .conn()
        .execute(
            format!(
                "SET LOCAL statement_timeout = {}",
                m.timeout.as_millis().max(1)
            )
            .as_str(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let rows = sqlx::query(&m.query)
        .persistent(false)
        .fetch_all(lease.conn())
        .await
        .map_err(|e| e.to_string())?;
    session::finish(lease).await;
    to_family(m, &rows)
}

/// Builds the family; a row set Prometheus would reject (duplicate label sets, a label or
/// value column that is missing or of an unusable type) fails this metric only.
pub fn to_family(m: &CustomMetric, rows: &[PgRow]) -> Result<Family, String> {
    let mut f = match m.kind {
        CustomMetricType::Gauge => Family::gauge(&m.name, &m.help),
        CustomMetricType::Counter => Family::counter(&m.name, &m.help),
    };
    let mut seen = HashSet::new();
    for row in rows {
        let mut values = Vec::with_capacity(m.labels.len());
        for l in &m.labels {
            values.push(label_value(row, l)?);
        }
        let Some(v) = number(row, &m.value)? else {
            continue; // NULL value: no sample, as postgres_exporter does
        };
        if !seen.insert(values.clone()) {
            return Err(format!(
                "two rows have the same labels {:?}: {values:?}",
                m.labels
            ));
        }
        let pairs: Vec<(&str, &str)> = m
            .labels
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str))
            .collect();
        f.add(&pairs, v);
    }
    Ok(f)
}

fn type_name(row: &PgRow, col: &str) -> Result<String, String> {
    row.try_column(col)
        .map(|c| c.type_info().name().to_ascii_uppercase())
        .map_err(|_| format!("the query returns no column {col:?}"))
}

fn label_value(row: &PgRow, col: &str) -> Result<String, String> {
    let ty = type_name(row, col)?;
    let e = |e: sqlx::Error| format!("column {col:?}: {e}");
    let v = match ty.as_str() {
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => {
            row.try_get::<Option<String>, _>(col).map_err(e)?
        }
        "INT2" => row
            .try_get::<Option<i16>, _>(col)
            .map_err(e)?
            .map(|v| v.to_string()),
        "INT4" => row
            .try_get::<Option<i32>, _>(col)
            .map_err(e)?
            .map(|v| v.to_string()),
        "INT8" => row
            .try_get::<Option<i64>, _>(col)
            .map_err(e)?
            .map(|v| v.to_string()),
        "BOOL" => row
            .try_get::<Option<bool>, _>(col)
            .map_err(e)?
            .map(|v| v.to_string()),
        "NUMERIC" => row
            .try_get::<Option<Decimal>, _>(col)
            .map_err(e)?
            .map(|v| v.normalize().to_string()),
        other => {
            return Err(format!(
                "label column {col:?} has type {other}; cast it to text in the query"
            ));
        }
    };
    Ok(v.unwrap_or_default())
}

fn number(row: &PgRow, col: &str) -> Result<Option<f64>, String> {
    let ty = type_name(row, col)?;
    let e = |e: sqlx::Error| format!("column {col:?}: {e}");
    Ok(match ty.as_str() {
        "FLOAT8" => row.try_get::<Option<f64>, _>(col).map_err(e)?,
        "FLOAT4" => row
            .try_get::<Option<f32>, _>(col)
            .map_err(e)?
            .map(f64::from),
        "INT2" => row
            .try_get::<Option<i16>, _>(col)
            .map_err(e)?
            .map(f64::from),
        "INT4" => row
            .try_get::<Option<i32>, _>(col)
            .map_err(e)?
            .map(f64::from),
        "INT8" => row
            .try_get::<Option<i64>, _>(col)
            .map_err(e)?
            .map(|v| v as f64),
        "NUMERIC" => row
            .try_get::<Option<Decimal>, _>(col)
            .map_err(e)?
            .and_then(|d| d.to_f64()),
        "BOOL" => row
            .try_get::<Option<bool>, _>(col)
            .map_err(e)?
            .map(|b| if b { 1.0 } else { 0.0 }),
        other => {
            return Err(format!(
                "value column {col:?} has type {other}; it must be numeric"
            ));
        }
    })
}
