//! Alertmanager's v2 API as the silences need it: create (`POST /api/v2/silences`), expire
//! (`DELETE /api/v2/silence/{id}`) and "does it still hold this alert unresolved"
//! (`GET /api/v2/alerts`). Errors name the Alertmanager by origin only (a configured URL may
//! carry credentials) and quote at most 200 characters of its answer.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::core::text::path_segment;

/// Why an Alertmanager call failed: the page and the log say which Alertmanager and why.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AmError {
    #[error("Alertmanager {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Alertmanager {url} refused: HTTP {status} {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .user_agent(concat!(
            "quantwatch-alert-router/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
});

/// The URL as the page and log show it: scheme, host and port (no credentials or path).
fn shown(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "(unparsable URL)".into())
}

async fn answer(url: &str, r: reqwest::Result<reqwest::Response>) -> Result<String, AmError> {
    let resp = r.map_err(|e| AmError::Unreachable {
        url: shown(url),
        reason: if e.is_timeout() {
            "timed out".into()
        } else if e.is_connect() {
            "connection refused or no route".into()
        } else {
            "transport error".into()
        },
    })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(body)
    } else {
        Err(AmError::Refused {
            url: shown(url),
            status: status.as_u16(),
            body: body.chars().take(200).collect(),
        })
    }
}

/// `POST /api/v2/silences`: the new silence's id.
pub async fn create_one(
    base: &str,
    labels: &BTreeMap<String, String>,
    starts_at_ms: i64,
    ends_at_ms: i64,
    created_by: &str,
    comment: &str,
    timeout: Duration,
) -> Result<String, AmError> {
    let matchers: Vec<Value> = labels
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v, "isRegex": false, "isEqual": true}))
        .collect();
    let rfc = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let body = json!({
        "matchers": matchers,
        "startsAt": rfc(starts_at_ms),
        "endsAt": rfc(ends_at_ms),
        "createdBy": created_by,
        "comment": comment,
    });
    let r = HTTP
        .post(format!("{base}/api/v2/silences"))
        .timeout(timeout)
        .json(&body)
        .send()
        .await;
    let text = answer(base, r).await?;
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["silenceID"].as_str().map(String::from))
        .ok_or_else(|| AmError::Refused {
            url: shown(base),
            status: 200,
            body: "answer without a silenceID".into(),
        })
}

/// `DELETE /api/v2/silence/{id}`; a silence that is already expired (another replica, an
/// operator in Alertmanager's UI; Alertmanager 0.25 answers 200) or that the Alertmanager no
/// longer knows (it lost its state; 0.25 answers 500 "silence not found", later versions 404)
/// counts as expired: it silences nothing there.
pub async fn expire_one(base: &str, id: &str, timeout: Duration) -> Result<(), AmError> {
    let r = HTTP
        .delete(format!("{base}/api/v2/silence/{}", path_segment(id)))
        .timeout(timeout)
        .send()
        .await;
    match answer(base, r).await {
        Ok(_) => Ok(()),
        Err(AmError::Refused { status: 404, .. }) => Ok(()),
        Err(AmError::Refused { body, .. })
            if body.contains("already expired") || body.contains("not found") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A label value as a string literal of Alertmanager's matcher syntax.
pub(crate) fn quoted(v: &str) -> String {
    let mut o = String::with_capacity(v.len() + 2);
    o.push('"');
    for c in v.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Whether Alertmanager still holds the alert with exactly these labels as unresolved
/// (silenced or not): `GET /api/v2/alerts` lists no resolved alerts.
pub async fn still_firing(
    base: &str,
    labels: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<bool, AmError> {
    let mut q: Vec<(&str, String)> = ["active", "silenced", "inhibited", "unprocessed"]
        .iter()
        .map(|k| (*k, "true".to_string()))
        .collect();
    for (k, v) in labels {
        q.push(("filter", format!("{k}={}", quoted(v))));
    }
    let r = HTTP
        .get(format!("{base}/api/v2/alerts"))
        .query(&q)
        .timeout(timeout)
        .send()
        .await;
    let text = answer(base, r).await?;
    let list: Vec<Value> = serde_json::from_str(&text).map_err(|_| AmError::Refused {
        url: shown(base),
        status: 200,
        body: "the alert list is not JSON".into(),
    })?;
    Ok(list.iter().any(|a| {
        serde_json::from_value::<BTreeMap<String, String>>(a["labels"].clone())
            .is_ok_and(|l| &l == labels)
    }))
}
