//! What every HTTP vendor does alike: POST a JSON body, map transport errors and HTTP statuses,
//! and read the vendor's own error code through its table. A vendor supplies the URL, the body
//! and an [`ErrorTable`]; nothing here knows a vendor.

use std::time::Duration;

use super::SendError;

/// What one vendor error code means for a notification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Class {
    /// Accepted.
    Ok,
    /// Transient on the vendor's side ("system busy").
    Retry,
    /// "Too fast": wait this long (the vendor's ban or window) before the next send.
    RateLimited(Duration),
    /// Refused for its size: split and retry.
    TooLarge,
    /// Cannot heal by retrying (signature, token, keyword, content).
    Permanent,
}

/// A vendor's error codes; codes not listed are permanent.
#[derive(Debug)]
pub struct ErrorTable {
    /// Name of the JSON field holding the code (`errcode`, `code`, ...).
    pub code_field: &'static str,
    /// Name of the JSON field holding the vendor's text.
    pub msg_field: &'static str,
    pub codes: &'static [(i64, Class)],
}

impl ErrorTable {
    pub fn class(&self, code: i64) -> Class {
        self.codes
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(Class::Permanent, |(_, k)| *k)
    }

    /// The outcome of one answer with this code and text.
    pub fn classify(&self, code: i64, msg: &str) -> Result<(), SendError> {
        let reason = || format!("{} {code}: {msg}", self.code_field);
        match self.class(code) {
            Class::Ok => Ok(()),
            Class::Retry => Err(SendError::Retryable(reason())),
            Class::RateLimited(d) => Err(SendError::RateLimited {
                reason: reason(),
                retry_after: Some(d),
            }),
            Class::TooLarge => Err(SendError::TooLarge(reason())),
            Class::Permanent => Err(SendError::Permanent(reason())),
        }
    }

    /// Classify a JSON answer; an answer without the code field is read as a transient
    /// failure (a proxy's page, a truncated answer), never as success.
    pub fn classify_answer(&self, text: &str) -> Result<(), SendError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| SendError::Retryable(format!("unreadable answer: {}", excerpt(text))))?;
        let Some(code) = v[self.code_field].as_i64() else {
            return Err(SendError::Retryable(format!(
                "answer without {}: {}",
                self.code_field,
                excerpt(text)
            )));
        };
        self.classify(code, v[self.msg_field].as_str().unwrap_or(""))
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Map an HTTP transport error to a retryable failure without leaking the URL (it holds the
/// robot's access token).
pub fn transport_error(e: reqwest::Error) -> SendError {
    let what = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    SendError::Retryable(format!("{what}: {}", e.without_url()))
}

/// A serialized request body: the bytes sent are the bytes measured against the vendor limit.
pub fn body_bytes(body: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

/// POST a form body (`application/x-www-form-urlencoded`, RPC-style clouds); returns the HTTP
/// status and the answer's text whatever the status, for the vendor's own error table to read.
/// Transport errors are retryable and never quote the URL.
pub async fn post_form(
    http: &reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    body: String,
) -> Result<(u16, String), SendError> {
    let resp = http
        .post(url)
        .timeout(timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(transport_error)?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// POST `body` as JSON with these extra headers; returns the answer's text on a 2xx. 429 is a
/// rate limit (honouring `Retry-After`, else `default_wait`), 413 a size refusal, 5xx
/// retryable, any other status permanent.
pub async fn post_json(
    http: &reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    headers: &[(&str, String)],
    body: Vec<u8>,
    default_wait: Duration,
) -> Result<String, SendError> {
    let mut req = http
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body).send().await.map_err(transport_error)?;
    let status = resp.status();
    if status.as_u16() == 429 {
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(default_wait);
        return Err(SendError::RateLimited {
            reason: format!("HTTP {status}"),
            retry_after: Some(retry_after),
        });
    }
    let text = resp.text().await.unwrap_or_default();
    if status.is_server_error() {
        return Err(SendError::Retryable(format!("HTTP {status}")));
    }
    if status.as_u16() == 413 {
        return Err(SendError::TooLarge(format!("HTTP {status}")));
    }
    if !status.is_success() {
        return Err(SendError::Permanent(format!(
            "HTTP {status}: {}",
            excerpt(&text)
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ErrorTable = ErrorTable {
        code_field: "errcode",
        msg_field: "errmsg",
        codes: &[
            (0, Class::Ok),
            (-1, Class::Retry),
            (7, Class::RateLimited(Duration::from_secs(9))),
            (8, Class::TooLarge),
        ],
    };

    #[test]
    fn table_and_answers_are_classified() {
        assert_eq!(T.classify_answer(r#"{"errcode":0,"errmsg":"ok"}"#), Ok(()));
        assert_eq!(
            T.classify_answer(r#"{"errcode":7,"errmsg":"slow down"}"#),
            Err(SendError::RateLimited {
                reason: "errcode 7: slow down".into(),
                retry_after: Some(Duration::from_secs(9))
            })
        );
        assert_eq!(
            T.classify(8, "big"),
            Err(SendError::TooLarge("errcode 8: big".into()))
        );
        assert_eq!(
            T.classify(-1, "busy"),
            Err(SendError::Retryable("errcode -1: busy".into()))
        );
        assert_eq!(
            T.classify(99, "no"),
            Err(SendError::Permanent("errcode 99: no".into()))
        );
        assert!(matches!(
            T.classify_answer("<html>bad gateway</html>"),
            Err(SendError::Retryable(_))
        ));
        assert!(matches!(
            T.classify_answer(r#"{"other":1}"#),
            Err(SendError::Retryable(_))
        ));
    }
}
