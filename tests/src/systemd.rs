//! A real systemd (252, Debian's) user manager with the test's own units, for the systemd
//! collector: exporters reach its API bus through `DBUS_SYSTEM_BUS_ADDRESS`, exactly as they
//! reach the system bus on a host.
//!
//! The machine does not run systemd as PID 1, and the manager refuses to start unless
//! `/run/systemd/system` exists; so it runs in private mount and PID namespaces (`unshare`,
//! root only) with a tmpfs over `/run`: the host's `/run` is untouched, the host's later
//! mounts do not reach it (its unit list does not change under the test), and killing the
//! namespace's first process ends every process the manager started. Everything else lives in
//! one temp dir: `XDG_RUNTIME_DIR` (its bus socket, which the manager's own `dbus.socket`
//! listens on and activates a `dbus-daemon --session` behind), and `XDG_CONFIG_HOME`, where
//! the test's units go (`systemd/user/`), so nobody's real `~/.config` is read or written.

use crate::process::{Child, RunAs, require, wait_until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The manager and its bus; both end (with every unit's processes) when this drops.
pub struct SystemdUser {
    dir: TempDir,
    _child: Child,
}

impl SystemdUser {
    /// Writes `units` (file name, contents) into the manager's unit directory, starts it and
    /// waits until it reports `running` on its bus. `/dev/null` as contents masks the unit.
    pub fn start(units: &[(&str, &str)]) -> SystemdUser {
        let systemd = require("/lib/systemd/systemd", "systemd");
        require("busctl", "systemd");
        require("dbus-daemon", "dbus");
        require("unshare", "util-linux");
        let dir = tempfile::Builder::new()
            .prefix("qw-systemd-")
            .tempdir()
            .expect("creating a temp dir must work");
        let unit_dir = dir.path().join("config/systemd/user");
        for sub in ["rt", "data", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir in the temp dir");
        }
        std::fs::create_dir_all(&unit_dir).expect("mkdir in the temp dir");
        for (name, text) in units {
            let path = unit_dir.join(name);
            if *text == "/dev/null" {
                std::os::unix::fs::symlink("/dev/null", &path).expect("symlink a masked unit");
            } else {
                std::fs::write(&path, text).expect("write a unit file");
            }
        }
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system || exit 1; \
             {} --user & wait $!",
            systemd.display()
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            &script,
        ]);
        let p = dir.path();
        cmd.env("XDG_RUNTIME_DIR", p.join("rt"))
            .env("XDG_CONFIG_HOME", p.join("config"))
            .env("XDG_DATA_HOME", p.join("data"))
            .env("HOME", p.join("home"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS");
        let mut child = Child::spawn("systemd --user", cmd, RunAs::Me, &p.join("systemd.log"));
        let address = format!("unix:path={}", p.join("rt/bus").display());
        let mut last = String::new();
        let up = wait_until(START_TIMEOUT, || {
            child.assert_running();
            last = busctl_at(
                &address,
                &[
                    "get-property",
                    "org.freedesktop.systemd1",
                    "/org/freedesktop/systemd1",
                    "org.freedesktop.systemd1.Manager",
                    "SystemState",
                ],
            )
            .unwrap_or_else(|e| e);
            last.trim() == "s \"running\""
        });
        assert!(
            up,
            "systemd --user did not come up (last answer: {last}); it needs root for its \
             namespaces; its log:\n{}",
            child.log_tail()
        );
        SystemdUser { dir, _child: child }
    }

    /// The manager's bus, as `DBUS_SYSTEM_BUS_ADDRESS` takes it.
    pub fn bus_address(&self) -> String {
        format!("unix:path={}", self.bus_path().display())
    }

    pub fn bus_path(&self) -> PathBuf {
        self.dir.path().join("rt/bus")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `busctl` against the manager's bus; panics with its error output on failure.
    pub fn busctl(&self, args: &[&str]) -> String {
        busctl_at(&self.bus_address(), args).unwrap_or_else(|e| panic!("busctl {args:?}: {e}"))
    }

    /// Starts `unit` (job mode `replace`), as `systemctl --user start` without waiting.
    pub fn start_unit(&self, unit: &str) {
        self.busctl(&[
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartUnit",
            "ss",
            unit,
            "replace",
        ]);
    }

    /// A unit's property, as `busctl` prints it (`s "failed"`, `t 1765000000000000`).
    pub fn property(&self, unit: &str, interface: &str, name: &str) -> String {
        let path = self.busctl(&[
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "LoadUnit",
            "s",
            unit,
        ]);
        let path = path
            .trim()
            .trim_start_matches("o ")
            .trim_matches('"')
            .to_string();
        self.busctl(&[
            "get-property",
            "org.freedesktop.systemd1",
            &path,
            &format!("org.freedesktop.systemd1.{interface}"),
            name,
        ])
        .trim()
        .to_string()
    }

    /// A manager property, as `busctl` prints it.
    pub fn manager_property(&self, name: &str) -> String {
        self.busctl(&[
            "get-property",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            name,
        ])
        .trim()
        .to_string()
    }

    /// Waits until `unit`'s `interface.name` prints as `want`; panics after 20 s.
    pub fn wait_property(&self, unit: &str, interface: &str, name: &str, want: &str) {
        let mut last = String::new();
        let ok = wait_until(START_TIMEOUT, || {
            last = self.property(unit, interface, name);
            last == want
        });
        assert!(ok, "{unit} {interface}.{name}: {last}, expected {want}");
    }

    /// `ListUnits` as (name, load state, active state), sorted by name.
    pub fn list_units(&self) -> Vec<(String, String, String)> {
        let out = self.busctl(&[
            "--json=short",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "ListUnits",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("busctl prints JSON");
        let mut units: Vec<(String, String, String)> = v["data"][0]
            .as_array()
            .expect("ListUnits returns an array")
            .iter()
            .map(|u| {
                let s = |i: usize| u[i].as_str().unwrap_or_default().to_string();
                (s(0), s(2), s(3))
            })
            .collect();
        units.sort();
        units
    }
}

fn busctl_at(address: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("busctl")
        .arg(format!("--address={address}"))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
