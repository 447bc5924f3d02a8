//! Aliyun Dyvmsapi fake (`SingleCallByTts`), and the `VoiceReport` receipt push back to the
//! router, as the voice service does both.
//!
//! The request is checked like every Aliyun RPC call ([`super::aliyun::check_rpc`]: common
//! parameters, key, 15-minute timestamp, fresh nonce, signature over the exact canonical
//! request), then as Dyvmsapi checks a TTS call: `Action`, the purchased show number
//! (`isv.DISPLAY_NUMBER_ILLEGAL`), one called mobile or fixed-line number
//! (`isv.MOBILE_NUMBER_ILLEGAL`), the approved template (`isv.TTS_TEMPLATE_ILLEGAL`), every
//! template variable present (`isv.TEMPLATE_MISSING_PARAMETERS`), `TtsParam` under 250
//! characters (`isv.PARAM_LENGTH_LIMIT`) and without links (`isv.PARAM_NOT_SUPPORT_URL`),
//! `OutId` of 1 to 15 bytes (`isv.INVALID_PARAMETERS`), and per called number 1 call a minute,
//! 5 an hour, 20 a day (`isv.BUSINESS_LIMIT_CONTROL`). An accepted call answers a `CallId`.
//!
//! The outcome of each call is set per number ([`Answer`]); after `receipt_delay` the fake
//! POSTs a `VoiceReport` JSON array to the callback URL, as Aliyun's HTTP batch push does, and
//! reads the answer as Aliyun does: HTTP 200 with a numeric `code` within 700 ms, otherwise the
//! push is repeated (Aliyun: after 1, 5 and 10 minutes; here after 1, 5 and 10 ×
//! `retry_unit`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, State};
use axum::routing::post;
use serde_json::{Value, json};

use super::FakeServer;
use super::aliyun::{Account, check_rpc, code_number, params_json, rpc_status};

/// What the called person does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Picks up and listens (status 200000).
    Answered,
    /// Rings out (status 200003).
    NoAnswer,
    /// Line busy (status 200002).
    Busy,
    /// The call happens but no receipt is ever pushed (a lost push).
    NoReceipt,
}

/// One accepted call.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub number: String,
    pub call_id: String,
    pub tts_param: Value,
}

/// One receipt push and how the router answered it.
#[derive(Debug, Clone)]
pub struct Push {
    pub at: Instant,
    pub call_id: String,
    /// HTTP status, 0 when the router did not answer within 700 ms.
    pub status: u16,
    pub answer: Value,
    /// Aliyun's own reading: 200 and a numeric `code`.
    pub accepted: bool,
}

struct Voice {
    show_number: String,
    tts_code: String,
    variables: Vec<&'static str>,
    callback: Option<String>,
    answers: HashMap<String, Answer>,
    calls: Vec<Call>,
    pushes: Vec<Push>,
    placed: HashMap<String, Vec<Instant>>,
    next_id: u64,
    receipt_delay: Duration,
    retry_unit: Duration,
}

#[derive(Clone)]
struct Ctx {
    acct: Account,
    voice: Arc<Mutex<Voice>>,
}

pub struct AliyunVoiceFake {
    pub server: FakeServer,
    voice: Arc<Mutex<Voice>>,
}

/// The variables of the router's TTS template.
pub const TEMPLATE_VARIABLES: [&str; 3] = ["alertname", "severity", "summary"];

impl AliyunVoiceFake {
    /// An account with this key, the purchased `show_number` and one approved TTS template
    /// `tts_code` with the router's variables.
    pub fn start(key_id: &str, secret: &str, show_number: &str, tts_code: &str) -> AliyunVoiceFake {
        let voice = Arc::new(Mutex::new(Voice {
            show_number: show_number.into(),
            tts_code: tts_code.into(),
            variables: TEMPLATE_VARIABLES.to_vec(),
            callback: None,
            answers: HashMap::new(),
            calls: Vec::new(),
            pushes: Vec::new(),
            placed: HashMap::new(),
            next_id: 116_012_354_148,
            receipt_delay: Duration::from_millis(300),
            retry_unit: Duration::from_secs(1),
        }));
        let (k, s, v) = (key_id.to_string(), secret.to_string(), voice.clone());
        let server = FakeServer::spawn(move |shared| {
            let ctx = Ctx {
                acct: Account {
                    key_id: k,
                    secret: s,
                    nonces: Arc::default(),
                    per_number: Arc::default(),
                    shared,
                },
                voice: v,
            };
            axum::Router::new()
                .route("/", post(single_call_by_tts))
                .with_state(ctx)
        });
        AliyunVoiceFake { server, voice }
    }

    pub fn endpoint(&self) -> String {
        format!("{}/", self.server.base_url())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Voice> {
        self.voice.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where receipts are pushed (the URL configured in the Aliyun console).
    pub fn set_callback(&self, url: &str) {
        self.lock().callback = Some(url.into());
    }

    /// What `number` does when called (default: answers).
    pub fn set_answer(&self, number: &str, a: Answer) {
        self.lock().answers.insert(number.into(), a);
    }

    pub fn set_receipt_delay(&self, d: Duration) {
        self.lock().receipt_delay = d;
    }

    /// Accepted calls, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Receipt pushes, in order.
    pub fn pushes(&self) -> Vec<Push> {
        self.lock().pushes.clone()
    }

    /// Wait until `n` calls were accepted or `timeout` passes.
    pub fn wait_calls(&self, n: usize, timeout: Duration) -> Vec<Call> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.calls();
            if c.len() >= n || Instant::now() >= deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Wait until `n` pushes were made or `timeout` passes.
    pub fn wait_pushes(&self, n: usize, timeout: Duration) -> Vec<Push> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.pushes();
            if p.len() >= n || Instant::now() >= deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// A mobile (11 digits, leading 1) or fixed-line number (leading 0, 10 to 12 digits).
fn callable(n: &str) -> bool {
    n.bytes().all(|b| b.is_ascii_digit())
        && ((n.len() == 11 && n.starts_with('1'))
            || ((10..=12).contains(&n.len()) && n.starts_with('0')))
}

/// Aliyun's per-number flow control: 1 a minute, 5 an hour, 20 in 24 hours.
fn over_flow_limit(log: &[Instant], now: Instant) -> bool {
    let within = |d: u64| {
        log.iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(d))
            .count()
    };
    within(60) >= 1 || within(3600) >= 5 || within(86_400) >= 20
}

async fn single_call_by_tts(
    State(c): State<Ctx>,
    Form(params): Form<Vec<(String, String)>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(r) = super::mode_gate(&c.acct.shared).await {
        return r;
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let body = params_json(&params);
    let answer = |code: &str, msg: &str, call_id: Option<&str>| {
        super::record(&c.acct.shared, body.clone(), code_number(code));
        let status = rpc_status(code);
        let mut v = json!({"Code": code, "Message": msg, "RequestId": "fake-request"});
        if let Some(id) = call_id {
            v["CallId"] = id.into();
        }
        (status, Json(v)).into_response()
    };
    if let Err((code, msg)) = check_rpc(&c.acct, &params, &["CalledNumber", "TtsCode"]) {
        return answer(code, &msg, None);
    }
    if get("Action").as_deref() != Some("SingleCallByTts")
        || get("Version").as_deref() != Some("2017-05-25")
    {
        return answer(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            None,
        );
    }
    let mut v = c.voice.lock().unwrap_or_else(|p| p.into_inner());
    if get("CalledShowNumber").as_deref() != Some(v.show_number.as_str()) {
        return answer("isv.DISPLAY_NUMBER_ILLEGAL", "号显不合法", None);
    }
    let number = get("CalledNumber").unwrap_or_default();
    if !callable(&number) {
        return answer("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法", None);
    }
    if get("TtsCode").as_deref() != Some(v.tts_code.as_str()) {
        return answer("isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不合法", None);
    }
    let raw = get("TtsParam").unwrap_or_default();
    let tp: Value = serde_json::from_str(&raw).unwrap_or_default();
    let Some(vars) = tp.as_object() else {
        return answer(
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "文本转语音模板参数缺失",
            None,
        );
    };
    if v.variables
        .iter()
        .any(|k| !vars.get(*k).is_some_and(Value::is_string))
    {
        return answer(
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "文本转语音模板参数缺失",
            None,
        );
    }
    if raw.chars().count() >= 250 {
        return answer("isv.PARAM_LENGTH_LIMIT", "参数长度受限", None);
    }
    let has_link = vars.values().filter_map(Value::as_str).any(|s| {
        let l = s.to_ascii_lowercase();
        l.contains("://") || l.contains("www.") || l.contains("http")
    });
    if has_link {
        return answer("isv.PARAM_NOT_SUPPORT_URL", "变量不支持URL参数", None);
    }
    if let Some(out) = get("OutId")
        && !(1..=15).contains(&out.len())
    {
        return answer("isv.INVALID_PARAMETERS", "参数异常", None);
    }
    let now = Instant::now();
    if over_flow_limit(v.placed.get(&number).map(Vec::as_slice).unwrap_or(&[]), now) {
        return answer("isv.BUSINESS_LIMIT_CONTROL", "触发流控", None);
    }
    v.placed.entry(number.clone()).or_default().push(now);
    v.next_id += 1;
    let call_id = format!("{}^{}", v.next_id, v.next_id * 7 % 1_000_000_007);
    v.calls.push(Call {
        at: now,
        number: number.clone(),
        call_id: call_id.clone(),
        tts_param: tp.clone(),
    });
    let outcome = v.answers.get(&number).copied().unwrap_or(Answer::Answered);
    if let (Some(url), true) = (v.callback.clone(), outcome != Answer::NoReceipt) {
        let report = voice_report(&call_id, &number, &v.show_number, outcome);
        let (delay, unit, voice) = (v.receipt_delay, v.retry_unit, c.voice.clone());
        tokio::spawn(push(url, call_id.clone(), report, delay, unit, voice));
    }
    drop(v);
    answer("OK", "OK", Some(&call_id))
}

/// A `VoiceReport` as Aliyun pushes it (times in Beijing time, numbers as strings).
fn voice_report(call_id: &str, callee: &str, caller: &str, a: Answer) -> Value {
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let now = chrono::Utc::now().with_timezone(&beijing);
    let fmt = |t: chrono::DateTime<chrono::FixedOffset>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let (code, msg, start, duration) = match a {
        Answer::Answered => (
            "200000",
            "用户听完语音",
            fmt(now - chrono::Duration::seconds(20)),
            "20",
        ),
        Answer::NoAnswer => ("200003", "用户收到呼叫但未接听", String::new(), "0"),
        Answer::Busy => ("200002", "用户占线", String::new(), "0"),
        Answer::NoReceipt => ("", "", String::new(), "0"),
    };
    json!({
        "call_id": call_id,
        "originate_time": fmt(now - chrono::Duration::seconds(40)),
        "ring_time": fmt(now - chrono::Duration::seconds(38)),
        "start_time": start,
        "end_time": fmt(now),
        "caller": caller,
        "callee": callee,
        "duration": duration,
        "status_code": code,
        "status_msg": msg,
        "hangup_direction": "用户",
        "out_id": "",
        "dtmf": "",
        "voice_type": "voice",
        "toll_type": "LOCAL",
    })
}

async fn push(
    url: String,
    call_id: String,
    report: Value,
    delay: Duration,
    unit: Duration,
    voice: Arc<Mutex<Voice>>,
) {
    let client = reqwest::Client::new();
    for wait in [delay, unit, unit * 5, unit * 10] {
        tokio::time::sleep(wait).await;
        let sent = client
            .post(&url)
            .timeout(Duration::from_millis(700))
            .header("content-type", "application/json;charset=utf-8")
            .body(json!([report]).to_string())
            .send()
            .await;
        let (status, answer) = match sent {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        };
        let accepted = status == 200 && answer["code"].is_number();
        voice
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pushes
            .push(Push {
                at: Instant::now(),
                call_id: call_id.clone(),
                status,
                answer,
                accepted,
            });
        if accepted {
            return;
        }
    }
}
