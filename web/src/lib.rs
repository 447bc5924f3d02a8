//! What the exporter and the alert router serve alike, kept in one place so that a hardening
//! fix (a timeout, a header check, a constant-time comparison) reaches both binaries at once.
//!
//! - [`web_config`]: the Prometheus exporter-toolkit `--web.config.file` (TLS, client
//!   certificates, bcrypt `basic_auth_users`, response headers), validated at load.
//! - [`serve`]: our hyper accept loop: TLS on the same port, timeouts that close stalled
//!   connections, a connection limit below the open-files limit, graceful drain.
//! - [`config`]: `${VAR}` interpolation and YAML parsing whose errors name file, key and
//!   position but never echo the text of a line (it may hold a password).
//! - [`auth`]: reading `Authorization` headers and comparing secrets in constant time.
//! - [`logging`] and [`signals`]: tracing set-up and SIGTERM/SIGINT/SIGHUP plumbing;
//!   [`reload`]: swapping a reloaded configuration in whole and publishing the outcome.
//! - [`heap`]: the C allocator's in-use and free bytes, and giving free pages back, so a
//!   long-running process's resident memory follows its live data.

pub mod auth;
pub mod config;
pub mod heap;
pub mod logging;
pub mod reload;
pub mod serve;
pub mod signals;
pub mod web_config;

pub use config::Problem;
