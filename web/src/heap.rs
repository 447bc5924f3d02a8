//! The C allocator's view of the heap, and giving its free pages back.
//!
//! glibc keeps memory a process has freed: a freed chunk goes back to its arena, and the
//! arena returns pages to the kernel only from its top, and only past `M_TRIM_THRESHOLD`.
//! A long-running service whose live data is flat (the router in its soak: ~2.6 MB in use)
//! still sees its resident memory climb in steps of a megabyte or two, because the free
//! chunks (3–4 MB there) sit between live ones and stay resident. [`release_free_pages`]
//! (`malloc_trim(0)`) gives back every whole free page inside the arenas too, so resident
//! memory follows what is in use; [`stats`] tells the two apart for a self-metric, so an
//! operator can see a fragmented heap from a leak.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Bytes the C allocator holds, all arenas together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Allocated and not freed (chunks in glibc's per-thread caches count here).
    pub in_use: u64,
    /// Freed but kept by the allocator for reuse. Still counted here after a trim, which only
    /// makes its whole pages non-resident (RSS falls, this figure does not).
    pub free: u64,
}

/// Cap glibc's malloc arenas at `n`, unless the operator chose (`MALLOC_ARENA_MAX`, or
/// `glibc.malloc.arena_max` in `GLIBC_TUNABLES`: then theirs stands). glibc gives every thread
/// that finds the arenas busy a new one, up to eight per core, and each keeps its own
/// high-water mark and its own free chunks resident; a service whose threads allocate little
/// at a time loses nothing measurable by sharing a few. Call in `main`, before any thread is
/// started (arenas made before stay).
pub fn limit_arenas(n: usize) -> Arenas {
    if arenas_chosen(
        std::env::var_os("MALLOC_ARENA_MAX").as_deref(),
        std::env::var_os("GLIBC_TUNABLES").as_deref(),
    ) {
        return Arenas::FromEnvironment;
    }
    if set_arena_max(n) {
        Arenas::Capped
    } else {
        Arenas::Unchanged
    }
}

/// What [`limit_arenas`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arenas {
    /// Capped as asked.
    Capped,
    /// The operator's setting stands.
    FromEnvironment,
    /// Not glibc, or glibc refused the value: its default stands.
    Unchanged,
}

/// Whether the environment already sizes the arenas.
fn arenas_chosen(arena_max: Option<&OsStr>, tunables: Option<&OsStr>) -> bool {
    arena_max.is_some()
        || tunables.is_some_and(|t| {
            t.as_bytes()
                .split(|b| *b == b':')
                .any(|t| t.starts_with(b"glibc.malloc.arena_max="))
        })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(n: usize) -> bool {
    let n = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter (under the main arena's lock).
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_: usize) -> bool {
    false
}

/// `None` where the allocator is not glibc's.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn stats() -> Option<HeapStats> {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's own bookkeeping
    // (under each arena's lock); it returns a plain struct by value.
    let m = unsafe { libc::mallinfo2() };
    Some(HeapStats {
        in_use: (m.uordblks + m.hblkhd) as u64,
        free: m.fordblks as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn stats() -> Option<HeapStats> {
    None
}

/// Return the allocator's free pages to the kernel (inside the arenas, not only at their
/// top). Cheap for a heap of a few megabytes (one walk of the free lists, one `madvise` per
/// free page run); a page given back costs one page fault when it is used again, so call it
/// every minute or so, not per request. True when something was given back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_pages() -> bool {
    // SAFETY: malloc_trim(0) only returns free memory; it takes each arena's lock itself.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_pages() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_arena_setting_stands() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert!(!arenas_chosen(None, None));
        assert!(!arenas_chosen(None, os("glibc.malloc.tcache_max=128")));
        assert!(arenas_chosen(os("4"), None));
        assert!(arenas_chosen(
            None,
            os("glibc.malloc.tcache_max=128:glibc.malloc.arena_max=8")
        ));
        assert!(!arenas_chosen(None, os("x.glibc.malloc.arena_max=8")));
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_memory_shows_as_free_and_a_trim_gives_it_back() {
        // 64 KiB chunks (below the mmap threshold, so from an arena) with a small live one
        // after each: freeing them leaves holes of whole pages that a trim of the heap's top
        // cannot reach.
        let mut keep = Vec::new();
        let mut drop_later = Vec::new();
        for i in 0..300u32 {
            drop_later.push(vec![i as u8; 64 * 1024]);
            keep.push(vec![i as u8; 16]);
        }
        let before = stats().expect("glibc");
        drop(drop_later);
        let after = stats().expect("glibc");
        assert!(
            after.free >= before.free + 15_000_000,
            "300 freed 64 KiB chunks must show as free: {before:?} -> {after:?}"
        );
        assert!(
            after.in_use + 15_000_000 <= before.in_use,
            "{before:?} -> {after:?}"
        );
        let rss = |k: &str| -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .expect("status")
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .expect("field")
        };
        let anon = rss("RssAnon:");
        assert!(
            release_free_pages(),
            "the holes hold whole pages to give back"
        );
        let trimmed = rss("RssAnon:");
        assert!(
            trimmed + 10_000 <= anon,
            "RssAnon must fall by at least ~10 MB: {anon} -> {trimmed} KiB"
        );
        assert_eq!(keep.len(), 300);
    }
}
