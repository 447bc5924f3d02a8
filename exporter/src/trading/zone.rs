//! The trading day's IANA time zone, read from the system's tz database at config load.
//!
//! The exporter does not embed the tz database (chrono-tz did): its tables hold ~28,000
//! `&'static str` pointers that a position-independent binary must relocate at start-up,
//! which dirtied ~1 MiB of `.data.rel.ro` per process (README "Performance"). The zone's
//! TZif file (`$TZDIR/NAME`, else `/usr/share/zoneinfo/NAME`, package `tzdata`) is read once
//! and parsed by jiff; jiff's own database handle is not used because it indexes every zone
//! name of the directory in a process-lifetime cache, when one zone is all we need.

use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;

/// Where the tz database lives when `TZDIR` is unset (Debian's `tzdata`).
pub const DEFAULT_TZDIR: &str = "/usr/share/zoneinfo";

/// Why a zone could not be loaded; the text is a config error's reason.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error(
        "{name:?} is not an IANA time zone name (e.g. \"Asia/Shanghai\", \"America/New_York\", \"UTC\")"
    )]
    BadName { name: String },
    #[error(
        "no time zone database at {dir} ({source}): install tzdata (Debian: apt-get install tzdata) or set TZDIR"
    )]
    NoDatabase { dir: String, source: std::io::Error },
    #[error(
        "zone {name:?} not found in {dir}: not an IANA time zone, or tzdata is missing or too old (names such as \"US/Eastern\" are in tzdata-legacy on newer Debian)"
    )]
    NotFound { name: String, dir: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a TZif time zone file: {reason}")]
    BadFile { path: String, reason: String },
}

/// The tz database directory: `TZDIR` when set and non-empty (as glibc does), else
/// [`DEFAULT_TZDIR`].
pub fn tzdir(tzdir_env: Option<&str>) -> PathBuf {
    match tzdir_env {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(DEFAULT_TZDIR),
    }
}

/// Loads zone `name` from the tz database in `dir`. "UTC" needs no database, so the default
/// configuration works on a host without tzdata.
pub fn load(name: &str, dir: &Path) -> Result<TimeZone, ZoneError> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    if !valid_name(name) {
        return Err(ZoneError::BadName {
            name: name.to_string(),
        });
    }
    let path = dir.join(name);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || is_dir_error(&e) => {
            // Say whether the zone or the whole database is missing.
            return Err(match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => ZoneError::NotFound {
                    name: name.to_string(),
                    dir: dir.display().to_string(),
                },
                Ok(_) => ZoneError::NoDatabase {
                    dir: dir.display().to_string(),
                    source: std::io::Error::other("not a directory"),
                },
                Err(source) => ZoneError::NoDatabase {
                    dir: dir.display().to_string(),
                    source,
                },
            });
        }
        Err(source) => {
            return Err(ZoneError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    TimeZone::tzif(name, &data).map_err(|e| ZoneError::BadFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// `read` on a directory (e.g. "America") fails with EISDIR: no such zone either.
fn is_dir_error(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EISDIR) || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// An IANA name as the tz database spells them ("America/Argentina/Buenos_Aires",
/// "Etc/GMT+5", "EST5EDT"): relative, no `.`/`..` component, so a configured name can only
/// name a file inside the database; not under `posix/` or `right/` (copies with other
/// leap-second semantics, which chrono-tz did not accept either).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with("posix/")
        && !name.starts_with("right/")
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system() -> PathBuf {
        tzdir(std::env::var("TZDIR").ok().as_deref())
    }

    #[test]
    fn loads_system_zones() {
        let tz = load("Asia/Shanghai", &system()).expect("tzdata is installed");
        assert_eq!(tz.iana_name(), Some("Asia/Shanghai"));
        let tz = load("America/Argentina/Buenos_Aires", &system()).expect("tzdata");
        assert_eq!(tz.iana_name(), Some("America/Argentina/Buenos_Aires"));
        assert_eq!(
            load("UTC", Path::new("/nonexistent")).unwrap(),
            TimeZone::UTC
        );
    }

    #[test]
    fn rejects_names_outside_the_database() {
        for bad in [
            "",
            "/etc/passwd",
            "../etc/passwd",
            "Asia/../../etc",
            "Asia//Shanghai",
            "right/UTC",
            "posix/UTC",
            "Asia/Shang hai",
        ] {
            assert!(
                matches!(load(bad, &system()), Err(ZoneError::BadName { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn unknown_zone_and_missing_database_are_named() {
        let e = load("Mars/Olympus_Mons", &system()).unwrap_err();
        assert!(matches!(e, ZoneError::NotFound { .. }), "{e}");
        assert!(
            e.to_string().contains("\"Mars/Olympus_Mons\" not found in"),
            "{e}"
        );
        // A region directory is not a zone.
        assert!(matches!(
            load("America", &system()),
            Err(ZoneError::NotFound { .. })
        ));

        let empty = tempfile::tempdir().unwrap();
        let missing = empty.path().join("zoneinfo");
        let e = load("Asia/Shanghai", &missing).unwrap_err();
        assert!(matches!(e, ZoneError::NoDatabase { .. }), "{e}");
        assert!(e.to_string().contains("install tzdata"), "{e}");

        // A file that is not TZif (tzdata ships tables beside the zones).
        std::fs::write(empty.path().join("zone.tab"), "# not tzif\n").unwrap();
        let e = load("zone.tab", empty.path()).unwrap_err();
        assert!(matches!(e, ZoneError::BadFile { .. }), "{e}");
    }

    #[test]
    fn tzdir_env() {
        assert_eq!(tzdir(None), PathBuf::from("/usr/share/zoneinfo"));
        assert_eq!(tzdir(Some("")), PathBuf::from("/usr/share/zoneinfo"));
        assert_eq!(tzdir(Some("/opt/tz")), PathBuf::from("/opt/tz"));
    }
}
