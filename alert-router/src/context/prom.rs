//! A minimal Prometheus HTTP API client: `query_range` and instant `query` under a deadline,
//! and where an alert's expression comes from.
//!
//! Every request carries the time left as its client timeout *and* as Prometheus' own
//! `timeout` parameter, so a slow query is abandoned on both ends instead of finishing
//! server-side for nobody. Credentials go in headers only; URLs and errors we log never
//! contain them (reqwest errors are stripped of the URL).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::settings::{PromAuth, PromTarget};
use crate::core::model::AlertEvent;

/// One series of a range result; non-finite samples are dropped (`NaN`, `±Inf` cannot be
/// plotted and would wreck the scale).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    /// (Unix seconds, value), in time order.
    pub points: Vec<(f64, f64)>,
}

/// Why there is no data; the message says it in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromError {
    #[error("Prometheus did not answer within the deadline")]
    Deadline,
    #[error("Prometheus is unreachable ({0})")]
    Unreachable(String),
    #[error("Prometheus answered HTTP {status}: {reason}")]
    Status { status: u16, reason: String },
    #[error("Prometheus refused the query: {0}")]
    Query(String),
    #[error("Prometheus sent an unreadable answer: {0}")]
    Decode(String),
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct MatrixEntry {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

#[derive(Deserialize)]
struct VectorEntry {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// A client for one Prometheus; cheap to clone.
#[derive(Clone, Debug)]
pub struct PromClient {
    http: reqwest::Client,
    target: PromTarget,
}

fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

impl PromClient {
    pub fn new(target: PromTarget) -> PromClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        PromClient { http, target }
    }

    fn endpoint(&self, api: &str) -> reqwest::Url {
        let mut url = self.target.url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/api/v1/{api}"));
        url
    }

    async fn call(
        &self,
        api: &str,
        params: &[(&str, String)],
        deadline: Instant,
    ) -> Result<ApiData, PromError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(5) {
            return Err(PromError::Deadline);
        }
        let mut form: Vec<(&str, String)> = params.to_vec();
        form.push(("timeout", format!("{}ms", left.as_millis().max(1))));
        let mut req = self.http.post(self.endpoint(api)).form(&form).timeout(left);
        req = match &self.target.auth {
            PromAuth::None => req,
            PromAuth::Basic { username, password } => req.basic_auth(username, Some(password)),
            PromAuth::Bearer(t) => req.bearer_auth(t),
        };
        let send = async {
            let resp = req.send().await.map_err(classify)?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(classify)?;
            Ok::<_, PromError>((status, body))
        };
        let (status, body) = tokio::time::timeout_at(deadline, send)
            .await
            .map_err(|_| PromError::Deadline)??;
        let parsed: Result<ApiResponse, _> = serde_json::from_slice(&body);
        match parsed {
            Ok(r) if r.status == "success" => r
                .data
                .ok_or_else(|| PromError::Decode("success without data".into())),
            Ok(r) => Err(PromError::Query(format!(
                "{}: {}",
                r.error_type.unwrap_or_default(),
                r.error.unwrap_or_default()
            ))),
            Err(_) if !status.is_success() => Err(PromError::Status {
                status: status.as_u16(),
                reason: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }),
            Err(e) => Err(PromError::Decode(e.to_string())),
        }
    }

    /// `query_range` over `[end - range, end]` with about `points` samples per series.
    pub async fn query_range(
        &self,
        expr: &str,
        end: f64,
        range: Duration,
        points: u32,
        deadline: Instant,
    ) -> Result<Vec<Series>, PromError> {
        let secs = range.as_secs_f64();
        let step = (secs / f64::from(points.max(2))).ceil().max(1.0);
        let data = self
            .call(
                "query_range",
                &[
                    ("query", expr.to_string()),
                    ("start", format!("{:.3}", end - secs)),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}")),
                ],
                deadline,
            )
            .await?;
        if data.result_type != "matrix" {
            return Err(PromError::Decode(format!(
                "expected a matrix, got {}",
                data.result_type
            )));
        }
        let entries: Vec<MatrixEntry> =
            serde_json::from_value(data.result).map_err(|e| PromError::Decode(e.to_string()))?;
        Ok(entries
            .into_iter()
            .map(|m| Series {
                labels: m.metric,
                points: m
                    .values
                    .iter()
                    .filter_map(|(t, v)| finite(v).map(|v| (*t, v)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect())
    }

    /// An instant query at `time`: (labels, value) per series; scalars come back as one
    /// unlabelled sample.
    pub async fn query(
        &self,
        expr: &str,
        time: f64,
        deadline: Instant,
    ) -> Result<Vec<(BTreeMap<String, String>, f64)>, PromError> {
        let data = self
            .call(
                "query",
                &[("query", expr.to_string()), ("time", format!("{time:.3}"))],
                deadline,
            )
            .await?;
        match data.result_type.as_str() {
            "vector" => {
                let v: Vec<VectorEntry> = serde_json::from_value(data.result)
                    .map_err(|e| PromError::Decode(e.to_string()))?;
                Ok(v.into_iter()
                    .filter_map(|e| finite(&e.value.1).map(|x| (e.metric, x)))
                    .collect())
            }
            "scalar" => {
                let (_, s): (f64, String) = serde_json::from_value(data.result)
                    .map_err(|e| PromError::Decode(e.to_string()))?;
                Ok(finite(&s)
                    .map(|x| (BTreeMap::new(), x))
                    .into_iter()
                    .collect())
            }
            other => Err(PromError::Decode(format!("unexpected result type {other}"))),
        }
    }
}

fn classify(e: reqwest::Error) -> PromError {
    if e.is_timeout() {
        return PromError::Deadline;
    }
    // Without the URL: it may name an internal host, and never holds credentials anyway.
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        reason = format!("{reason}: {s}");
        src = s.source();
    }
    PromError::Unreachable(reason)
}

/// The expression an alert's chart shows: the `chart_query` annotation when present (the
/// operator's choice), else `g0.expr` of the `generatorURL` Prometheus put on the alert.
pub fn alert_expression(alert: &AlertEvent) -> Option<String> {
    if let Some(q) = alert
        .annotations
        .get("chart_query")
        .filter(|q| !q.trim().is_empty())
    {
        return Some(q.trim().to_string());
    }
    let url = reqwest::Url::parse(alert.generator_url.as_deref()?).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "g0.expr")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(gen_url: Option<&str>, chart_query: Option<&str>) -> AlertEvent {
        AlertEvent {
            group_key: "g".into(),
            fingerprint: "f".into(),
            status: crate::core::model::Status::Firing,
            labels: BTreeMap::new(),
            annotations: chart_query
                .map(|q| [("chart_query".to_string(), q.to_string())].into())
                .unwrap_or_default(),
            starts_at: 0,
            ends_at: None,
            generator_url: gen_url.map(String::from),
            receiver: None,
        }
    }

    #[test]
    fn expression_from_generator_url_is_decoded() {
        // As Prometheus writes it: url.QueryEscape (space as +, + as %2B).
        let a = alert(
            Some(
                "http://prom:9090/graph?g0.expr=sum+by%28job%29+%28rate%28x%7Bcode%3D%225xx%22%7D%5B5m%5D%29%29+%2B+1+%3E+0.9&g0.tab=1",
            ),
            None,
        );
        assert_eq!(
            alert_expression(&a).as_deref(),
            Some("sum by(job) (rate(x{code=\"5xx\"}[5m])) + 1 > 0.9")
        );
        assert_eq!(
            alert_expression(&alert(Some("http://prom/graph?g0.tab=1"), None)),
            None
        );
        assert_eq!(alert_expression(&alert(Some("not a url"), None)), None);
        assert_eq!(alert_expression(&alert(None, None)), None);
        let a = alert(
            Some("http://prom/graph?g0.expr=up"),
            Some(" my_metric > 3 "),
        );
        assert_eq!(alert_expression(&a).as_deref(), Some("my_metric > 3"));
    }

    #[test]
    fn endpoint_keeps_a_base_path() {
        let c = PromClient::new(PromTarget {
            url: reqwest::Url::parse("http://h:9090/prom/").unwrap(),
            auth: PromAuth::None,
        });
        assert_eq!(
            c.endpoint("query_range").as_str(),
            "http://h:9090/prom/api/v1/query_range"
        );
        let c = PromClient::new(PromTarget {
            url: reqwest::Url::parse("http://h:9090").unwrap(),
            auth: PromAuth::None,
        });
        assert_eq!(c.endpoint("query").as_str(), "http://h:9090/api/v1/query");
    }
}
