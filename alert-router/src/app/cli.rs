//! Command line: flags common to both binaries, and the `check-config` and `test-send`
//! subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::RunError;
use crate::app::config::Config;
use crate::core::settings::{Env, ProcessEnv};

#[derive(Debug, Parser)]
#[command(
    name = "quantwatch-alert-router",
    version,
    about = "Durable Alertmanager webhook receiver with DingTalk, WeCom, Slack and email delivery"
)]
pub struct Cli {
    /// YAML configuration file (optional: without it the router logs each notification).
    #[arg(long, global = true, env = "ROUTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address; overrides ROUTER_LISTEN_ADDRESS and the file.
    #[arg(long = "web.listen-address", global = true)]
    pub listen_address: Option<String>,
    /// exporter-toolkit web config file (TLS, basic_auth_users for the status page and API,
    /// response headers); overrides ROUTER_WEB_CONFIG_FILE and the file's web.config_file.
    #[arg(long = "web.config.file", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(
        long = "log.format",
        global = true,
        env = "ROUTER_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router (the default).
    Serve,
    /// Validate the configuration; exit 64 listing every problem.
    CheckConfig,
    /// Send a test notification through one channel, bypassing the queue.
    TestSend {
        #[arg(long)]
        channel: String,
    },
}

/// The process environment with the command-line listen address and web config on top.
pub struct CliEnv<'a>(pub &'a Cli);

impl Env for CliEnv<'_> {
    fn get(&self, key: &str) -> Option<String> {
        if key == "ROUTER_LISTEN_ADDRESS"
            && let Some(a) = &self.0.listen_address
        {
            return Some(a.clone());
        }
        if key == "ROUTER_WEB_CONFIG_FILE"
            && let Some(p) = &self.0.web_config_file
        {
            return Some(p.display().to_string());
        }
        ProcessEnv.get(key)
    }
}

pub async fn test_send(config: &Config, channel: &str) -> Result<(), RunError> {
    let chans = config.build_channels().map_err(RunError::Channel)?;
    let Some(ch) = chans.iter().find(|c| c.name() == channel) else {
        let names: Vec<&str> = chans.iter().map(|c| c.name()).collect();
        return Err(RunError::Channel(format!(
            "no channel named {channel:?}; configured: {}",
            names.join(", ")
        )));
    };
    let msg = ch
        .render(&[crate::core::model::test_alert(crate::core::clock::now_ms())])
        .map_err(|e| RunError::Channel(e.to_string()))?;
    ch.send(&msg)
        .await
        .map_err(|e| RunError::Channel(format!("channel {channel}: {e}")))?;
    tracing::info!(%channel, "test notification sent");
    Ok(())
}
