//! Aliyun Dysmsapi fake: `POST /` with a form body, RPC style.
//!
//! Checks, with Aliyun's answers (`{"Code": "...", "Message": "...", "RequestId": "..."}`): the
//! common parameters (`MissingParameter`), the AccessKeyId (`InvalidAccessKeyId.NotFound`),
//! `Timestamp` within 15 minutes (`InvalidTimeStamp.Expired`), a fresh `SignatureNonce`
//! (`SignatureNonceUsed`), the HMAC-SHA1 signature over the sorted, percent-encoded parameters
//! (`SignatureDoesNotMatch`), phone numbers (`isv.MOBILE_NUMBER_ILLEGAL`), template variables
//! of at most 35 characters (`isv.PARAM_LENGTH_LIMIT`), and per-number flow control: one SMS
//! per number per minute (`isv.BUSINESS_LIMIT_CONTROL`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, State};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use super::{FakeServer, Shared, mode_gate, percent_encode};

/// One Aliyun account as the fakes know it: its key, the nonces seen, per-number flow control.
#[derive(Clone)]
pub(crate) struct Account {
    pub(crate) key_id: String,
    pub(crate) secret: String,
    pub(crate) nonces: Arc<Mutex<HashSet<String>>>,
    pub(crate) per_number: Arc<Mutex<HashMap<String, Instant>>>,
    pub(crate) shared: Arc<Mutex<Shared>>,
}

pub struct AliyunFake {
    pub server: FakeServer,
}

/// The signature Aliyun computes for a POST with these parameters.
pub fn expected_signature(secret: &str, params: &[(String, String)]) -> String {
    let mut p: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "Signature").collect();
    p.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical: Vec<String> = p
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let to_sign = format!("POST&%2F&{}", percent_encode(&canonical.join("&")));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl AliyunFake {
    pub fn start(key_id: &str, secret: &str) -> AliyunFake {
        let (k, s) = (key_id.to_string(), secret.to_string());
        let server = FakeServer::spawn(move |shared| {
            let acct = Account {
                key_id: k,
                secret: s,
                nonces: Arc::default(),
                per_number: Arc::default(),
                shared,
            };
            axum::Router::new().route("/", post(send)).with_state(acct)
        });
        AliyunFake { server }
    }

    pub fn endpoint(&self) -> String {
        format!("{}/", self.server.base_url())
    }

    /// Accepted requests' `TemplateParam`, parsed.
    pub fn template_params(&self) -> Vec<Value> {
        self.server
            .accepted()
            .iter()
            .map(|b| {
                serde_json::from_str(b["TemplateParam"].as_str().unwrap_or("{}"))
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// Aliyun's codes as recorded `errcode`s in `Received` (0 accepted).
pub fn code_number(code: &str) -> i64 {
    match code {
        "OK" => 0,
        "MissingParameter" => 1,
        "InvalidAccessKeyId.NotFound" => 2,
        "InvalidTimeStamp.Expired" => 3,
        "SignatureNonceUsed" => 4,
        "SignatureDoesNotMatch" => 5,
        "isv.MOBILE_NUMBER_ILLEGAL" => 6,
        "isv.PARAM_LENGTH_LIMIT" => 7,
        "isv.BUSINESS_LIMIT_CONTROL" => 8,
        "isv.TTS_TEMPLATE_ILLEGAL" => 10,
        "isv.TEMPLATE_MISSING_PARAMETERS" => 11,
        "isv.PARAM_NOT_SUPPORT_URL" => 12,
        "isv.DISPLAY_NUMBER_ILLEGAL" => 13,
        "isv.INVALID_PARAMETERS" => 14,
        "InvalidAction.NotFound" => 15,
        _ => 99,
    }
}

/// The form parameters as the JSON object the fakes record.
pub(crate) fn params_json(params: &[(String, String)]) -> Value {
    params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The HTTP status Aliyun answers a `Code` with: 200 for success and the business (`isv.`)
/// errors, 400 for the rest.
pub(crate) fn rpc_status(code: &str) -> axum::http::StatusCode {
    if code == "OK" || code.starts_with("isv.") {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::BAD_REQUEST
    }
}

/// What every Aliyun RPC endpoint checks before the action's own parameters, in Aliyun's
/// order: the common parameters and the action's `required` ones (`MissingParameter`), the
/// AccessKeyId (`InvalidAccessKeyId.NotFound`), `Timestamp` within 15 minutes
/// (`InvalidTimeStamp.Expired`), a fresh `SignatureNonce` (`SignatureNonceUsed`) and the
/// signature (`SignatureDoesNotMatch`). `Err` is the code and message to answer.
pub(crate) fn check_rpc(
    a: &Account,
    params: &[(String, String)],
    required: &[&str],
) -> Result<(), (&'static str, String)> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    for k in [
        "AccessKeyId",
        "Action",
        "Format",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureVersion",
        "Timestamp",
        "Version",
        "Signature",
    ]
    .iter()
    .chain(required)
    {
        if get(k).is_none_or(|v| v.is_empty()) {
            return Err((
                "MissingParameter",
                format!("{k} is mandatory for this action."),
            ));
        }
    }
    if get("AccessKeyId").as_deref() != Some(a.key_id.as_str()) {
        return Err((
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.".into(),
        ));
    }
    let fresh = get("Timestamp")
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%SZ").ok())
        .is_some_and(|t| (chrono::Utc::now().naive_utc() - t).num_seconds().abs() <= 900);
    if !fresh {
        return Err((
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.".into(),
        ));
    }
    let nonce = get("SignatureNonce").unwrap_or_default();
    if !a
        .nonces
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(nonce)
    {
        return Err((
            "SignatureNonceUsed",
            "Specified signature nonce was used already.".into(),
        ));
    }
    if get("Signature") != Some(expected_signature(&a.secret, params)) {
        return Err((
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.".into(),
        ));
    }
    Ok(())
}

async fn send(
    State(a): State<Account>,
    Form(params): Form<Vec<(String, String)>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(r) = mode_gate(&a.shared).await {
        return r;
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let body = params_json(&params);
    let answer = |code: &str, msg: &str| {
        super::record(&a.shared, body.clone(), code_number(code));
        let status = rpc_status(code);
        (
            status,
            Json(json!({"Code": code, "Message": msg, "RequestId": "fake-request"})),
        )
            .into_response()
    };
    if let Err((code, msg)) = check_rpc(&a, &params, &["PhoneNumbers", "SignName", "TemplateCode"])
    {
        return answer(code, &msg);
    }
    let numbers: Vec<String> = get("PhoneNumbers")
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    if numbers
        .iter()
        .any(|n| n.len() != 11 || !n.starts_with('1') || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return answer("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号");
    }
    let tp: Value =
        serde_json::from_str(&get("TemplateParam").unwrap_or_default()).unwrap_or_default();
    let too_long = tp.as_object().is_some_and(|o| {
        o.iter()
            .any(|(k, v)| k != "link" && v.as_str().is_some_and(|s| s.chars().count() > 35))
    });
    if too_long {
        return answer("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制");
    }
    {
        let now = Instant::now();
        let mut per = a.per_number.lock().unwrap_or_else(|p| p.into_inner());
        if numbers.iter().any(|n| {
            per.get(n)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
        }) {
            return answer("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1");
        }
        for n in numbers {
            per.insert(n, now);
        }
    }
    answer("OK", "OK")
}
