//! Chart images at signed, expiring URLs: `/charts/{id}.{expires}.{mac}.png`.
//!
//! DingTalk and Slack show an image only from a URL their servers fetch, without our
//! credentials, so the URL itself is the credential: an HMAC-SHA256 with the router's ack
//! secret over a purpose string, the chart id and the expiry. The purpose string
//! (`quantwatch-chart`) is part of the MAC input, so a chart token can never pass as an ack
//! token or the other way round, though both use one secret. (`ack.rs` is gaining a purpose
//! field too; the two signers should become one.)
//!
//! The images live in memory: a bounded map (least recently used dropped past
//! `chart.cache_entries`; each entry also dropped at its URL's expiry). A restart, or another
//! replica behind the same `ROUTER_PUBLIC_URL`, does not have the image: it answers 404 with a
//! reason. With several replicas on PostgreSQL, put the replicas behind a balancer that pins
//! `/charts/` to one replica, or accept that some image fetches fail; the message itself
//! never waits on this. Keeping PNGs in the store would lift that; it is not done yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::App;

const PURPOSE: &[u8] = b"quantwatch-chart\0";

/// Why a chart URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the chart link is malformed")]
    Malformed,
    #[error("the chart link's signature is wrong (forged, altered, or signed with another secret)")]
    BadSignature,
    #[error("the chart link expired")]
    Expired,
}

fn mac(secret: &str, id: &str, expires_s: i64) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    m.update(PURPOSE);
    m.update(id.as_bytes());
    m.update(b"\0");
    m.update(expires_s.to_string().as_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// `{id}.{expires}.{mac}`; ids are lowercase hex, so the token needs no escaping in a URL.
pub fn token(secret: &str, id: &str, expires_s: i64) -> String {
    let sig = hex(&mac(secret, id, expires_s).finalize().into_bytes());
    format!("{id}.{expires_s}.{sig}")
}

/// The chart id of an authentic token not expired at `now_s`. The signature is checked
/// first, so a stretched expiry reads as altered (403), not as expired (410).
pub fn verify(secret: &str, token: &str, now_s: i64) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(id), Some(exp), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::Malformed);
    }
    let exp: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
    let sig = unhex(sig).ok_or(TokenError::Malformed)?;
    mac(secret, id, exp)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if now_s >= exp {
        return Err(TokenError::Expired);
    }
    Ok(id.to_string())
}

struct Entry {
    png: Arc<Vec<u8>>,
    expires_s: i64,
    used: u64,
}

/// The images a router holds, shared across config reloads.
pub struct ImageCache {
    inner: Mutex<Inner>,
}

struct Inner {
    map: HashMap<String, Entry>,
    clock: u64,
    capacity: usize,
}

impl ImageCache {
    pub fn new(capacity: usize) -> ImageCache {
        ImageCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                clock: 0,
                capacity: capacity.max(1),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reload may change the capacity; the images stay.
    pub fn set_capacity(&self, capacity: usize) {
        self.lock().capacity = capacity.max(1);
    }

    pub fn insert(&self, id: String, png: Arc<Vec<u8>>, expires_s: i64, now_s: i64) {
        let mut g = self.lock();
        g.clock += 1;
        let used = g.clock;
        g.map.retain(|_, e| e.expires_s > now_s);
        while g.map.len() >= g.capacity {
            // O(n) over a few hundred entries, once per render: cheaper than keeping an order.
            let Some(oldest) = g
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            g.map.remove(&oldest);
        }
        g.map.insert(
            id,
            Entry {
                png,
                expires_s,
                used,
            },
        );
    }

    pub fn get(&self, id: &str, now_s: i64) -> Option<Arc<Vec<u8>>> {
        let mut g = self.lock();
        g.clock += 1;
        let clock = g.clock;
        let e = g.map.get_mut(id)?;
        if e.expires_s <= now_s {
            g.map.remove(id);
            return None;
        }
        e.used = clock;
        Some(e.png.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn refuse(status: StatusCode, error: &str, reason: String) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"error": error, "reason": reason})),
    )
        .into_response()
}

/// `GET /charts/{token}.png`: see [`respond`].
pub async fn get_chart(State(app): State<Arc<App>>, Path(file): Path<String>) -> Response {
    let live = app.live();
    respond(&live.charts, &file, chrono::Utc::now().timestamp())
}

/// The answer for `/charts/{file}` at `now_s`: 200 image/png; 403 (altered, forged or
/// malformed); 410 (expired); 404 when this process does not hold the image (restart,
/// another replica, evicted) or chart links are off. Errors are JSON `{error, reason}`.
pub fn respond(charts: &super::ChartService, file: &str, now_s: i64) -> Response {
    let Some(secret) = charts.secret.as_deref() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "chart links are disabled: ROUTER_ACK_SECRET is not set".into(),
        );
    };
    let Some(token) = file.strip_suffix(".png") else {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            TokenError::Malformed.to_string(),
        );
    };
    match verify(secret, token, now_s) {
        Err(TokenError::Expired) => refuse(
            StatusCode::GONE,
            "expired",
            TokenError::Expired.to_string(),
        ),
        Err(e) => refuse(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        Ok(id) => match charts.images.get(&id, now_s) {
            Some(png) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "image/png"),
                    (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
                ],
                png.as_ref().clone(),
            )
                .into_response(),
            None => refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                "this router does not hold the chart (restarted, another replica rendered it, or it was evicted)".into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn tokens_verify_and_refuse() {
        let t = token("s", "00ff", NOW + 60);
        assert_eq!(verify("s", &t, NOW), Ok("00ff".to_string()));
        assert_eq!(verify("s", &t, NOW + 60), Err(TokenError::Expired));
        assert_eq!(verify("other", &t, NOW), Err(TokenError::BadSignature));
        let sig = t.rsplit('.').next().unwrap();
        assert_eq!(
            verify("s", &format!("00ff.{}.{sig}", NOW + 3600), NOW + 100),
            Err(TokenError::BadSignature),
            "a stretched expiry is an altered link"
        );
        assert_eq!(
            verify("s", &format!("00fe.{}.{sig}", NOW + 60), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify("s", "00ff.1", NOW), Err(TokenError::Malformed));
        assert_eq!(
            verify("s", &format!("{t}.x"), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify("s", "zz.1.00", NOW), Err(TokenError::Malformed));
        assert_eq!(verify("s", "00.1.é0", NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn a_chart_token_is_never_an_ack_token() {
        // Same secret, same id and expiry: the purpose string makes the MACs differ.
        let chart = token("s", "abcdef", NOW + 60);
        let ack = crate::ack::token("s", "abcdef", 0, NOW + 60);
        assert_ne!(chart, ack);
        assert!(verify("s", &ack, NOW).is_err());
        assert!(crate::ack::verify("s", crate::ack::Purpose::Ack, &chart, NOW).is_err());
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let c = ImageCache::new(2);
        let png = |b: u8| Arc::new(vec![b]);
        c.insert("a".into(), png(1), NOW + 10, NOW);
        c.insert("b".into(), png(2), NOW + 10, NOW);
        assert_eq!(c.get("a", NOW).as_deref(), Some(&vec![1]));
        // "b" is now least recently used and goes.
        c.insert("c".into(), png(3), NOW + 10, NOW);
        assert_eq!(c.len(), 2);
        assert!(c.get("b", NOW).is_none());
        assert!(c.get("a", NOW).is_some() && c.get("c", NOW).is_some());
        assert!(
            c.get("a", NOW + 10).is_none(),
            "expired entries are not served"
        );
        c.insert("d".into(), png(4), NOW + 100, NOW + 20);
        assert_eq!(c.len(), 1, "expired entries are swept on insert");
    }
}
