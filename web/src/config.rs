//! Configuration text before it becomes typed settings: `${VAR}` interpolation and YAML
//! parsing. Both steps see secrets (interpolated passwords, tokens), so their problems name the
//! file, the key or position and the reason, and never quote the text of a line.

use serde::de::DeserializeOwned;
use std::fmt;

/// One configuration problem, printed as `file: key: reason`; the binaries collect every
/// problem of a load and exit 64 with one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.reason)
    }
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. An unset variable without
/// a default is a problem naming the line, never an empty string: a typo in a variable name
/// must not silently turn a feature (or a secret) off. Problems name the variable, never a
/// value.
pub fn interpolate(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut bad = |lineno: usize, reason: String| {
        problems.push(Problem {
            file: file.to_string(),
            key: format!("line {}", lineno + 1),
            reason,
        })
    };
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let Some(end) = body.find('}') else {
                    bad(lineno, "unterminated ${...}".to_string());
                    rest = "";
                    break;
                };
                let expr = &body[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    bad(
                        lineno,
                        format!("${{{expr}}} is not a valid variable reference"),
                    );
                } else {
                    match (lookup(name), default) {
                        (Some(v), _) => out.push_str(&v),
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => bad(
                            lineno,
                            format!(
                                "environment variable {name} is not set (write ${{{name}:-}} to make it optional)"
                            ),
                        ),
                    }
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Parses YAML into `T`. serde-saphyr's default error quotes the offending line (a snippet),
/// which after interpolation may be `password: hunter2`; we turn snippets off and report the
/// field the error names (when it names one), the line and column, and the parser's reason.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Problem> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<T>(text, options).map_err(|e| {
        let e = e.without_snippet();
        let reason = e.to_string();
        let key = match (yaml_error_key(&reason), e.location()) {
            (Some(k), _) => k,
            (None, Some(l)) if l.line() > 0 => format!("line {}:{}", l.line(), l.column()),
            _ => "-".to_string(),
        };
        Problem {
            file: file.to_string(),
            key,
            reason,
        }
    })
}

/// Best effort: the field a serde error complains about, for the "key" part of the message.
fn yaml_error_key(msg: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = msg.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            return Some(name.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn interpolation_handles_defaults_escapes_and_missing() {
        let e = env(&[("A", "x")]);
        assert_eq!(
            interpolate("a=${A} b=${B:-d} c=$$ d=$e", "f.yml", &e).unwrap(),
            "a=x b=d c=$ d=$e"
        );
        let errs =
            interpolate("ok: 1\nurl: ${MISSING}\nx: ${bad-name}\n", "f.yml", &e).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].key, "line 2");
        assert_eq!(errs[0].file, "f.yml");
        assert!(
            errs[0].reason.contains("MISSING is not set"),
            "{}",
            errs[0].reason
        );
        assert_eq!(errs[1].key, "line 3");
        let errs = interpolate("a: ${UNTERMINATED\n", "f.yml", &e).unwrap_err();
        assert_eq!(errs[0].reason, "unterminated ${...}");
    }

    #[test]
    fn interpolated_secrets_never_appear_in_problems() {
        let e = env(&[("PASS", "hunter2-from-env")]);
        let errs = interpolate("p: ${PASS}\nq: ${NOPE}\n", "f.yml", &e).unwrap_err();
        assert!(!format!("{errs:?}").contains("hunter2"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        name: String,
        port: Option<u16>,
        password: Option<String>,
    }

    #[test]
    fn yaml_errors_name_the_position_but_never_print_the_line() {
        // A syntax error on the line holding the password (an unterminated flow sequence).
        let text = "name: x\npassword: [hunter2-secret, \nport: 1\n";
        let p = parse_yaml::<Cfg>(text, "r.yml").unwrap_err();
        let shown = p.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.starts_with("r.yml: line "), "{shown}");
        // A type error on such a line: the reason, the position, no text of the line.
        let text = "name: x\npassword: {user: hunter2-secret}\n";
        let p = parse_yaml::<Cfg>(text, "r.yml").unwrap_err();
        let shown = p.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(p.key, "line 2:11", "{shown}");
        // An unknown key is named.
        let p = parse_yaml::<Cfg>("name: x\npasword: hunter2\n", "r.yml").unwrap_err();
        assert_eq!(p.key, "pasword");
        assert!(!p.to_string().contains("hunter2"), "{p}");
    }
}
