//! Signed, expiring ack links: `{fingerprint}.{expires_unix_s}.{mac}`, the mac an HMAC-SHA256
//! (key `ROUTER_ACK_SECRET`) over the fingerprint and the expiry. A link therefore cannot be
//! guessed, cannot be stretched past its expiry, and cannot be pointed at another alert; no
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
}

fn mac(secret: &str, fingerprint: &str, expires_s: i64) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    // The separator cannot occur in the decimal expiry, so (fp, exp) pairs never collide.
    m.update(b"quantwatch-ack\0");
    m.update(fingerprint.as_bytes());
    m.update(b"\0");
    m.update(expires_s.to_string().as_bytes());
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

/// A token for this alert valid until `expires_s` (Unix seconds).
pub fn token(secret: &str, fingerprint: &str, expires_s: i64) -> String {
    let sig = hex(&mac(secret, fingerprint, expires_s).finalize().into_bytes());
    format!("{fingerprint}.{expires_s}.{sig}")
}

/// The fingerprint a token acknowledges, if it is authentic and not expired at `now_s`.
pub fn verify(secret: &str, token: &str, now_s: i64) -> Result<String, TokenError> {
    let mut parts = token.rsplitn(3, '.');
    let (Some(sig), Some(exp), Some(fp)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let exp: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
    let sig = unhex(sig).ok_or(TokenError::Malformed)?;
    if fp.is_empty() {
        return Err(TokenError::Malformed);
    }
    // verify_slice compares in constant time.
    mac(secret, fp, exp)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if now_s >= exp {
        return Err(TokenError::Expired);
    }
    Ok(fp.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_valid_token_names_its_alert() {
        let t = token("s3cret", "a1b2c3", NOW + 3600);
        assert_eq!(verify("s3cret", &t, NOW), Ok("a1b2c3".to_string()));
        // Fingerprints with dots survive (the split is from the right).
        let t = token("s3cret", "fp.with.dots", NOW + 1);
        assert_eq!(verify("s3cret", &t, NOW), Ok("fp.with.dots".to_string()));
    }

    #[test]
    fn forged_expired_and_other_alert_tokens_are_refused() {
        let t = token("s3cret", "a1b2c3", NOW + 3600);
        assert_eq!(
            verify("other", &t, NOW),
            Err(TokenError::BadSignature),
            "signed with another secret"
        );
        assert_eq!(
            verify("s3cret", &t, NOW + 3600),
            Err(TokenError::Expired),
            "expiry is exclusive"
        );
        let sig = t.rsplit('.').next().unwrap();
        assert_eq!(
            verify("s3cret", &format!("ffffff.{}.{sig}", NOW + 3600), NOW),
            Err(TokenError::BadSignature),
            "the signature of one alert does not ack another"
        );
        assert_eq!(
            verify("s3cret", &format!("a1b2c3.{}.{sig}", NOW + 7200), NOW),
            Err(TokenError::BadSignature),
            "the expiry cannot be stretched"
        );
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            verify("s3cret", &forged, NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify("s3cret", "nodots", NOW), Err(TokenError::Malformed));
        assert_eq!(
            verify("s3cret", "a.notanumber.00", NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify("s3cret", &format!("a.{NOW}.zz"), NOW - 1),
            Err(TokenError::Malformed)
        );
    }
}
