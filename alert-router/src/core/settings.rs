//! Configuration building blocks every part uses to validate its own file section: the
//! problem type (`file: key: reason`, never a secret's value), where environment values come
//! from, durations like "30s", and signing secrets.

use std::time::Duration;

/// One problem found in the configuration, printed as `file: key: reason` (the type both
/// binaries and the web config share).
pub use quantwatch_web::Problem;

/// Problems of a section as `(key, reason)`, before the file name is known.
pub type Problems = Vec<(String, String)>;

/// Where environment values come from; a trait so tests do not mutate the process env.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;
impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        std::collections::HashMap::get(self, key).cloned()
    }
}

pub fn duration(
    problems: &mut Vec<Problem>,
    file: &str,
    key: &str,
    v: Option<&str>,
    default: Duration,
) -> Duration {
    match v {
        None => default,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                problems.push(Problem {
                    file: file.into(),
                    key: key.into(),
                    reason: "must be greater than zero".into(),
                });
                default
            }
            Err(e) => {
                problems.push(Problem {
                    file: file.into(),
                    key: key.into(),
                    reason: format!("{s:?} is not a duration like \"30s\" or \"5m\": {e}"),
                });
                default
            }
        },
    }
}

/// Shortest signing secret accepted. A link carries its HMAC, so a short key can be searched
/// offline from one link; 32 bytes is HMAC-SHA256's own output size.
pub const MIN_SECRET_BYTES: usize = 32;

/// A signing secret, or a problem naming where it came from and why it is refused (never its
/// value). Empty counts too: `${ACK_SECRET:-}` with the variable unset must not sign with "".
/// Every secret the router itself signs with goes through here (a vendor's own sign secret,
/// like DingTalk's, is the vendor's format and is not).
pub fn signing_secret(p: &mut Vec<Problem>, v: String, file: &str, key: &str) -> Option<String> {
    let reason = if v.is_empty() {
        format!(
            "is empty (after ${{VAR}} interpolation); remove it to run without ack links, or set \
             at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        )
    } else if v.len() < MIN_SECRET_BYTES {
        format!(
            "is {} bytes; a signing secret needs at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)",
            v.len()
        )
    } else {
        return Some(v);
    };
    p.push(Problem {
        file: file.into(),
        key: key.into(),
        reason,
    });
    None
}
