//! Trading sources: the stores of the bots a desk already runs (freqtrade, hummingbot), read
//! where they are, read-only, with no change on the bot's side (contract, "Trading sources").
//!
//! A source type is one file here plus one line in [`source_types!`]: the file owns the
//! type's config struct (its `type:` value is the variant's name in lower case), its
//! validation and its [`Source`], whose read yields the same [`TradingData`] the reference
//! schema's queries yield; [`crate::collectors::trading::render_labelled`] turns it into the
//! contract's families with `source="<name>"` on every series. Definitions that differ from
//! the reference schema's go through [`crate::trading::queries::Overrides`].
//!
//! The `reference` type is the trading collector itself ([`crate::collectors::trading`]):
//! its series keep the reference labels, so at most one source may be of that type. The
//! others run in [`crate::collectors::trading_sources`], each under its own deadline: a
//! source that fails or hangs reports `trading_source_up{source} 0` and costs nothing else.
//!
//! Shared pieces: [`sqlite`] (the read-only, lock-free SQLite reader every SQLite-backed
//! source uses), [`curve`] (a closed-trade or fill equity curve folded incrementally) and
//! the helpers below (store URLs, strategy ids, latency buckets, health families).

pub mod curve;
pub mod freqtrade;
pub mod http;
pub mod hummingbot;
pub mod rows;
pub mod sqlite;
pub mod watermark;

use crate::config::{Problem, Secret, TradingConfig};
use crate::metrics::{Families, Family};
use crate::trading::queries::TradingData;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generates [`SourceConfig`] (the `trading.sources[]` entries, tagged by `type:`) from the
/// list of source types, so that a new type is one line there.
macro_rules! source_types {
    ($($variant:ident => $config:ty),* $(,)?) => {
        /// One `trading.sources[]` entry; `type:` picks the variant (its name in lower case).
        #[derive(Clone, Debug, Deserialize)]
        #[serde(tag = "type", rename_all = "lowercase")]
        pub enum SourceConfig {
            $($variant($config),)*
        }

        impl SourceConfig {
            pub fn spec(&self) -> &dyn SourceSpec {
                match self {
                    $(SourceConfig::$variant(c) => c,)*
                }
            }

            pub fn spec_mut(&mut self) -> &mut dyn SourceSpec {
                match self {
                    $(SourceConfig::$variant(c) => c,)*
                }
            }
        }
    };
}

// One line per source type. The hummingbot type goes here too:
// `Hummingbot => hummingbot::HummingbotConfig,` (with `pub mod hummingbot;` above).
source_types! {
    Reference => ReferenceConfig,
    Freqtrade => freqtrade::FreqtradeConfig,
    Hummingbot => hummingbot::HummingbotConfig,
}

/// What every source type's config provides: validation at load, and its running source.
pub trait SourceSpec: Send + Sync {
    /// The `name:` (the `source` label value).
    fn name(&self) -> &str;

    /// The `type:` value, for messages.
    fn kind(&self) -> &'static str;

    /// Checks the type's own keys once, at load. Each problem is (key under the entry, e.g.
    /// `url`; reason), never quoting a secret.
    fn validate(&mut self) -> Vec<(String, String)>;

    /// The running source. `None` for the `reference` type, which the trading collector
    /// serves.
    fn build(&self, shared: &Shared) -> Option<Arc<dyn Source>>;

    /// How long one read may take (capped by the scrape's own budget).
    fn timeout(&self) -> Duration {
        DEFAULT_SOURCE_TIMEOUT
    }
}

/// A source's read budget when its config does not say.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// serde's default for a source entry's `timeout` key.
pub(crate) fn default_timeout() -> Duration {
    DEFAULT_SOURCE_TIMEOUT
}

/// The checks every bot's entry shares, appended to `out` as [`SourceSpec::validate`] returns
/// them: `starting_capital`, when given, is a positive amount of `currency` (the bot's stake or
/// quote currency, named in the reason), and `timeout` is not zero.
pub(crate) fn check_capital_and_timeout(
    starting_capital: Option<f64>,
    currency: &str,
    timeout: Duration,
    out: &mut Vec<(String, String)>,
) {
    if let Some(c) = starting_capital
        && !(c.is_finite() && c > 0.0)
    {
        out.push((
            "starting_capital".into(),
            format!("must be a positive number (the {currency} the bot started with)"),
        ));
    }
    if timeout.is_zero() {
        out.push(("timeout".into(), "must be greater than 0s".into()));
    }
}

/// Settings of the `trading:` section every source shares.
#[derive(Clone, Debug)]
pub struct Shared {
    /// Upper bounds of `trading_order_fill_latency_seconds` (+Inf implied).
    pub latency_buckets: Vec<f64>,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Shared {
    pub fn from_config(config: &TradingConfig) -> Shared {
        Shared {
            latency_buckets: config.histogram_buckets.clone(),
            connect_timeout: config.connect_timeout,
            statement_timeout: config.statement_timeout,
        }
    }
}

/// The reference schema (`trading.url`, `TRADING_DATABASE_URL`) given as a source entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    pub name: String,
    pub url: Secret,
}

impl SourceSpec for ReferenceConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "reference"
    }

    fn validate(&mut self) -> Vec<(String, String)> {
        match StoreUrl::parse(&self.url) {
            Ok(StoreUrl::Postgres(_)) => Vec::new(),
            _ => vec![(
                "url".into(),
                "must start with postgres:// or postgresql:// (the reference schema lives in \
                 PostgreSQL; value not shown: it may hold a password)"
                    .into(),
            )],
        }
    }

    fn build(&self, _shared: &Shared) -> Option<Arc<dyn Source>> {
        None
    }
}

/// Why one read of a source failed; the scrape reports `trading_source_up 0` for it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("store unreachable: {0}")]
    Unreachable(String),
    #[error("query failed: {0}")]
    Query(String),
    #[error("no consistent read before the deadline: {0}")]
    Busy(String),
}

/// What one read gets.
#[derive(Clone, Copy, Debug)]
pub struct ReadContext {
    pub now: DateTime<Utc>,
    /// The start of the trading day containing `now` (`trading.timezone`, `day_start`).
    pub day_start: DateTime<Utc>,
    /// When the read must have finished; the collector drops it then.
    pub deadline: Instant,
}

/// One bot's store.
pub trait Source: Send + Sync {
    /// The `source` label value.
    fn name(&self) -> &str;

    /// One consistent picture of the store, as the reference queries would give it.
    fn read<'a>(&'a self, ctx: ReadContext) -> BoxFuture<'a, Result<TradingData, SourceError>>;
}

/// Where a source's store is: `sqlite:///ABS/PATH` or a PostgreSQL URL.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(Secret),
}

impl StoreUrl {
    /// The reason never quotes the URL (it may hold a password).
    pub fn parse(url: &Secret) -> Result<StoreUrl, String> {
        let u = url.expose();
        if let Some(path) = u.strip_prefix("sqlite://") {
            if !path.starts_with('/') {
                return Err("a SQLite url must be sqlite:///ABSOLUTE/PATH (three slashes)".into());
            }
            if path.contains('?') || path.contains('#') {
                return Err(
                    "a SQLite url takes no parameters: the exporter chooses how it opens \
                            the file (read-only, without locking it)"
                        .into(),
                );
            }
            Ok(StoreUrl::Sqlite(PathBuf::from(path)))
        } else if u.starts_with("postgres://") || u.starts_with("postgresql://") {
            Ok(StoreUrl::Postgres(url.clone()))
        } else if u.starts_with("mysql://") {
            Err("MySQL stores are not supported yet (SQLite and PostgreSQL are)".into())
        } else {
            Err(
                "must start with sqlite:///, postgres:// or postgresql:// (value not shown: it \
                 may hold a password)"
                    .into(),
            )
        }
    }
}

/// A source name: the `source` label value, also used in logs and file names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Checks `trading.sources` (names, the one reference source, each type's keys) and folds a
/// reference entry into `trading.url`. `url_from_env`: `TRADING_DATABASE_URL` was set (it
/// wins over a reference entry's url, as env wins over the file).
pub fn validate_all(config: &mut TradingConfig, file: &str, url_from_env: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut bad = |key: String, reason: String| {
        out.push(Problem {
            file: file.to_string(),
            key,
            reason,
        })
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut reference: Option<usize> = None;
    let file_url = config.url.is_some() && !url_from_env;
    for (i, s) in config.sources.iter_mut().enumerate() {
        let key = |k: &str| format!("trading.sources[{i}].{k}");
        let name = s.spec().name().to_string();
        if !valid_name(&name) {
            bad(
                key("name"),
                format!(
                    "{name:?} is not a usable source name (1-64 of [A-Za-z0-9_.-], starting \
                     with a letter or digit)"
                ),
            );
        } else if let Some(j) = seen.get(&name) {
            bad(
                key("name"),
                format!("{name:?} is already the name of trading.sources[{j}]"),
            );
        } else {
            seen.insert(name.clone(), i);
        }
        for (k, reason) in s.spec_mut().validate() {
            bad(key(&k), reason);
        }
        if let SourceConfig::Reference(r) = s {
            if let Some(j) = reference {
                bad(
                    key("type"),
                    format!(
                        "trading.sources[{j}] is already the reference source (its series carry \
                         no source label, so there can be only one)"
                    ),
                );
            } else if file_url {
                bad(
                    key("type"),
                    "trading.url is set too: give the reference database once".into(),
                );
            } else {
                reference = Some(i);
                config.reference_name = r.name.clone();
                if !url_from_env {
                    config.url = Some(r.url.clone());
                }
            }
        }
    }
    out
}

/// Every configured source other than the reference one.
pub fn build_all(config: &TradingConfig) -> Vec<(Arc<dyn Source>, Duration)> {
    let shared = Shared::from_config(config);
    config
        .sources
        .iter()
        .filter_map(|s| s.spec().build(&shared).map(|src| (src, s.spec().timeout())))
        .collect()
}

/// A source's `trading_source_up` and `trading_source_last_success_timestamp_seconds`.
pub struct SourceHealth {
    name: String,
    last_success: Mutex<Option<f64>>,
}

impl SourceHealth {
    pub fn new(name: &str) -> SourceHealth {
        SourceHealth {
            name: name.to_string(),
            last_success: Mutex::new(None),
        }
    }

    /// Records a successful read now and returns the families saying so.
    pub fn succeeded(&self) -> Families {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if let Ok(mut g) = self.last_success.lock() {
            *g = Some(now);
        }
        self.families(true)
    }

    pub fn failed(&self) -> Families {
        self.families(false)
    }

    fn families(&self, up: bool) -> Families {
        let l = [("source", self.name.as_str())];
        let mut fams = Families::default();
        let mut f = Family::gauge(
            "trading_source_up",
            "Whether the trading source's last read succeeded (1) or not (0).",
        );
        f.add(&l, if up { 1.0 } else { 0.0 });
        fams.push(f);
        if let Some(t) = self.last_success.lock().ok().and_then(|g| *g) {
            let mut f = Family::gauge(
                "trading_source_last_success_timestamp_seconds",
                "Unix time of the trading source's last successful read (absent before the first).",
            );
            f.add(&l, t);
            fams.push(f);
        }
        fams
    }
}

/// Stable small ids for the strategy names a source finds (the rendering keys rows by id).
#[derive(Debug, Default, Clone)]
pub struct StrategyIds {
    ids: HashMap<String, i64>,
}

impl StrategyIds {
    pub fn id(&mut self, name: &str) -> i64 {
        let next = self.ids.len() as i64 + 1;
        *self.ids.entry(name.to_string()).or_insert(next)
    }

    pub fn get(&self, name: &str) -> Option<i64> {
        self.ids.get(name).copied()
    }

    /// (id, name) pairs, ordered by name.
    pub fn all(&self) -> Vec<(i64, &str)> {
        let mut v: Vec<(i64, &str)> = self.ids.iter().map(|(n, i)| (*i, n.as_str())).collect();
        v.sort_by(|a, b| a.1.cmp(b.1));
        v
    }
}

/// The upper bound of the latency bucket `seconds` falls in (`+Inf` beyond the last): the
/// key of a [`crate::trading::queries::LatencyRow`].
pub fn latency_bucket(buckets: &[f64], seconds: f64) -> f64 {
    buckets
        .iter()
        .copied()
        .find(|le| seconds <= *le)
        .unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let p = |s: &str| StoreUrl::parse(&Secret::new(s));
        assert_eq!(
            p("sqlite:///srv/ft/tradesv3.sqlite"),
            Ok(StoreUrl::Sqlite(PathBuf::from("/srv/ft/tradesv3.sqlite")))
        );
        assert!(p("sqlite://tradesv3.sqlite").is_err());
        assert!(p("sqlite:///x.sqlite?mode=rw").is_err());
        assert!(matches!(
            p("postgresql://u:p@h/db"),
            Ok(StoreUrl::Postgres(_))
        ));
        let e = p("mysql://u:hunter2@h/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(p("http://x").is_err());
    }

    #[test]
    fn names_are_label_safe() {
        for ok in ["ftbot", "desk-1", "a.b_c", "0"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a b", "a\"b", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn latency_buckets() {
        let b = [0.5, 1.0, 5.0];
        assert_eq!(latency_bucket(&b, 0.5), 0.5);
        assert_eq!(latency_bucket(&b, 0.6), 1.0);
        assert_eq!(latency_bucket(&b, 9.0), f64::INFINITY);
    }
}
