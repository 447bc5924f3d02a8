//! `scripts/demo` itself, run as a newcomer runs it, for tests that hold the demo to its word.
//!
//! The script runs in its own process group with the workspace's binaries (`QW_EXPORTER_BIN`,
//! `QW_ROUTER_BIN`, `--no-build`) and a work directory of the test's (`--work-dir`); what
//! it started is learnt from the `demo.env` it writes once every service answers. Dropping
//! the handle — also when the test panics — stops it the way Ctrl-C does (its trap stops
//! every service and PostgreSQL), then kills whatever is left of its group, and finally the
//! PostgreSQL postmaster if it survived: `pg_ctl` starts it in a session of its own, outside
//! the script's group.

use crate::process::{Child, RunAs, wait_until};
use crate::stack::{repo_root, workspace_bin};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// Variables of the environment that would send the demo's pages elsewhere than its
/// catchers, or change its store or login: a test runs the demo as a newcomer does.
const FOREIGN_ENV: &[&str] = &[
    "DINGTALK_OPS_URL",
    "DINGTALK_OPS_SECRET",
    "DINGTALK_DESK_URL",
    "DINGTALK_DESK_SECRET",
    "WECOM_DESK_URL",
    "ROUTER_DATABASE_URL",
    "ROUTER_UI_USER",
    "ROUTER_UI_PASSWORD",
];

pub struct Demo {
    child: Child,
    /// `demo.env`: the URLs and files of this run.
    pub env: BTreeMap<String, String>,
    pub work: PathBuf,
    log: PathBuf,
    stopped: Option<ExitStatus>,
    _dir: tempfile::TempDir,
}

/// One message the demo's robot catcher received (`logs/robots.log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotMessage {
    /// The robot's path: `/dingtalk/ops`, `/dingtalk/desk` or `/wecom/desk`.
    pub robot: String,
    pub text: String,
}

impl Demo {
    /// Starts `scripts/demo` with `args` and waits up to `timeout` for its `demo.env`.
    pub fn start(args: &[&str], timeout: Duration) -> Demo {
        let dir = tempfile::Builder::new()
            .prefix("qw-demo-")
            .tempdir()
            .expect("creating a temp dir must work");
        // The script runs PostgreSQL as `postgres` when we are root: it must reach work/pg.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("chmod of our own temp dir must work");
        let work = dir.path().join("work");
        let log = dir.path().join("demo.log");
        let mut cmd = Command::new(repo_root().join("scripts/demo"));
        cmd.arg("--no-build")
            .arg("--work-dir")
            .arg(&work)
            .args(args)
            .env("QW_EXPORTER_BIN", workspace_bin("quantwatch-exporter"))
            .env("QW_ROUTER_BIN", workspace_bin("quantwatch-alert-router"));
        for var in FOREIGN_ENV {
            cmd.env_remove(var);
        }
        let mut child = Child::spawn("scripts/demo", cmd, RunAs::Me, &log);
        let env_file = work.join("demo.env");
        let ready = wait_until(timeout, || {
            child.assert_running();
            env_file.is_file()
        });
        let mut demo = Demo {
            child,
            env: BTreeMap::new(),
            work,
            log,
            stopped: None,
            _dir: dir,
        };
        assert!(
            ready,
            "scripts/demo did not report every service up (no {}) within {timeout:?}; its output:\n{}",
            env_file.display(),
            demo.output()
        );
        let text = std::fs::read_to_string(&env_file).expect("demo.env is readable");
        demo.env = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        demo
    }

    /// A value of `demo.env`; panics naming the key when the script did not write it.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("scripts/demo wrote no {key} in demo.env: {:?}", self.env))
    }

    /// What the script printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of one of the demo's logs (`logs/NAME`), for failure messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.work.join("logs").join(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics with the script's output if it has exited.
    pub fn assert_running(&mut self) {
        self.child.assert_running();
    }

    /// Every message the robot catcher printed so far, in arrival order.
    pub fn robot_messages(&self) -> Vec<RobotMessage> {
        let text = std::fs::read_to_string(self.var("ROBOTS_LOG")).unwrap_or_default();
        parse_robots_log(&text)
    }

    /// An instant query against the demo's Prometheus; `data.result`.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let resp: serde_json::Value = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building a reqwest client must work")
            .get(format!("{}/api/v1/query", self.var("PROMETHEUS_URL")))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}"));
        assert_eq!(resp["status"], "success", "query {promql:?}: {resp}");
        resp["data"]["result"].clone()
    }

    /// The router's status page as its user sees it (login from the demo's secrets).
    pub fn router_page(&self) -> (u16, String) {
        let password = std::fs::read_to_string(self.var("ROUTER_UI_PASSWORD_FILE"))
            .expect("the demo wrote the status page password");
        let resp = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("building a reqwest client must work")
            .get(format!("{}/", self.var("ROUTER_URL")))
            .basic_auth(self.var("ROUTER_UI_USER"), Some(password.trim_end()))
            .send()
            .unwrap_or_else(|e| panic!("GET the router's status page: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// Stops the demo as `kill PID` does (SIGTERM to the script alone: its trap stops every
    /// service and PostgreSQL), waiting up to `grace`; the script's exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.stopped.is_none() {
            self.child.signal_main(libc::SIGTERM);
            self.stopped = self.child.wait_exit(grace);
        }
        self.stopped
    }

    /// Whether the demo's PostgreSQL still runs (its pid file is there).
    pub fn postgres_running(&self) -> bool {
        self.work.join("pg/data/postmaster.pid").exists()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(30));
        self.child.signal(libc::SIGKILL);
        // pg_ctl runs the postmaster in its own session: not in the group just killed.
        stop_postmaster(&self.work.join("pg/data"));
    }
}

/// Immediate shutdown (SIGQUIT) of the postmaster of `data`, if its pid file names a live
/// `postgres` process; waits up to 10 s for it to go.
fn stop_postmaster(data: &Path) {
    let Some(pid) = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
    else {
        return;
    };
    let is_postgres = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|b| *b == 0)
            .next()
            .is_some_and(|a| a.ends_with(b"postgres"))
    });
    if !is_postgres {
        return;
    }
    // SAFETY: kill on a pid read from PostgreSQL's pid file, checked to be a postgres process.
    unsafe {
        libc::kill(pid, libc::SIGQUIT);
    }
    wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
}

/// The catcher prints each message as `==== <path>` followed by its text and a blank line.
pub fn parse_robots_log(text: &str) -> Vec<RobotMessage> {
    let mut out: Vec<RobotMessage> = Vec::new();
    for line in text.lines() {
        if let Some(robot) = line.strip_prefix("==== ") {
            out.push(RobotMessage {
                robot: robot.to_string(),
                text: String::new(),
            });
        } else if let Some(last) = out.last_mut() {
            if !last.text.is_empty() {
                last.text.push('\n');
            }
            last.text.push_str(line);
        }
    }
    for m in &mut out {
        m.text = m.text.trim_end().to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robots_log_is_split_into_messages() {
        let log = "==== /dingtalk/desk\n#### [告警] TradingStrategyDrawdown\nStrategy alpha\n\n\
                   ==== /wecom/desk\nwarning text\n\n";
        assert_eq!(
            parse_robots_log(log),
            vec![
                RobotMessage {
                    robot: "/dingtalk/desk".into(),
                    text: "#### [告警] TradingStrategyDrawdown\nStrategy alpha".into(),
                },
                RobotMessage {
                    robot: "/wecom/desk".into(),
                    text: "warning text".into(),
                },
            ]
        );
        assert_eq!(parse_robots_log(""), vec![]);
    }
}
