//! Giving back the pages of our own executable that only start-up needed.
//!
//! Most of the exporter's resident memory is its own executable image, and much of that is
//! code and constant data touched once at start (argument and configuration parsing, TLS and
//! database set-up, the migrations' texts) and never again: a file page stays mapped, and
//! counted in RSS, until the kernel needs the memory back, with the fault-around of 64 KiB
//! mapping the neighbours of every page touched. Once the server is listening, the
//! read-only, never-written mappings of the executable are advised `MADV_DONTNEED`: their page
//! table entries go, the pages themselves stay in the page cache, and the pages that serving
//! uses come back on first use as minor faults (no I/O). Measured with `bench/exporter.sh`:
//! README, "Performance".
//!
//! Only mappings that are certain to equal the file are advised: private, not writable, and
//! without one anonymous (copy-on-write) page in `/proc/self/smaps`, so nothing written since
//! the program was loaded (relocations, a debugger's breakpoints) can be lost.

use procfs_core::FromBufRead;
use procfs_core::process::{MMPermissions, MemoryMaps};
use std::os::unix::fs::MetadataExt;

#[derive(Debug, thiserror::Error)]
pub enum ResidencyError {
    #[error("reading {path}: {source}")]
    Io {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("parsing /proc/self/smaps: {0}")]
    Parse(String),
}

/// Advises the executable's read-only, unmodified mappings `MADV_DONTNEED`; returns the bytes
/// of resident pages released. Harmless to call at any time; meant for after start-up and
/// after a reload.
pub fn release_startup_pages() -> Result<u64, ResidencyError> {
    let exe = std::fs::metadata("/proc/self/exe").map_err(|source| ResidencyError::Io {
        path: "/proc/self/exe",
        source,
    })?;
    let smaps = std::fs::File::open("/proc/self/smaps").map_err(|source| ResidencyError::Io {
        path: "/proc/self/smaps",
        source,
    })?;
    let maps = MemoryMaps::from_buf_read(std::io::BufReader::new(smaps))
        .map_err(|e| ResidencyError::Parse(e.to_string()))?;
    let (major, minor) = (libc::major(exe.dev()) as i32, libc::minor(exe.dev()) as i32);
    let mut released = 0;
    for m in maps.0 {
        let ours = m.inode == exe.ino() && m.dev == (major, minor);
        let read_only =
            m.perms.contains(MMPermissions::PRIVATE) && !m.perms.contains(MMPermissions::WRITE);
        let stat = |k: &str| m.extension.map.get(k).copied();
        // Without the smaps statistics we cannot know the mapping is unmodified: leave it.
        let unmodified = stat("Anonymous") == Some(0);
        if !(ours && read_only && unmodified) {
            continue;
        }
        let (start, end) = m.address;
        let Ok(len) = usize::try_from(end - start) else {
            continue;
        };
        // SAFETY: the range is one whole mapping of this process, private, read-only and
        // without anonymous pages, so every page equals the file's content and dropping its
        // page table entries only makes the next access re-read it from the page cache.
        let rc = unsafe {
            libc::madvise(
                start as usize as *mut libc::c_void,
                len,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released += stat("Rss").unwrap_or(0);
        }
    }
    Ok(released)
}

/// Releases, and says so in the debug log; a failure only costs the memory it would have saved.
pub fn release_and_log(when: &str) {
    match release_startup_pages() {
        Ok(bytes) => tracing::debug!(when, kib = bytes / 1024, "released start-up pages"),
        Err(e) => tracing::debug!(when, error = %e, "start-up pages not released"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("RssFile")
    }

    #[test]
    fn the_executables_pages_go_and_the_code_still_runs() {
        // This test binary's own image: after the call its read-only mappings hold fewer
        // resident pages, and code and constants read afterwards are intact.
        let before = rss_file_kib();
        let released = release_startup_pages().expect("release");
        assert!(
            released > 0,
            "some resident page of the test binary released"
        );
        let after = rss_file_kib();
        assert!(after < before, "RssFile {before} kB → {after} kB");
        let text = format!("{:?}", vec![1u8, 2, 3]);
        assert_eq!(text, "[1, 2, 3]");
        assert_eq!(release_startup_pages().map(|_| ()).ok(), Some(()));
    }
}
