use quantwatch_exporter::{CliExit, EX_USAGE, parse_cli, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything else: on success this process image is replaced.
    let reexec = quantwatch_exporter::allocator::reexec_with_tunables();
    quantwatch_exporter::tune_allocator();
    let cli = match parse_cli(std::env::args_os()) {
        Ok(cli) => cli,
        Err(CliExit::Info(e)) => e.exit(),
        Err(CliExit::Usage(msg)) => {
            eprintln!("quantwatch-exporter: {}", msg.trim_end());
            return ExitCode::from(EX_USAGE);
        }
    };
    quantwatch_exporter::init_tracing(cli.log_format, &cli.log_level);
    if let Err(e) = reexec {
        tracing::warn!(error = %e, "cannot re-execute with the malloc tcache bound (GLIBC_TUNABLES); running with glibc's default cache");
    }
    // One rustls provider for every TLS user in the process (sqlx, redis, the web server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match quantwatch_exporter::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quantwatch-exporter: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quantwatch-exporter: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
