//! `btrfs` collector: `node_btrfs_*` for every filesystem in `/sys/fs/btrfs/<uuid>/`, as
//! node_exporter 1.5: label, global reserve and per block-group-type allocation from sysfs
//! (procfs 0.8's reading), and per-device sizes and error counters from the same ioctls
//! node_exporter makes through github.com/dennwc/btrfs (`BTRFS_IOC_FS_INFO`,
//! `BTRFS_IOC_DEV_INFO`, `BTRFS_IOC_GET_DEV_STATS`) on a mount point of the filesystem. A
//! filesystem the ioctls cannot reach (not mounted here, mounted only through a directory that
//! is not a subvolume's root, or a mount point this user may not open with `O_NOATIME`) gets
//! node_exporter's fallback: `node_btrfs_device_size_bytes{device,uuid}` from sysfs.
//! No btrfs publishes nothing, successfully.
//!
//! procfs' reader keeps one error per directory and its quirks decide what is published, so
//! they are kept: an absent file reads as empty (0), a file that cannot be read makes every
//! later number of the same reader 0, an unparsable number is 0 (one beyond 64 bits is the
//! largest u64), and each of `allocation/{data,metadata,system}` replaces the filesystem's
//! error with its own, so only a failure under `allocation/system` fails the collector.

use super::filesystem::read_mounts;
use super::sysfs::{list, sys_read_raw};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub struct Btrfs;

/// Linux counts block device sizes in sysfs in 512-byte sectors, whatever the device's
/// block size.
const SECTOR_SIZE: u64 = 512;

/// What procfs' `btrfs.Stats` holds of one filesystem that node_exporter publishes.
struct Stats {
    uuid: String,
    label: String,
    global_rsv_size: u64,
    /// data, metadata, system.
    allocation: [Allocation; 3],
    /// Device name in `devices/` → size in bytes.
    devices: BTreeMap<String, u64>,
}

struct Allocation {
    reserved: u64,
    /// Layout directory (`single`, `dup`, `raid1`, …) → (used, total, ratio).
    layouts: BTreeMap<String, (u64, u64, f64)>,
}

/// One device as the ioctls report it.
struct Device {
    path: String,
    uuid: String,
    bytes_used: u64,
    total_bytes: u64,
    /// write, read, flush, corruption, generation.
    errors: [u64; 5],
}

const BLOCK_GROUP_TYPES: [&str; 3] = ["data", "metadata", "system"];
const ERROR_TYPES: [&str; 5] = ["write", "read", "flush", "corruption", "generation"];

impl NodeCollector for Btrfs {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let stats = read_stats(&ctx.paths.sys("fs/btrfs"))?;
        if stats.is_empty() {
            return Ok(());
        }
        let by_fsid = ioctl_stats(ctx).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "btrfs device stats by ioctl unavailable");
            HashMap::new()
        });
        let mut info = Family::gauge("node_btrfs_info", "Filesystem information");
        let mut rsv = Family::gauge(
            "node_btrfs_global_rsv_size_bytes",
            "Size of global reserve.",
        );
        let mut reserved = Family::gauge(
            "node_btrfs_reserved_bytes",
            "Amount of space reserved for a data type",
        );
        let mut used = Family::gauge(
            "node_btrfs_used_bytes",
            "Amount of used space by a layout/data type",
        );
        let mut size = Family::gauge(
            "node_btrfs_size_bytes",
            "Amount of space allocated for a layout/data type",
        );
        let mut ratio = Family::gauge(
            "node_btrfs_allocation_ratio",
            "Data allocation ratio for a layout/data type",
        );
        let mut dev_size = Family::gauge(
            "node_btrfs_device_size_bytes",
            "Size of a device that is part of the filesystem.",
        );
        let mut dev_unused = Family::gauge(
            "node_btrfs_device_unused_bytes",
            "Unused bytes unused on a device that is part of the filesystem.",
        );
        let mut dev_errors = Family::counter(
            "node_btrfs_device_errors_total",
            "Errors reported for the device",
        );
        for s in &stats {
            let uuid = s.uuid.as_str();
            info.add(&[("uuid", uuid), ("label", &s.label)], 1.0);
            rsv.add(&[("uuid", uuid)], s.global_rsv_size as f64);
            for (bg, a) in BLOCK_GROUP_TYPES.iter().zip(&s.allocation) {
                reserved.add(
                    &[("uuid", uuid), ("block_group_type", bg)],
                    a.reserved as f64,
                );
                for (mode, (u, t, r)) in &a.layouts {
                    let labels = [("uuid", uuid), ("block_group_type", bg), ("mode", mode)];
                    used.add(&labels, *u as f64);
                    size.add(&labels, *t as f64);
                    ratio.add(&labels, *r);
                }
            }
            // node_exporter matches the two halves by the sysfs UUID without its dashes.
            match by_fsid.get(&uuid.replace('-', "")) {
                None => {
                    for (name, bytes) in &s.devices {
                        dev_size.add(&[("uuid", uuid), ("device", name)], *bytes as f64);
                    }
                }
                Some(devices) => {
                    for d in devices {
                        // The path's last element, as Go's path.Split: `/dev/sda` → `sda`.
                        let device = d.path.rsplit('/').next().unwrap_or_default();
                        let labels = [
                            ("uuid", uuid),
                            ("device", device),
                            ("btrfs_dev_uuid", d.uuid.as_str()),
                        ];
                        dev_size.add(&labels, d.total_bytes as f64);
                        dev_unused.add(&labels, d.total_bytes.wrapping_sub(d.bytes_used) as f64);
                        for (ty, n) in ERROR_TYPES.iter().zip(d.errors) {
                            dev_errors.add(
                                &[
                                    ("uuid", uuid),
                                    ("type", ty),
                                    ("device", device),
                                    ("btrfs_dev_uuid", d.uuid.as_str()),
                                ],
                                n as f64,
                            );
                        }
                    }
                }
            }
        }
        for f in [
            info, rsv, reserved, used, size, ratio, dev_size, dev_unused, dev_errors,
        ] {
            out.push(f);
        }
        Ok(())
    }
}

// ---- sysfs: procfs 0.8's btrfs package ----

/// Every `<sysfs>/fs/btrfs/*-*` in lexical order (a missing or unreadable directory matches
/// nothing, as Go's `filepath.Glob`); one filesystem that fails fails them all, as procfs'
/// `FS.Stats`.
fn read_stats(dir: &Path) -> Result<Vec<Stats>, NodeError> {
    let names = match list(dir) {
        Ok(names) => names,
        Err(NodeError::NoData) => return Ok(Vec::new()),
        Err(e) => {
            tracing::debug!(error = %e, "btrfs sysfs directory unreadable");
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for name in names.iter().filter(|n| n.contains('-')) {
        let mut s = read_filesystem(&dir.join(name))?;
        if s.uuid.is_empty() {
            s.uuid.clone_from(name);
        }
        out.push(s);
    }
    Ok(out)
}

/// procfs' `reader`: files relative to one directory, and the last error met.
struct Reader {
    path: PathBuf,
    err: Option<NodeError>,
    dev_count: usize,
}

impl Reader {
    fn new(path: PathBuf, dev_count: usize) -> Reader {
        Reader {
            path,
            err: None,
            dev_count,
        }
    }

    /// One read of at most 128 bytes (procfs' `SysReadFile`), trimmed; an absent file is
    /// empty, any other failure is kept as the reader's error.
    fn file(&mut self, rel: &str) -> String {
        let p = self.path.join(rel);
        match sys_read_raw(&p) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
            // Go's os.IsNotExist: ENOENT only (ENOTDIR is an error).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => String::new(),
            Err(source) => {
                self.err = Some(super::sysfs::io_err(&p, source));
                String::new()
            }
        }
    }

    /// A number; 0 once the reader has met an error, for this file or an earlier one.
    fn value(&mut self, rel: &str) -> u64 {
        let s = self.file(rel);
        if self.err.is_some() {
            return 0;
        }
        parse_uint10(&s)
    }

    /// Entry names of a subdirectory, sorted (Go's `os.ReadDir`); any failure is kept.
    fn entries(&mut self, rel: &str) -> Vec<String> {
        let p = self.path.join(rel);
        match std::fs::read_dir(&p) {
            Ok(rd) => {
                let mut names: Vec<String> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names
            }
            Err(source) => {
                self.err = Some(super::sysfs::io_err(&p, source));
                Vec::new()
            }
        }
    }

    /// One of `allocation/{data,metadata,system}`, read by a reader of its own whose error
    /// then replaces this one's (procfs' `r.err = sr.err`).
    fn allocation(&mut self, rel: &str) -> Allocation {
        let mut sr = Reader::new(self.path.join(rel), self.dev_count);
        // Read in procfs' order: an unreadable file zeroes the ones after it.
        for f in ["bytes_may_use", "bytes_pinned", "bytes_readonly"] {
            sr.value(f);
        }
        let reserved = sr.value("bytes_reserved");
        for f in [
            "bytes_used",
            "disk_used",
            "disk_total",
            "flags",
            "total_bytes",
            "total_bytes_pinned",
        ] {
            sr.value(f);
        }
        let layouts = sr.layouts();
        self.err = sr.err;
        Allocation { reserved, layouts }
    }

    /// Every subdirectory (not following links) is a layout.
    fn layouts(&mut self) -> BTreeMap<String, (u64, u64, f64)> {
        let dirs: Vec<String> = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(source) => {
                self.err = Some(super::sysfs::io_err(&self.path, source));
                return BTreeMap::new();
            }
        };
        let mut out = BTreeMap::new();
        let mut sorted = dirs;
        sorted.sort();
        for name in sorted {
            let total = self.value(&format!("{name}/total_bytes"));
            let used = self.value(&format!("{name}/used_bytes"));
            let ratio = ratio(&name, self.dev_count);
            out.insert(name, (used, total, ratio));
        }
        out
    }
}

/// procfs 0.8's allocation ratio of a layout: raid5/raid6 from the number of devices,
/// 0 for the layouts it does not know (raid1c3, raid1c4).
fn ratio(layout: &str, devices: usize) -> f64 {
    let n = devices as f64;
    match layout {
        "single" | "raid0" => 1.0,
        "dup" | "raid1" | "raid10" => 2.0,
        "raid5" => n / (n - 1.0),
        "raid6" => n / (n - 2.0),
        _ => 0.0,
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)` with its error ignored: 0 for anything but decimal
/// digits, the largest u64 for digits beyond it.
fn parse_uint10(s: &str) -> u64 {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    s.parse().unwrap_or(u64::MAX)
}

/// procfs' `readFilesystemStats`, in its order (which decides what an error zeroes).
fn read_filesystem(path: &Path) -> Result<Stats, NodeError> {
    let mut r = Reader::new(path.to_path_buf(), 0);
    let names = r.entries("devices");
    let mut devices = BTreeMap::new();
    for n in names {
        let size = r.value(&format!("devices/{n}/size"));
        devices.insert(n, SECTOR_SIZE.wrapping_mul(size));
    }
    r.dev_count = devices.len();
    let label = r.file("label");
    let uuid = r.file("metadata_uuid");
    r.entries("features");
    for f in [
        "clone_alignment",
        "nodesize",
        "quota_override",
        "sectorsize",
    ] {
        r.value(f);
    }
    r.value("allocation/global_rsv_reserved");
    let global_rsv_size = r.value("allocation/global_rsv_size");
    let allocation = [
        r.allocation("allocation/data"),
        r.allocation("allocation/metadata"),
        r.allocation("allocation/system"),
    ];
    if let Some(e) = r.err {
        return Err(e);
    }
    Ok(Stats {
        uuid,
        label,
        global_rsv_size,
        allocation,
        devices,
    })
}

// ---- ioctls: dennwc/btrfs as node_exporter 1.5 uses it ----

/// The devices of every btrfs filesystem reachable through a mount point, by FSID in hex
/// without dashes. Mounts come from the same table as the filesystem collector's, without
/// its exclusions; a mount whose device was already done, or that cannot be opened as a
/// subvolume root, is skipped (the filesystem may be found through another).
fn ioctl_stats(ctx: &Ctx<'_>) -> Result<HashMap<String, Vec<Device>>, NodeError> {
    let mounts = read_mounts(ctx)?;
    let mut devices_done: HashSet<String> = HashSet::new();
    let mut by_fsid: HashMap<String, Vec<Device>> = HashMap::new();
    for m in mounts.iter().filter(|m| m.fstype == "btrfs") {
        if devices_done.contains(&m.device) {
            continue;
        }
        let path = ctx.paths.root(&m.mountpoint);
        let fd = match open_subvolume(&path) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(mountpoint = %path.display(), error = %e, "btrfs mount point not inspectable");
                continue;
            }
        };
        let info = match ioctl::fs_info(&fd) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(mountpoint = %path.display(), error = %e, "BTRFS_IOC_FS_INFO failed");
                continue;
            }
        };
        let fsid: String = info.fsid.iter().map(|b| format!("{b:02x}")).collect();
        if by_fsid.contains_key(&fsid) {
            continue;
        }
        match devices(&fd, &info) {
            Ok(devs) => {
                devices_done.insert(m.device.clone());
                by_fsid.insert(fsid, devs);
            }
            Err(e) => {
                tracing::debug!(mountpoint = %path.display(), error = %e, "btrfs device stats failed");
            }
        }
    }
    Ok(by_fsid)
}

/// dennwc/btrfs' `Open(path, true)`: the path must be a subvolume's root (inode 256) on
/// btrfs; opened read-only with `O_NOATIME`.
fn open_subvolume(path: &Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{FileType, Mode, OFlags};
    let st = rustix::fs::stat(path)?;
    if st.st_ino != FIRST_FREE_OBJECTID
        || FileType::from_raw_mode(st.st_mode) != FileType::Directory
    {
        return Err(std::io::Error::other("not a btrfs subvolume"));
    }
    if rustix::fs::statfs(path)?.f_type != libc::BTRFS_SUPER_MAGIC {
        return Err(std::io::Error::other("not a btrfs subvolume"));
    }
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOATIME | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::Directory {
        return Err(std::io::Error::other("not a directory"));
    }
    Ok(fd)
}

/// The inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
const FIRST_FREE_OBJECTID: u64 = 256;

/// Device ids 0 to `max_id`: the ones that exist (ids need not start at 0 nor be
/// contiguous), until `num_devices` were found; any failure but ENODEV fails the filesystem.
fn devices(fd: &OwnedFd, info: &ioctl::FsInfo) -> std::io::Result<Vec<Device>> {
    let mut out = Vec::new();
    for id in 0..=info.max_id {
        match ioctl::dev_info(fd, id) {
            Ok(d) => {
                let errors = ioctl::dev_stats(fd, id)?;
                out.push(Device {
                    path: d.path,
                    uuid: d.uuid,
                    bytes_used: d.bytes_used,
                    total_bytes: d.total_bytes,
                    errors,
                });
                if out.len() as u64 == info.num_devices {
                    break;
                }
            }
            Err(e) if e == rustix::io::Errno::NODEV => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The three btrfs ioctls, with the argument layouts of linux/btrfs.h.
mod ioctl {
    use rustix::io::Errno;
    use rustix::ioctl::{Opcode, Updater, opcode};
    use std::os::fd::OwnedFd;

    const MAGIC: u8 = 0x94;
    const PATH_MAX: usize = 1024;

    /// `struct btrfs_ioctl_fs_info_args` up to `clone_alignment`, padded to its 1 KiB; the
    /// zeroed `flags` asks for nothing more.
    #[repr(C)]
    struct FsInfoArgs {
        max_id: u64,
        num_devices: u64,
        fsid: [u8; 16],
        nodesize: u32,
        sectorsize: u32,
        clone_alignment: u32,
        reserved: [u8; 980],
    }

    /// `struct btrfs_ioctl_dev_info_args` (4 KiB).
    #[repr(C)]
    struct DevInfoArgs {
        devid: u64,
        uuid: [u8; 16],
        bytes_used: u64,
        total_bytes: u64,
        unused: [u64; 379],
        path: [u8; PATH_MAX],
    }

    /// `struct btrfs_ioctl_get_dev_stats` (1 KiB + 8).
    #[repr(C)]
    struct GetDevStats {
        devid: u64,
        nr_items: u64,
        flags: u64,
        values: [u64; 5],
        unused: [u64; 121],
    }

    const _: () = assert!(std::mem::size_of::<FsInfoArgs>() == 1024);
    const _: () = assert!(std::mem::size_of::<DevInfoArgs>() == 4096);
    const _: () = assert!(std::mem::size_of::<GetDevStats>() == 1032);

    const FS_INFO: Opcode = opcode::read::<FsInfoArgs>(MAGIC, 31);
    const DEV_INFO: Opcode = opcode::read_write::<DevInfoArgs>(MAGIC, 30);
    const GET_DEV_STATS: Opcode = opcode::read_write::<GetDevStats>(MAGIC, 52);

    pub struct FsInfo {
        pub max_id: u64,
        pub num_devices: u64,
        pub fsid: [u8; 16],
    }

    pub struct DevInfo {
        pub uuid: String,
        pub bytes_used: u64,
        pub total_bytes: u64,
        pub path: String,
    }

    pub fn fs_info(fd: &OwnedFd) -> Result<FsInfo, Errno> {
        let mut a = FsInfoArgs {
            max_id: 0,
            num_devices: 0,
            fsid: [0; 16],
            nodesize: 0,
            sectorsize: 0,
            clone_alignment: 0,
            reserved: [0; 980],
        };
        // SAFETY: FS_INFO's argument is this struct (size checked above), which the kernel
        // reads and fills and nothing else.
        unsafe { rustix::ioctl::ioctl(fd, Updater::<FS_INFO, FsInfoArgs>::new(&mut a))? };
        Ok(FsInfo {
            max_id: a.max_id,
            num_devices: a.num_devices,
            fsid: a.fsid,
        })
    }

    /// The device with this id; a zero UUID asks for any.
    pub fn dev_info(fd: &OwnedFd, devid: u64) -> Result<DevInfo, Errno> {
        let mut a = Box::new(DevInfoArgs {
            devid,
            uuid: [0; 16],
            bytes_used: 0,
            total_bytes: 0,
            unused: [0; 379],
            path: [0; PATH_MAX],
        });
        // SAFETY: DEV_INFO's argument is this struct (size checked above), which the kernel
        // reads and fills and nothing else.
        unsafe { rustix::ioctl::ioctl(fd, Updater::<DEV_INFO, DevInfoArgs>::new(&mut *a))? };
        let end = a.path.iter().position(|&b| b == 0).unwrap_or(PATH_MAX);
        Ok(DevInfo {
            uuid: uuid_string(&a.uuid),
            bytes_used: a.bytes_used,
            total_bytes: a.total_bytes,
            path: String::from_utf8_lossy(&a.path[..end]).into_owned(),
        })
    }

    /// write, read, flush, corruption and generation errors, without resetting them.
    pub fn dev_stats(fd: &OwnedFd, devid: u64) -> Result<[u64; 5], Errno> {
        let mut a = GetDevStats {
            devid,
            nr_items: 5,
            flags: 0,
            values: [0; 5],
            unused: [0; 121],
        };
        // SAFETY: GET_DEV_STATS' argument is this struct (size checked above), which the
        // kernel reads and fills and nothing else.
        unsafe { rustix::ioctl::ioctl(fd, Updater::<GET_DEV_STATS, GetDevStats>::new(&mut a))? };
        Ok(a.values)
    }

    /// dennwc/btrfs' `UUID.String()`: 8-4-4-4-12 lowercase hex, `<zero>` for all zeros.
    fn uuid_string(u: &[u8; 16]) -> String {
        if u.iter().all(|&b| b == 0) {
            return "<zero>".to_string();
        }
        let hex = |r: std::ops::Range<usize>| -> String {
            u[r].iter().map(|b| format!("{b:02x}")).collect()
        };
        format!(
            "{}-{}-{}-{}-{}",
            hex(0..4),
            hex(4..6),
            hex(6..8),
            hex(8..10),
            hex(10..16)
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn opcodes_match_linux_btrfs_h() {
            // _IOR(0x94, 31, 1024), _IOWR(0x94, 30, 4096), _IOWR(0x94, 52, 1032).
            assert_eq!(FS_INFO, 0x8400_941f);
            assert_eq!(DEV_INFO, 0xd000_941e);
            assert_eq!(GET_DEV_STATS, 0xc408_9434);
        }

        #[test]
        fn uuids_print_as_dennwc_btrfs() {
            let mut u = [0u8; 16];
            assert_eq!(uuid_string(&u), "<zero>");
            u[0] = 0xab;
            u[15] = 0x01;
            assert_eq!(uuid_string(&u), "ab000000-0000-0000-0000-000000000001");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_go_parseuint_with_its_error_ignored() {
        assert_eq!(parse_uint10("12"), 12);
        assert_eq!(parse_uint10(""), 0);
        assert_eq!(parse_uint10("+5"), 0);
        assert_eq!(parse_uint10("0x10"), 0);
        assert_eq!(parse_uint10("99999999999999999999"), u64::MAX);
    }

    #[test]
    fn ratios_as_procfs_0_8() {
        assert_eq!(ratio("raid6", 3), 3.0);
        assert_eq!(ratio("raid5", 3), 1.5);
        assert_eq!(ratio("raid1c3", 3), 0.0);
        assert_eq!(ratio("dup", 1), 2.0);
    }
}
