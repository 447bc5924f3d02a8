//! freqtrade: its `trades` and `orders` tables (SQLite by default, or PostgreSQL), and
//! optionally its REST API (contract, "Trading sources", **freqtrade**).

use super::{ReadContext, Shared, Source, SourceError, SourceSpec, StoreUrl};
use crate::config::Secret;
use crate::trading::queries::TradingData;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `trading.sources[]` entry with `type: freqtrade`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreqtradeConfig {
    pub name: String,
    /// `sqlite:///ABS/PATH/tradesv3.sqlite` or `postgres://…` (freqtrade's `db_url`).
    pub url: Secret,
    /// The stake currency the bot started with (freqtrade's `dry_run_wallet` or the
    /// wallet's starting balance); without it the equity and drawdown families are absent.
    #[serde(default)]
    pub starting_capital: Option<f64>,
    /// freqtrade's REST API (`http://127.0.0.1:8080`), for unrealized PnL, current rates,
    /// heartbeat and running state.
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub api_username: Option<String>,
    #[serde(default)]
    pub api_password: Option<Secret>,
    /// One read of the store and the API together.
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    super::DEFAULT_SOURCE_TIMEOUT
}

impl SourceSpec for FreqtradeConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "freqtrade"
    }

    fn validate(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(reason) = StoreUrl::parse(&self.url) {
            out.push(("url".to_string(), reason));
        }
        if let Some(c) = self.starting_capital
            && !(c.is_finite() && c > 0.0)
        {
            out.push((
                "starting_capital".into(),
                "must be a positive number (the stake currency the bot started with)".into(),
            ));
        }
        if self.api_url.as_deref().is_some_and(str::is_empty) {
            self.api_url = None;
        }
        match &self.api_url {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => out.push((
                "api_url".into(),
                "must start with http:// or https://".into(),
            )),
            Some(_) => {
                if self.api_username.is_some() != self.api_password.is_some() {
                    out.push((
                        "api_password".into(),
                        "api_username and api_password go together (freqtrade's API \
                         answers only with both)"
                            .into(),
                    ));
                }
            }
            None => {
                if self.api_username.is_some() || self.api_password.is_some() {
                    out.push((
                        "api_url".into(),
                        "api_username/api_password are set but api_url is not".into(),
                    ));
                }
            }
        }
        if self.timeout.is_zero() {
            out.push(("timeout".into(), "must be greater than 0s".into()));
        }
        out
    }

    fn build(&self, _shared: &Shared) -> Option<Arc<dyn Source>> {
        Some(Arc::new(Freqtrade {
            name: self.name.clone(),
        }))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

pub struct Freqtrade {
    name: String,
}

impl Source for Freqtrade {
    fn name(&self) -> &str {
        &self.name
    }

    fn read<'a>(&'a self, _ctx: ReadContext) -> BoxFuture<'a, Result<TradingData, SourceError>> {
        // The framework's first commit: reading arrives in the next one.
        Box::pin(async {
            Err(SourceError::Query(
                "freqtrade reading not written yet".into(),
            ))
        })
    }
}
