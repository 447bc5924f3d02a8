//! Exporter configuration: YAML file (optional), `${VAR}` interpolation, environment overrides.
//!
//! Everything is validated once, here, at load: a running exporter never discovers a bad
//! setting at scrape time. Every problem found is reported (not just the first), each naming
//! the file, the key and the reason, so an operator fixes the file in one pass.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the exporter listens when neither flag, env nor file says otherwise (contract).
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9877";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub web: WebConfig,
    pub host: HostConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub listen_address: String,
    /// exporter-toolkit web config (TLS, basic auth); `--web.config.file` overrides.
    pub config_file: Option<PathBuf>,
    /// Scrape budget when Prometheus sends no `X-Prometheus-Scrape-Timeout-Seconds`.
    #[serde(with = "duration")]
    pub default_scrape_timeout: Duration,
    /// Subtracted from Prometheus' timeout so our answer arrives before it gives up.
    #[serde(with = "duration")]
    pub timeout_offset: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen_address: DEFAULT_LISTEN_ADDRESS.to_string(),
            config_file: None,
            default_scrape_timeout: Duration::from_secs(10),
            timeout_offset: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub enabled: bool,
    /// Mount points whose path starts with one of these are not reported (node_exporter's
    /// default exclusions).
    pub filesystem_mount_points_exclude: Vec<String>,
    /// Filesystem types not reported (pseudo and virtual filesystems, as node_exporter).
    pub filesystem_types_exclude: Vec<String>,
    /// Network devices not reported.
    pub network_devices_exclude: Vec<String>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            enabled: true,
            filesystem_mount_points_exclude: ["/dev", "/proc", "/run/credentials", "/sys"]
                .iter()
                .map(|s| s.to_string())
                .chain(["/var/lib/docker/".to_string()])
                .collect(),
            filesystem_types_exclude: [
                "autofs",
                "binfmt_misc",
                "bpf",
                "cgroup",
                "cgroup2",
                "configfs",
                "debugfs",
                "devpts",
                "devtmpfs",
                "fusectl",
                "hugetlbfs",
                "iso9660",
                "mqueue",
                "nsfs",
                "overlay",
                "proc",
                "procfs",
                "pstore",
                "rpc_pipefs",
                "securityfs",
                "selinuxfs",
                "squashfs",
                "sysfs",
                "tracefs",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            network_devices_exclude: Vec::new(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Off when empty. Env `DATABASE_URL` wins over the file.
    pub url: Option<Secret>,
    #[serde(with = "duration")]
    pub statement_timeout: Duration,
    #[serde(with = "duration")]
    pub lock_timeout: Duration,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// How often pg_database_size() is re-measured (it stats every file; sizes move slowly).
    /// `0s` measures on every scrape.
    #[serde(with = "duration")]
    pub database_size_refresh: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: None,
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(3),
            database_size_refresh: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

#[derive(Clone, Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Off when empty. Env `REDIS_URL` wins over the file.
    pub url: Option<Secret>,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// A connection string or password: usable, but never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One thing wrong with the configuration.
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

/// Every problem found while loading; the binary exits 64 (EX_USAGE) with one line each.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "invalid configuration: {p}")?;
        }
        Ok(())
    }
}

/// Where settings come from besides the file; a trait so tests can inject an environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment; empty values count as unset.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Config {
    /// Loads `path` (or defaults when `None`), applies env overrides, validates everything.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigError> {
        let file = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<defaults>".to_string());
        let problem = |key: &str, reason: String| Problem {
            file: file.clone(),
            key: key.to_string(),
            reason,
        };
        let mut config = match path {
            None => Config::default(),
            Some(p) => {
                let raw = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    problems: vec![problem("-", format!("cannot read the file: {e}"))],
                })?;
                let text = interpolate(&raw, env).map_err(|errs| ConfigError {
                    problems: errs.into_iter().map(|(k, r)| problem(&k, r)).collect(),
                })?;
                if text.trim().is_empty() {
                    Config::default()
                } else {
                    serde_saphyr::from_str::<Config>(&text).map_err(|e| ConfigError {
                        problems: vec![problem(&yaml_error_key(&e.to_string()), e.to_string())],
                    })?
                }
            }
        };
        if let Some(url) = env.var("DATABASE_URL") {
            config.postgres.url = Some(Secret(url));
        }
        if let Some(url) = env.var("REDIS_URL") {
            config.redis.url = Some(Secret(url));
        }
        let problems = config.validate(&file);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    fn validate(&mut self, file: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, reason: &str| {
            out.push(Problem {
                file: file.to_string(),
                key: key.to_string(),
                reason: reason.to_string(),
            })
        };
        if let Err(why) = check_listen_address(&self.web.listen_address) {
            bad("web.listen_address", &why);
        }
        for (key, d) in [
            (
                "web.default_scrape_timeout",
                self.web.default_scrape_timeout,
            ),
            (
                "postgres.statement_timeout",
                self.postgres.statement_timeout,
            ),
            ("postgres.lock_timeout", self.postgres.lock_timeout),
            ("postgres.connect_timeout", self.postgres.connect_timeout),
            ("redis.connect_timeout", self.redis.connect_timeout),
        ] {
            if d.is_zero() {
                bad(key, "must be greater than 0s");
            }
        }
        // An empty url means "off", the same as no url.
        if self.postgres.url.as_ref().is_some_and(|u| u.0.is_empty()) {
            self.postgres.url = None;
        }
        if self.redis.url.as_ref().is_some_and(|u| u.0.is_empty()) {
            self.redis.url = None;
        }
        if let Some(u) = &self.postgres.url
            && !(u.0.starts_with("postgres://") || u.0.starts_with("postgresql://"))
        {
            bad(
                "postgres.url",
                "must start with postgres:// or postgresql:// (value not shown: it may hold a password)",
            );
        }
        if let Some(u) = &self.redis.url
            && !["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|p| u.0.starts_with(p))
        {
            bad(
                "redis.url",
                "must start with redis://, rediss:// or unix:// (value not shown: it may hold a password)",
            );
        }
        out
    }
}

/// `HOST:PORT` with a numeric port (the host may be a name, resolved at bind time).
pub fn check_listen_address(addr: &str) -> Result<(), String> {
    match addr.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("{addr:?} is not HOST:PORT")),
    }
}

/// Best effort: the field a serde error complains about, for the "key" part of the message.
fn yaml_error_key(msg: &str) -> String {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = msg.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            return name.to_string();
        }
    }
    "-".to_string()
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. Unset variables without a
/// default are errors (returned as (key, reason) with the line number), never empty strings
/// silently: a typo in a variable name must not turn a collector off unnoticed.
pub fn interpolate(text: &str, env: &dyn Env) -> Result<String, Vec<(String, String)>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
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
                    errors.push((
                        format!("line {}", lineno + 1),
                        "unterminated ${...}".to_string(),
                    ));
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
                    errors.push((
                        format!("line {}", lineno + 1),
                        format!("${{{expr}}} is not a valid variable reference"),
                    ));
                } else {
                    match (env.var(name), default) {
                        (Some(v), _) => out.push_str(&v),
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => errors.push((
                            format!("line {}", lineno + 1),
                            format!(
                                "environment variable {name} is not set (write ${{{name}:-}} to make it optional)"
                            ),
                        )),
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
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Durations as humane strings: "30s", "5m", "1h30m", "250ms".
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. \"30s\", \"5m\")"
            ))
        })
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
            interpolate("a=${A} b=${B:-d} c=$$ d=$e", &e).unwrap(),
            "a=x b=d c=$ d=$e"
        );
        let errs = interpolate("ok: 1\nurl: ${MISSING}\n", &e).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "line 2");
        assert!(errs[0].1.contains("MISSING is not set"), "{}", errs[0].1);
    }

    fn load_str(yaml: &str, e: &dyn Env) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exporter.yml");
        std::fs::write(&path, yaml).unwrap();
        Config::load(Some(&path), e)
    }

    #[test]
    fn env_wins_over_file_and_durations_parse() {
        let e = env(&[("DATABASE_URL", "postgres://env/db")]);
        let c = load_str(
            "postgres:\n  url: postgres://file/db\n  statement_timeout: 250ms\n",
            &e,
        )
        .unwrap();
        assert_eq!(c.postgres.url.unwrap().expose(), "postgres://env/db");
        assert_eq!(c.postgres.statement_timeout, Duration::from_millis(250));
        assert_eq!(c.postgres.lock_timeout, Duration::from_secs(1));
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let err = load_str("postgres:\n  statment_timeout: 5s\n", &env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exporter.yml"), "{text}");
        assert!(text.contains("statment_timeout"), "{text}");
        assert_eq!(err.problems[0].key, "statment_timeout");
    }

    #[test]
    fn every_semantic_problem_is_reported_and_secrets_are_not_echoed() {
        let err = load_str(
            "web:\n  listen_address: nope\npostgres:\n  url: mysql://u:hunter2@h/db\nredis:\n  url: http://x\n",
            &env(&[]),
        )
        .unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["web.listen_address", "postgres.url", "redis.url"]);
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn bad_duration_names_the_value() {
        let err = load_str("web:\n  default_scrape_timeout: soon\n", &env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("invalid duration \"soon\""),
            "{err}"
        );
    }
}
