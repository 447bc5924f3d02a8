//! The `btrfs` host collector against Debian's node_exporter 1.5, on real btrfs filesystems
//! (loop devices, mounted by `testkit::btrfs`) and on a sysfs tree copied from real ones
//! (`tests/fixtures/node/btrfs`): every `node_btrfs_*` family, HELP, TYPE, label set and
//! value identical — the ioctl device statistics of mounted filesystems, node_exporter's
//! sysfs fallback for the ones it cannot reach, and procfs' reading of damaged files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::btrfs::BtrfsLab;
use testkit::node::{assert_identical, copy_tree, scrape_both};
use testkit::prom_text::Exposition;

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

/// Needs escaping in the exposition (quote, backslash) and is not ASCII.
const LABEL: &str = "qw \"quoted\" back\\slash ünï€ ✓";

/// 300 MiB, the size of every test device.
const DEVICE_BYTES: f64 = 314_572_800.0;

const FIXTURE_MIRROR: &str = "c071fb53-d582-482a-8f6c-44f7c2c4c711";
const FIXTURE_ARCHIVE: &str = "2be37465-2162-4da9-80e0-3568da8f4474";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/node/btrfs")
}

fn only_btrfs(extra: &[String]) -> Vec<String> {
    let mut v = vec![
        "--collector.disable-defaults".to_string(),
        "--collector.btrfs".to_string(),
    ];
    v.extend_from_slice(extra);
    v
}

fn over(root: &Path) -> Vec<String> {
    only_btrfs(&[
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
    ])
}

fn success(e: &Exposition) -> Option<f64> {
    e.value("node_scrape_collector_success", &[("collector", "btrfs")])
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (devid, size, used, path) of every device, as `btrfs filesystem show --raw` prints them.
fn btrfs_show(mount: &Path) -> Vec<(u64, f64, f64, String)> {
    sh(
        "btrfs",
        &["filesystem", "show", "--raw", &mount.display().to_string()],
    )
    .lines()
    .filter_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first() == Some(&"devid") && w.len() >= 8).then(|| {
            (
                w[1].parse().expect("devid"),
                w[3].parse().expect("size"),
                w[5].parse().expect("used"),
                w[7].to_string(),
            )
        })
    })
    .collect()
}

/// `btrfs device stats` of a mount: (device path, error type) → count.
fn device_stats(mount: &Path) -> HashMap<(String, String), f64> {
    sh("btrfs", &["device", "stats", &mount.display().to_string()])
        .lines()
        .filter_map(|l| {
            // [/dev/loop5].write_io_errs   0, [/dev/loop5].corruption_errs   1
            let (key, n) = l.split_once(char::is_whitespace)?;
            let (dev, ty) = key.strip_prefix('[')?.split_once("].")?;
            let ty = ty.strip_suffix("_errs")?.trim_end_matches("_io");
            Some(((dev.to_string(), ty.to_string()), n.trim().parse().ok()?))
        })
        .collect()
}

/// Zeroes the first 4 KiB block of `image` that holds the start of `marker`: one copy of a
/// file's data, damaged without btrfs knowing.
fn corrupt_first_block_of(image: &Path, marker: &[u8]) {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .expect("image");
    let mut block = vec![0u8; 4096];
    let mut offset = 0u64;
    loop {
        match f.read_exact(&mut block) {
            Ok(()) => {}
            Err(e) => panic!("marker not found in {}: {e}", image.display()),
        }
        if block[..64] == marker[..64] {
            break;
        }
        offset += 4096;
    }
    f.write_all_at(&[0u8; 4096], offset).expect("overwrite");
    f.sync_all().expect("fsync");
}

#[test]
fn mounted_filesystems_match_node_exporter_exactly() {
    // Declared first, so it drops last: the exporters (node_exporter keeps its mount-point
    // handles open) are gone before it unmounts.
    let mut lab = BtrfsLab::start();

    // One device (data single, metadata dup), mounted three times: its root, a subvolume
    // (same device: skipped as done) and a plain directory (not a subvolume root).
    let single = lab.mkfs("single", LABEL, 1, &[]);
    let root = lab.mount(&single.devices[0], "single", "");
    sh(
        "btrfs",
        &[
            "subvolume",
            "create",
            &root.join("sub").display().to_string(),
        ],
    );
    std::fs::create_dir(root.join("plain")).expect("mkdir");
    std::fs::write(root.join("plain/data"), vec![7u8; 8 << 20]).expect("write");
    std::fs::write(root.join("sub/data"), vec![9u8; 3 << 20]).expect("write");
    lab.mount(&single.devices[0], "single-sub", "subvol=sub");
    lab.bind(&root.join("plain"), "single-plain");

    // Two devices, raid1 data and metadata, one copy of a file damaged behind btrfs' back
    // and found by a scrub: corruption errors on that device only.
    let mirror = lab.mkfs("mirror", "mirror", 2, &["-d", "raid1", "-m", "raid1"]);
    let mirror_root = lab.mount(&mirror.devices[0], "mirror", "");
    std::fs::write(mirror_root.join("data"), vec![1u8; 12 << 20]).expect("write");
    let marker: Vec<u8> = b"quantwatch btrfs corruption marker "
        .iter()
        .cycle()
        .take(64 << 10)
        .copied()
        .collect();
    std::fs::write(mirror_root.join("marked"), &marker).expect("write");
    lab.settle(&mirror_root);
    corrupt_first_block_of(&mirror.images[1], &marker);
    // Exits non-zero when it found errors; what it counted is what is compared.
    let _ = Command::new("btrfs")
        .args(["scrub", "start", "-B", &mirror_root.display().to_string()])
        .output()
        .expect("btrfs scrub runs");
    let progs_stats = device_stats(&mirror_root);

    // Reachable only through a directory below its root: node_exporter cannot open it for
    // the ioctls and publishes the sysfs device sizes instead.
    let hidden = lab.mkfs("hidden", "hidden", 1, &[]);
    let hidden_root = lab.mount(&hidden.devices[0], "hidden-root", "");
    std::fs::create_dir(hidden_root.join("dir")).expect("mkdir");
    let hidden_dir = lab.bind(&hidden_root.join("dir"), "hidden-dir");
    lab.umount(&hidden_root);

    for m in [&root, &mirror_root, &hidden_dir] {
        lab.settle(m);
    }
    let (theirs, ours) = scrape_both(EXPORTER, &only_btrfs(&[]));
    assert_identical(&theirs, &ours, "mounted");
    assert_eq!(success(&ours), Some(1.0));
    assert_eq!(success(&theirs), Some(1.0));

    let v = |name: &str, labels: &[(&str, &str)]| ours.value(name, labels);
    assert_eq!(
        v(
            "node_btrfs_info",
            &[("uuid", &single.uuid), ("label", LABEL)]
        ),
        Some(1.0)
    );
    let ratio = |uuid: &str, bg: &str, mode: &str| {
        v(
            "node_btrfs_allocation_ratio",
            &[("uuid", uuid), ("block_group_type", bg), ("mode", mode)],
        )
    };
    assert_eq!(ratio(&single.uuid, "data", "single"), Some(1.0));
    assert_eq!(ratio(&single.uuid, "metadata", "dup"), Some(2.0));
    assert_eq!(ratio(&mirror.uuid, "data", "raid1"), Some(2.0));
    assert_eq!(ratio(&mirror.uuid, "system", "raid1"), Some(2.0));

    // Device statistics by ioctl, once per filesystem however often it is mounted, checked
    // against btrfs-progs' own reading.
    for (fs, mount) in [(&single, &root), (&mirror, &mirror_root)] {
        let shown = btrfs_show(mount);
        assert_eq!(shown.len(), fs.devices.len(), "{shown:?}");
        let sizes = ours.matching("node_btrfs_device_size_bytes", &[("uuid", &fs.uuid)]);
        assert_eq!(sizes.len(), fs.devices.len(), "{sizes:?}");
        for (_, size, used, path) in &shown {
            let device = path.trim_start_matches("/dev/");
            let s = ours.matching(
                "node_btrfs_device_size_bytes",
                &[("uuid", &fs.uuid), ("device", device)],
            );
            assert_eq!(s.len(), 1, "{device}: {s:?}");
            assert_eq!(s[0].value, *size);
            assert_eq!(s[0].value, DEVICE_BYTES);
            let dev_uuid = s[0].labels.get("btrfs_dev_uuid").expect("btrfs_dev_uuid");
            assert_eq!(dev_uuid.len(), 36, "{dev_uuid}");
            let labels = [
                ("uuid", fs.uuid.as_str()),
                ("device", device),
                ("btrfs_dev_uuid", dev_uuid.as_str()),
            ];
            assert_eq!(
                v("node_btrfs_device_unused_bytes", &labels),
                Some(size - used)
            );
            for ty in ["write", "read", "flush", "corruption", "generation"] {
                let mut l = labels.to_vec();
                l.push(("type", ty));
                let want = if fs.uuid == mirror.uuid {
                    progs_stats[&(path.clone(), ty.to_string())]
                } else {
                    0.0
                };
                assert_eq!(
                    v("node_btrfs_device_errors_total", &l),
                    Some(want),
                    "{device} {ty}"
                );
            }
        }
    }
    let corrupted = [
        ("uuid", mirror.uuid.as_str()),
        ("device", mirror.device_name(1)),
        ("type", "corruption"),
    ];
    assert!(
        ours.value("node_btrfs_device_errors_total", &corrupted) >= Some(1.0),
        "the scrub found the damaged copy: {progs_stats:?}"
    );
    let fallback = ours.matching("node_btrfs_device_size_bytes", &[("uuid", &hidden.uuid)]);
    assert_eq!(fallback.len(), 1, "{fallback:?}");
    assert_eq!(
        fallback[0].labels,
        [
            ("device".to_string(), hidden.device_name(0).to_string()),
            ("uuid".to_string(), hidden.uuid.clone()),
        ]
        .into(),
        "sysfs fallback: no btrfs_dev_uuid"
    );
    assert_eq!(fallback[0].value, DEVICE_BYTES);
    assert!(
        ours.matching("node_btrfs_device_unused_bytes", &[("uuid", &hidden.uuid)])
            .is_empty()
    );
    assert_eq!(
        ours.types
            .get("node_btrfs_device_errors_total")
            .map(String::as_str),
        Some("counter")
    );
}

#[test]
fn a_sysfs_tree_without_its_mounts_gives_node_exporters_fallback() {
    let (theirs, ours) = scrape_both(EXPORTER, &over(&fixture()));
    assert_identical(&theirs, &ours, "fixture");
    assert_eq!(success(&ours), Some(1.0));
    assert_eq!(success(&theirs), Some(1.0));
    // Worked out by hand from the fixture files.
    let v = |name: &str, labels: &[(&str, &str)]| ours.value(name, labels);
    assert_eq!(
        v(
            "node_btrfs_info",
            &[("uuid", FIXTURE_MIRROR), ("label", LABEL)]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "node_btrfs_info",
            &[("uuid", FIXTURE_ARCHIVE), ("label", "archive")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "node_btrfs_global_rsv_size_bytes",
            &[("uuid", FIXTURE_ARCHIVE)]
        ),
        Some(5_767_168.0)
    );
    let layout = |name: &str, uuid: &str, bg: &str, mode: &str| {
        v(
            name,
            &[("uuid", uuid), ("block_group_type", bg), ("mode", mode)],
        )
    };
    let archive = FIXTURE_ARCHIVE;
    assert_eq!(
        layout("node_btrfs_used_bytes", archive, "data", "raid6"),
        Some(30_003_200.0)
    );
    assert_eq!(
        layout("node_btrfs_size_bytes", archive, "data", "raid6"),
        Some(67_108_864.0)
    );
    assert_eq!(
        layout("node_btrfs_allocation_ratio", archive, "data", "raid6"),
        Some(3.0),
        "raid6 over 3 devices: 3 / (3 - 2)"
    );
    assert_eq!(
        layout(
            "node_btrfs_allocation_ratio",
            archive,
            "metadata",
            "raid1c3"
        ),
        Some(0.0),
        "procfs 0.8 does not know raid1c3"
    );
    assert_eq!(
        layout(
            "node_btrfs_allocation_ratio",
            FIXTURE_MIRROR,
            "metadata",
            "raid1"
        ),
        Some(2.0)
    );
    assert_eq!(
        v(
            "node_btrfs_reserved_bytes",
            &[("uuid", archive), ("block_group_type", "system")]
        ),
        Some(0.0)
    );
    // The mount table lists the mirror at a path that is not there: sizes from sysfs.
    for (uuid, devices) in [
        (FIXTURE_MIRROR, &["loop1", "loop2"][..]),
        (archive, &["loop3", "loop4", "loop5"][..]),
    ] {
        let s = ours.matching("node_btrfs_device_size_bytes", &[("uuid", uuid)]);
        assert_eq!(s.len(), devices.len());
        for d in devices {
            assert_eq!(
                v(
                    "node_btrfs_device_size_bytes",
                    &[("uuid", uuid), ("device", d)]
                ),
                Some(DEVICE_BYTES),
                "614400 sectors of 512 bytes"
            );
        }
    }
    assert_eq!(
        ours.label_names("node_btrfs_device_size_bytes"),
        ["device".to_string(), "uuid".to_string()].into()
    );
    assert!(!ours.types.contains_key("node_btrfs_device_unused_bytes"));
    assert!(!ours.types.contains_key("node_btrfs_device_errors_total"));
}

#[test]
fn damaged_sysfs_files_read_as_node_exporter_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    copy_tree(&fixture(), root);
    let fs = root.join("sys/fs/btrfs");
    let (mirror, archive) = (fs.join(FIXTURE_MIRROR), fs.join(FIXTURE_ARCHIVE));
    // The mirror: no features directory (an error its reader keeps, so the global reserve
    // read after it is 0, and which allocation/data then replaces with its own: success), a
    // layout size that is not a number (0), a reservation beyond 64 bits (the largest u64).
    std::fs::remove_dir_all(mirror.join("features")).expect("rm");
    std::fs::write(mirror.join("allocation/data/raid1/total_bytes"), "lots\n").expect("write");
    std::fs::write(
        mirror.join("allocation/metadata/bytes_reserved"),
        "99999999999999999999\n",
    )
    .expect("write");
    // The archive: no metadata_uuid (the directory names it), a label that cannot be read
    // (a directory: EISDIR), a data counter that cannot be read (the rest of data reads 0),
    // a device size with a sign (0).
    std::fs::remove_file(archive.join("metadata_uuid")).expect("rm");
    std::fs::remove_file(archive.join("label")).expect("rm");
    std::fs::create_dir(archive.join("label")).expect("mkdir");
    std::fs::remove_file(archive.join("allocation/data/bytes_may_use")).expect("rm");
    std::fs::create_dir(archive.join("allocation/data/bytes_may_use")).expect("mkdir");
    std::fs::write(archive.join("devices/loop4/size"), "+614400\n").expect("write");

    let (theirs, ours) = scrape_both(EXPORTER, &over(root));
    assert_identical(&theirs, &ours, "damaged");
    assert_eq!(success(&theirs), Some(1.0));
    assert_eq!(success(&ours), Some(1.0));
    let v = |name: &str, labels: &[(&str, &str)]| ours.value(name, labels);
    assert_eq!(
        v(
            "node_btrfs_global_rsv_size_bytes",
            &[("uuid", FIXTURE_MIRROR)]
        ),
        Some(0.0)
    );
    assert_eq!(
        v(
            "node_btrfs_size_bytes",
            &[("uuid", FIXTURE_MIRROR), ("block_group_type", "data")]
        ),
        Some(0.0)
    );
    assert_eq!(
        v(
            "node_btrfs_reserved_bytes",
            &[("uuid", FIXTURE_MIRROR), ("block_group_type", "metadata")]
        ),
        Some(u64::MAX as f64)
    );
    assert_eq!(
        v(
            "node_btrfs_info",
            &[("uuid", FIXTURE_ARCHIVE), ("label", "")]
        ),
        Some(1.0)
    );
    let archive_data = |name: &str, mode: &str| {
        v(
            name,
            &[
                ("uuid", FIXTURE_ARCHIVE),
                ("block_group_type", "data"),
                ("mode", mode),
            ],
        )
    };
    assert_eq!(archive_data("node_btrfs_used_bytes", "raid6"), Some(0.0));
    assert_eq!(
        archive_data("node_btrfs_allocation_ratio", "bytes_may_use"),
        Some(0.0),
        "every directory there is a layout to procfs"
    );
    assert_eq!(
        v(
            "node_btrfs_used_bytes",
            &[("uuid", FIXTURE_ARCHIVE), ("block_group_type", "metadata")]
        ),
        Some(163_840.0),
        "the next allocation directory reads afresh"
    );
    assert_eq!(
        v(
            "node_btrfs_device_size_bytes",
            &[("uuid", FIXTURE_ARCHIVE), ("device", "loop4")]
        ),
        Some(0.0)
    );

    // A filesystem without allocation/system fails the collector on both sides, and then
    // nothing of btrfs is published.
    std::fs::remove_dir_all(archive.join("allocation/system")).expect("rm");
    let (theirs, ours) = scrape_both(EXPORTER, &over(root));
    assert_identical(&theirs, &ours, "failing");
    assert_eq!(success(&theirs), Some(0.0));
    assert_eq!(success(&ours), Some(0.0));
    assert!(!ours.types.keys().any(|n| n.starts_with("node_btrfs_")));
}
