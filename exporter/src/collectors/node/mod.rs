//! Host metrics as node_exporter 1.5 publishes them, so its rules and dashboards (Node
//! Exporter Full, node-mixin) work unchanged.
//!
//! One file per node_exporter collector, each behind [`NodeCollector`]; what they share is here
//! once: the `/proc`, `/sys` and root paths (`--path.*`), enabling (`--collector.NAME`), the
//! per-collector `node_scrape_collector_success` / `node_scrape_collector_duration_seconds`
//! under node_exporter's names, and the budget. A new collector is one file plus one line in
//! [`REGISTRY`].
//!
//! Every read of `/proc` and `/sys` happens on one blocking thread, collector after collector
//! (cheaper than one thread each: a scrape's reads take a few milliseconds in all). The
//! scrape waits for it only within its budget, and for one collector at most
//! [`PER_COLLECTOR_LIMIT`]: a collector still reading then is reported as failed, the others
//! continue on a fresh thread, and later scrapes skip it until its read returns, so a hung
//! pseudo-file (or a dead NFS mount, see `filesystem.rs`) can never hang a scrape or pile up
//! threads.

mod arp;
mod bcache;
mod bonding;
mod btrfs;
mod conntrack;
pub(crate) mod cpu;
mod cpufreq;
mod diskstats;
mod dmi;
mod edac;
mod entropy;
mod fibrechannel;
mod filefd;
mod filesystem;
mod hwmon;
mod infiniband;
mod ipvs;
mod loadavg;
mod mdadm;
mod meminfo;
mod netclass;
mod netdev;
mod netstat;
mod nfs;
mod nfsd;
mod nvme;
mod os;
mod powersupplyclass;
mod pressure;
mod pseudofs;
mod rapl;
mod schedstat;
mod selinux;
pub mod settings;
mod sockstat;
mod softnet;
mod stat;
mod sysfs;
mod systemd;
mod tapestats;
mod textfile;
mod thermal_zone;
mod time;
mod timex;
mod udp_queues;
mod uname;
mod vmstat;
mod xfs;
mod zfs;

use super::{CollectError, Collector, ScrapeContext};
use crate::metrics::{Families, Family, MetricFamily};
use futures::future::BoxFuture;
use settings::{Filters, HostConfig};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why one node collector produced nothing this scrape (its success is 0).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The source does not exist on this machine (node_exporter's ErrNoData: logged quietly).
    #[error("no data")]
    NoData,
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {reason}")]
    Parse { path: String, reason: String },
}

/// Where the host's pseudo-filesystems are (a container mounts the host's under other paths).
#[derive(Debug, Clone)]
pub struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Paths {
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    /// `p` (absolute, as the host sees it) under the root path.
    pub fn root(&self, p: &str) -> PathBuf {
        self.rootfs.join(p.trim_start_matches('/'))
    }
}

/// What every node collector gets for one scrape.
pub struct Ctx<'a> {
    pub paths: &'a Paths,
    pub filters: &'a Filters,
    /// Names of the families the collectors before this one produced (the textfile collector
    /// runs last and refuses to duplicate them).
    pub produced: &'a HashSet<String>,
}

/// One node_exporter collector.
pub trait NodeCollector: Send + Sync {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError>;
}

/// One registered collector: node_exporter's name, whether 1.5 enables it by default, and how
/// to build it.
pub struct Entry {
    pub name: &'static str,
    pub default_on: bool,
    build: fn(&HostConfig) -> Box<dyn NodeCollector>,
}

const fn entry(
    name: &'static str,
    default_on: bool,
    build: fn(&HostConfig) -> Box<dyn NodeCollector>,
) -> Entry {
    Entry {
        name,
        default_on,
        build,
    }
}

/// Every node collector, in node_exporter's names; `textfile` last (it checks for clashes
/// with what the others produced).
pub static REGISTRY: &[Entry] = &[
    entry("arp", true, |_| Box::new(arp::Arp)),
    entry("bcache", true, |_| Box::new(bcache::Bcache)),
    entry("bonding", true, |_| Box::new(bonding::Bonding)),
    entry("btrfs", true, |_| Box::new(btrfs::Btrfs)),
    entry("conntrack", true, |_| Box::new(conntrack::Conntrack)),
    entry("cpu", true, |_| Box::new(cpu::Cpu)),
    entry("cpufreq", true, |_| Box::new(cpufreq::Cpufreq)),
    entry("diskstats", true, |_| Box::new(diskstats::Diskstats)),
    entry("dmi", true, |c| Box::new(dmi::Dmi::new(&c.sysfs))),
    entry("edac", true, |_| Box::new(edac::Edac)),
    entry("entropy", true, |_| Box::new(entropy::Entropy)),
    entry("fibrechannel", true, |_| {
        Box::new(fibrechannel::FibreChannel)
    }),
    entry("filefd", true, |_| Box::new(filefd::Filefd)),
    entry("filesystem", true, |_| {
        Box::new(filesystem::Filesystem::default())
    }),
    entry("hwmon", true, |_| Box::new(hwmon::Hwmon)),
    entry("infiniband", true, |_| Box::new(infiniband::Infiniband)),
    entry("ipvs", true, |_| Box::new(ipvs::Ipvs)),
    entry("loadavg", true, |_| Box::new(loadavg::Loadavg)),
    entry("mdadm", true, |_| Box::new(mdadm::Mdadm)),
    entry("meminfo", true, |_| Box::new(meminfo::Meminfo)),
    entry("netclass", true, |_| Box::new(netclass::Netclass)),
    entry("netdev", true, |_| Box::new(netdev::Netdev)),
    entry("netstat", true, |_| Box::new(netstat::Netstat::new())),
    entry("nfs", true, |_| Box::new(nfs::Nfs)),
    entry("nfsd", true, |_| Box::new(nfsd::Nfsd)),
    entry("nvme", true, |_| Box::new(nvme::Nvme)),
    entry("os", true, |_| Box::new(os::Os)),
    entry("powersupplyclass", true, |_| {
        Box::new(powersupplyclass::PowerSupplyClass)
    }),
    entry("pressure", true, |_| Box::new(pressure::Pressure)),
    entry("rapl", true, |_| Box::new(rapl::Rapl)),
    entry("schedstat", true, |_| Box::new(schedstat::Schedstat)),
    entry("selinux", true, |_| Box::new(selinux::Selinux)),
    entry("sockstat", true, |_| Box::new(sockstat::Sockstat)),
    entry("softnet", true, |_| Box::new(softnet::Softnet)),
    entry("stat", true, |_| Box::new(stat::Stat)),
    entry("systemd", true, |c| Box::new(systemd::Systemd::new(c))),
    entry("tapestats", true, |_| Box::new(tapestats::Tapestats)),
    entry("thermal_zone", true, |_| {
        Box::new(thermal_zone::ThermalZone)
    }),
    entry("time", true, |_| Box::new(time::Time)),
    entry("timex", true, |_| Box::new(timex::Timex)),
    entry("udp_queues", true, |_| Box::new(udp_queues::UdpQueues)),
    entry("uname", true, |_| Box::new(uname::Uname)),
    entry("vmstat", true, |_| Box::new(vmstat::Vmstat::new())),
    entry("xfs", true, |_| Box::new(xfs::Xfs)),
    entry("zfs", true, |_| Box::new(zfs::Zfs)),
    entry("textfile", true, |c| {
        Box::new(textfile::Textfile::new(c.textfile_directory.clone()))
    }),
];

/// The exporter-wide collector (`collector="host"` in quantwatch's own self metrics) that runs
/// the enabled node collectors.
pub struct HostCollector {
    inner: Arc<Inner>,
}

struct Inner {
    collectors: Vec<(&'static str, Box<dyn NodeCollector>)>,
    paths: Paths,
    filters: Filters,
    /// Collectors whose update has not returned since a scrape gave up on it.
    stuck: Mutex<HashSet<&'static str>>,
    build_info: MetricFamily,
}

type Outcome = (&'static str, bool, f64, Families);

impl HostCollector {
    /// `config` was validated at load, so its filters compile; a filter that still fails
    /// (a caller that skipped validation) excludes nothing rather than panicking.
    pub fn new(config: HostConfig) -> HostCollector {
        let filters = config.filters().unwrap_or_else(|_| {
            let none = settings::Filter::Exact(Vec::new());
            Filters {
                mount_points: none.clone(),
                fs_types: none.clone(),
                netdev: none.clone(),
                diskstats: none,
            }
        });
        let collectors = REGISTRY
            .iter()
            .filter(|e| config.is_enabled(e.name, e.default_on))
            .map(|e| (e.name, (e.build)(&config)))
            .collect();
        HostCollector {
            inner: Arc::new(Inner {
                collectors,
                paths: Paths {
                    procfs: config.procfs.clone(),
                    sysfs: config.sysfs.clone(),
                    rootfs: config.rootfs.clone(),
                },
                filters,
                stuck: Mutex::new(HashSet::new()),
                build_info: build_info(),
            }),
        }
    }

    async fn gather(&self, ctx: ScrapeContext) -> Result<Families, CollectError> {
        // Leave a little of the budget for rendering what we have.
        let wait = ctx.budget.mul_f64(0.9);
        let deadline = tokio::time::Instant::now() + wait;
        // One collector may hold the thread this long before the rest move to a new one.
        let per_collector = PER_COLLECTOR_LIMIT.min(wait / 2);
        let n = self.inner.collectors.len();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(n);
        let mut next = 0;
        'threads: while next < n {
            let run = Arc::new(Run::default());
            let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
            let (inner, shared) = (self.inner.clone(), run.clone());
            let from = next;
            let produced: HashSet<String> = outcomes
                .iter()
                .flat_map(|o| o.3.0.iter().map(|f| f.name().to_string()))
                .collect();
            tokio::task::spawn_blocking(move || run_from(&inner, from, produced, &shared, done_tx));
            // Looked at only when a limit passes: a run that ends in time wakes us once.
            let mut since = tokio::time::Instant::now();
            loop {
                let limit = deadline.min(since + per_collector);
                if tokio::time::timeout_at(limit, &mut done_rx).await.is_ok() {
                    // Finished, or the thread ended without saying so (a panic): take what
                    // it reported; the collectors it did not reach count as failed below.
                    outcomes.append(&mut lock(&run.state).outcomes);
                    break 'threads;
                }
                let mut state = lock(&run.state);
                let now = tokio::time::Instant::now();
                let overran = match state.current {
                    Some((_, started)) => {
                        let started = tokio::time::Instant::from_std(started);
                        if now < deadline && now < started + per_collector {
                            since = started;
                            continue;
                        }
                        true
                    }
                    None if now < deadline => {
                        since = now;
                        continue;
                    }
                    None => false,
                };
                // Give up on this thread: it stops at its next collector if its read returns.
                state.abandoned = true;
                outcomes.append(&mut state.outcomes);
                let Some((i, _)) = state.current.filter(|_| overran) else {
                    break 'threads;
                };
                let name = self.inner.collectors[i].0;
                tracing::warn!(
                    collector = name,
                    "node collector still reading; skipped until its read returns"
                );
                lock(&self.inner.stuck).insert(name);
                outcomes.push((
                    name,
                    false,
                    per_collector.as_secs_f64(),
                    Families::default(),
                ));
                next = i + 1;
                if now >= deadline {
                    break 'threads;
                }
                continue 'threads;
            }
        }
        for (name, _) in &self.inner.collectors[outcomes.len().min(n)..] {
            if !outcomes.iter().any(|o| o.0 == *name) {
                outcomes.push((*name, false, 0.0, Families::default()));
            }
        }
        let mut duration = Family::gauge(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
        );
        let mut success = Family::gauge(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
        );
        let mut out = Families::default();
        for (name, ok, secs, fams) in outcomes {
            duration.add(&[("collector", name)], secs);
            success.add(&[("collector", name)], if ok { 1.0 } else { 0.0 });
            out.0.extend(fams.0);
        }
        out.push(duration);
        out.push(success);
        out.0.push(self.inner.build_info.clone());
        pseudofs::end_round();
        Ok(out)
    }
}

/// How long one node collector may block before the others continue without it.
const PER_COLLECTOR_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A poisoned lock still holds valid data here (a collector that panicked only left its own
/// outcome unrecorded): take it.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One blocking run of the collectors, as the scrape waiting for it sees it.
#[derive(Default)]
struct Run {
    state: Mutex<RunState>,
}

#[derive(Default)]
struct RunState {
    /// The collector reading now (index into `Inner::collectors`) and since when.
    current: Option<(usize, Instant)>,
    /// Outcomes in collector order, taken by the scrape when the run ends or is given up.
    outcomes: Vec<Outcome>,
    /// Set by the scrape when it gives up on this run: the thread stops before its next
    /// collector, and what it would still report goes nowhere.
    abandoned: bool,
}

/// Runs the enabled collectors from index `from` on, in order, recording in `run` which one
/// is reading and each outcome; signals `done` at the end. No message per collector: the
/// scrape looks at `run` only when a limit passes (cross-thread wake-ups, two per collector,
/// were a fifth of the host collection's time). `produced` holds the family names of the
/// collectors before `from`.
fn run_from(
    inner: &Inner,
    from: usize,
    mut produced: HashSet<String>,
    run: &Run,
    done: tokio::sync::oneshot::Sender<()>,
) {
    for (i, (name, c)) in inner.collectors.iter().enumerate().skip(from) {
        let name: &'static str = name;
        if lock(&inner.stuck).contains(&name) {
            let mut state = lock(&run.state);
            if state.abandoned {
                return;
            }
            state.outcomes.push((name, false, 0.0, Families::default()));
            continue;
        }
        let start = Instant::now();
        {
            let mut state = lock(&run.state);
            if state.abandoned {
                return;
            }
            state.current = Some((i, start));
        }
        let ctx = Ctx {
            paths: &inner.paths,
            filters: &inner.filters,
            produced: &produced,
        };
        let mut fams = Families::default();
        let result = c.update(&ctx, &mut fams);
        let secs = start.elapsed().as_secs_f64();
        lock(&inner.stuck).remove(&name);
        let ok = match result {
            Ok(()) => true,
            Err(NodeError::NoData) => {
                tracing::debug!(collector = name, "collector returned no data");
                fams = Families::default();
                false
            }
            Err(e) => {
                tracing::debug!(collector = name, error = %e, "collector failed");
                fams = Families::default();
                false
            }
        };
        produced.extend(fams.0.iter().map(|f| f.name().to_string()));
        let mut state = lock(&run.state);
        if state.abandoned {
            return;
        }
        state.current = None;
        state.outcomes.push((name, ok, secs, fams));
    }
    let _ = done.send(());
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect<'a>(&'a self, ctx: ScrapeContext) -> BoxFuture<'a, Result<Families, CollectError>> {
        Box::pin(self.gather(ctx))
    }
}

/// node_exporter's build-info family, labelled with what built us: there is no Go here, so
/// `goversion` names the Rust compiler (README, "node_exporter compatibility").
fn build_info() -> MetricFamily {
    let goarch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let mut f = Family::gauge(
        "node_exporter_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, goversion from which node_exporter was built, and the goos and goarch for the build.",
    );
    let rust = format!("rust{}", crate::RUST_VERSION);
    f.add(
        &[
            ("branch", ""),
            ("goarch", goarch),
            ("goos", std::env::consts::OS),
            ("goversion", &rust),
            ("revision", ""),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1.0,
    );
    f.into_inner()
}

// ---- helpers the collectors share ----

/// The whole file, with its path in the error.
pub fn read(path: &Path) -> Result<String, NodeError> {
    pseudofs::read_to_string(path).map_err(|source| NodeError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A missing file is "no data" (the feature is absent), any other failure an error.
pub fn read_or_nodata(path: &Path) -> Result<String, NodeError> {
    match pseudofs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NodeError::NoData),
        Err(source) => Err(NodeError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// One sysfs attribute, trimmed; `None` when absent or unreadable (EINVAL on a down link).
pub fn attr(path: &Path) -> Option<String> {
    pseudofs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

pub fn parse_err(path: &Path, reason: impl std::fmt::Display) -> NodeError {
    NodeError::Parse {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A procfs-core parser over a file under `--path.procfs`.
pub fn proc_parse<T: procfs_core::FromRead>(ctx: &Ctx<'_>, rel: &str) -> Result<T, NodeError> {
    let path = ctx.paths.proc(rel);
    let text = read(&path)?;
    T::from_read(text.as_bytes()).map_err(|e| parse_err(&path, e))
}
