//! Kept-open handles for `/proc` and `/sys` pseudo-files, re-read from offset 0 each scrape.
//!
//! Opening a sysfs or procfs file costs far more than reading it: on the development VM an
//! `open`+`read`+`close` of `/sys/class/net/eth0/mtu` by full path took ~17 µs, a `pread` at
//! offset 0 of an already open handle ~1.2 µs. The host collector reads ~150 such files per
//! scrape (netclass alone ~20 per interface), so opening them once is most of its cost.
//!
//! Re-reading is exact, not a cache of values: the kernel regenerates a pseudo-file's
//! content on every read that starts at offset 0 (sysfs calls the attribute's `show`,
//! `seq_file` restarts its iterator, `/proc/sys` calls its handler), which is also how
//! programs that `poll()` sysfs attributes re-read them. Only files whose filesystem is procfs
//! or sysfs are kept (checked with `fstatfs` once, at open): a regular file (a textfile
//! `*.prom`, `/etc/os-release`, a test fixture tree) can be replaced by a rename, which an open
//! handle would not see. When a kept handle fails (a removed device answers `ENODEV`) or reads
//! empty, it is closed and the file opened afresh, so the result is always what a fresh open
//! would give — unless a fresh open of that path gave that very outcome last time: an
//! attribute the kernel refuses while a link is down (`speed`: `EINVAL`) or one that is empty
//! (`ifalias`) is then answered by its kept handle too, since the kernel regenerates the
//! outcome on every read just as it does content (reopening such files every scrape was most
//! of netclass' time on a host with a few idle interfaces). Handles not used by the last two host scrapes are closed (an interface or disk
//! that went away), and at most [`max_open`] are kept, well under the open-files limit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard};

/// How many handles we keep at most: 256, or a quarter of the open-files limit when that is
/// lower (the web server may use half of it for connections).
fn max_open() -> usize {
    static MAX: LazyLock<usize> = LazyLock::new(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we pass and nothing else.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
        } else {
            1024
        };
        (soft / 4).min(256)
    });
    *MAX
}

/// What a fresh open of a kept path read when it read no content: a kept handle that reads
/// the same is trusted with it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Quiet {
    Empty,
    Errno(i32),
}

/// Errors that mean the file behind a kept handle is gone: always opened afresh.
const GONE: [i32; 4] = [libc::ENODEV, libc::ENOENT, libc::ENXIO, libc::ESTALE];

struct Slot {
    /// `None` while a reader holds it (or after a reader gave it up).
    file: Option<File>,
    quiet: Option<Quiet>,
    /// The host scrape round that last asked for this path.
    used: u64,
}

#[derive(Default)]
struct Table {
    slots: HashMap<PathBuf, Slot>,
    round: u64,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| Mutex::new(Table::default()));

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The whole content of `path`, as `std::fs::read_to_string` would give it.
///
/// The lock is never held during a read: a hung pseudo-file blocks only its reader.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    let kept = {
        let mut t = table();
        let round = t.round;
        t.slots.get_mut(path).and_then(|s| {
            s.used = round;
            s.file.take().map(|f| (f, s.quiet))
        })
    };
    // A kept handle that fails or reads empty, where the last fresh open did not, is closed
    // (dropped) here, and the fresh open below decides the result.
    if let Some((file, quiet)) = kept {
        match read_from_start(&file) {
            Ok(text) if !text.is_empty() => {
                keep(path, file, None);
                return Ok(text);
            }
            Ok(text) if quiet == Some(Quiet::Empty) => {
                keep(path, file, quiet);
                return Ok(text);
            }
            Err(e) if quiet.is_some() && quiet == e.raw_os_error().map(Quiet::Errno) => {
                keep(path, file, quiet);
                return Err(e);
            }
            _ => {}
        }
    }
    let mut file = File::open(path)?;
    match read_from_start(&file) {
        Ok(text) => {
            if is_pseudo(&file) {
                keep(path, file, text.is_empty().then_some(Quiet::Empty));
            }
            Ok(text)
        }
        // A file that cannot be read at an offset (a stream): read it the plain way.
        Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => {
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            Ok(text)
        }
        Err(e) => {
            if let Some(errno) = e.raw_os_error()
                && !GONE.contains(&errno)
                && is_pseudo(&file)
            {
                keep(path, file, Some(Quiet::Errno(errno)));
            }
            Err(e)
        }
    }
}

/// Closes the handles no host scrape asked for in the last two rounds, and starts a round.
/// Called once at the end of every host scrape.
pub fn end_round() {
    let mut t = table();
    let round = t.round;
    t.slots.retain(|_, s| s.used + 1 >= round);
    t.round += 1;
}

fn keep(path: &Path, file: File, quiet: Option<Quiet>) {
    let mut t = table();
    let round = t.round;
    let full = t.slots.len() >= max_open();
    match t.slots.get_mut(path) {
        Some(slot) if slot.file.is_none() => {
            slot.file = Some(file);
            slot.quiet = quiet;
            slot.used = round;
        }
        // Another scrape put its handle back first: ours is closed.
        Some(_) => {}
        None if !full => {
            t.slots.insert(
                path.to_path_buf(),
                Slot {
                    file: Some(file),
                    quiet,
                    used: round,
                },
            );
        }
        None => {}
    }
}

/// Reads from offset 0 to the end with `pread`, so a kept handle needs no `lseek`.
fn read_from_start(file: &File) -> io::Result<String> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.capacity());
        }
        let len = buf.len();
        let spare = buf.capacity() - len;
        buf.resize(len + spare, 0);
        let n = loop {
            match file.read_at(&mut buf[len..], len as u64) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match n {
            Ok(0) => {
                buf.truncate(len);
                break;
            }
            Ok(n) => buf.truncate(len + n),
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Whether `file` lives on procfs or sysfs, whose content is regenerated on every read.
fn is_pseudo(file: &File) -> bool {
    match rustix::fs::fstatfs(file) {
        Ok(st) => st.f_type == libc::PROC_SUPER_MAGIC || st.f_type == libc::SYSFS_MAGIC,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is process-wide and `end_round` closes what other tests kept: the tests
    /// that look at it run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn regular_files_are_read_fresh_and_never_kept() {
        let _serial = serial();
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("value");
        std::fs::write(&p, "1\n").expect("write");
        assert_eq!(read_to_string(&p).expect("read"), "1\n");
        // Replaced by a rename, as textfile writers and config managers do.
        let tmp = dir.path().join("value.tmp");
        std::fs::write(&tmp, "2\n").expect("write");
        std::fs::rename(&tmp, &p).expect("rename");
        assert_eq!(read_to_string(&p).expect("read"), "2\n");
        assert!(!table().slots.contains_key(&p));
        assert_eq!(
            read_to_string(&dir.path().join("absent"))
                .expect_err("absent")
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn proc_files_are_kept_and_give_fresh_content() {
        let _serial = serial();
        // A kept handle must show the current content, the same as a fresh open. This
        // thread's own voluntary context switches change only by what this thread does (a
        // sleep adds one), so other test threads cannot make the comparison race, as a
        // process-wide figure such as VmData would.
        let p = Path::new("/proc/thread-self/status");
        let switches = |s: &str| -> u64 {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("voluntary_ctxt_switches")
        };
        let first = read_to_string(p).expect("read");
        assert!(first.starts_with("Name:"));
        assert!(table().slots.get(p).is_some_and(|s| s.file.is_some()));
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = read_to_string(p).expect("read");
        let fresh = std::fs::read_to_string(p).expect("read");
        assert!(switches(&second) > switches(&first), "{first}\n{second}");
        assert!(switches(&second) <= switches(&fresh), "{second}\n{fresh}");
        // Two rounds without it close the handle.
        end_round();
        end_round();
        end_round();
        assert!(!table().slots.contains_key(p));
    }

    #[test]
    fn refusals_and_empty_attributes_are_kept_once_a_fresh_open_showed_them() {
        let _serial = serial();
        // `lo` is on every Linux host: its `speed` is refused (EINVAL) and its `ifalias`
        // empty, read after read; both stay open and give what a fresh open gives.
        let speed = Path::new("/sys/class/net/lo/speed");
        let alias = Path::new("/sys/class/net/lo/ifalias");
        let fresh_speed = std::fs::read_to_string(speed).expect_err("lo has no speed");
        let fresh_alias = std::fs::read_to_string(alias).expect("alias");
        for _ in 0..3 {
            let e = read_to_string(speed).expect_err("refused");
            assert_eq!(e.raw_os_error(), fresh_speed.raw_os_error());
            assert_eq!(read_to_string(alias).expect("alias"), fresh_alias);
        }
        let t = table();
        let errno = fresh_speed.raw_os_error().expect("an errno");
        assert!(
            t.slots
                .get(speed)
                .is_some_and(|s| s.file.is_some() && s.quiet == Some(Quiet::Errno(errno)))
        );
        assert!(
            t.slots
                .get(alias)
                .is_some_and(|s| s.file.is_some() && s.quiet == Some(Quiet::Empty))
        );
        drop(t);
        // A path that does not exist is never kept.
        let absent = Path::new("/sys/class/net/lo/no-such-attribute");
        assert!(read_to_string(absent).is_err());
        assert!(!table().slots.contains_key(absent));
    }
}
