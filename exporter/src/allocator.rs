//! The allocator settings the exporter's anonymous-memory budget rests on (README,
//! "Performance"): glibc malloc parameters, set once at start.
//!
//! Two kinds: those `mallopt` can set ([`tune_allocator`]), and glibc's per-thread cache
//! (tcache), which only the `GLIBC_TUNABLES` environment variable configures, read by glibc
//! before `main` runs. For that one the process, when the variable does not already say how
//! to size the tcache, executes itself once more with it set ([`reexec_with_tunables`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The variable glibc reads its tunables from (`name=value` pairs separated by `:`).
pub const TUNABLES_VAR: &str = "GLIBC_TUNABLES";

/// The tunable we add: freed chunks of at most 128 bytes are still cached per thread (seven of
/// each size, glibc's default count), larger ones go straight back to the heap.
///
/// Why: glibc's default caches up to seven freed chunks of every size up to 1,032 bytes in
/// each thread that frees memory, ~240 KiB per thread when full. A scrape frees thousands of
/// chunks of all those sizes on two threads (the runtime's and the host collector's), so both
/// caches fill, and the chunks they hold are "in use" to the heap: they neither merge with
/// their free neighbours nor let the heap's top shrink. Measured by hand (the release binary
/// as shipped, host + PostgreSQL + Redis, 1,000 scrapes by one kept-alive `curl`, heap private
/// dirty after them, five runs of the default, four of each setting): 1424–1680 KiB with
/// glibc's default, 776–832 with `tcache_max=128`, 760–820 with no cache (`tcache_count=0`).
/// CPU time over the 1,000 scrapes: with `tcache_max=128` the default's within the noise of
/// this shared machine, with no cache ~10 % more; so the small sizes, most of a scrape's
/// allocations, keep their fast path. `bench/exporter.sh` figures: README, "Performance".
pub const TCACHE_DEFAULT: &str = "glibc.malloc.tcache_max=128";

/// Tunables whose presence means the tcache was sized on purpose: then we leave it alone.
const TCACHE_PREFIX: &[u8] = b"glibc.malloc.tcache_";

/// One malloc arena for the whole process. glibc gives each thread that allocates its own
/// arena (tokio's workers, the blocking thread the host collector reads on, the statfs
/// thread); each keeps its high-water mark resident, which measured ~2 MiB of our RSS. Our
/// threads allocate little and rarely at the same time, so sharing one arena costs nothing
/// measurable. And no padding at the heap's top: glibc grows the heap by 128 KiB more than
/// asked and gives back only what exceeds another 128 KiB, so a scrape's buffers left up to
/// ~0.25 MiB of dirty, unused pages above the live data; with no pad and a 64 KiB trim
/// threshold the heap after 300 scrapes measured 1296 → 824 KiB (README, "Performance"), for
/// a `brk` or two per scrape. Call before any thread is started.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TOP_PAD, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024);
    }
}

/// The `GLIBC_TUNABLES` value this process should run with, given the current one; `None`
/// when it already says how to size the tcache (ours, after the re-execution, or the
/// operator's own choice, which wins). Other tunables the operator set are kept, ours is
/// appended.
pub fn tunables_with_default(current: Option<&OsStr>) -> Option<OsString> {
    let current = current.map(OsStr::as_bytes).unwrap_or_default();
    let sized = current
        .split(|b| *b == b':')
        .any(|pair| pair.starts_with(TCACHE_PREFIX));
    if sized {
        return None;
    }
    let mut value = current.to_vec();
    if !value.is_empty() {
        value.push(b':');
    }
    value.extend_from_slice(TCACHE_DEFAULT.as_bytes());
    Some(OsString::from_vec(value))
}

/// Executes this program again, same arguments, with [`TCACHE_DEFAULT`] added to
/// `GLIBC_TUNABLES`, unless the variable already sizes the tcache. Returns only when no
/// re-execution is needed (`Ok`) or it failed (`Err`, the process then runs with glibc's
/// default cache: more memory, nothing else lost). Call first thing in `main`, before any
/// thread exists. The process keeps its id, start time, open descriptors and arguments.
///
/// Not done for a secure-execution process (set-user-ID or file capabilities: `AT_SECURE`),
/// where glibc drops this tunable from the environment, which would otherwise make every
/// start execute again. The program's own path (`/proc/self/exe` resolved) is executed, not
/// the link itself, so the process keeps its name (`comm`) for `ps`, `pgrep` and systemd.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reexec_with_tunables() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // SAFETY: getauxval only reads the auxiliary vector the kernel passed.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return Ok(());
    }
    let Some(tunables) = tunables_with_default(std::env::var_os(TUNABLES_VAR).as_deref()) else {
        return Ok(());
    };
    let exe = std::env::current_exe()?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // `exec` returns only on failure.
    Err(std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(TUNABLES_VAR, tunables)
        .exec())
}

/// Other C libraries have no such cache to size.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reexec_with_tunables() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(current: Option<&str>) -> Option<String> {
        tunables_with_default(current.map(OsStr::new)).map(|v| v.into_string().unwrap())
    }

    #[test]
    fn adds_the_tcache_bound_unless_the_cache_is_already_sized() {
        assert_eq!(with(None).as_deref(), Some("glibc.malloc.tcache_max=128"));
        assert_eq!(
            with(Some("")).as_deref(),
            Some("glibc.malloc.tcache_max=128")
        );
        assert_eq!(
            with(Some("glibc.malloc.check=3")).as_deref(),
            Some("glibc.malloc.check=3:glibc.malloc.tcache_max=128")
        );
        assert_eq!(with(Some("glibc.malloc.tcache_max=128")), None);
        assert_eq!(with(Some("glibc.malloc.tcache_count=0")), None);
        assert_eq!(
            with(Some(
                "glibc.malloc.arena_max=2:glibc.malloc.tcache_max=4096"
            )),
            None
        );
        // A name that merely contains ours is not ours.
        assert_eq!(
            with(Some("x.glibc.malloc.tcache_max=1")).as_deref(),
            Some("x.glibc.malloc.tcache_max=1:glibc.malloc.tcache_max=128")
        );
    }
}
