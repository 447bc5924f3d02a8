//! Side-by-side comparison with Debian's node_exporter 1.5, shared by the host-collector tests
//! (`exporter/tests/node_hardware.rs`, `node_btrfs.rs`): both exporters with the same flags,
//! and every family, HELP, TYPE, label set and value must be identical.

use crate::prom_text::{Exposition, parse};
use crate::{App, GoExporter};
use std::path::Path;

/// node_exporter, then quantwatch-exporter (`exporter` is its binary), with the same flags;
/// both scraped once.
pub fn scrape_both(exporter: &str, args: &[String]) -> (Exposition, Exposition) {
    let node = GoExporter::node_with_args(args);
    let (status, body) = crate::http_get(&node.metrics_url());
    assert_eq!(status, 200);
    let theirs = parse(&body);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = App::start(exporter, &refs, &[]);
    (theirs, app.scrape())
}

/// node_ families, minus the two whose values cannot be equal (build info, durations).
pub fn comparable(name: &str) -> bool {
    name.starts_with("node_")
        && name != "node_exporter_build_info"
        && name != "node_scrape_collector_duration_seconds"
}

/// Families, TYPE, HELP and every series with its value: identical.
pub fn assert_identical(theirs: &Exposition, ours: &Exposition, what: &str) {
    assert_identical_where(theirs, ours, what, comparable);
}

/// [`assert_identical`] over the families `keep` selects.
pub fn assert_identical_where(
    theirs: &Exposition,
    ours: &Exposition,
    what: &str,
    keep: fn(&str) -> bool,
) {
    let fams = |e: &Exposition| -> std::collections::BTreeMap<String, (String, String)> {
        e.types
            .iter()
            .filter(|(n, _)| keep(n))
            .map(|(n, t)| {
                let help = e.helps.get(n).cloned().unwrap_or_default();
                (n.clone(), (t.clone(), help))
            })
            .collect()
    };
    assert_eq!(fams(ours), fams(theirs), "{what}: families, types, help");
    let (a, b) = (ours.series(keep), theirs.series(keep));
    let only_ours: Vec<_> = a.iter().filter(|(k, _)| !b.contains_key(*k)).collect();
    let only_theirs: Vec<_> = b.iter().filter(|(k, _)| !a.contains_key(*k)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{what}: series only we publish: {only_ours:#?}\nseries only node_exporter publishes: {only_theirs:#?}"
    );
    for (k, v) in &b {
        assert_eq!(a.get(k), Some(v), "{what}: value of {k:?}");
    }
}

/// Copies `from` to `to`, symlinks as symlinks (hwmon's chip names come from them), for a
/// test to damage its own copy of a fixture tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        let ty = entry.file_type().expect("file type");
        if ty.is_symlink() {
            let link = std::fs::read_link(entry.path()).expect("readlink");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else if ty.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
