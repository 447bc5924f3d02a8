//! A small filesystem of its own for tests of a full disk: a tmpfs of a few MiB mounted in a
//! temp dir, filled to the last byte by a filler file and freed again by deleting it. The mount
//! is undone when the [`SmallDisk`] drops, also when the test panics (lazily if a process still
//! holds a file under it).
//!
//! Needs root (CI runs as root): mounting is refused otherwise, and the test fails saying so
//! rather than passing without the fault it is about.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SmallDisk {
    /// Holds the mount point; removed (after `drop` unmounts) when the handle goes.
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    /// A tmpfs of `mib` MiB, mounted and empty.
    pub fn mount(mib: u64) -> SmallDisk {
        crate::require("mount", "mount");
        let dir = tempfile::Builder::new()
            .prefix("qw-disk-")
            .tempdir()
            .expect("creating a temp dir must work");
        let mount = dir.path().join("fs");
        std::fs::create_dir(&mount).expect("creating the mount point must work");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(&mount)
            .output()
            .expect("running mount must work");
        assert!(
            out.status.success(),
            "cannot mount a {mib} MiB tmpfs at {} ({}: {}): the full-disk tests need root \
             (CI runs as root) and a kernel that allows tmpfs mounts here",
            mount.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk { _dir: dir, mount }
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    fn filler(&self) -> PathBuf {
        self.mount.join("filler")
    }

    /// Writes a filler file until the filesystem answers ENOSPC; returns the bytes it took.
    pub fn fill(&self) -> u64 {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())
            .expect("creating the filler must work");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        let mut size = chunk.len();
        loop {
            match f.write(&chunk[..size]) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    // Down to the last partial page, then full.
                    if size == 1 {
                        break;
                    }
                    size /= 2;
                }
                Err(e) => panic!("filling {}: {e}", self.mount.display()),
            }
        }
        written
    }

    /// Deletes the filler: the space is back.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("deleting the filler must work");
    }

    /// Bytes free now (statvfs).
    pub fn available(&self) -> u64 {
        let c = std::ffi::CString::new(self.mount.as_os_str().as_encoded_bytes())
            .expect("temp paths contain no NUL byte");
        // SAFETY: c is a valid path and st a valid out-pointer for the call.
        unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(c.as_ptr(), &mut st), 0, "statvfs");
            st.f_bavail as u64 * st.f_frsize as u64
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mount)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        }
    }
}
