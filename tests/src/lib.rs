//! The real-services test harness every integration test of the workspace uses.
//!
//! Tests run against real PostgreSQL, Redis, Prometheus, Alertmanager and an SMTP server
//! (aiosmtpd), each started here on a free loopback port in its own temp dir, and killed when
//! its handle drops — also when the test panics. Children additionally get
//! `PR_SET_PDEATHSIG`, so a test binary killed by a timeout leaves no server behind.
//!
//! Every constructor is synchronous and panics with a message that says what to do (a missing
//! binary names the Debian package). Call them from the test's own thread: the parent-death
//! signal fires when the *thread* that spawned the child exits.

pub mod app;
pub mod btrfs;
pub mod demo;
pub mod fakes;
pub mod freqtrade;
pub mod hummingbot;
pub mod node;
pub mod process;
pub mod prom_text;
pub mod servers;
pub mod stack;
pub mod systemd;
pub mod tls;
pub mod tmpfs;

pub use app::App;
pub use process::{Child, free_port, http_get, require, wait_until};
pub use servers::{
    Alertmanager, GoExporter, Postgres, Prometheus, Redis, Smtp, SmtpOptions, SmtpTls,
};
