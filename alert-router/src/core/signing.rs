//! Signed, expiring links: the only capability the router hands to someone who has not logged
//! in. A token is `{purpose}.{fingerprint}.{starts_at_ms}.{expires_unix_s}.{mac}`, the mac an
//! HMAC-SHA256 (key `ROUTER_ACK_SECRET`, at least 32 bytes) over all four fields. So a link
//! cannot be guessed, stretched past its expiry, pointed at another alert, used for another
//! firing of the same alert (`starts_at`: acknowledging Monday's outage must not acknowledge
//! Tuesday's), or used for another action (`purpose`: an ack link is not a silence link). No
//! state is needed to check one, so any replica accepts the links of any other.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token is refused (the page says which, the log too; never the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature is wrong (forged, altered, or signed with another secret)")]
    BadSignature,
    #[error("the link expired")]
    Expired,
    #[error("the link is for another action")]
    WrongPurpose,
}

/// What a link may do. Part of the signed data, so one purpose's link never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Acknowledge one firing (`/ack/{token}`).
    Ack,
    /// Fetch one chart image (`/charts/{token}.png`); the "fingerprint" field holds the
    /// chart's id and `starts_at` is 0.
    Chart,
    /// Silence one firing in Alertmanager (`/silence/{token}`; the form picks the duration).
    Silence,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Ack => "ack",
            Purpose::Chart => "chart",
            Purpose::Silence => "silence",
        }
    }

    fn parse(s: &str) -> Option<Purpose> {
        match s {
            "ack" => Some(Purpose::Ack),
            "chart" => Some(Purpose::Chart),
            "silence" => Some(Purpose::Silence),
            _ => None,
        }
    }
}

/// What an authentic token grants: `purpose` on the firing (`fingerprint`, `starts_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub purpose: Purpose,
    pub fingerprint: String,
    /// The firing's `startsAt`, Unix milliseconds.
    pub starts_at: i64,
    /// Unix seconds; the link works strictly before it.
    pub expires_s: i64,
}

fn mac(secret: &str, l: &Link) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    m.update(b"quantwatch-link\0");
    m.update(l.purpose.as_str().as_bytes());
    m.update(b"\0");
    // Length-prefixed: a fingerprint (sender-chosen) can never shift the other fields.
    m.update(&(l.fingerprint.len() as u64).to_be_bytes());
    m.update(l.fingerprint.as_bytes());
    m.update(&l.starts_at.to_be_bytes());
    m.update(&l.expires_s.to_be_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Sign a link.
pub fn sign(secret: &str, link: &Link) -> String {
    let sig = hex(&mac(secret, link).finalize().into_bytes());
    format!(
        "{}.{}.{}.{}.{sig}",
        link.purpose.as_str(),
        link.fingerprint,
        link.starts_at,
        link.expires_s
    )
}

/// An ack token for the firing (`fingerprint`, `starts_at`) valid until `expires_s`.
pub fn token(secret: &str, fingerprint: &str, starts_at: i64, expires_s: i64) -> String {
    sign(
        secret,
        &Link {
            purpose: Purpose::Ack,
            fingerprint: fingerprint.into(),
            starts_at,
            expires_s,
        },
    )
}

/// The link a token grants, if it is authentic, for `purpose`, and not expired at `now_s`.
pub fn verify(secret: &str, purpose: Purpose, token: &str, now_s: i64) -> Result<Link, TokenError> {
    let (p, rest) = token.split_once('.').ok_or(TokenError::Malformed)?;
    // The fingerprint may hold dots: the fixed fields are split off from the right.
    let mut parts = rest.rsplitn(4, '.');
    let (Some(sig), Some(exp), Some(start), Some(fp)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let link = Link {
        purpose: Purpose::parse(p).ok_or(TokenError::Malformed)?,
        fingerprint: fp.to_string(),
        starts_at: start.parse().map_err(|_| TokenError::Malformed)?,
        expires_s: exp.parse().map_err(|_| TokenError::Malformed)?,
    };
    let sig = unhex(sig).ok_or(TokenError::Malformed)?;
    if fp.is_empty() {
        return Err(TokenError::Malformed);
    }
    // verify_slice compares in constant time (and refuses a truncated mac).
    mac(secret, &link)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if link.purpose != purpose {
        return Err(TokenError::WrongPurpose);
    }
    if now_s >= link.expires_s {
        return Err(TokenError::Expired);
    }
    Ok(link)
}

/// A silence token for the firing (`fingerprint`, `starts_at`) valid until `expires_s`.
pub fn silence_token(secret: &str, fingerprint: &str, starts_at: i64, expires_s: i64) -> String {
    sign(
        secret,
        &Link {
            purpose: Purpose::Silence,
            fingerprint: fingerprint.into(),
            starts_at,
            expires_s,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const START: i64 = 1_799_990_000_123;
    const S: &str = "0123456789abcdef0123456789abcdef";

    fn ack(t: &str, now: i64) -> Result<Link, TokenError> {
        verify(S, Purpose::Ack, t, now)
    }

    #[test]
    fn a_valid_token_names_its_firing() {
        let t = token(S, "a1b2c3", START, NOW + 3600);
        assert!(t.starts_with("ack.a1b2c3.1799990000123."), "{t}");
        let l = ack(&t, NOW).unwrap();
        assert_eq!(
            (l.fingerprint.as_str(), l.starts_at, l.expires_s),
            ("a1b2c3", START, NOW + 3600)
        );
        // Fingerprints with dots survive (the fixed fields are split from the right).
        let t = token(S, "fp.with.dots", START, NOW + 1);
        assert_eq!(ack(&t, NOW).unwrap().fingerprint, "fp.with.dots");
    }

    #[test]
    fn forged_truncated_stretched_swapped_and_expired_tokens_are_refused() {
        let t = token(S, "a1b2c3", START, NOW + 3600);
        let sig = t.rsplit('.').next().unwrap();
        assert_eq!(
            verify("another-secret-of-32-bytes-length", Purpose::Ack, &t, NOW),
            Err(TokenError::BadSignature),
            "signed with another secret"
        );
        assert_eq!(ack(&t, NOW + 3600), Err(TokenError::Expired), "exclusive");
        assert_eq!(
            ack(&format!("ack.ffffff.{START}.{}.{sig}", NOW + 3600), NOW),
            Err(TokenError::BadSignature),
            "the signature of one alert does not ack another"
        );
        assert_eq!(
            ack(
                &format!("ack.a1b2c3.{}.{}.{sig}", START + 60_000, NOW + 3600),
                NOW
            ),
            Err(TokenError::BadSignature),
            "the signature of one firing does not ack the next firing"
        );
        assert_eq!(
            ack(&format!("ack.a1b2c3.{START}.{}.{sig}", NOW + 7200), NOW),
            Err(TokenError::BadSignature),
            "the expiry cannot be stretched"
        );
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('0') { '1' } else { '0' });
        assert_eq!(ack(&forged, NOW), Err(TokenError::BadSignature));
        assert_eq!(
            ack(&t[..t.len() - 2], NOW),
            Err(TokenError::BadSignature),
            "a truncated mac"
        );
        assert_eq!(ack(&t[..t.len() - 1], NOW), Err(TokenError::Malformed));
        assert_eq!(ack("nodots", NOW), Err(TokenError::Malformed));
        assert_eq!(
            ack("ack.a.1.notanumber.00", NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            ack(&format!("ack.a.1.{NOW}.zz"), NOW - 1),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            ack(&format!("unmute.a1b2c3.{START}.{}.{sig}", NOW + 3600), NOW),
            Err(TokenError::Malformed),
            "an unknown purpose"
        );
        assert_eq!(
            ack(&format!("silence.a1b2c3.{START}.{}.{sig}", NOW + 3600), NOW),
            Err(TokenError::BadSignature),
            "an ack signature does not make a silence link"
        );
        assert_eq!(
            ack(&format!("{START}.{}.{sig}", NOW + 3600), NOW),
            Err(TokenError::Malformed),
            "the old (fingerprint, expiry) format"
        );
    }

    #[test]
    fn a_silence_link_is_not_an_ack_link_and_back() {
        let s = silence_token(S, "a1b2c3", START, NOW + 60);
        assert!(s.starts_with("silence.a1b2c3."), "{s}");
        let l = verify(S, Purpose::Silence, &s, NOW).unwrap();
        assert_eq!((l.purpose, l.starts_at), (Purpose::Silence, START));
        assert_eq!(ack(&s, NOW), Err(TokenError::WrongPurpose));
        let a = token(S, "a1b2c3", START, NOW + 60);
        assert_eq!(
            verify(S, Purpose::Silence, &a, NOW),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            verify(S, Purpose::Silence, &s, NOW + 60),
            Err(TokenError::Expired)
        );
    }
}
