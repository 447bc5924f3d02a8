//! Real servers on free loopback ports in temp dirs: PostgreSQL, Redis, Prometheus,
//! Alertmanager, an aiosmtpd SMTP server and the Go exporters we compare against.

use crate::process::{Child, RunAs, free_port, port_open, require, wait_until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("creating a temp dir must work")
}

/// Writes (relative path, content) pairs under `dir`, creating parent directories.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        write(&path, content);
    }
}

fn write(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Finds a PostgreSQL server binary: on PATH, else in Debian's versioned directory.
fn pg_binary(name: &str) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        if let Some(p) = versions.pop() {
            return p;
        }
    }
    require(name, "postgresql")
}

/// Waits until the Prometheus-style server on `port` answers `/-/ready` with 2xx.
fn wait_ready(child: &mut Child, port: u16, what: &str) {
    let client = blocking_client();
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let ready = wait_until(START_TIMEOUT, || {
        child.assert_running();
        client
            .get(&url)
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });
    assert!(ready, "{what} did not start:\n{}", child.log_tail());
}

fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building a reqwest client must work")
}

/// A throwaway PostgreSQL cluster (initdb in a temp dir, trust auth on 127.0.0.1).
pub struct Postgres {
    dir: TempDir,
    port: u16,
    run_as: RunAs,
    child: Option<Child>,
}

impl Postgres {
    pub fn start() -> Postgres {
        let run_as = RunAs::postgres_if_root();
        let dir = temp_dir("qw-pg-");
        run_as.own(dir.path());
        let data = dir.path().join("data");
        let mut initdb = Command::new(pg_binary("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C.UTF-8"]);
        let log = dir.path().join("initdb.log");
        let mut child = Child::spawn("initdb", initdb, run_as, &log);
        let status = child
            .wait_exit(Duration::from_secs(120))
            .expect("initdb did not finish in 120 s");
        assert!(
            status.success(),
            "initdb failed ({status}):\n{}",
            child.log_tail()
        );
        let mut pg = Postgres {
            dir,
            port: free_port(),
            run_as,
            child: None,
        };
        pg.start_again();
        pg
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url_for(name)
    }

    /// Runs `sql` with psql (-At, stop on error) and returns its stdout; panics on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(require("psql", "postgresql-client"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("running psql must work");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Fast shutdown (SIGINT), as an operator's `pg_ctl stop -m fast`.
    pub fn stop(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            child.signal_main(libc::SIGINT);
            if child.wait_exit(Duration::from_secs(20)).is_none() {
                child.signal(libc::SIGKILL);
            }
        }
    }

    /// Starts the server again on the same data dir and port.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        let sock = self.dir.path().join("sock");
        if !sock.exists() {
            std::fs::create_dir(&sock).expect("creating the socket dir must work");
            self.run_as.own(&sock);
        }
        let mut cmd = Command::new(pg_binary("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(&sock)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
        let log = self.dir.path().join("postgres.log");
        let mut child = Child::spawn("postgres", cmd, self.run_as, &log);
        let port = self.port;
        let ready = wait_until(START_TIMEOUT, || {
            child.assert_running();
            port_open(port)
                && Command::new(require("psql", "postgresql-client"))
                    .args(["-h", "127.0.0.1", "-U", "postgres", "-At", "-c", "SELECT 1"])
                    .args(["-p", &port.to_string(), "-d", "postgres"])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
        });
        assert!(ready, "PostgreSQL did not start:\n{}", child.log_tail());
        self.child = Some(child);
    }

    /// Freezes the postmaster and every backend (SIGSTOP): a hung server, not a dead one.
    /// Backends call setsid(), so they are not in the postmaster's process group: each is
    /// found through /proc and stopped by pid.
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            c.signal_main(libc::SIGSTOP);
            for pid in children_of(c.pid()) {
                // SAFETY: kill on a pid we just read as a child of our postmaster.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
            }
        }
    }

    pub fn resume(&self) {
        if let Some(c) = &self.child {
            for pid in children_of(c.pid()) {
                // SAFETY: as in pause.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
            c.signal_main(libc::SIGCONT);
        }
    }
}

/// Pids whose parent is `ppid` (from /proc/PID/stat).
fn children_of(ppid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    // Fields after the parenthesised command name: state, ppid, ...
                    let rest = st.rsplit_once(')')?.1;
                    rest.split_ascii_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(ppid)
        })
        .collect()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Thaw a paused server so the kill in Child::drop is not left pending on stopped
        // backends, then kill the backends too: they are outside the postmaster's group.
        self.resume();
        if let Some(c) = &self.child {
            for pid in children_of(c.pid()) {
                // SAFETY: kill on a pid we just read as a child of our postmaster.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A Redis server with persistence off.
pub struct Redis {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            dir: temp_dir("qw-redis-"),
            port: free_port(),
            child: None,
        };
        r.start_again();
        r
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Runs redis-cli against this server and returns its trimmed stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(require("redis-cli", "redis-tools"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("running redis-cli must work");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn stop(&mut self) {
        self.resume();
        if let Some(mut c) = self.child.take() {
            c.stop(Duration::from_secs(10));
        }
    }

    /// Freezes the server (SIGSTOP): a hung Redis, not a dead one.
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            c.signal_main(libc::SIGSTOP);
        }
    }

    pub fn resume(&self) {
        if let Some(c) = &self.child {
            c.signal_main(libc::SIGCONT);
        }
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "Redis is already running");
        let mut cmd = Command::new(require("redis-server", "redis-server"));
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        let log = self.dir.path().join("redis.log");
        let mut child = Child::spawn("redis-server", cmd, RunAs::Me, &log);
        let port = self.port;
        let ready = wait_until(START_TIMEOUT, || {
            child.assert_running();
            port_open(port)
        });
        assert!(ready, "Redis did not start:\n{}", child.log_tail());
        self.child = Some(child);
    }
}

/// A Prometheus server with its own TSDB in a temp dir.
pub struct Prometheus {
    _dir: TempDir,
    port: u16,
    _child: Child,
}

impl Prometheus {
    /// `config_yaml` is a whole prometheus.yml; `rule_files` are written beside it by
    /// relative path (`rules/host.yml` creates `rules/`), as the deploy/ config expects.
    pub fn start(config_yaml: &str, rule_files: &[(&str, &str)]) -> Prometheus {
        Self::start_with_args(config_yaml, rule_files, &[])
    }

    /// Like `start`, with extra flags (e.g. `--rules.alert.resend-delay=1s`, so a restarted
    /// Alertmanager hears the firing alerts within a second instead of a minute).
    pub fn start_with_args(
        config_yaml: &str,
        rule_files: &[(&str, &str)],
        args: &[&str],
    ) -> Prometheus {
        let bin = require("prometheus", "prometheus");
        let dir = temp_dir("qw-prom-");
        write_files(dir.path(), rule_files);
        let config = dir.path().join("prometheus.yml");
        write(&config, config_yaml);
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            .args(args);
        let mut child = Child::spawn("prometheus", cmd, RunAs::Me, &dir.path().join("log"));
        wait_ready(&mut child, port, "Prometheus");
        Prometheus {
            _dir: dir,
            port,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An instant query; returns `data.result` (panics on an API error).
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let resp: serde_json::Value = blocking_client()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}"));
        assert_eq!(resp["status"], "success", "query {promql:?}: {resp}");
        resp["data"]["result"].clone()
    }

    /// Polls `promql` until it returns a non-empty result or `timeout` passes.
    pub fn wait_for(&self, promql: &str, timeout: Duration) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let ok = wait_until(timeout, || {
            last = self.query(promql);
            last.as_array().is_some_and(|a| !a.is_empty())
        });
        assert!(ok, "{promql:?} returned nothing within {timeout:?}");
        last
    }
}

/// An Alertmanager; alone, or one peer of a gossip cluster on loopback.
pub struct Alertmanager {
    _dir: TempDir,
    port: u16,
    _child: Child,
    /// Its command line, to start it again after `stop`.
    args: Vec<String>,
}

impl Alertmanager {
    pub fn start(config_yaml: &str) -> Alertmanager {
        Self::spawn(config_yaml, &[], None, &[])
    }

    /// Like `start`, with extra files (relative path, content) beside the config, e.g. the
    /// `secrets/router_webhook_token` the deploy/ config reads.
    pub fn start_with_files(config_yaml: &str, files: &[(&str, &str)]) -> Alertmanager {
        Self::spawn(config_yaml, files, None, &[])
    }

    /// `n` peers gossiping over loopback, all with the same configuration.
    pub fn start_cluster(config_yaml: &str, n: usize) -> Vec<Alertmanager> {
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        cluster_ports
            .iter()
            .map(|p| {
                let peers: Vec<u16> = cluster_ports.iter().copied().filter(|q| q != p).collect();
                Self::spawn(config_yaml, &[], Some(*p), &peers)
            })
            .collect()
    }

    fn spawn(
        config_yaml: &str,
        files: &[(&str, &str)],
        cluster_port: Option<u16>,
        peers: &[u16],
    ) -> Alertmanager {
        let bin = require("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = temp_dir("qw-am-");
        write_files(dir.path(), files);
        let config = dir.path().join("alertmanager.yml");
        write(&config, config_yaml);
        let port = free_port();
        let mut args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        match cluster_port {
            None => {
                args.push("--cluster.listen-address=".into());
            }
            Some(cp) => {
                args.extend([
                    format!("--cluster.listen-address=127.0.0.1:{cp}"),
                    format!("--cluster.advertise-address=127.0.0.1:{cp}"),
                    "--cluster.peer-timeout=2s".into(),
                    "--cluster.gossip-interval=100ms".into(),
                    "--cluster.pushpull-interval=1s".into(),
                ]);
                for p in peers {
                    args.push(format!("--cluster.peer=127.0.0.1:{p}"));
                }
            }
        }
        let mut cmd = Command::new(bin);
        cmd.args(&args);
        let mut child = Child::spawn("alertmanager", cmd, RunAs::Me, &dir.path().join("log"));
        wait_ready(&mut child, port, "Alertmanager");
        Alertmanager {
            _dir: dir,
            port,
            _child: child,
            args,
        }
    }

    /// Stop it (SIGTERM, then SIGKILL after 5 s): what a dead Alertmanager looks like.
    pub fn stop(&mut self) {
        self._child.stop(Duration::from_secs(5));
    }

    /// Kill it with SIGKILL (a crash: no shutdown path runs, nothing is flushed or handed
    /// over to its peers) and wait until it is gone.
    pub fn kill_9(&mut self) {
        self._child.signal(libc::SIGKILL);
        self._child.wait_exit(Duration::from_secs(10));
    }

    /// Start it again after `stop`: same port, config and data directory.
    pub fn start_again(&mut self) {
        let bin = require("prometheus-alertmanager", "prometheus-alertmanager");
        let mut cmd = Command::new(bin);
        cmd.args(&self.args);
        let mut child = Child::spawn(
            "alertmanager",
            cmd,
            RunAs::Me,
            &self._dir.path().join("log"),
        );
        wait_ready(&mut child, self.port, "Alertmanager");
        self._child = child;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET /api/v2/alerts: what this peer holds now (`startsAt`, `updatedAt`, `status`…).
    pub fn alerts(&self) -> serde_json::Value {
        blocking_client()
            .get(format!("{}/api/v2/alerts", self.url()))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("listing alerts: {e}"))
    }

    /// GET /api/v2/silences: every silence this peer knows (`status.state`: active, pending,
    /// expired), with matchers, `createdBy` and `comment`.
    pub fn silences(&self) -> serde_json::Value {
        blocking_client()
            .get(format!("{}/api/v2/silences", self.url()))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("listing silences: {e}"))
    }

    /// POST /api/v2/alerts with a JSON array of postable alerts.
    pub fn post_alerts(&self, alerts: &serde_json::Value) {
        let resp = blocking_client()
            .post(format!("{}/api/v2/alerts", self.url()))
            .json(alerts)
            .send()
            .unwrap_or_else(|e| panic!("posting alerts: {e}"));
        assert!(
            resp.status().is_success(),
            "Alertmanager refused alerts: {} {}",
            resp.status(),
            resp.text().unwrap_or_default()
        );
    }
}

/// How the SMTP server speaks TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Implicit,
}

pub struct SmtpOptions {
    pub tls: SmtpTls,
    /// Required AUTH (PLAIN or LOGIN) credentials; `None` accepts mail without AUTH.
    pub auth: Option<(String, String)>,
}

/// A real SMTP server (aiosmtpd) that stores each received message as a file.
pub struct Smtp {
    dir: TempDir,
    port: u16,
    _child: Child,
}

impl Smtp {
    pub fn start(opts: SmtpOptions) -> Smtp {
        let python = require("/usr/bin/python3", "python3");
        let ok = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "aiosmtpd is not installed for /usr/bin/python3; install it with: \
             apt-get install -y python3-aiosmtpd"
        );
        let dir = temp_dir("qw-smtp-");
        let maildir = dir.path().join("mail");
        std::fs::create_dir(&maildir).expect("creating the mail dir must work");
        let (cert, key) = crate::tls::self_signed(dir.path());
        let script = dir.path().join("smtp_server.py");
        write(&script, SMTP_SERVER_PY);
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .args(["--port", &port.to_string()])
            .arg("--maildir")
            .arg(&maildir)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args([
                "--tls",
                match opts.tls {
                    SmtpTls::None => "none",
                    SmtpTls::StartTls => "starttls",
                    SmtpTls::Implicit => "implicit",
                },
            ]);
        if let Some((user, pass)) = &opts.auth {
            cmd.args(["--auth", &format!("{user}:{pass}")]);
        }
        let mut child = Child::spawn("aiosmtpd", cmd, RunAs::Me, &dir.path().join("log"));
        let ready = wait_until(START_TIMEOUT, || {
            child.assert_running();
            port_open(port)
        });
        assert!(
            ready,
            "the SMTP server did not start:\n{}",
            child.log_tail()
        );
        Smtp {
            dir,
            port,
            _child: child,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's self-signed certificate (PEM), for a client to trust.
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cert.pem"))
            .expect("the SMTP certificate was written at start")
    }

    /// Raw RFC 5322 messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }

    /// Waits until at least `n` messages arrived; panics after `timeout`.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let ok = wait_until(timeout, || self.messages().len() >= n);
        let got = self.messages();
        assert!(
            ok,
            "expected {n} messages within {timeout:?}, got {}",
            got.len()
        );
        got
    }
}

const SMTP_SERVER_PY: &str = include_str!("../support/smtp_server.py");

/// One of Debian's Go exporters, run beside ours for compatibility checks and benchmarks.
pub struct GoExporter {
    _dir: TempDir,
    port: u16,
    child: Child,
}

impl GoExporter {
    /// prometheus-node-exporter with its default collectors.
    pub fn node() -> GoExporter {
        Self::node_with_env(&[], &[])
    }

    /// prometheus-node-exporter with extra flags (`--path.sysfs=DIR`,
    /// `--collector.disable-defaults`, `--collector.NAME`, ...).
    pub fn node_with_args(extra: &[String]) -> GoExporter {
        Self::node_with_env(extra, &[])
    }

    /// prometheus-node-exporter with extra flags and environment (`DBUS_SYSTEM_BUS_ADDRESS`).
    pub fn node_with_env(extra: &[String], env: &[(&str, &str)]) -> GoExporter {
        let port = free_port();
        let mut args = vec![format!("--web.listen-address=127.0.0.1:{port}")];
        args.extend(extra.iter().cloned());
        Self::spawn("prometheus-node-exporter", &args, env, port)
    }

    /// prometheus-postgres-exporter against `url`.
    pub fn postgres(url: &str) -> GoExporter {
        Self::postgres_with_args(url, &[])
    }

    /// prometheus-postgres-exporter against `url` with extra flags (e.g.
    /// `--extend.query-path=FILE`).
    pub fn postgres_with_args(url: &str, extra: &[String]) -> GoExporter {
        let port = free_port();
        let dsn = if url.contains('?') {
            format!("{url}&sslmode=disable")
        } else {
            format!("{url}?sslmode=disable")
        };
        let mut args = vec![format!("--web.listen-address=127.0.0.1:{port}")];
        args.extend(extra.iter().cloned());
        Self::spawn(
            "prometheus-postgres-exporter",
            &args,
            &[("DATA_SOURCE_NAME", dsn.as_str())],
            port,
        )
    }

    /// prometheus-redis-exporter against `url`.
    pub fn redis(url: &str) -> GoExporter {
        let port = free_port();
        Self::spawn(
            "prometheus-redis-exporter",
            &[
                format!("-redis.addr={url}"),
                format!("-web.listen-address=127.0.0.1:{port}"),
            ],
            &[],
            port,
        )
    }

    fn spawn(binary: &str, args: &[String], env: &[(&str, &str)], port: u16) -> GoExporter {
        let bin = require(binary, binary);
        let dir = temp_dir("qw-goexp-");
        let mut cmd = Command::new(bin);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = Child::spawn(binary, cmd, RunAs::Me, &dir.path().join("log"));
        let ready = wait_until(START_TIMEOUT, || {
            child.assert_running();
            port_open(port)
        });
        assert!(ready, "{binary} did not start:\n{}", child.log_tail());
        GoExporter {
            _dir: dir,
            port,
            child,
        }
    }

    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.pid()
    }
}
