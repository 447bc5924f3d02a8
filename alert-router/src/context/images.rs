//! Chart images at signed, expiring URLs: `/charts/{id}.{expires}.{mac}.png` (served by
//! `web::charts`).
//!
//! DingTalk and Slack show an image only from a URL their servers fetch, without our
//! credentials, so the URL itself is the credential: a link of the router's one signer
//! (`signing::sign`, purpose `chart`, the chart id in place of a fingerprint), so one secret and one
//! MAC construction serve ack, silence and chart links, and the purpose keeps a chart link from
//! ever acting as another.
//!
//! The images live in memory: a bounded map (least recently used dropped past
//! `chart.cache_entries`; each entry also dropped at its URL's expiry). A restart, or another
//! replica behind the same `ROUTER_PUBLIC_URL`, does not have the image: it answers 404 with a
//! reason. With several replicas on PostgreSQL, put the replicas behind a balancer that pins
//! `/charts/` to one replica, or accept that some image fetches fail; the message itself
//! never waits on this. Keeping PNGs in the store would lift that; it is not done yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::core::signing::{self, Link, Purpose};

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

/// `chart.{id}.0.{expires}.{mac}`; ids are lowercase hex, so the token needs no escaping.
pub fn token(secret: &str, id: &str, expires_s: i64) -> String {
    signing::sign(
        secret,
        &Link {
            purpose: Purpose::Chart,
            fingerprint: id.into(),
            starts_at: 0,
            expires_s,
        },
    )
}

/// The chart id of an authentic chart token not expired at `now_s`. The signature is checked
/// first, so a stretched expiry reads as altered (403), not as expired (410); another
/// purpose's link (an ack link) is refused as malformed for this path.
pub fn verify(secret: &str, token: &str, now_s: i64) -> Result<String, TokenError> {
    let link = signing::verify(secret, Purpose::Chart, token, now_s).map_err(|e| match e {
        signing::TokenError::Expired => TokenError::Expired,
        signing::TokenError::BadSignature => TokenError::BadSignature,
        _ => TokenError::Malformed,
    })?;
    if link.starts_at != 0
        || link.fingerprint.is_empty()
        || !link.fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(TokenError::Malformed);
    }
    Ok(link.fingerprint)
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    const S: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn tokens_verify_and_refuse() {
        let t = token(S, "00ff", NOW + 60);
        assert!(t.starts_with(&format!("chart.00ff.0.{}.", NOW + 60)), "{t}");
        assert_eq!(verify(S, &t, NOW), Ok("00ff".to_string()));
        assert_eq!(verify(S, &t, NOW + 60), Err(TokenError::Expired));
        assert_eq!(
            verify("another-secret-of-32-bytes-length", &t, NOW),
            Err(TokenError::BadSignature)
        );
        let sig = t.rsplit('.').next().unwrap();
        assert_eq!(
            verify(S, &format!("chart.00ff.0.{}.{sig}", NOW + 3600), NOW + 100),
            Err(TokenError::BadSignature),
            "a stretched expiry is an altered link"
        );
        assert_eq!(
            verify(S, &format!("chart.00fe.0.{}.{sig}", NOW + 60), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(S, "00ff.1", NOW), Err(TokenError::Malformed));
        assert_eq!(
            verify(S, &format!("{t}.x"), NOW),
            Err(TokenError::Malformed)
        );
        // A signed id that is not hex (never issued by us) is refused all the same.
        let odd = token(S, "zz", NOW + 60);
        assert_eq!(verify(S, &odd, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn a_chart_token_is_never_an_ack_token() {
        // One signer, one secret: the purpose makes the links differ and refuse each other.
        let chart = token(S, "abcdef", NOW + 60);
        let ack = crate::core::signing::token(S, "abcdef", 0, NOW + 60);
        assert_ne!(chart, ack);
        assert_eq!(verify(S, &ack, NOW), Err(TokenError::Malformed));
        assert_eq!(
            crate::core::signing::verify(S, crate::core::signing::Purpose::Ack, &chart, NOW),
            Err(crate::core::signing::TokenError::WrongPurpose)
        );
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
