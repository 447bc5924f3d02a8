//! quantwatch-alert-router binary: parse args, init tracing, call `run`.

use std::process::ExitCode;

use clap::Parser;
use quantwatch_alert_router::app::cli::Cli;
use quantwatch_alert_router::app::run;
use quantwatch_web::logging::{LogFormat, init};

/// Malloc arenas the router's threads share (README, "Soak"): with glibc's default (up to
/// 16 on two cores: tokio's workers, one thread per SQLite connection, blocking threads) each
/// kept its own free chunks resident; with two, the soak's VmRSS was ~0.9 MiB lower (README, "Soak").
const ARENAS: usize = 2;

fn main() -> ExitCode {
    // Before any thread exists: arenas made earlier would stay.
    let arenas = quantwatch_web::heap::limit_arenas(ARENAS);
    let cli = Cli::parse();
    let format = if cli.log_format == "json" {
        LogFormat::Json
    } else {
        LogFormat::Text
    };
    init(format, "info");
    if arenas == quantwatch_web::heap::Arenas::FromEnvironment {
        tracing::info!(
            "malloc arenas left as the environment sets them (MALLOC_ARENA_MAX or GLIBC_TUNABLES)"
        );
    }
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quantwatch-alert-router: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quantwatch-alert-router: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
