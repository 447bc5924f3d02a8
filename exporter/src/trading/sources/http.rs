//! A minimal HTTP/1.1 GET client for a bot's local REST API (freqtrade's listens on
//! loopback by default): one request per connection, basic auth, bounded body, JSON out.
//! Small on purpose: the exporter carries no general HTTP client.

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer read (freqtrade's `/status` with a few hundred open trades fits).
pub const MAX_BODY: usize = 8 << 20;

/// `http://host:port[/prefix]`, parsed once at build time.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseUrl {
    host: String,
    port: u16,
    prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let rest = url.strip_prefix("http://").ok_or(
            "must start with http:// (https is not supported: keep the bot's API on loopback)",
        )?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("must not hold credentials (use api_username / api_password)".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{p:?} is not a port number"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err("has no host".into());
        }
        Ok(BaseUrl {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// GETs `base` + `path` and parses the JSON body.
pub async fn get_json(
    base: &BaseUrl,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<serde_json::Value, HttpError> {
    let mut stream = TcpStream::connect((base.host.as_str(), base.port))
        .await
        .map_err(HttpError::Connect)?;
    let mut req = format!(
        "GET {}{} HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: quantwatch-exporter\r\n",
        base.prefix, path, base.host, base.port
    );
    if let Some((user, pass)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str("Authorization: Basic ");
        req.push_str(&token);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(HttpError::Io)?;
    let mut buf = Vec::new();
    (&mut stream)
        .take((MAX_BODY + 64 * 1024) as u64)
        .read_to_end(&mut buf)
        .await
        .map_err(HttpError::Io)?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| HttpError::Malformed("no end of headers".into()))?;
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| HttpError::Malformed("headers are not UTF-8".into()))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed("no status line".into()))?;
    if status != 200 {
        return Err(HttpError::Status(status));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let raw = &buf[head_end + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    serde_json::from_slice(&body).map_err(|e| HttpError::Malformed(e.to_string()))
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, HttpError> {
    let bad = || HttpError::Malformed("bad chunked body".into());
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&raw[..line_end]).map_err(|_| bad())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 || out.len() + size > MAX_BODY {
            return Err(bad());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.prefix.as_str()),
            ("127.0.0.1", 8080, "")
        );
        let b = BaseUrl::parse("http://bot.local/ft/").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.prefix.as_str()),
            ("bot.local", 80, "/ft")
        );
        let b = BaseUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 9000));
        assert!(BaseUrl::parse("https://x").is_err());
        assert!(BaseUrl::parse("http://u:p@x").is_err());
        assert!(BaseUrl::parse("http://x:port").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"3\r\n{\"a\r\n2\r\n\":\r\n1\r\n1\r\n1\r\n}\r\n0\r\n\r\n").unwrap(),
            b"{\"a\":1}"
        );
        assert!(dechunk(b"zz\r\n").is_err());
    }
}
