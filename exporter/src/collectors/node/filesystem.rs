//! `filesystem` collector: `node_filesystem_*` for every mount in `<procfs>/1/mounts` (else
//! `<procfs>/mounts`) not excluded, sizes from statfs(2) under the root path, as node_exporter.
//!
//! statfs on a dead NFS server blocks forever. The calls run on a long-lived helper thread
//! the collector waits for at most [`MOUNT_TIMEOUT`] (then the thread is abandoned and a new
//! one serves the next scrape); a mount whose call has not returned is "stuck": it is
//! reported with `node_filesystem_device_error 1` (and no sizes) until its call returns, and
//! no second call is made on it meanwhile.

use super::{Ctx, NodeCollector, NodeError, lock, parse_err, read};
use crate::metrics::{Families, Family};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Filesystem {
    stuck: Arc<Mutex<HashSet<String>>>,
    in_flight: Arc<Mutex<Option<String>>>,
    worker: Mutex<Option<Worker>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub readonly: bool,
}

struct Stat {
    size: f64,
    free: f64,
    avail: f64,
    files: f64,
    files_free: f64,
}

impl NodeCollector for Filesystem {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let mut mounts = read_mounts(ctx)?;
        mounts.retain(|m| {
            !ctx.filters.mount_points.excludes(&m.mountpoint)
                && !ctx.filters.fs_types.excludes(&m.fstype)
        });
        let mut seen = HashSet::new();
        mounts.retain(|m| seen.insert(m.clone()));
        let stats = self.statfs_all(
            mounts
                .iter()
                .map(|m| (m.mountpoint.clone(), ctx.paths.root(&m.mountpoint)))
                .collect(),
        );
        let names = [
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
            ),
            (
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
            ),
            ("node_filesystem_files", "Filesystem total file nodes."),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
            ),
            ("node_filesystem_readonly", "Filesystem read-only status."),
            ("node_filesystem_size_bytes", "Filesystem size in bytes."),
        ];
        let mut f: Vec<Family> = names.iter().map(|(n, h)| Family::gauge(n, h)).collect();
        for (m, stat) in mounts.iter().zip(stats) {
            let labels = [
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
                ("mountpoint", m.mountpoint.as_str()),
            ];
            match stat {
                Some(s) => {
                    f[0].add(&labels, s.avail);
                    f[1].add(&labels, 0.0);
                    f[2].add(&labels, s.files);
                    f[3].add(&labels, s.files_free);
                    f[4].add(&labels, s.free);
                    f[5].add(&labels, if m.readonly { 1.0 } else { 0.0 });
                    f[6].add(&labels, s.size);
                }
                None => {
                    f[1].add(&labels, 1.0);
                }
            }
        }
        for fam in f {
            out.push(fam);
        }
        Ok(())
    }
}

/// The long-lived thread that makes the statfs calls (one per exporter, not one per scrape),
/// and its two ends. Replaced when a call hangs: the hung thread exits when its call returns
/// and finds nobody listening.
struct Worker {
    jobs: mpsc::Sender<(usize, String, PathBuf)>,
    results: mpsc::Receiver<(usize, Option<Stat>)>,
}

impl Worker {
    fn spawn(
        stuck: Arc<Mutex<HashSet<String>>>,
        in_flight: Arc<Mutex<Option<String>>>,
    ) -> Option<Worker> {
        let (jobs, job_rx) = mpsc::channel::<(usize, String, PathBuf)>();
        let (res_tx, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("statfs".into())
            .spawn(move || {
                for (i, mp, path) in job_rx {
                    *lock(&in_flight) = Some(mp.clone());
                    let r = statfs(&path);
                    *lock(&in_flight) = None;
                    lock(&stuck).remove(&mp);
                    if res_tx.send((i, r)).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Worker { jobs, results })
    }
}

impl Filesystem {
    /// statfs of every (mount point, path), in order; `None` for an error or a stuck mount.
    fn statfs_all(&self, mounts: Vec<(String, PathBuf)>) -> Vec<Option<Stat>> {
        let n = mounts.len();
        let mut out: Vec<Option<Stat>> = (0..n).map(|_| None).collect();
        let mut slot = lock(&self.worker);
        if slot.is_none() {
            *slot = Worker::spawn(self.stuck.clone(), self.in_flight.clone());
        }
        let Some(worker) = slot.as_ref() else {
            return out;
        };
        let skip: HashSet<String> = lock(&self.stuck).clone();
        let mut sent = 0;
        for (i, (mp, path)) in mounts.into_iter().enumerate() {
            if skip.contains(&mp) {
                continue;
            }
            if worker.jobs.send((i, mp, path)).is_err() {
                break;
            }
            sent += 1;
        }
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        for _ in 0..sent {
            let left = deadline.saturating_duration_since(Instant::now());
            match worker.results.recv_timeout(left) {
                Ok((i, r)) => out[i] = r,
                Err(_) => {
                    if let Some(mp) = lock(&self.in_flight).clone() {
                        tracing::warn!(mountpoint = %mp, "statfs timed out; reporting the mount as erroring until it returns");
                        lock(&self.stuck).insert(mp);
                    }
                    // The worker is blocked (or gone): the next scrape gets a fresh one.
                    *slot = None;
                    break;
                }
            }
        }
        out
    }
}

fn statfs(path: &std::path::Path) -> Option<Stat> {
    let s = rustix::fs::statfs(path).ok()?;
    // node_exporter multiplies by f_bsize (not f_frsize); so do we, for equal values.
    let bsize = s.f_bsize as f64;
    Some(Stat {
        size: s.f_blocks as f64 * bsize,
        free: s.f_bfree as f64 * bsize,
        avail: s.f_bavail as f64 * bsize,
        files: s.f_files as f64,
        files_free: s.f_ffree as f64,
    })
}

/// The mount table as node_exporter's `mountPointDetails` reads it (the btrfs collector
/// uses it too): `<procfs>/1/mounts`, else `<procfs>/mounts` (`/proc/1` hidden by `hidepid`).
pub fn read_mounts(ctx: &Ctx<'_>) -> Result<Vec<Mount>, NodeError> {
    let path = {
        let one = ctx.paths.proc("1/mounts");
        if one.exists() {
            one
        } else {
            ctx.paths.proc("mounts")
        }
    };
    let text = read(&path)?;
    let rootfs = ctx.paths.rootfs.to_string_lossy().into_owned();
    parse_mounts(&text, &rootfs).map_err(|l| parse_err(&path, l))
}

/// The mounts table (procfs-core's `MountEntry` parser); the mount point keeps node_exporter's
/// decoding (`\040` space, `\011` tab) and loses the root-path prefix.
pub fn parse_mounts(text: &str, rootfs: &str) -> Result<Vec<Mount>, String> {
    use procfs_core::FromRead;
    let entries =
        <Vec<procfs_core::MountEntry>>::from_read(text.as_bytes()).map_err(|e| e.to_string())?;
    let root = rootfs.trim_end_matches('/');
    Ok(entries
        .into_iter()
        .map(|e| {
            let mp = e.fs_file.replace("\\040", " ").replace("\\011", "\t");
            let mountpoint = match mp.strip_prefix(root) {
                Some(rest) if !root.is_empty() => {
                    if rest.is_empty() {
                        "/".to_string()
                    } else {
                        rest.to_string()
                    }
                }
                _ => mp,
            };
            Mount {
                device: e.fs_spec,
                mountpoint,
                fstype: e.fs_vfstype,
                readonly: e.fs_mntops.contains_key("ro"),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_decoded_and_root_stripped() {
        let text = "/dev/vda / ext4 rw,relatime 0 0\ntmpfs /host/run/a\\040b tmpfs ro,nosuid 0 0\n";
        let m = parse_mounts(text, "/host").expect("valid");
        assert_eq!(m[1].mountpoint, "/run/a b");
        assert!(m[1].readonly && !m[0].readonly);
        let m = parse_mounts(text, "/").expect("valid");
        assert_eq!(m[0].mountpoint, "/");
        assert_eq!(m[1].mountpoint, "/host/run/a b");
    }
}
