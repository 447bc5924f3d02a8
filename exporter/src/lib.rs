//! quantwatch-exporter: host, PostgreSQL, Redis and trading metrics for Prometheus.
//!
//! `main.rs` only parses arguments and calls [`run`]; everything else lives here so tests and
//! benchmarks drive the same code the binary does.

pub mod allocator;
pub mod collectors;
pub mod config;
pub mod metrics;
pub mod probe;
pub mod process;
pub mod reload;
pub mod residency;
pub mod scrape;
pub mod simulate;
pub mod trading;
pub mod web;
pub use allocator::tune_allocator;
/// The exporter-toolkit web config lives in the shared crate (the router reads it too).
pub use quantwatch_web::web_config;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// The compiler that built us, for `quantwatch_exporter_build_info`.
pub const RUST_VERSION: &str = "1.95";

/// Exit code for invalid configuration or arguments (sysexits EX_USAGE).
pub const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "quantwatch-exporter",
    version,
    about = "Prometheus exporter for trading systems: host, PostgreSQL, Redis and trading metrics"
)]
pub struct Cli {
    /// YAML configuration file (optional: with none, host metrics are published).
    #[arg(long, global = true, env = "QUANTWATCH_EXPORTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides web.listen_address).
    #[arg(
        long = "web.listen-address",
        env = "QUANTWATCH_EXPORTER_LISTEN_ADDRESS"
    )]
    pub listen_address: Option<String>,
    /// exporter-toolkit web config file enabling TLS and/or basic auth.
    #[arg(long = "web.config.file", env = "QUANTWATCH_EXPORTER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,
    /// postgres_exporter's custom-query file (queries.yaml); overrides
    /// postgres.extend_query_path and PG_EXPORTER_EXTEND_QUERY_PATH.
    #[arg(long = "extend.query-path")]
    pub extend_query_path: Option<PathBuf>,
    /// Log format.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "text",
        env = "QUANTWATCH_LOG_FORMAT",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log level (RUST_LOG, when set, wins).
    #[arg(
        long = "log.level",
        default_value = "info",
        env = "QUANTWATCH_LOG_LEVEL",
        global = true
    )]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// node_exporter's flags (`--collector.*`, `--path.*`), taken out before clap parses.
    #[arg(skip)]
    pub node: collectors::node::settings::NodeFlags,
}

/// How parsing the command line ended without a [`Cli`].
pub enum CliExit {
    /// `--help` / `--version`: print and exit 0.
    Info(clap::Error),
    /// A bad or unknown flag: print and exit 64 (EX_USAGE), naming it.
    Usage(String),
}

/// Parses `args` (program name first): node_exporter's flags first, then ours with clap.
pub fn parse_cli(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, CliExit> {
    let (node, rest) = collectors::node::settings::NodeFlags::extract(args.into_iter().collect())
        .map_err(CliExit::Usage)?;
    match Cli::try_parse_from(rest) {
        Ok(mut cli) => {
            cli.node = node;
            Ok(cli)
        }
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Err(CliExit::Info(e))
            }
            _ => Err(CliExit::Usage(e.to_string())),
        },
    }
}

pub use quantwatch_web::logging::LogFormat;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration (and web config) and exit: 0 when valid, 64 otherwise.
    CheckConfig,
    /// Apply the trading reference schema (tables, indexes, summary triggers) to a database.
    /// Never done automatically: the collector only reads.
    Migrate {
        /// Default: trading.url / TRADING_DATABASE_URL, then DATABASE_URL.
        #[arg(long = "database-url")]
        database_url: Option<String>,
    },
    /// Write realistic trading activity into a database with the reference schema.
    Simulate(simulate::SimulateArgs),
}

/// Why the exporter stopped with an error; the binary maps each to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("migrate: {0}")]
    Migrate(#[from] trading::migrate::MigrateError),
    #[error("simulate: {0}")]
    Simulate(#[from] simulate::SimulateError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::Usage(_) => EX_USAGE,
            RunError::Bind { .. } | RunError::Migrate(_) => 1,
            RunError::Simulate(e) => match e {
                simulate::SimulateError::Database(_)
                | simulate::SimulateError::Freqtrade { .. } => 1,
                _ => EX_USAGE,
            },
        }
    }
}

/// The exporter's async runtime: one thread. A scrape's async work (PostgreSQL and Redis
/// replies, rendering) is one task that `join_all` polls on a single worker anyway, and the
/// host collector reads on its own blocking thread; more workers only added thread stacks and
/// allocator caches to the resident memory (README, "Performance").
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Sets up `tracing` once for the process.
pub fn init_tracing(format: LogFormat, level: &str) {
    quantwatch_web::logging::init(format, level);
}

/// Loads and validates everything the server needs, without starting it.
pub fn load(cli: &Cli) -> Result<(config::Config, web_config::WebSecurity), config::ConfigError> {
    let mut cfg = config::Config::load(cli.config.as_deref(), &config::ProcessEnv)?;
    cli.node.apply(&mut cfg.host);
    let flag_problems = cfg.host.validate("<command line>");
    if !flag_problems.is_empty() {
        return Err(config::ConfigError {
            problems: flag_problems,
        });
    }
    if let Some(addr) = &cli.listen_address {
        config::check_listen_address(addr).map_err(|reason| config::ConfigError {
            problems: vec![config::Problem {
                file: "<command line>".into(),
                key: "--web.listen-address".into(),
                reason,
            }],
        })?;
        cfg.web.listen_address = addr.clone();
    }
    if let Some(p) = &cli.web_config_file {
        cfg.web.config_file = Some(p.clone());
    }
    if let Some(p) = &cli.extend_query_path {
        cfg.postgres.extend_query_path = Some(p.clone());
    }
    let security = match &cfg.web.config_file {
        Some(p) => web_config::load(p).map_err(|problems| config::ConfigError { problems })?,
        None => web_config::WebSecurity::default(),
    };
    Ok((cfg, security))
}

/// Runs the exporter until SIGTERM/SIGINT; SIGHUP reloads the configuration (`reload`).
pub async fn run(cli: Cli) -> Result<(), RunError> {
    match &cli.command {
        Some(Command::Migrate { database_url }) => {
            return migrate(&cli, database_url.clone()).await;
        }
        Some(Command::Simulate(args)) => {
            let report = simulate::run(args, web::shutdown_signal()).await?;
            println!(
                "simulated {} orders, {} fills, {} equity snapshots",
                report.orders, report.fills, report.snapshots
            );
            return Ok(());
        }
        _ => {}
    }
    let (cfg, security) = load(&cli)?;
    if let Some(Command::CheckConfig) = cli.command {
        println!("configuration is valid");
        return Ok(());
    }
    // Installed before anything is served: SIGHUP's default action would end the process.
    let hangups = quantwatch_web::signals::hangup_channel();
    let live = Arc::new(quantwatch_web::reload::Swap::new(reload::Live::build(
        cfg, None,
    )));
    let security = Arc::new(quantwatch_web::reload::Swap::new(security));
    let status = Arc::new(quantwatch_web::reload::ReloadStatus::new());
    let app = web::router(
        web::AppState {
            live: live.clone(),
            reload: status.clone(),
        },
        security.clone(),
    );
    let listen_address = live.get().config.web.listen_address.clone();
    let listener = tokio::net::TcpListener::bind(&listen_address)
        .await
        .map_err(|source| RunError::Bind {
            addr: listen_address.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let sec = security.get();
    tracing::info!(
        address = %local,
        tls = sec.tls.is_some(),
        basic_auth = sec.auth.is_some(),
        collectors = ?live.get().collector_names(),
        "quantwatch-exporter listening"
    );
    residency::release_and_log("start");
    if let Some(hangups) = hangups {
        let cli = Arc::new(cli);
        let (live, security) = (live.clone(), security.clone());
        tokio::spawn(quantwatch_web::reload::reload_on_hangup(
            hangups,
            status,
            move || {
                let (cli, live, security) = (cli.clone(), live.clone(), security.clone());
                async move {
                    // Reading files and hashing the unknown-user bcrypt stay off the async threads.
                    tokio::task::spawn_blocking(move || {
                        let outcome = reload::reload(&cli, &live, &security);
                        residency::release_and_log("reload");
                        outcome
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(config::ConfigError {
                            problems: vec![config::Problem {
                                file: "-".into(),
                                key: "-".into(),
                                reason: format!("the reload task failed: {e}"),
                            }],
                        })
                    })
                }
            },
        ));
    }
    web::serve_with_tls(
        listener,
        app,
        move || security.get().tls.clone(),
        web::Limits::default(),
        web::shutdown_signal(),
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// `migrate`: the URL from the flag, else the trading URL of the configuration
/// (TRADING_DATABASE_URL / trading.url), else DATABASE_URL: migrating is an explicit act, so
/// here DATABASE_URL still counts even though it alone does not turn the collector on.
async fn migrate(cli: &Cli, database_url: Option<String>) -> Result<(), RunError> {
    let cfg = config::Config::load(cli.config.as_deref(), &config::ProcessEnv)?;
    let url = database_url
        .filter(|u| !u.is_empty())
        .or_else(|| cfg.trading.url.as_ref().map(|u| u.expose().to_string()))
        .or_else(|| cfg.postgres.url.as_ref().map(|u| u.expose().to_string()))
        .ok_or_else(|| {
            RunError::Usage(
                "migrate: no database: pass --database-url or set TRADING_DATABASE_URL or DATABASE_URL"
                    .to_string(),
            )
        })?;
    let report = trading::migrate::run(&url, &cfg.trading.histogram_buckets).await?;
    if report.applied.is_empty() {
        println!("trading schema is up to date");
    } else {
        println!("applied migrations {:?}", report.applied);
    }
    if report.buckets_changed {
        println!(
            "fill-latency buckets set to {:?}; summaries rebuilt",
            cfg.trading.histogram_buckets
        );
    }
    Ok(())
}
