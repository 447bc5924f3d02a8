//! Host metrics under node_exporter's names, so its rules and dashboards work unchanged.
//!
//! sysinfo supplies memory, load, boot time and network counters from one long-lived
//! `System`/`Networks` pair (refreshing is cheap; building them is not). What sysinfo has no
//! counter for comes from /proc like node_exporter does: CPU seconds by mode from /proc/stat,
//! and filesystems from /proc/self/mounts + statvfs(2) (sysinfo lacks free bytes and inodes).

use super::{CollectError, Collector, ScrapeContext};
use crate::config::HostConfig;
use crate::metrics::{Families, Family};
use futures::future::BoxFuture;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use sysinfo::{MemoryRefreshKind, Networks, System};

/// How long one statvfs may take before its mount is reported as erroring and skipped until
/// the call returns (a dead NFS server must not hang every scrape).
const STATFS_TIMEOUT: Duration = Duration::from_secs(1);

pub struct HostCollector {
    config: HostConfig,
    state: Arc<Mutex<SysState>>,
    /// Mount points whose statvfs has not returned yet.
    stuck: Arc<Mutex<HashSet<String>>>,
    clock_ticks: f64,
}

struct SysState {
    system: System,
    networks: Networks,
}

impl HostCollector {
    pub fn new(config: HostConfig) -> HostCollector {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        HostCollector {
            config,
            state: Arc::new(Mutex::new(SysState {
                system: System::new(),
                networks: Networks::new_with_refreshed_list(),
            })),
            stuck: Arc::new(Mutex::new(HashSet::new())),
            clock_ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }

    async fn gather(&self) -> Result<Families, CollectError> {
        let state = self.state.clone();
        let net_exclude = self.config.network_devices_exclude.clone();
        let ticks = self.clock_ticks;
        let mut fams = tokio::task::spawn_blocking(move || {
            let mut fams = Families::default();
            cpu_families(&mut fams, ticks)?;
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.system
                .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
            let sys = &st.system;
            for (name, value) in [
                ("MemTotal", sys.total_memory()),
                ("MemAvailable", sys.available_memory()),
                ("MemFree", sys.free_memory()),
                ("SwapTotal", sys.total_swap()),
                ("SwapFree", sys.free_swap()),
            ] {
                fams.gauge(
                    &format!("node_memory_{name}_bytes"),
                    &format!("Memory information field {name}_bytes."),
                    value as f64,
                );
            }
            st.networks.refresh(true);
            let mut devices: Vec<(&String, &sysinfo::NetworkData)> = st
                .networks
                .iter()
                .filter(|(name, _)| !net_exclude.contains(name))
                .collect();
            devices.sort_by(|a, b| a.0.cmp(b.0));
            type Pick = fn(&sysinfo::NetworkData) -> u64;
            let net: [(&str, &str, Pick); 6] = [
                ("receive_bytes", "bytes", |d| d.total_received()),
                ("transmit_bytes", "bytes", |d| d.total_transmitted()),
                ("receive_packets", "packets", |d| d.total_packets_received()),
                ("transmit_packets", "packets", |d| {
                    d.total_packets_transmitted()
                }),
                ("receive_errs", "errs", |d| d.total_errors_on_received()),
                ("transmit_errs", "errs", |d| d.total_errors_on_transmitted()),
            ];
            for (stat, what, pick) in net {
                let mut f = Family::counter(
                    &format!("node_network_{stat}_total"),
                    &format!("Network device statistic {stat} ({what})."),
                );
                for (name, data) in &devices {
                    f.add(&[("device", name.as_str())], pick(data) as f64);
                }
                fams.push(f);
            }
            drop(st);
            let load = System::load_average();
            fams.gauge("node_load1", "1m load average.", load.one);
            fams.gauge("node_load5", "5m load average.", load.five);
            fams.gauge("node_load15", "15m load average.", load.fifteen);
            fams.gauge(
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                System::boot_time() as f64,
            );
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            fams.gauge(
                "node_time_seconds",
                "System time in seconds since epoch (1970).",
                now,
            );
            Ok::<Families, CollectError>(fams)
        })
        .await
        .map_err(|e| CollectError::Query(format!("host collector task: {e}")))??;
        self.filesystems(&mut fams).await;
        Ok(fams)
    }

    /// node_filesystem_* for every mount not excluded, each statvfs under its own timeout.
    async fn filesystems(&self, fams: &mut Families) {
        let mounts = match std::fs::read_to_string("/proc/self/mounts") {
            Ok(text) => parse_mounts(&text, &self.config),
            Err(_) => return,
        };
        let mut size = Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
        let mut free = Family::gauge(
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
        );
        let mut avail = Family::gauge(
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
        );
        let mut files = Family::gauge("node_filesystem_files", "Filesystem total file nodes.");
        let mut files_free = Family::gauge(
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
        );
        let mut readonly =
            Family::gauge("node_filesystem_readonly", "Filesystem read-only status.");
        let mut device_error = Family::gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
        );
        let stats = self.statvfs_all(mounts.clone()).await;
        for (m, stat) in mounts.iter().zip(stats) {
            let labels = [
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
                ("mountpoint", m.mountpoint.as_str()),
            ];
            match stat {
                Some(s) => {
                    device_error.add(&labels, 0.0);
                    size.add(&labels, s.size);
                    free.add(&labels, s.free);
                    avail.add(&labels, s.avail);
                    files.add(&labels, s.files);
                    files_free.add(&labels, s.files_free);
                    readonly.add(&labels, if m.readonly { 1.0 } else { 0.0 });
                }
                None => {
                    device_error.add(&labels, 1.0);
                }
            }
        }
        for f in [avail, device_error, files, files_free, free, readonly, size] {
            fams.push(f);
        }
    }
}

impl HostCollector {
    /// statvfs of every mount, in order, on one blocking thread. A call that has not returned
    /// after STATFS_TIMEOUT marks its mount as stuck: it and the mounts not reached yet get
    /// `None` (device_error 1), and stuck mounts are skipped until their call returns.
    async fn statvfs_all(&self, mounts: Vec<Mount>) -> Vec<Option<FsStat>> {
        let n = mounts.len();
        let skip: HashSet<String> = self.stuck.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let done: Arc<Mutex<Vec<Option<FsStat>>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let in_flight: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let (done2, in_flight2, stuck2) = (done.clone(), in_flight.clone(), self.stuck.clone());
        let task = tokio::task::spawn_blocking(move || {
            for m in mounts {
                let r = if skip.contains(&m.mountpoint) {
                    None
                } else {
                    *in_flight2.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(m.mountpoint.clone());
                    let r = statvfs(&m.mountpoint);
                    let mut f = in_flight2.lock().unwrap_or_else(|p| p.into_inner());
                    *f = None;
                    stuck2
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&m.mountpoint);
                    drop(f);
                    r
                };
                done2.lock().unwrap_or_else(|p| p.into_inner()).push(r);
            }
        });
        if tokio::time::timeout(STATFS_TIMEOUT, task).await.is_err() {
            let f = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(mp) = f.as_ref() {
                tracing::warn!(mountpoint = %mp, "statvfs timed out; skipping the mount until it returns");
                self.stuck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(mp.clone());
            }
        }
        let mut out = std::mem::take(&mut *done.lock().unwrap_or_else(|p| p.into_inner()));
        out.resize_with(n, || None);
        out
    }
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect<'a>(&'a self, _ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>> {
        Box::pin(self.gather())
    }
}

/// node_cpu_seconds_total from /proc/stat (ticks of USER_HZ, one line per CPU).
fn cpu_families(fams: &mut Families, ticks: f64) -> Result<(), CollectError> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| CollectError::Io {
        path: "/proc/stat".into(),
        source: e,
    })?;
    let mut f = Family::counter(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
    );
    let mut guest = Family::counter(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
    );
    for cpu in parse_proc_stat_cpus(&text) {
        let modes = [
            ("idle", cpu.idle),
            ("iowait", cpu.iowait),
            ("irq", cpu.irq),
            ("nice", cpu.nice),
            ("softirq", cpu.softirq),
            ("steal", cpu.steal),
            ("system", cpu.system),
            ("user", cpu.user),
        ];
        for (mode, t) in modes {
            f.add(&[("cpu", &cpu.cpu), ("mode", mode)], t as f64 / ticks);
        }
        guest.add(
            &[("cpu", &cpu.cpu), ("mode", "nice")],
            cpu.guest_nice as f64 / ticks,
        );
        guest.add(
            &[("cpu", &cpu.cpu), ("mode", "user")],
            cpu.guest as f64 / ticks,
        );
    }
    fams.push(f);
    fams.push(guest);
    Ok(())
}

#[derive(Debug, Default, PartialEq)]
pub struct CpuTicks {
    pub cpu: String,
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

/// The per-CPU lines (`cpu0 …`) of /proc/stat; the aggregate `cpu` line is skipped.
pub fn parse_proc_stat_cpus(text: &str) -> Vec<CpuTicks> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            let head = it.next()?;
            let id = head.strip_prefix("cpu")?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let v: Vec<u64> = it.map(|x| x.parse().unwrap_or(0)).collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            Some(CpuTicks {
                cpu: id.to_string(),
                user: at(0),
                nice: at(1),
                system: at(2),
                idle: at(3),
                iowait: at(4),
                irq: at(5),
                softirq: at(6),
                steal: at(7),
                guest: at(8),
                guest_nice: at(9),
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub readonly: bool,
}

/// /proc/self/mounts minus excluded types and mount points; octal escapes decoded; one
/// entry per mount point (the last mount wins, as it is the visible one).
pub fn parse_mounts(text: &str, config: &HostConfig) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let m = Mount {
            device: unescape_octal(f[0]),
            mountpoint: unescape_octal(f[1]),
            fstype: f[2].to_string(),
            readonly: f[3].split(',').any(|o| o == "ro"),
        };
        if config.filesystem_types_exclude.contains(&m.fstype) {
            continue;
        }
        let excluded = config.filesystem_mount_points_exclude.iter().any(|p| {
            m.mountpoint == *p
                || m.mountpoint
                    .starts_with(&format!("{}/", p.trim_end_matches('/')))
        });
        if excluded {
            continue;
        }
        out.retain(|o| o.mountpoint != m.mountpoint);
        out.push(m);
    }
    out
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct FsStat {
    size: f64,
    free: f64,
    avail: f64,
    files: f64,
    files_free: f64,
}

fn statvfs(path: &str) -> Option<FsStat> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; c is NUL-terminated.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return None;
    }
    let bsize = s.f_frsize as f64;
    Some(FsStat {
        size: s.f_blocks as f64 * bsize,
        free: s.f_bfree as f64 * bsize,
        avail: s.f_bavail as f64 * bsize,
        files: s.f_files as f64,
        files_free: s.f_ffree as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_per_cpu_lines() {
        let text = "cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 1 2 3 4 5 6 7 8 9 10\ncpu1 11 12 13 14 15 16 17 18 0 0\nintr 5\n";
        let cpus = parse_proc_stat_cpus(text);
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[1].cpu, "1");
        assert_eq!(
            (cpus[0].user, cpus[0].steal, cpus[0].guest_nice),
            (1, 8, 10)
        );
    }

    #[test]
    fn mounts_are_filtered_and_unescaped() {
        let text = "proc /proc proc rw 0 0\n/dev/vda / ext4 rw,relatime 0 0\ntmpfs /run/a\\040b tmpfs ro 0 0\noverlay /x overlay rw 0 0\nsysfs /sys/fs sysfs rw 0 0\n";
        let m = parse_mounts(text, &HostConfig::default());
        assert_eq!(
            m,
            vec![
                Mount {
                    device: "/dev/vda".into(),
                    mountpoint: "/".into(),
                    fstype: "ext4".into(),
                    readonly: false
                },
                Mount {
                    device: "tmpfs".into(),
                    mountpoint: "/run/a b".into(),
                    fstype: "tmpfs".into(),
                    readonly: true
                },
            ]
        );
    }
}
