//! Real btrfs filesystems for the tests of the `btrfs` host collector: sparse image files in a
//! temp dir, attached to loop devices, formatted with `mkfs.btrfs` and mounted under the same
//! temp dir. Everything is undone when the [`BtrfsLab`] drops — also when the test panics:
//! mounts in reverse order (lazily if something still holds one, such as node_exporter, which
//! never closes its mount-point handles), then the loop devices.
//!
//! Needs root, btrfs in the kernel and `btrfs-progs` (scripts/test installs it). The machine
//! is shared: nothing is left mounted or attached once the lab is gone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `program args`, panicking with its output unless it succeeds; returns its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One formatted filesystem.
pub struct Filesystem {
    /// `/dev/loopN`, in the order given to mkfs (devid 1, 2, …).
    pub devices: Vec<String>,
    /// The image file behind each device.
    pub images: Vec<PathBuf>,
    /// The filesystem UUID as sysfs names it (`/sys/fs/btrfs/<uuid>`).
    pub uuid: String,
}

impl Filesystem {
    /// `loopN` of device `i`, as node_exporter labels it.
    pub fn device_name(&self, i: usize) -> &str {
        self.devices[i].trim_start_matches("/dev/")
    }
}

pub struct BtrfsLab {
    dir: tempfile::TempDir,
    loops: Vec<String>,
    mounts: Vec<PathBuf>,
}

impl BtrfsLab {
    /// Panics (naming what to install or do) when the machine cannot host the filesystems.
    pub fn start() -> BtrfsLab {
        crate::require("mkfs.btrfs", "btrfs-progs");
        crate::require("btrfs", "btrfs-progs");
        crate::require("losetup", "mount");
        crate::require("blkid", "util-linux");
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the btrfs tests mount loop devices: run them as root (CI does)"
        );
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        assert!(
            filesystems.lines().any(|l| l.trim_end().ends_with("btrfs")),
            "the kernel has no btrfs (modprobe btrfs)"
        );
        BtrfsLab {
            dir: tempfile::tempdir().expect("temp dir"),
            loops: Vec::new(),
            mounts: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A sparse image of `mib` MiB attached to a free loop device.
    fn attach(&mut self, name: &str, mib: u64) -> (String, PathBuf) {
        let img = self.dir.path().join(format!("{name}.img"));
        let f = std::fs::File::create(&img).expect("create image");
        f.set_len(mib << 20).expect("size image");
        drop(f);
        let dev = run("losetup", &["--find", "--show", &img.display().to_string()])
            .trim()
            .to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup printed {dev:?}");
        self.loops.push(dev.clone());
        (dev, img)
    }

    /// `mkfs.btrfs -L label <args>` over `count` fresh 300 MiB loop devices.
    pub fn mkfs(&mut self, name: &str, label: &str, count: usize, args: &[&str]) -> Filesystem {
        let (devices, images): (Vec<String>, Vec<PathBuf>) = (0..count)
            .map(|i| self.attach(&format!("{name}{i}"), 300))
            .unzip();
        let mut a = vec!["-q", "-f", "-L", label];
        a.extend_from_slice(args);
        a.extend(devices.iter().map(String::as_str));
        run("mkfs.btrfs", &a);
        // Registers every device with the kernel, so a multi-device mount finds them all.
        for d in &devices {
            run("btrfs", &["device", "scan", d]);
        }
        let uuid = run("blkid", &["-s", "UUID", "-o", "value", &devices[0]])
            .trim()
            .to_string();
        assert_eq!(uuid.len(), 36, "blkid UUID {uuid:?}");
        Filesystem {
            devices,
            images,
            uuid,
        }
    }

    /// Mounts `device` (with `-o options` if not empty) at `<dir>/<name>`.
    pub fn mount(&mut self, device: &str, name: &str, options: &str) -> PathBuf {
        let target = self.dir.path().join(name);
        std::fs::create_dir_all(&target).expect("mount point");
        let t = target.display().to_string();
        let mut a = vec!["-t", "btrfs"];
        if !options.is_empty() {
            a.extend(["-o", options]);
        }
        a.extend([device, t.as_str()]);
        run("mount", &a);
        self.mounts.push(target.clone());
        target
    }

    /// Bind-mounts `from` at `<dir>/<name>`.
    pub fn bind(&mut self, from: &Path, name: &str) -> PathBuf {
        let target = self.dir.path().join(name);
        std::fs::create_dir_all(&target).expect("mount point");
        run(
            "mount",
            &[
                "--bind",
                &from.display().to_string(),
                &target.display().to_string(),
            ],
        );
        self.mounts.push(target.clone());
        target
    }

    /// Unmounts `target` now (it must be one of ours).
    pub fn umount(&mut self, target: &Path) {
        run("umount", &[&target.display().to_string()]);
        self.mounts.retain(|m| m != target);
    }

    /// Flushes everything to the devices, so values read at rest stay put between scrapes.
    pub fn settle(&self, mount: &Path) {
        run("sync", &[]);
        run(
            "btrfs",
            &["filesystem", "sync", &mount.display().to_string()],
        );
    }
}

impl Drop for BtrfsLab {
    fn drop(&mut self) {
        for m in self.mounts.drain(..).rev() {
            let t = m.display().to_string();
            let ok = Command::new("umount")
                .arg(&t)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Busy (a process still holds a handle under it): detach it now, the kernel
                // finishes when the last handle closes.
                let _ = Command::new("umount").args(["-l", &t]).status();
            }
        }
        for d in self.loops.drain(..).rev() {
            // A lazily unmounted filesystem still holds its device: -d then only marks it
            // for autoclear, which happens when the filesystem lets go.
            let _ = Command::new("losetup").args(["-d", &d]).status();
        }
    }
}
