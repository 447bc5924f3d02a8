//! Our own binaries (exporter, router) run as real processes on a free loopback port.

use crate::process::{Child, RunAs, free_port, wait_until};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// Environment variables a test must set explicitly if it wants them: inheriting them from
/// the developer's shell would make tests depend on the machine.
const SCRUBBED_ENV: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "TRADING_DATABASE_URL",
    "TRADING_TIMEZONE",
    "TRADING_DAY_START",
    "ROUTER_DATABASE_URL",
    "ROUTER_WEBHOOK_TOKEN",
    "ROUTER_API_TOKEN",
    "ROUTER_PUBLIC_URL",
    "ROUTER_ACK_SECRET",
    "ROUTER_WEB_CONFIG_FILE",
    "QUANTWATCH_EXPORTER_WEB_CONFIG_FILE",
    "RUST_LOG",
    // The exporter adds its malloc tcache bound to this one (exporter/src/allocator.rs).
    "GLIBC_TUNABLES",
];

/// A running instance of one of our binaries; killed on drop.
pub struct App {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl App {
    /// Starts `binary` with `--web.listen-address 127.0.0.1:PORT` plus `args` and `env`, and
    /// waits until `/healthz` answers 200.
    pub fn start(binary: &str, args: &[&str], env: &[(&str, &str)]) -> App {
        App::start_limited(binary, args, env, None, RunAs::Me)
    }

    /// [`App::start`] as another user (uid, gid): for tests of what an unprivileged service
    /// may not read, which root (the CI user) always could.
    pub fn start_as(binary: &str, args: &[&str], env: &[(&str, &str)], uid: u32, gid: u32) -> App {
        App::start_limited(binary, args, env, None, RunAs::User(uid, gid))
    }

    /// [`App::start`] with the child's open-files limit (`RLIMIT_NOFILE`, soft and hard) set
    /// to `nofile`, as a service manager would: for tests of behaviour at that limit.
    pub fn start_with_nofile(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
        nofile: u64,
    ) -> App {
        App::start_limited(binary, args, env, Some((nofile, nofile)), RunAs::Me)
    }

    /// [`App::start`] with the child's open-files limit set to `soft` and `hard` separately
    /// (systemd's default is soft 1,024, hard 524,288): for tests of raising it at start.
    pub fn start_with_nofile_limits(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
        soft: u64,
        hard: u64,
    ) -> App {
        App::start_limited(binary, args, env, Some((soft, hard)), RunAs::Me)
    }

    fn start_limited(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
        nofile: Option<(u64, u64)>,
        run_as: RunAs,
    ) -> App {
        let dir = tempfile::Builder::new()
            .prefix("qw-app-")
            .tempdir()
            .expect("creating a temp dir must work");
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .current_dir(dir.path());
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some((soft, hard)) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the closure.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let name = Path::new(binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| binary.to_string());
        run_as.own(dir.path());
        let mut child = Child::spawn(&name, cmd, run_as, &dir.path().join("app.log"));
        let url = format!("http://127.0.0.1:{port}/healthz");
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("building a reqwest client must work");
        let ready = wait_until(Duration::from_secs(30), || {
            child.assert_running();
            client
                .get(&url)
                .send()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false)
        });
        assert!(
            ready,
            "{name} did not become healthy:\n{}",
            child.log_tail()
        );
        App { child, port, dir }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process's working directory (its `./data/` lives here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn child_pid(&self) -> i32 {
        self.child.pid()
    }

    /// `kill -9` the process (a crash: no shutdown path runs); the handle stays for a restart
    /// test to drop or replace.
    pub fn kill_9(&self) {
        let ok = std::process::Command::new("kill")
            .arg("-9")
            .arg(self.child_pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -9 {}", self.child_pid());
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// GET `path`; returns (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        crate::http_get(&format!("{}{path}", self.url()))
    }

    /// GET /metrics as Prometheus does (with its timeout header); returns the parsed body and
    /// how long the answer took.
    pub fn scrape_with_timeout(
        &self,
        timeout_secs: f64,
    ) -> (crate::prom_text::Exposition, Duration) {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs_f64(timeout_secs * 3.0 + 5.0))
            .build()
            .expect("building a reqwest client must work");
        let start = std::time::Instant::now();
        let resp = client
            .get(format!("{}/metrics", self.url()))
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                timeout_secs.to_string(),
            )
            .send()
            .unwrap_or_else(|e| panic!("scrape failed: {e}"));
        let status = resp.status().as_u16();
        let body = resp.text().unwrap_or_default();
        let took = start.elapsed();
        assert_eq!(status, 200, "scrape answered {status}: {body}");
        (crate::prom_text::parse(&body), took)
    }

    /// GET /metrics with a 10 s scrape timeout.
    pub fn scrape(&self) -> crate::prom_text::Exposition {
        self.scrape_with_timeout(10.0).0
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("app.log")).unwrap_or_default()
    }
}

/// Raises this (test) process's soft open-files limit to at least `want` (up to the hard
/// limit) and returns the new soft limit: for tests that hold many sockets themselves.
pub fn raise_own_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max.min(want),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}
