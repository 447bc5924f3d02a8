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

/// Parses YAML into `T`. Problems name the key path the error is at
/// (`host.collectors.netstat`, `probe.targets[1]`), tracked by `serde_path_to_error` while
/// serde-saphyr deserializes, and the line and column; an error outside any key (a syntax
/// error before the first) names the line and column only. serde-saphyr's default error
/// quotes the offending line (a snippet), and serde's type errors quote the scalar
/// (`invalid type: string "hunter2", expected u16`); after interpolation either may be a
/// password, so snippets are off and a scalar's text is reduced to its kind.
///
/// Inside an internally tagged enum (a list of `type:`-selected items) serde buffers the
/// item before choosing its variant, so the path stops at the item (`channels[2]`); the line
/// and column still point into it.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Problem> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let mut at = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        let mut track = serde_path_to_error::Track::new();
        let parsed = T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
        if parsed.is_err() {
            at = Some(track.path());
        }
        parsed
    })
    .map_err(|e| {
        let e = e.without_snippet();
        Problem {
            file: file.to_string(),
            key: error_key(at.as_ref(), e),
            reason: error_reason(e),
        }
    })
}

/// The key path of an error (`servers[1].ports[0]`): where serde was when it failed, plus
/// the field a missing or duplicate field error names (serde raises those from the
/// enclosing map; an unknown field is already in the path).
fn error_key(at: Option<&serde_path_to_error::Path>, e: &serde_saphyr::Error) -> String {
    use serde_path_to_error::Segment;
    use serde_saphyr::Error as E;
    let mut key = String::new();
    let push = |key: &mut String, name: &str| {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(name);
    };
    for segment in at.into_iter().flat_map(|p| p.iter()) {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => push(&mut key, name),
            // A key that is not a string: nothing to name it by.
            Segment::Unknown => {}
        }
    }
    match e {
        E::SerdeMissingField { field, .. } => push(&mut key, field),
        E::DuplicateMappingKey { key: Some(k), .. } => push(&mut key, k),
        _ => {}
    }
    if !key.is_empty() {
        return key;
    }
    match e.location() {
        Some(l) if l.line() > 0 => format!("line {}:{}", l.line(), l.column()),
        _ => "-".to_string(),
    }
}

/// serde-saphyr's message, without the text of any scalar it would quote.
fn error_reason(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    let (what, unexpected, expected) = match e {
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => ("invalid type", unexpected, expected),
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => ("invalid value", unexpected, expected),
        E::QuotingRequired { .. } => return at_location("a string value must be quoted", e),
        _ => return e.to_string(),
    };
    at_location(
        &format!("{what}: {}, expected {expected}", scalar_kind(unexpected)),
        e,
    )
}

/// serde's `Unexpected` as text is the kind, then the value quoted with `"` or a backtick
/// (`string "x"`, `integer `5``, `boolean `true``): the kind alone.
fn scalar_kind(unexpected: &str) -> &str {
    unexpected
        .split(['"', '`', '\''])
        .next()
        .unwrap_or(unexpected)
        .trim_end()
}

fn at_location(msg: &str, e: &serde_saphyr::Error) -> String {
    match e.location() {
        Some(l) if l.line() > 0 => format!("{msg} at line {}, column {}", l.line(), l.column()),
        _ => msg.to_string(),
    }
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
        #[serde(default)]
        servers: Vec<Server>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        host: String,
        #[serde(default)]
        ports: Vec<u16>,
    }

    /// A `type:`-selected list item, as the router's channels are.
    #[derive(Debug, serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Item {
        Plain(Server),
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Items {
        items: Vec<Item>,
    }

    #[test]
    fn yaml_errors_name_the_key_path_but_never_print_the_line() {
        let p = |text: &str| parse_yaml::<Cfg>(text, "r.yml").unwrap_err().to_string();
        // A syntax error on the line holding the password (an unterminated flow sequence).
        let shown = p("name: x\npassword: [hunter2-secret, \nport: 1\n");
        assert_eq!(
            shown,
            "r.yml: password: expected string scalar at line 2, column 11"
        );
        // Before any key: the position alone.
        assert_eq!(
            p("]\n"),
            "r.yml: line 1:1: misplaced bracket at line 1, column 1"
        );
        // A type error on such a line: the key, the reason, the position.
        assert_eq!(
            p("name: x\npassword: {user: hunter2-secret}\n"),
            "r.yml: password: expected string scalar at line 2, column 11"
        );
        assert_eq!(
            p("name: x\nport: hunter2-secret\n"),
            "r.yml: port: invalid u16 at line 2, column 7"
        );
        // Nested, through list indexes.
        assert_eq!(
            p("name: x\nservers:\n  - host: a\n  - host: b\n    ports: [1, 70000]\n"),
            "r.yml: servers[1].ports[1]: invalid u16 at line 5, column 16"
        );
        // Unknown, missing and duplicate fields: the path of the field.
        assert_eq!(
            p("name: x\nservers:\n  - host: a\n    pasword: hunter2-secret\n"),
            "r.yml: servers[0].pasword: unknown field `pasword`, expected one of host, ports at line 4, column 5"
        );
        assert_eq!(
            p("name: x\nservers:\n  - ports: [1]\n"),
            "r.yml: servers[0].host: missing field `host` at line 3, column 5"
        );
        assert_eq!(
            p("name: x\nservers:\n  - host: a\n    host: b\n"),
            "r.yml: servers[0].host: duplicate mapping key: host, set DuplicateKeyPolicy in Options if acceptable at line 4, column 5"
        );
        assert_eq!(
            p("name: x\npasword: hunter2\n"),
            "r.yml: pasword: unknown field `pasword`, expected one of name, port, password, servers at line 2, column 1"
        );
    }

    #[test]
    fn a_type_error_inside_a_tagged_item_names_the_item_and_never_the_value() {
        let p = |text: &str| parse_yaml::<Items>(text, "r.yml").unwrap_err().to_string();
        // serde buffers the item to find its `type`, then reports through serde's own
        // `invalid type`, which would quote the string: the kind only.
        assert_eq!(
            p(
                "items:\n  - type: plain\n    host: a\n  - type: plain\n    host: b\n    ports: [hunter2-secret]\n"
            ),
            "r.yml: items[1]: invalid type: string, expected u16 at line 4, column 5"
        );
        assert_eq!(
            p("items:\n  - type: plane\n    host: a\n"),
            "r.yml: items[0].type: unknown variant `plane`, expected one of plain at line 2, column 5"
        );
    }
}
