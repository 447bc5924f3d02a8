//! Tracing set-up, one way for both binaries: logs go to stderr (stdout stays free for
//! subcommand output), text or JSON, `RUST_LOG` wins over the configured level.

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; a second call (tests) is a no-op. Both binaries call this
/// first thing, so it also raises the open-files limit
/// ([`crate::serve::raise_open_files_limit`]) before any configuration reads it; the accept
/// loop logs the outcome.
pub fn init(format: LogFormat, level: &str) {
    crate::serve::raise_open_files_limit();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
