//! The whole stack natively on loopback, from the files operators deploy.
//!
//! PostgreSQL (monitored) and a second PostgreSQL holding the trading schema (so the
//! monitored one can be stopped while trading metrics keep flowing), Redis, the simulator,
//! the exporter, the router running `deploy/router/router.yml` with its robots pointed at
//! DingTalk and WeCom fakes and its mail at the SMTP server, Prometheus with `rules/` and
//! `deploy/prometheus/prometheus.yml`, Alertmanager with `deploy/alertmanager/alertmanager.yml`,
//! and an SMTP server for Alertmanager's direct-email route. The deploy files are used as they
//! are except for the `service:port` strings they list as their only differences, and the
//! Prometheus global intervals, shortened so a test takes minutes (`StackOptions`).

use crate::fakes::dingtalk::DingTalkFake;
use crate::fakes::wecom::WeComFake;
use crate::process::{Child, RunAs, wait_until};
use crate::{Alertmanager, App, Postgres, Prometheus, Redis, Smtp, SmtpOptions, SmtpTls};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A binary of this workspace built in the same profile as the running test.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build --workspace` first (scripts/test does)",
        bin.display()
    );
    bin
}

pub struct StackOptions {
    /// Prometheus `scrape_interval` (the deploy file says 15s).
    pub scrape_interval: Duration,
    /// Prometheus `evaluation_interval` (the deploy file says 15s).
    pub evaluation_interval: Duration,
    /// Extra arguments for `quantwatch-exporter simulate`.
    pub simulate_args: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            // 2 s, not 1 s: the exporter answers 0.5 s before Prometheus' scrape timeout, and
            // a debug build's trading collector must fit in what is left.
            scrape_interval: Duration::from_secs(2),
            evaluation_interval: Duration::from_secs(1),
            simulate_args: Vec::new(),
        }
    }
}

pub const WEBHOOK_TOKEN: &str = "e2e-webhook-token";
pub const DINGTALK_TOKEN: &str = "e2e-robot";
pub const DINGTALK_SECRET: &str = "SECe2e-sign-secret";
pub const WECOM_KEY: &str = "e2e-wecom-key";
/// Bearer token of the router's `/api/v1/*`.
pub const API_TOKEN: &str = "e2e-api-token";
/// Signs ack links; at least 32 bytes, as the router requires.
pub const ACK_SECRET: &str = "e2e-ack-secret-0123456789abcdef-0123";

pub struct Stack {
    pub monitored: Postgres,
    pub trading: Postgres,
    pub trading_url: String,
    pub redis: Redis,
    /// `ops-dingtalk` of deploy/router/router.yml: infrastructure alerts and their pages.
    pub ops_robot: DingTalkFake,
    /// `desk-dingtalk`: the pages (first escalation step) of critical trading alerts.
    pub desk_robot: DingTalkFake,
    /// `desk-wecom`: trading warnings and later escalation steps.
    pub desk_wecom: WeComFake,
    /// Alertmanager's direct-email route and the router's `oncall-mail` channel.
    pub smtp: Smtp,
    pub router: App,
    pub exporter: App,
    pub alertmanager: Alertmanager,
    pub prometheus: Prometheus,
    pub options: StackOptions,
    simulator: Option<Child>,
    work: tempfile::TempDir,
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl Stack {
    pub fn start(options: StackOptions) -> Stack {
        let root = repo_root();
        let exporter_bin = workspace_bin("quantwatch-exporter");
        let router_bin = workspace_bin("quantwatch-alert-router");
        let work = tempfile::Builder::new()
            .prefix("qw-stack-")
            .tempdir()
            .expect("creating a temp dir must work");

        let monitored = Postgres::start();
        let trading = Postgres::start();
        let trading_url = trading.create_database("trading");
        let redis = Redis::start();
        // As docker-compose runs it: a memory limit, so memory-ratio rules and panels apply.
        redis.cli(&["CONFIG", "SET", "maxmemory", "256mb"]);
        let migrate = Command::new(&exporter_bin)
            .args(["migrate", "--database-url", &trading_url])
            .output()
            .expect("running migrate must work");
        assert!(
            migrate.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );

        // The robots the shipped deploy/router/router.yml names, each a fake; the router runs
        // that file unchanged, with only its addresses and secrets from the environment.
        let ops_robot = DingTalkFake::start(DINGTALK_TOKEN, Some(DINGTALK_SECRET));
        let desk_robot = DingTalkFake::start(DINGTALK_TOKEN, Some(DINGTALK_SECRET));
        let desk_wecom = WeComFake::start(WECOM_KEY);
        let smtp = Smtp::start(SmtpOptions {
            tls: SmtpTls::None,
            auth: None,
        });
        let router_cfg = root.join("deploy/router/router.yml");
        let router_db = format!("sqlite://{}", work.path().join("router.db").display());
        let smtp_port = smtp.port().to_string();
        let router = App::start(
            router_bin.to_str().expect("utf-8 path"),
            &["--config", router_cfg.to_str().expect("utf-8 path")],
            &[
                ("ROUTER_WEBHOOK_TOKEN", WEBHOOK_TOKEN),
                ("ROUTER_API_TOKEN", API_TOKEN),
                ("ROUTER_ACK_SECRET", ACK_SECRET),
                ("ROUTER_DATABASE_URL", &router_db),
                ("DINGTALK_OPS_URL", &ops_robot.webhook_url()),
                ("DINGTALK_OPS_SECRET", DINGTALK_SECRET),
                ("DINGTALK_DESK_URL", &desk_robot.webhook_url()),
                ("DINGTALK_DESK_SECRET", DINGTALK_SECRET),
                ("WECOM_DESK_URL", &desk_wecom.webhook_url()),
                ("SMTP_HOST", "127.0.0.1"),
                ("SMTP_PORT", &smtp_port),
                ("SMTP_TLS", "none"),
                ("ALERT_MAIL_FROM", "quantwatch@e2e.test"),
                ("ALERT_MAIL_TO", "oncall@e2e.test"),
            ],
        );
        let exporter = App::start(
            exporter_bin.to_str().expect("utf-8 path"),
            &[],
            &[
                ("DATABASE_URL", &monitored.url()),
                ("TRADING_DATABASE_URL", &trading_url),
                ("REDIS_URL", &redis.url()),
            ],
        );

        let am_cfg = std::fs::read_to_string(root.join("deploy/alertmanager/alertmanager.yml"))
            .expect("deploy/alertmanager/alertmanager.yml must exist")
            .replace("router:9878", &format!("127.0.0.1:{}", router.port()))
            .replace("mailpit:1025", &format!("127.0.0.1:{}", smtp.port()));
        let alertmanager = Alertmanager::start_with_files(
            &am_cfg,
            &[("secrets/router_webhook_token", WEBHOOK_TOKEN)],
        );

        let prom_cfg = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
            .expect("deploy/prometheus/prometheus.yml must exist");
        let prom_cfg = set_global(&prom_cfg, "scrape_interval", &secs(options.scrape_interval));
        let prom_cfg = set_global(&prom_cfg, "scrape_timeout", &secs(options.scrape_interval));
        let prom_cfg = set_global(
            &prom_cfg,
            "evaluation_interval",
            &secs(options.evaluation_interval),
        )
        .replace("exporter:9877", &format!("127.0.0.1:{}", exporter.port()))
        .replace("router:9878", &format!("127.0.0.1:{}", router.port()))
        .replace(
            "alertmanager:9093",
            alertmanager.url().trim_start_matches("http://"),
        );
        let rules: Vec<(String, String)> = std::fs::read_dir(root.join("rules"))
            .expect("rules/ must exist")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .map(|p| {
                (
                    format!("rules/{}", p.file_name().expect("a file").to_string_lossy()),
                    std::fs::read_to_string(&p).expect("rule files are readable"),
                )
            })
            .collect();
        let rule_refs: Vec<(&str, &str)> = rules
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .collect();
        let prometheus = Prometheus::start(&prom_cfg, &rule_refs);

        let mut stack = Stack {
            monitored,
            trading,
            trading_url,
            redis,
            ops_robot,
            desk_robot,
            desk_wecom,
            smtp,
            router,
            exporter,
            alertmanager,
            prometheus,
            options,
            simulator: None,
            work,
        };
        let extra = stack.options.simulate_args.clone();
        stack.restart_simulator(&extra);
        stack
    }

    /// (Re)starts `quantwatch-exporter simulate` against the trading database.
    pub fn restart_simulator(&mut self, extra: &[String]) {
        if let Some(mut old) = self.simulator.take() {
            old.stop(Duration::from_secs(10));
        }
        let mut cmd = Command::new(workspace_bin("quantwatch-exporter"));
        cmd.args([
            "simulate",
            "--database-url",
            &self.trading_url,
            "--snapshot-interval",
            "1s",
        ])
        .args(extra);
        let log = self.work.path().join(format!(
            "simulate-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        ));
        let mut child = Child::spawn("simulate", cmd, RunAs::Me, &log);
        let url = self.trading_url.clone();
        let trading = &self.trading;
        let db = url.rsplit('/').next().unwrap_or("trading").to_string();
        let started = wait_until(Duration::from_secs(30), || {
            child.assert_running();
            trading
                .psql(&db, "SELECT count(*) FROM equity_snapshots")
                .parse::<u64>()
                .unwrap_or(0)
                > 0
        });
        assert!(
            started,
            "the simulator wrote no snapshot:\n{}",
            child.log_tail()
        );
        self.simulator = Some(child);
    }
}

/// Sets `key: value` in the `global:` block of a Prometheus config.
fn set_global(config: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(config.len());
    let mut in_global = false;
    let mut done = false;
    for line in config.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
            in_global = line.starts_with("global:");
        }
        let trimmed = line.trim_start();
        if in_global && !done && trimmed.starts_with(&format!("{key}:")) {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}{key}: {value}\n"));
            done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(done, "the deploy config has no global.{key}");
    out
}
