//! Small readers over `/sys` for the hardware collectors (hwmon, thermal_zone, cpufreq, nvme,
//! powersupplyclass, rapl, edac, dmi, infiniband, fibrechannel, tapestats): procfs-core covers
//! `/proc` only. They keep the read
//! semantics node_exporter 1.5 gets from prometheus/procfs 0.8, because those decide which
//! values are published: one `read(2)` of at most 128 bytes for attributes (a broken hwmon
//! driver answering EAGAIN fails the read instead of being polled forever), whole-file reads
//! for integers, and `glob`'s lexical order for `name[0-9]*` directories.

use super::NodeError;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// One attribute as procfs' `SysReadFile`: a single read of at most 128 bytes, surrounding
/// white space trimmed.
pub fn sys_read(path: &Path) -> std::io::Result<String> {
    let bytes = sys_read_raw(path)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

/// A single read of at most 128 bytes, untrimmed (hwmon trims only newlines).
pub fn sys_read_raw(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = [0u8; 128];
    let n = f.read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// A whole file parsed as an unsigned decimal, as procfs' and node_exporter's
/// `ReadUintFromFile`.
pub fn read_u64(path: &Path) -> Result<u64, FileError> {
    let text = std::fs::read_to_string(path).map_err(FileError::Io)?;
    text.trim()
        .parse::<u64>()
        .map_err(|e| FileError::Parse(e.to_string()))
}

/// A whole file parsed as a signed decimal (`ReadIntFromFile`).
pub fn read_i64(path: &Path) -> Result<i64, FileError> {
    let text = std::fs::read_to_string(path).map_err(FileError::Io)?;
    text.trim()
        .parse::<i64>()
        .map_err(|e| FileError::Parse(e.to_string()))
}

/// Why one attribute could not be had; the collector decides which cases skip it.
#[derive(Debug)]
pub enum FileError {
    Io(std::io::Error),
    Parse(String),
}

impl FileError {
    /// Absent or not permitted: procfs treats these as "attribute not provided".
    pub fn is_absent(&self) -> bool {
        matches!(self, FileError::Io(e) if matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
        ))
    }

    pub fn at(self, path: &Path) -> NodeError {
        match self {
            FileError::Io(source) => NodeError::Io {
                path: path.display().to_string(),
                source,
            },
            FileError::Parse(reason) => NodeError::Parse {
                path: path.display().to_string(),
                reason,
            },
        }
    }
}

pub fn io_err(path: &Path, source: std::io::Error) -> NodeError {
    NodeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The entry names of `dir`, sorted as Go's `os.ReadDir` returns them; a missing directory is
/// "no data" (the hardware is absent).
pub fn list(dir: &Path) -> Result<Vec<String>, NodeError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(NodeError::NoData),
        Err(source) => return Err(io_err(dir, source)),
    };
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The entries of `dir` matching the glob `<prefix>[0-9]*`, in lexical order, with what
/// follows the prefix; a missing or unreadable directory matches nothing (as `filepath.Glob`).
pub fn glob_numbered(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| {
            let rest = name.strip_prefix(prefix)?;
            rest.starts_with(|c: char| c.is_ascii_digit())
                .then(|| (rest.to_string(), dir.join(&name)))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// `p` cleaned lexically as Go's `filepath.Join` does (no `.`, `..` resolved against what
/// precedes it), for paths node_exporter publishes as label values.
pub fn clean(p: &Path) -> String {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.display().to_string()
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
pub fn go_uint(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_resolves_like_go() {
        assert_eq!(clean(Path::new("/a/b/../c/./d")), "/a/c/d");
        assert_eq!(clean(Path::new("/a//b/")), "/a/b");
    }
}
