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
    pub trading: TradingConfig,
    pub probe: ProbeConfig,
}

/// Multi-target scraping (`/probe?target=`, and redis_exporter's `/scrape?target=`): one
/// exporter serving many PostgreSQL and Redis servers, each only if listed here.
#[derive(Clone, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// The `target` values Prometheus may ask for, exactly as it sends them: a Redis URL
    /// (`redis://host:port`, `rediss://…`) or a PostgreSQL `host:port/dbname` /
    /// `postgres://host:port/dbname` (without credentials: those come from `auth_modules`). A
    /// target not listed answers 400 and is never connected to.
    pub targets: Vec<String>,
    /// Credentials by name, chosen by the request's `auth_module` parameter (postgres_exporter's
    /// convention); used for both PostgreSQL and Redis (ACL user) targets.
    pub auth_modules: std::collections::BTreeMap<String, AuthModule>,
}

#[derive(Clone, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthModule {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Option<Secret>,
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

/// The `host:` section lives with the node collectors (their flags and filters).
pub use crate::collectors::node::settings::HostConfig;

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
    /// How often pg_database_size() is re-measured (it stats every file; sizes move slowly),
    /// together with the settings and server facts read in the same statement. `0s` reads
    /// them on every scrape.
    #[serde(with = "duration")]
    pub database_size_refresh: Duration,
    /// postgres_exporter's custom-query file (`queries.yaml`); `--extend.query-path` and env
    /// `PG_EXPORTER_EXTEND_QUERY_PATH` win over the file.
    pub extend_query_path: Option<PathBuf>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: None,
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(3),
            database_size_refresh: Duration::from_secs(30),
            extend_query_path: None,
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

/// The trading collector (docs/trading.md lists every key).
#[derive(Clone, Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
pub struct TradingConfig {
    /// Unset: on exactly when a trading URL is known (`trading.url` or
    /// `TRADING_DATABASE_URL`); `DATABASE_URL` alone only turns on the PostgreSQL collector, so
    /// a DBA monitoring a database without the trading schema gets no failing trading
    /// collector. `true`: on, falling back to `DATABASE_URL` / `postgres.url` when no trading
    /// URL is set. `false`: off whatever is set. Resolved by validation into `url`.
    pub enabled: Option<bool>,
    /// `false` for a database without the reference schema: only `custom_metrics` (and
    /// `trading_up`) are collected.
    pub reference_schema: bool,
    /// Env `TRADING_DATABASE_URL` wins over the file. After validation this is the URL the
    /// collector uses, `None` when the collector is off (see `enabled`).
    pub url: Option<Secret>,
    /// IANA zone of the trading day (env `TRADING_TIMEZONE`).
    pub timezone: String,
    /// `HH:MM` local start of the trading day (env `TRADING_DAY_START`).
    pub day_start: String,
    /// Symbols per strategy on `trading_position_notional`; the rest are summed as "other".
    pub max_symbols: usize,
    #[serde(with = "duration")]
    pub statement_timeout: Duration,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Upper bounds (seconds) of `trading_order_fill_latency_seconds`; applied to the
    /// database's summary by `quantwatch-exporter migrate`.
    pub histogram_buckets: Vec<f64>,
    pub custom_metrics: Vec<CustomMetric>,
    /// The bots' stores (freqtrade, hummingbot) and the reference schema, each with a name
    /// (`crate::trading::sources`); a `reference` entry is another way to write `url`.
    pub sources: Vec<crate::trading::sources::SourceConfig>,
    /// The `source` label value of the reference schema's `trading_source_up`: its entry's
    /// name, else "reference" (`url` / `TRADING_DATABASE_URL`). Set by validation.
    #[serde(skip)]
    pub reference_name: String,
    /// Whether `TRADING_DATABASE_URL` set `url` (env wins over a reference entry's url).
    #[serde(skip)]
    pub url_from_env: bool,
    /// Whether `TRADING_TIMEZONE` set `timezone` (an error then names the variable).
    #[serde(skip)]
    pub timezone_from_env: bool,
    /// The tz database directory `timezone` is read from: `TZDIR`, else /usr/share/zoneinfo.
    #[serde(skip)]
    pub tzdir: PathBuf,
    /// Parsed `timezone`, read from `tzdir` by validation.
    #[serde(skip)]
    pub tz: jiff::tz::TimeZone,
    /// Parsed `day_start`, set by validation.
    #[serde(skip)]
    pub day_start_time: chrono::NaiveTime,
}

/// The `source` label of the reference schema when no `trading.sources` entry names it.
pub const DEFAULT_REFERENCE_NAME: &str = "reference";

/// The default fill-latency buckets: 5 ms to 1 min, for both algorithmic and manual flows.
pub const DEFAULT_FILL_LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Default for TradingConfig {
    fn default() -> Self {
        TradingConfig {
            enabled: None,
            reference_schema: true,
            url: None,
            timezone: "UTC".to_string(),
            day_start: "00:00".to_string(),
            max_symbols: 50,
            statement_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            histogram_buckets: DEFAULT_FILL_LATENCY_BUCKETS.to_vec(),
            custom_metrics: Vec::new(),
            sources: Vec::new(),
            reference_name: DEFAULT_REFERENCE_NAME.to_string(),
            url_from_env: false,
            timezone_from_env: false,
            tzdir: PathBuf::from(crate::trading::zone::DEFAULT_TZDIR),
            tz: jiff::tz::TimeZone::UTC,
            day_start_time: chrono::NaiveTime::MIN,
        }
    }
}

/// A metric computed by an operator-supplied SQL query, for schemas that differ from ours.
#[derive(Clone, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CustomMetric {
    pub name: String,
    #[serde(default)]
    pub help: String,
    #[serde(rename = "type", default)]
    pub kind: CustomMetricType,
    /// Columns whose (text) values become labels of the same name.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The numeric column holding the sample value.
    pub value: String,
    pub query: String,
    #[serde(with = "duration", default = "default_custom_timeout")]
    pub timeout: Duration,
}

fn default_custom_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Clone, Copy, Deserialize, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CustomMetricType {
    #[default]
    Gauge,
    Counter,
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

/// One problem: file, key, reason (shared with the router and the web config).
pub use quantwatch_web::Problem;

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
                let text = quantwatch_web::config::interpolate(&raw, &file, &|k| env.var(k))
                    .map_err(|problems| ConfigError { problems })?;
                if text.trim().is_empty() {
                    Config::default()
                } else {
                    quantwatch_web::config::parse_yaml::<Config>(&text, &file)
                        .map_err(|p| ConfigError { problems: vec![p] })?
                }
            }
        };
        if let Some(url) = env.var("DATABASE_URL") {
            config.postgres.url = Some(Secret(url));
        }
        if let Some(url) = env.var("REDIS_URL") {
            config.redis.url = Some(Secret(url));
        }
        if let Some(path) = env.var("PG_EXPORTER_EXTEND_QUERY_PATH") {
            config.postgres.extend_query_path = Some(PathBuf::from(path));
        }
        if let Some(url) = env.var("TRADING_DATABASE_URL") {
            config.trading.url = Some(Secret(url));
            config.trading.url_from_env = true;
        }
        if let Some(tz) = env.var("TRADING_TIMEZONE") {
            config.trading.timezone = tz;
            config.trading.timezone_from_env = true;
        }
        config.trading.tzdir = crate::trading::zone::tzdir(env.var("TZDIR").as_deref());
        if let Some(start) = env.var("TRADING_DAY_START") {
            config.trading.day_start = start;
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
        // The contract: trading is on when its own URL is set, or when `trading.enabled: true`
        // says so, then falling back to DATABASE_URL (a bad one is reported once, under
        // postgres.url). DATABASE_URL alone only monitors PostgreSQL.
        if self.trading.url.as_ref().is_some_and(|u| u.0.is_empty()) {
            self.trading.url = None;
        }
        let url_from_env = self.trading.url_from_env;
        out.extend(crate::trading::sources::validate_all(
            &mut self.trading,
            file,
            url_from_env,
        ));
        match self.trading.enabled {
            Some(false) => self.trading.url = None,
            Some(true) if self.trading.url.is_none() => {
                let postgres_reported = out.iter().any(|p| p.key == "postgres.url");
                if self.postgres.url.is_none() {
                    out.push(Problem {
                        file: file.to_string(),
                        key: "trading.enabled".to_string(),
                        reason: "is true but no database is set: set TRADING_DATABASE_URL, \
                                 trading.url or DATABASE_URL"
                            .to_string(),
                    });
                } else if !postgres_reported {
                    self.trading.url = self.postgres.url.clone();
                }
            }
            _ => {}
        }
        out.extend(self.host.validate(file));
        out.extend(self.trading.validate(file));
        out.extend(self.probe.validate(file));
        out
    }
}

impl ProbeConfig {
    fn validate(&self, file: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let reason = if t.trim().is_empty() {
                Some("must not be empty")
            } else if t.contains('@') {
                Some("must not hold credentials (put them in probe.auth_modules)")
            } else {
                None
            };
            if let Some(r) = reason {
                out.push(Problem {
                    file: file.to_string(),
                    key: format!("probe.targets[{i}]"),
                    reason: r.to_string(),
                });
            }
        }
        out
    }
}

/// Name prefixes of the built-in collectors' families: a custom metric there could collide
/// with one of them and make the whole exposition invalid.
const RESERVED_PREFIXES: [&str; 6] = [
    "node_",
    "pg_",
    "redis_",
    "quantwatch_exporter_",
    "process_",
    "trading_custom_metric_",
];

/// Prometheus metric names (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus label names (`[a-zA-Z_][a-zA-Z0-9_]*`, `__` prefix reserved).
fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// `HH:MM`, 24-hour clock.
pub fn parse_day_start(s: &str) -> Option<chrono::NaiveTime> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    chrono::NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

impl TradingConfig {
    fn validate(&mut self, file: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: String, reason: String| {
            out.push(Problem {
                file: file.to_string(),
                key,
                reason,
            })
        };
        if self.url.as_ref().is_some_and(|u| u.0.is_empty()) {
            self.url = None;
        }
        if let Some(u) = &self.url
            && !(u.0.starts_with("postgres://") || u.0.starts_with("postgresql://"))
        {
            bad(
                "trading.url".into(),
                "must start with postgres:// or postgresql:// (value not shown: it may hold a password)".into(),
            );
        }
        match crate::trading::zone::load(&self.timezone, &self.tzdir) {
            Ok(tz) => self.tz = tz,
            Err(e) => bad(
                "trading.timezone".into(),
                if self.timezone_from_env {
                    format!("{e} (value from env TRADING_TIMEZONE)")
                } else {
                    e.to_string()
                },
            ),
        }
        match parse_day_start(&self.day_start) {
            Some(t) => self.day_start_time = t,
            None => bad(
                "trading.day_start".into(),
                format!(
                    "{:?} is not HH:MM (24-hour clock, e.g. \"09:00\")",
                    self.day_start
                ),
            ),
        }
        if self.max_symbols == 0 {
            bad("trading.max_symbols".into(), "must be at least 1".into());
        }
        if self.statement_timeout.is_zero() {
            bad(
                "trading.statement_timeout".into(),
                "must be greater than 0s".into(),
            );
        }
        if self.connect_timeout.is_zero() {
            bad(
                "trading.connect_timeout".into(),
                "must be greater than 0s".into(),
            );
        }
        let b = &self.histogram_buckets;
        if b.is_empty() {
            bad(
                "trading.histogram_buckets".into(),
                "must list at least one bound".into(),
            );
        } else if b.iter().any(|v| !v.is_finite()) {
            bad(
                "trading.histogram_buckets".into(),
                "bounds must be finite numbers (+Inf is always added)".into(),
            );
        } else if b.windows(2).any(|w| w[0] >= w[1]) {
            bad(
                "trading.histogram_buckets".into(),
                "bounds must be strictly increasing".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.custom_metrics.iter().enumerate() {
            let key = |field: &str| format!("trading.custom_metrics[{i}].{field}");
            if !is_metric_name(&m.name) {
                bad(
                    key("name"),
                    format!(
                        "{:?} is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                        m.name
                    ),
                );
            } else if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| m.name.starts_with(*p)) {
                bad(
                    key("name"),
                    format!(
                        "{:?} starts with {prefix:?}, reserved for the built-in collectors",
                        m.name
                    ),
                );
            } else if crate::trading::BUILTIN_FAMILIES.contains(&m.name.as_str()) {
                bad(
                    key("name"),
                    format!("{:?} is a built-in trading metric", m.name),
                );
            } else if !seen.insert(m.name.clone()) {
                bad(
                    key("name"),
                    format!("{:?} is defined more than once", m.name),
                );
            }
            let mut label_seen = std::collections::HashSet::new();
            for l in &m.labels {
                if !is_label_name(l) {
                    bad(
                        key("labels"),
                        format!(
                            "{l:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, no __ prefix)"
                        ),
                    );
                } else if !label_seen.insert(l.as_str()) {
                    bad(key("labels"), format!("{l:?} is listed more than once"));
                } else if *l == m.value {
                    bad(key("labels"), format!("{l:?} is also the value column"));
                }
            }
            if m.value.trim().is_empty() {
                bad(key("value"), "must name the value column".into());
            }
            if m.query.trim().is_empty() {
                bad(key("query"), "must not be empty".into());
            }
            if m.timeout.is_zero() {
                bad(key("timeout"), "must be greater than 0s".into());
            }
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
        assert_eq!(err.problems[0].key, "postgres.statment_timeout");
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
    fn database_url_alone_turns_on_postgres_and_not_trading() {
        let e = env(&[("DATABASE_URL", "postgres://pg/db")]);
        let c = load_str("trading:\n  timezone: UTC\n", &e).unwrap();
        assert_eq!(c.postgres.url.unwrap().expose(), "postgres://pg/db");
        assert!(c.trading.url.is_none(), "trading must be off");
        let c = Config::load(None, &e).unwrap();
        assert!(
            c.trading.url.is_none(),
            "trading must be off without a file too"
        );
        // `enabled: true` falls back to DATABASE_URL.
        let c = load_str("trading:\n  enabled: true\n", &e).unwrap();
        assert_eq!(c.trading.url.unwrap().expose(), "postgres://pg/db");
        // `enabled: false` wins over TRADING_DATABASE_URL.
        let c = load_str(
            "trading:\n  enabled: false\n",
            &env(&[("TRADING_DATABASE_URL", "postgres://t/db")]),
        )
        .unwrap();
        assert!(c.trading.url.is_none());
        // `enabled: true` with no database at all is a configuration error.
        let err = load_str("trading:\n  enabled: true\n", &env(&[])).unwrap_err();
        assert_eq!(err.problems[0].key, "trading.enabled", "{err}");
        // TRADING_DATABASE_URL alone turns trading on.
        let c = Config::load(None, &env(&[("TRADING_DATABASE_URL", "postgres://t/db")])).unwrap();
        assert_eq!(c.trading.url.unwrap().expose(), "postgres://t/db");
        assert!(c.postgres.url.is_none());
    }

    #[test]
    fn trading_env_overrides() {
        let c = load_str(
            "trading:\n  url: postgres://file/t\n  timezone: UTC\n",
            &env(&[
                ("DATABASE_URL", "postgres://pg/db"),
                ("TRADING_DATABASE_URL", "postgres://env/t"),
                ("TRADING_TIMEZONE", "Asia/Shanghai"),
                ("TRADING_DAY_START", "09:00"),
            ]),
        )
        .unwrap();
        assert_eq!(c.trading.url.unwrap().expose(), "postgres://env/t");
        assert_eq!(c.trading.tz.iana_name(), Some("Asia/Shanghai"));
        assert_eq!(
            c.trading.day_start_time,
            chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap()
        );
        assert_eq!(c.trading.max_symbols, 50);
    }

    #[test]
    fn trading_timezone_from_tzdir_and_clear_errors() {
        // TZDIR is honoured: an empty directory is a database without the zone.
        let dir = tempfile::tempdir().unwrap();
        let tzdir = dir.path().to_str().unwrap().to_string();
        let err = load_str("trading:\n  timezone: Asia/Shanghai\n", &|k: &str| {
            (k == "TZDIR").then(|| tzdir.clone())
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("trading.timezone: zone \"Asia/Shanghai\" not found in "),
            "{text}"
        );
        assert!(text.contains(&tzdir), "{text}");
        // No database at all: the reason says to install tzdata and names the variable.
        let missing = format!("{tzdir}/none");
        let err = load_str("", &|k: &str| match k {
            "TZDIR" => Some(missing.clone()),
            "TRADING_TIMEZONE" => Some("Europe/Berlin".to_string()),
            _ => None,
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("trading.timezone: no time zone database at "),
            "{text}"
        );
        assert!(text.contains("install tzdata"), "{text}");
        assert!(text.contains("(value from env TRADING_TIMEZONE)"), "{text}");
        // The default zone needs no database.
        let c = load_str("", &|k: &str| (k == "TZDIR").then(|| missing.clone())).unwrap();
        assert_eq!(c.trading.tz, jiff::tz::TimeZone::UTC);
        // A copy of a system zone in TZDIR is what gets loaded.
        std::fs::create_dir(dir.path().join("Asia")).unwrap();
        std::fs::copy(
            "/usr/share/zoneinfo/Asia/Shanghai",
            dir.path().join("Asia/Shanghai"),
        )
        .unwrap();
        let c = load_str("trading:\n  timezone: Asia/Shanghai\n", &|k: &str| {
            (k == "TZDIR").then(|| tzdir.clone())
        })
        .unwrap();
        assert_eq!(c.trading.tz.iana_name(), Some("Asia/Shanghai"));
        assert_eq!(c.trading.tzdir, dir.path());
    }

    #[test]
    fn trading_problems_name_each_key() {
        let yaml = "trading:\n  timezone: Mars/Olympus\n  day_start: '9:00'\n  max_symbols: 0\n  histogram_buckets: [1, 0.5]\n  custom_metrics:\n    - name: 'bad name'\n      value: v\n      query: SELECT 1 AS v\n    - name: ok_metric\n      labels: [a, a]\n      value: ''\n      query: ''\n      timeout: 0s\n    - name: trading_equity\n      value: v\n      query: SELECT 1\n    - name: pg_up\n      value: v\n      query: SELECT 1\n";
        let err = load_str(yaml, &env(&[])).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "trading.timezone",
                "trading.day_start",
                "trading.max_symbols",
                "trading.histogram_buckets",
                "trading.custom_metrics[0].name",
                "trading.custom_metrics[1].labels",
                "trading.custom_metrics[1].value",
                "trading.custom_metrics[1].query",
                "trading.custom_metrics[1].timeout",
                "trading.custom_metrics[2].name",
                "trading.custom_metrics[3].name",
            ],
            "{err}"
        );
        let err = load_str(
            "trading:\n  custom_metrics:\n    - name: x\n      value: v\n      query: q\n      type: summary\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("summary"), "{err}");
    }

    #[test]
    fn trading_sources_are_checked_by_key_and_never_echo_secrets() {
        use crate::trading::sources::SourceConfig;
        let yaml = "trading:\n  sources:\n    - {name: desk, type: reference, url: 'postgres://u:pw@h/t'}\n    - {name: ftbot, type: freqtrade, url: 'sqlite:///srv/ft/tradesv3.sqlite', starting_capital: 1000, api_url: 'http://127.0.0.1:8080', api_username: '${FT_USER}', api_password: '${FT_PASS}', timeout: 2s}\n";
        let c = load_str(
            yaml,
            &env(&[("FT_USER", "freq"), ("FT_PASS", "s3cr3t-pass")]),
        )
        .unwrap();
        assert_eq!(
            c.trading.url.as_ref().unwrap().expose(),
            "postgres://u:pw@h/t"
        );
        assert_eq!(c.trading.reference_name, "desk");
        let SourceConfig::Freqtrade(ft) = &c.trading.sources[1] else {
            panic!("freqtrade expected")
        };
        assert_eq!(ft.api_username.as_deref(), Some("freq"));
        assert_eq!(ft.api_password.as_ref().unwrap().expose(), "s3cr3t-pass");
        assert_eq!(ft.timeout, Duration::from_secs(2));
        assert!(!format!("{c:?}").contains("s3cr3t-pass"));
        // TRADING_DATABASE_URL wins over the reference entry's url.
        let c = load_str(
            yaml,
            &env(&[
                ("FT_USER", "freq"),
                ("FT_PASS", "s3cr3t-pass"),
                ("TRADING_DATABASE_URL", "postgres://env/t"),
            ]),
        )
        .unwrap();
        assert_eq!(c.trading.url.unwrap().expose(), "postgres://env/t");

        let bad = "trading:\n  url: postgres://file/t\n  sources:\n    - {name: 'a b', type: freqtrade, url: 'sqlite://rel.sqlite', starting_capital: -1, api_password: 'hunter2'}\n    - {name: ok, type: freqtrade, url: 'mysql://u:hunter2@h/db', api_url: 'ftp://x', api_username: u}\n    - {name: ok, type: reference, url: 'postgres://x/y'}\n    - {name: r2, type: reference, url: 'sqlite:///x'}\n";
        let err = load_str(bad, &env(&[])).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "trading.sources[0].name",
                "trading.sources[0].url",
                "trading.sources[0].starting_capital",
                "trading.sources[0].api_url",
                "trading.sources[1].url",
                "trading.sources[1].api_url",
                "trading.sources[2].name",
                "trading.sources[2].type",
                "trading.sources[3].url",
                "trading.sources[3].type",
            ],
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(
            err.to_string().contains(
                "trading.sources[0].starting_capital: must be a positive number (the stake \
                 currency the bot started with)"
            ),
            "{err}"
        );
        // The checks every bot type shares, with the type's own currency in the reason.
        let err = load_str(
            "trading:\n  sources:\n    - {name: hb, type: hummingbot, url: 'sqlite:///x', starting_capital: 0, timeout: 0s}\n",
            &env(&[]),
        )
        .unwrap_err();
        let problems: Vec<(&str, &str)> = err
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.reason.as_str()))
            .collect();
        assert_eq!(
            problems,
            [
                (
                    "trading.sources[0].starting_capital",
                    "must be a positive number (the quote currency the bot started with)"
                ),
                ("trading.sources[0].timeout", "must be greater than 0s"),
            ],
            "{err}"
        );
        // Unknown keys and types are errors too.
        let err = load_str(
            "trading:\n  sources:\n    - {name: x, type: freqtrade, url: 'sqlite:///x', api_pass: y}\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("api_pass"), "{err}");
        let err = load_str(
            "trading:\n  sources:\n    - {name: x, type: zipline, url: 'sqlite:///x'}\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("zipline"), "{err}");
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
