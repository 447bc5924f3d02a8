//! SIGHUP reload: re-read the configuration file and the web config, build everything the new
//! configuration needs, then put it in force in one swap (shared plumbing:
//! `quantwatch_web::reload`).
//!
//! What a reload applies: every collector setting (host collectors, filters, textfile
//! directory, PostgreSQL/Redis/trading URLs and timeouts: their collectors are rebuilt and
//! reconnect), `probe.targets` and `auth_modules`, the `--extend.query-path` file, scrape
//! timeouts, and the web config (basic auth users and headers from the next request, TLS from
//! the next connection). What it cannot: the listen address (logged; a restart applies it) and
//! the environment, which a process cannot re-read.
//!
//! A configuration that fails validation, a web config that does not load, or a query file
//! that cannot be read or parsed refuses the whole reload: the previous configuration keeps
//! serving and `quantwatch_exporter_config_last_reload_successful` drops to 0.

use crate::collectors::{self, Collector};
use crate::config::{Config, ConfigError, Problem};
use crate::probe::Probes;
use crate::scrape::Scraper;
use crate::web_config::WebSecurity;
use quantwatch_web::reload::Swap;
use std::sync::Arc;

/// The metric name prefix of the reload families (`…_config_last_reload_successful`).
pub const METRIC_PREFIX: &str = "quantwatch_exporter";

/// What one configuration builds; replaced whole by a reload.
pub struct Live {
    pub config: Config,
    pub scraper: Arc<Scraper>,
    pub probes: Arc<Probes>,
}

impl Live {
    /// Builds the collectors and probes of `config`. The host collector of `previous` is kept
    /// when the `host` settings did not change: it remembers which node collectors are stuck
    /// on a hung read, and a fresh one would start another blocking thread on the same read.
    pub fn build(config: Config, previous: Option<&Live>) -> Live {
        let kept_host: Option<Arc<dyn Collector>> = previous
            .filter(|p| same_host_settings(&p.config, &config))
            .and_then(|p| {
                p.scraper
                    .collectors()
                    .iter()
                    .find(|c| c.name() == "host")
                    .cloned()
            });
        let mut collectors = match &kept_host {
            Some(_) => {
                let mut rest = config.clone();
                rest.host.enabled = false;
                collectors::build(&rest)
            }
            None => collectors::build(&config),
        };
        if let Some(host) = kept_host {
            // `build` puts the host collector first; keep the output order.
            collectors.insert(0, host);
        }
        let scraper = Arc::new(Scraper::new(
            collectors,
            config.web.default_scrape_timeout,
            config.web.timeout_offset,
        ));
        let probes = Arc::new(Probes::new(&config));
        Live {
            config,
            scraper,
            probes,
        }
    }

    pub fn collector_names(&self) -> Vec<&'static str> {
        self.scraper.collectors().iter().map(|c| c.name()).collect()
    }
}

/// The `host` sections compare equal by their debug text: every field is plain data (paths,
/// flags, patterns), and this keeps comparing whatever fields the node collectors add.
fn same_host_settings(a: &Config, b: &Config) -> bool {
    a.host.enabled && b.host.enabled && format!("{:?}", a.host) == format!("{:?}", b.host)
}

/// One reload: load and validate everything first, then swap `live` and `security`. On any
/// problem nothing is swapped and every problem is returned (file, key, reason).
pub fn reload(
    cli: &crate::Cli,
    live: &Swap<Live>,
    security: &Swap<WebSecurity>,
) -> Result<(), ConfigError> {
    let (config, new_security) = crate::load(cli)?;
    check_query_file(&config)?;
    let previous = live.get();
    if previous.config.web.listen_address != config.web.listen_address {
        tracing::warn!(
            running = %previous.config.web.listen_address,
            configured = %config.web.listen_address,
            "web.listen_address changed: it applies at the next restart"
        );
    }
    let next = Live::build(config, Some(&previous));
    tracing::info!(
        collectors = ?next.collector_names(),
        probe_targets = next.config.probe.targets.len(),
        tls = new_security.tls.is_some(),
        basic_auth = new_security.auth.is_some(),
        "new configuration in force"
    );
    security.set(new_security);
    live.set(next);
    Ok(())
}

/// At start a broken query file is reported the way postgres_exporter reports it
/// (`pg_exporter_user_queries_load_error 1`, the exporter runs on). On reload there is a
/// working file in force to keep, so a broken one refuses the reload instead.
fn check_query_file(config: &Config) -> Result<(), ConfigError> {
    let Some(path) = &config.postgres.extend_query_path else {
        return Ok(());
    };
    let used = config.postgres.url.is_some()
        || config
            .probe
            .targets
            .iter()
            .any(|t| !(t.starts_with("redis://") || t.starts_with("rediss://")));
    if !used {
        return Ok(());
    }
    let problem = |reason: String| ConfigError {
        problems: vec![Problem {
            file: path.display().to_string(),
            key: "-".to_string(),
            reason,
        }],
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| problem(format!("cannot read the query file: {e}")))?;
    collectors::postgres::user_queries::parse(&text)
        .map_err(|e| problem(format!("invalid query file: {e}")))?;
    Ok(())
}
