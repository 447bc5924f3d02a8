//! Reading credentials from `Authorization` and comparing secrets. Both binaries accept the
//! web config's basic-auth users; the router also accepts bearer tokens. Comparisons go through
//! SHA-256 digests first so neither a mismatch position nor the secret's length shows in the
//! response time.

use axum::http::{HeaderMap, header};
use base64::Engine;
use sha2::{Digest, Sha256};

/// `user` and `password` of an `Authorization: Basic` header, if it is one and well-formed.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether two secrets are equal, in time independent of where they differ and of their
/// lengths.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let da = Sha256::digest(a);
    let db = Sha256::digest(b);
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn parses_basic_and_bearer() {
        // "alice:pa:ss" — the password may contain a colon.
        assert_eq!(
            basic_credentials(&with("Basic YWxpY2U6cGE6c3M=")),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(&with("Bearer x")), None);
        assert_eq!(basic_credentials(&with("Basic !!!")), None);
        assert_eq!(bearer_token(&with("Bearer tok")), Some("tok"));
        assert_eq!(bearer_token(&with("bearer tok")), Some("tok"));
        assert_eq!(bearer_token(&with("Basic tok")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
    }
}
