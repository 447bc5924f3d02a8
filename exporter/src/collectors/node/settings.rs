//! The `host:` section of the configuration file and node_exporter's command-line flags.
//!
//! The file keeps its keys (lists, as before) and gains node_exporter's switches; flags spelled
//! as node_exporter spells them (`--collector.NAME`, `--no-collector.NAME`,
//! `--collector.disable-defaults`, `--path.*`, the filters) are applied on top: flags win.

use super::REGISTRY;
use crate::config::Problem;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// node_exporter 1.5's defaults (collector/filesystem_linux.go, diskstats_linux.go), except
/// the mount points: Debian's build excludes all of /run, /mnt and /media (upstream 1.5 only
/// `/run/credentials/.+`), and we follow the package we replace.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
/// Debian's build of 1.5 changes two upstream defaults; we follow Debian (the package the
/// exporter replaces): netdev leaves `lo` out, and the textfile directory is set.
pub const DEFAULT_NETDEV_EXCLUDE: &str = "^lo$";
pub const DEFAULT_TEXTFILE_DIRECTORY: &str = "/var/lib/prometheus/node-exporter";
pub const DEFAULT_DISKSTATS_EXCLUDE: &str = "^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";
/// The systemd collector's unit filters (anchored as `^(?:RE)$` when compiled): 1.5's
/// include, and Debian's exclude, which adds `target` to upstream's list.
pub const DEFAULT_SYSTEMD_UNIT_INCLUDE: &str = ".+";
pub const DEFAULT_SYSTEMD_UNIT_EXCLUDE: &str = ".+\\.(automount|device|mount|scope|slice|target)";

/// An exclusion filter: a regular expression (node_exporter's form, what the flags set) or,
/// in the file, a list (mount-point prefixes, or exact names for types and devices).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Exclude {
    Regex(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub enabled: bool,
    pub filesystem_mount_points_exclude: Exclude,
    pub filesystem_types_exclude: Exclude,
    pub network_devices_exclude: Exclude,
    pub diskstats_devices_exclude: Exclude,
    /// `*.prom` files merged into every scrape (Debian's directory by default; a missing
    /// directory is reported through `node_textfile_scrape_error`, as node_exporter).
    pub textfile_directory: Option<PathBuf>,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    /// Start from no collector instead of node_exporter's defaults.
    pub disable_defaults: bool,
    /// Per-collector switches by node_exporter's collector name (`netstat: false`).
    pub collectors: BTreeMap<String, bool>,
    /// The systemd collector's units: those matching the include and not the exclude
    /// (regular expressions over the whole unit name).
    pub systemd_unit_include: String,
    pub systemd_unit_exclude: String,
    /// node_exporter's optional systemd families (`--collector.systemd.enable-*-metrics`).
    pub systemd_enable_task_metrics: bool,
    pub systemd_enable_restarts_metrics: bool,
    pub systemd_enable_start_time_metrics: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            enabled: true,
            filesystem_mount_points_exclude: Exclude::Regex(DEFAULT_MOUNT_POINTS_EXCLUDE.into()),
            filesystem_types_exclude: Exclude::Regex(DEFAULT_FS_TYPES_EXCLUDE.into()),
            network_devices_exclude: Exclude::Regex(DEFAULT_NETDEV_EXCLUDE.into()),
            diskstats_devices_exclude: Exclude::Regex(DEFAULT_DISKSTATS_EXCLUDE.into()),
            textfile_directory: Some(DEFAULT_TEXTFILE_DIRECTORY.into()),
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
            disable_defaults: false,
            collectors: BTreeMap::new(),
            systemd_unit_include: DEFAULT_SYSTEMD_UNIT_INCLUDE.into(),
            systemd_unit_exclude: DEFAULT_SYSTEMD_UNIT_EXCLUDE.into(),
            systemd_enable_task_metrics: false,
            systemd_enable_restarts_metrics: false,
            systemd_enable_start_time_metrics: false,
        }
    }
}

/// A compiled [`Exclude`].
#[derive(Debug, Clone)]
pub enum Filter {
    Regex(Regex),
    Prefixes(Vec<String>),
    Exact(Vec<String>),
}

impl Filter {
    pub fn excludes(&self, s: &str) -> bool {
        match self {
            Filter::Regex(r) => r.is_match(s),
            Filter::Exact(v) => v.iter().any(|x| x == s),
            Filter::Prefixes(v) => v.iter().any(|p| {
                let p = p.trim_end_matches('/');
                s == p || p.is_empty() || s.starts_with(&format!("{p}/"))
            }),
        }
    }
}

impl Exclude {
    fn compile(&self, prefixes: bool) -> Result<Filter, String> {
        match self {
            Exclude::Regex(r) => Regex::new(r)
                .map(Filter::Regex)
                .map_err(|e| format!("invalid regular expression: {e}")),
            Exclude::List(v) if prefixes => Ok(Filter::Prefixes(v.clone())),
            Exclude::List(v) => Ok(Filter::Exact(v.clone())),
        }
    }
}

/// The compiled filters every node collector reads.
#[derive(Debug, Clone)]
pub struct Filters {
    pub mount_points: Filter,
    pub fs_types: Filter,
    pub netdev: Filter,
    pub diskstats: Filter,
}

impl HostConfig {
    /// Every problem in the section, keys as `host.KEY`.
    pub fn validate(&self, file: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Err(problems) = self.filters() {
            for (key, reason) in problems {
                out.push(Problem {
                    file: file.to_string(),
                    key: format!("host.{key}"),
                    reason,
                });
            }
        }
        if let Err((key, reason)) = self.systemd_unit_filters() {
            out.push(Problem {
                file: file.to_string(),
                key: format!("host.{key}"),
                reason,
            });
        }
        for name in self.collectors.keys() {
            if !REGISTRY.iter().any(|e| e.name == name) {
                out.push(Problem {
                    file: file.to_string(),
                    key: format!("host.collectors.{name}"),
                    reason: format!("unknown collector (known: {})", known_names()),
                });
            }
        }
        out
    }

    pub fn filters(&self) -> Result<Filters, Vec<(&'static str, String)>> {
        let mut bad = Vec::new();
        let mut get = |key: &'static str, e: &Exclude, prefixes: bool| match e.compile(prefixes) {
            Ok(f) => f,
            Err(why) => {
                bad.push((key, why));
                Filter::Exact(Vec::new())
            }
        };
        let f = Filters {
            mount_points: get(
                "filesystem_mount_points_exclude",
                &self.filesystem_mount_points_exclude,
                true,
            ),
            fs_types: get(
                "filesystem_types_exclude",
                &self.filesystem_types_exclude,
                false,
            ),
            netdev: get(
                "network_devices_exclude",
                &self.network_devices_exclude,
                false,
            ),
            diskstats: get(
                "diskstats_devices_exclude",
                &self.diskstats_devices_exclude,
                false,
            ),
        };
        if bad.is_empty() { Ok(f) } else { Err(bad) }
    }

    /// The systemd collector's include and exclude, anchored as node_exporter anchors them;
    /// the first that does not compile, by its key.
    pub fn systemd_unit_filters(&self) -> Result<(Regex, Regex), (&'static str, String)> {
        let compile = |key: &'static str, re: &str| {
            Regex::new(&format!("^(?:{re})$"))
                .map_err(|e| (key, format!("invalid regular expression: {e}")))
        };
        Ok((
            compile("systemd_unit_include", &self.systemd_unit_include)?,
            compile("systemd_unit_exclude", &self.systemd_unit_exclude)?,
        ))
    }

    pub fn systemd_options(&self) -> super::systemd::Options {
        super::systemd::Options {
            task_metrics: self.systemd_enable_task_metrics,
            restarts_metrics: self.systemd_enable_restarts_metrics,
            start_time_metrics: self.systemd_enable_start_time_metrics,
        }
    }

    /// Whether collector `name` runs: its switch, else its default (unless defaults are off).
    pub fn is_enabled(&self, name: &str, default_on: bool) -> bool {
        match self.collectors.get(name) {
            Some(on) => *on,
            None => default_on && !self.disable_defaults,
        }
    }
}

fn known_names() -> String {
    REGISTRY
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// node_exporter's flags found on the command line, applied over the file by [`NodeFlags::apply`].
#[derive(Debug, Clone, Default)]
pub struct NodeFlags {
    switches: Vec<(String, bool)>,
    disable_defaults: bool,
    settings: Vec<(Setting, String)>,
    toggles: Vec<(Toggle, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Setting {
    MountPoints,
    FsTypes,
    NetdevExclude,
    DiskstatsExclude,
    TextfileDir,
    Procfs,
    Sysfs,
    Rootfs,
    SystemdInclude,
    SystemdExclude,
    /// 1.5's deprecated spellings (hidden flags): they apply unless the new flag is given
    /// too, which is an error there and here.
    SystemdWhitelist,
    SystemdBlacklist,
}

/// node_exporter's boolean flags (all the systemd collector's): `--collector.X` sets,
/// `--no-collector.X` clears.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Toggle {
    Tasks,
    Restarts,
    StartTime,
}

const TOGGLES: &[(&str, Toggle)] = &[
    ("systemd.enable-task-metrics", Toggle::Tasks),
    ("systemd.enable-restarts-metrics", Toggle::Restarts),
    ("systemd.enable-start-time-metrics", Toggle::StartTime),
];

/// node_exporter's hidden `--collector.systemd.private` (systemd's own socket instead of the
/// bus, "for testing purposes only"): there systemd puts the well-known name
/// `org.freedesktop.systemd1` in the sender field of its replies, where zbus (5.19, and 6)
/// accepts only a unique name (5.19's reader task panics on it), so the collector could never
/// succeed with it. Refused at start, naming why.
const SYSTEMD_PRIVATE: &str = "--collector.systemd.private";

const SETTINGS: &[(&str, Setting)] = &[
    (
        "--collector.filesystem.mount-points-exclude",
        Setting::MountPoints,
    ),
    ("--collector.filesystem.fs-types-exclude", Setting::FsTypes),
    ("--collector.netdev.device-exclude", Setting::NetdevExclude),
    (
        "--collector.diskstats.device-exclude",
        Setting::DiskstatsExclude,
    ),
    ("--collector.textfile.directory", Setting::TextfileDir),
    ("--path.procfs", Setting::Procfs),
    ("--path.sysfs", Setting::Sysfs),
    ("--path.rootfs", Setting::Rootfs),
    ("--collector.systemd.unit-include", Setting::SystemdInclude),
    ("--collector.systemd.unit-exclude", Setting::SystemdExclude),
    (
        "--collector.systemd.unit-whitelist",
        Setting::SystemdWhitelist,
    ),
    (
        "--collector.systemd.unit-blacklist",
        Setting::SystemdBlacklist,
    ),
];

impl NodeFlags {
    /// Takes node_exporter's flags out of `args` (the program name first), leaving the rest
    /// for clap. A `--collector.*`, `--no-collector.*` or `--path.*` flag we do not know is an
    /// error naming it (exit 64), as is a known one without its value.
    pub fn extract(args: Vec<OsString>) -> Result<(NodeFlags, Vec<OsString>), String> {
        let mut flags = NodeFlags::default();
        let mut rest = Vec::with_capacity(args.len());
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let Some(s) = arg.to_str() else {
                rest.push(arg);
                continue;
            };
            let ours = s.starts_with("--collector.")
                || s.starts_with("--no-collector.")
                || s.starts_with("--path.");
            if !ours {
                rest.push(arg);
                continue;
            }
            let (name, inline) = match s.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (s.to_string(), None),
            };
            if name == SYSTEMD_PRIVATE {
                return Err(format!(
                    "flag {name} is not supported: systemd's private socket answers under a \
                     sender name the D-Bus client refuses; the collector reads the system bus \
                     (DBUS_SYSTEM_BUS_ADDRESS)"
                ));
            }
            if name == "--collector.disable-defaults" {
                if inline.is_some() {
                    return Err(format!("flag {name} takes no value"));
                }
                flags.disable_defaults = true;
                continue;
            }
            if let Some((_, setting)) = SETTINGS.iter().find(|(n, _)| *n == name) {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .and_then(|v| v.into_string().ok())
                        .ok_or_else(|| format!("flag {name} needs a value"))?,
                };
                flags.settings.push((*setting, value));
                continue;
            }
            let toggle = name
                .strip_prefix("--collector.")
                .map(|t| (t, true))
                .or_else(|| name.strip_prefix("--no-collector.").map(|t| (t, false)))
                .and_then(|(t, on)| TOGGLES.iter().find(|(n, _)| *n == t).map(|x| (x.1, on)));
            if let Some((toggle, on)) = toggle {
                if inline.is_some() {
                    return Err(format!("flag {name} takes no value"));
                }
                flags.toggles.push((toggle, on));
                continue;
            }
            let (collector, on) = match name.strip_prefix("--no-collector.") {
                Some(c) => (c, false),
                None => (name.trim_start_matches("--collector."), true),
            };
            let known = !name.starts_with("--path.")
                && !collector.contains('.')
                && REGISTRY.iter().any(|e| e.name == collector);
            if !known || inline.is_some() {
                return Err(format!("unknown flag {s}"));
            }
            flags.switches.push((collector.to_string(), on));
        }
        let given = |s: Setting| flags.settings.iter().any(|(x, v)| *x == s && !v.is_empty());
        for (old, new, old_name, new_name) in [
            (
                Setting::SystemdWhitelist,
                Setting::SystemdInclude,
                "unit-whitelist",
                "unit-include",
            ),
            (
                Setting::SystemdBlacklist,
                Setting::SystemdExclude,
                "unit-blacklist",
                "unit-exclude",
            ),
        ] {
            if given(old) && flags.settings.iter().any(|(x, _)| *x == new) {
                return Err(format!(
                    "--collector.systemd.{old_name} and --collector.systemd.{new_name} are mutually exclusive"
                ));
            }
        }
        Ok((flags, rest))
    }

    /// Applies the flags over the file's `host:` section.
    pub fn apply(&self, host: &mut HostConfig) {
        if self.disable_defaults {
            host.disable_defaults = true;
        }
        for (name, on) in &self.switches {
            host.collectors.insert(name.clone(), *on);
        }
        for (setting, value) in &self.settings {
            let v = value.clone();
            match setting {
                Setting::MountPoints => host.filesystem_mount_points_exclude = Exclude::Regex(v),
                Setting::FsTypes => host.filesystem_types_exclude = Exclude::Regex(v),
                Setting::NetdevExclude => host.network_devices_exclude = Exclude::Regex(v),
                Setting::DiskstatsExclude => host.diskstats_devices_exclude = Exclude::Regex(v),
                Setting::TextfileDir => host.textfile_directory = (!v.is_empty()).then(|| v.into()),
                Setting::Procfs => host.procfs = v.into(),
                Setting::Sysfs => host.sysfs = v.into(),
                Setting::Rootfs => host.rootfs = v.into(),
                Setting::SystemdInclude => host.systemd_unit_include = v,
                Setting::SystemdExclude => host.systemd_unit_exclude = v,
                // An empty deprecated flag is ignored, as in node_exporter.
                Setting::SystemdWhitelist if !v.is_empty() => host.systemd_unit_include = v,
                Setting::SystemdBlacklist if !v.is_empty() => host.systemd_unit_exclude = v,
                Setting::SystemdWhitelist | Setting::SystemdBlacklist => {}
            }
        }
        for (toggle, on) in &self.toggles {
            let field = match toggle {
                Toggle::Tasks => &mut host.systemd_enable_task_metrics,
                Toggle::Restarts => &mut host.systemd_enable_restarts_metrics,
                Toggle::StartTime => &mut host.systemd_enable_start_time_metrics,
            };
            *field = *on;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn node_flags_are_taken_and_applied() {
        let (flags, rest) = NodeFlags::extract(args(&[
            "prog",
            "--web.listen-address=127.0.0.1:1",
            "--no-collector.netstat",
            "--collector.disable-defaults",
            "--collector.cpu",
            "--path.procfs",
            "/x/proc",
            "--collector.netdev.device-exclude=^lo$",
        ]))
        .expect("valid flags");
        assert_eq!(rest, args(&["prog", "--web.listen-address=127.0.0.1:1"]));
        let mut host = HostConfig::default();
        flags.apply(&mut host);
        assert!(!host.is_enabled("netstat", true));
        assert!(host.is_enabled("cpu", true));
        assert!(!host.is_enabled("meminfo", true));
        assert_eq!(host.procfs, PathBuf::from("/x/proc"));
        let f = host.filters().expect("filters compile");
        assert!(f.netdev.excludes("lo") && !f.netdev.excludes("eth0"));
    }

    #[test]
    fn unknown_node_flags_are_named() {
        for bad in [
            "--collector.nosuch",
            "--no-collector.cpu.x",
            "--path.nope=/",
        ] {
            let err = NodeFlags::extract(args(&["prog", bad])).expect_err(bad);
            assert!(err.contains(bad.split('=').next().unwrap_or(bad)), "{err}");
        }
        let err = NodeFlags::extract(args(&["prog", "--path.procfs"])).expect_err("no value");
        assert!(err.contains("--path.procfs needs a value"), "{err}");
    }

    #[test]
    fn systemd_flags_are_node_exporters() {
        let (flags, rest) = NodeFlags::extract(args(&[
            "prog",
            "--collector.systemd.enable-task-metrics",
            "--collector.systemd.enable-restarts-metrics",
            "--no-collector.systemd.enable-restarts-metrics",
            "--collector.systemd.unit-include=(a|b)\\.service",
            "--collector.systemd.unit-exclude",
            "b\\..+",
        ]))
        .expect("valid flags");
        assert_eq!(rest, args(&["prog"]));
        let mut host = HostConfig::default();
        flags.apply(&mut host);
        let o = host.systemd_options();
        assert!(o.task_metrics && !o.restarts_metrics && !o.start_time_metrics);
        let (inc, exc) = host.systemd_unit_filters().expect("filters compile");
        // Anchored: the whole name must match.
        assert!(inc.is_match("a.service") && !inc.is_match("xa.service"));
        assert!(exc.is_match("b.service") && !exc.is_match("a.service"));

        // Debian's default exclude leaves targets out too.
        let (inc, exc) = HostConfig::default()
            .systemd_unit_filters()
            .expect("defaults compile");
        assert!(inc.is_match("ssh.service") && !exc.is_match("ssh.service"));
        for excluded in [
            "multi-user.target",
            "-.mount",
            "user.slice",
            "dev-sda.device",
        ] {
            assert!(exc.is_match(excluded), "{excluded}");
        }

        // 1.5's deprecated spellings: aliases, but not together with the new flag.
        let (flags, _) = NodeFlags::extract(args(&[
            "prog",
            "--collector.systemd.unit-whitelist=x\\.service",
        ]))
        .expect("valid flags");
        let mut host = HostConfig::default();
        flags.apply(&mut host);
        assert_eq!(host.systemd_unit_include, "x\\.service");
        let err = NodeFlags::extract(args(&[
            "prog",
            "--collector.systemd.unit-blacklist=x",
            "--collector.systemd.unit-exclude=y",
        ]))
        .expect_err("mutually exclusive");
        assert!(err.contains("mutually exclusive"), "{err}");
        let err = NodeFlags::extract(args(&["prog", "--collector.systemd.enable-task-metrics=1"]))
            .expect_err("a switch takes no value");
        assert!(err.contains("takes no value"), "{err}");
        let err = NodeFlags::extract(args(&["prog", "--collector.systemd.private"]))
            .expect_err("not supported");
        assert!(
            err.contains("--collector.systemd.private is not supported"),
            "{err}"
        );

        let bad = HostConfig {
            systemd_unit_include: "(".into(),
            ..HostConfig::default()
        };
        let problems = bad.validate("f.yml");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "host.systemd_unit_include");
    }

    #[test]
    fn default_filters_are_node_exporters() {
        let f = HostConfig::default().filters().expect("defaults compile");
        assert!(f.mount_points.excludes("/proc/sys"));
        assert!(f.mount_points.excludes("/run/credentials/x.service"));
        assert!(f.mount_points.excludes("/mnt/usb") && !f.mount_points.excludes("/mnts"));
        assert!(!f.mount_points.excludes("/"));
        assert!(f.fs_types.excludes("cgroup2") && !f.fs_types.excludes("ext4"));
        assert!(f.diskstats.excludes("vda1") && !f.diskstats.excludes("vda"));
        assert!(f.diskstats.excludes("loop0") && !f.diskstats.excludes("zram0"));
    }
}
