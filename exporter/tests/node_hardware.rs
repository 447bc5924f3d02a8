//! The hardware collectors node_exporter 1.5 enables by default (hwmon, thermal_zone, cpufreq,
//! nvme, mdadm, powersupplyclass, rapl, edac, bonding, dmi, schedstat, infiniband,
//! fibrechannel, tapestats, nfs, nfsd, xfs, zfs, bcache, ipvs) publish nothing on the
//! development VM, which has no such hardware (nor DMI tables, scheduler statistics, an NFS
//! client or server, XFS, ZFS, bcache or IPVS). So both exporters read the same small sysfs/procfs tree of a
//! bare-metal host (`tests/fixtures/node/hw`: sensor chips behind device links, thermal zones,
//! NVMe controllers, RAID arrays in every state, a UPS, RAPL zones, ECC counters, bonds), and
//! every family, HELP, TYPE, label set and value must be identical — collector by collector
//! (each switched on alone, so `--collector.NAME` is honoured), all together, and over a
//! damaged copy of the tree where some collectors fail and the others must not notice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use testkit::node::{assert_identical, comparable, copy_tree};
use testkit::prom_text::Exposition;

const EXPORTER: &str = env!("CARGO_BIN_EXE_quantwatch-exporter");

const HARDWARE: [&str; 20] = [
    "hwmon",
    "thermal_zone",
    "cpufreq",
    "nvme",
    "mdadm",
    "powersupplyclass",
    "rapl",
    "edac",
    "bonding",
    "dmi",
    "schedstat",
    "infiniband",
    "fibrechannel",
    "tapestats",
    "nfs",
    "nfsd",
    "xfs",
    "zfs",
    "bcache",
    "ipvs",
];

/// Left as given (with `..`): node_exporter cleans the paths it publishes (rapl's `path`
/// label), and so must we.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/node/hw")
}

fn flags(root: &Path, collectors: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("--path.sysfs={}", root.join("sys").display()),
        format!("--path.procfs={}", root.join("proc").display()),
        "--collector.disable-defaults".to_string(),
    ];
    v.extend(collectors.iter().map(|c| format!("--collector.{c}")));
    v
}

/// Both exporters over `root` with only `collectors` on.
fn scrape_both(root: &Path, collectors: &[&str]) -> (Exposition, Exposition) {
    testkit::node::scrape_both(EXPORTER, &flags(root, collectors))
}

#[test]
fn each_hardware_collector_alone_matches_node_exporter_exactly() {
    let root = fixture();
    for c in HARDWARE {
        let (theirs, ours) = scrape_both(&root, &[c]);
        assert_identical(&theirs, &ours, c);
        // Exactly this collector ran, and it succeeded on both sides.
        let ran: BTreeSet<String> = ours
            .matching("node_scrape_collector_success", &[])
            .iter()
            .filter_map(|s| s.labels.get("collector").cloned())
            .collect();
        assert_eq!(ran, BTreeSet::from([c.to_string()]), "{c}");
        assert_eq!(
            ours.value("node_scrape_collector_success", &[("collector", c)]),
            Some(1.0),
            "{c}"
        );
        // Something was published beyond the two scrape families.
        let published = ours
            .types
            .keys()
            .filter(|n| comparable(n) && !n.starts_with("node_scrape_"))
            .count();
        assert!(published > 0, "{c} published nothing");
    }
}

#[test]
fn all_hardware_collectors_together_match_node_exporter_with_known_values() {
    let (theirs, ours) = scrape_both(&fixture(), &HARDWARE);
    assert_identical(&theirs, &ours, "all");
    // A few values worked out by hand from the fixture, so a shared misreading cannot pass.
    let v = |name: &str, labels: &[(&str, &str)]| ours.value(name, labels);
    let core = [("chip", "platform_coretemp_0"), ("sensor", "temp1")];
    assert_eq!(v("node_hwmon_temp_celsius", &core), Some(45.0));
    assert_eq!(v("node_hwmon_temp_crit_celsius", &core), Some(100.0));
    let superio = "pci0000:00_0000:00:1f_3";
    assert_eq!(
        v(
            "node_hwmon_fan_rpm",
            &[("chip", superio), ("sensor", "fan2")]
        ),
        Some(980.0),
        "a sensor file of the chip's device directory"
    );
    assert_eq!(
        v(
            "node_hwmon_power_watt",
            &[("chip", superio), ("sensor", "power1")]
        ),
        Some(25.5)
    );
    assert_eq!(
        v("node_hwmon_temp_celsius", &[("chip", "hwmon3")]),
        Some(27.0)
    );
    assert_eq!(
        v(
            "node_thermal_zone_temp",
            &[("zone", "1"), ("type", "acpitz")]
        ),
        Some(-2.5)
    );
    assert_eq!(
        v("node_cpu_scaling_frequency_hertz", &[("cpu", "1")]),
        Some(2.5e9)
    );
    assert_eq!(v("node_cpu_frequency_hertz", &[("cpu", "1")]), None);
    assert_eq!(
        v(
            "node_nvme_info",
            &[("device", "nvme0"), ("model", "Samsung SSD 980 PRO 1TB")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "node_md_state",
            &[("device", "md1"), ("state", "recovering")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v("node_md_blocks_synced", &[("device", "md1")]),
        Some(83_078_528.0)
    );
    assert_eq!(
        v("node_md_disks", &[("device", "md2"), ("state", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        v("node_power_supply_cyclecount", &[("power_supply", "BAT0")]),
        Some(16.0),
        "0x10, Go's base-0 integers"
    );
    assert_eq!(
        v("node_rapl_core_joules_total", &[("index", "1")]),
        Some(88.765432)
    );
    assert_eq!(
        v(
            "node_edac_csrow_correctable_errors_total",
            &[("controller", "0"), ("csrow", "unknown")]
        ),
        Some(1.0)
    );
    assert_eq!(v("node_bonding_active", &[("master", "bond0")]), Some(1.0));
    assert_eq!(v("node_bonding_slaves", &[("master", "bond0")]), Some(2.0));
    assert_eq!(
        v("node_schedstat_running_seconds_total", &[("cpu", "0")]),
        Some(2345.678901234)
    );
    assert_eq!(
        v("node_schedstat_timeslices_total", &[("cpu", "1")]),
        Some(37_409_366.0)
    );
    assert_eq!(
        v("node_schedstat_timeslices_total", &[("cpu", "2")]),
        None,
        "a field beyond u64 skips its line"
    );
    assert_eq!(
        v(
            "node_dmi_info",
            &[
                ("system_vendor", "Supermicro"),
                ("product_name", "SYS-620U-TNR"),
                ("board_asset_tag", ""),
            ]
        ),
        Some(1.0)
    );
    let mlx5 = [("device", "mlx5_0"), ("port", "1")];
    assert_eq!(
        v("node_infiniband_rate_bytes_per_second", &mlx5),
        Some(12_500_000_000.0)
    );
    assert_eq!(
        v("node_infiniband_port_data_received_bytes_total", &mlx5),
        Some(1_553_255_926_290_448_384.0),
        "4-byte words, wrapping as a u64 like upstream"
    );
    let mlx4 = [("device", "mlx4_0"), ("port", "1")];
    assert_eq!(
        v("node_infiniband_unicast_packets_received_total", &mlx4),
        None,
        "N/A (no PMA)"
    );
    assert_eq!(
        v("node_infiniband_legacy_data_received_bytes_total", &mlx4),
        Some(2220.0)
    );
    let nfs = |proto: &str, method: &str| {
        v(
            "node_nfs_requests_total",
            &[("proto", proto), ("method", method)],
        )
    };
    assert_eq!(nfs("3", "ReadDirPlus"), Some(241.0));
    assert_eq!(nfs("2", "Null"), Some(0.0), "no proc2 line: zeros");
    assert_eq!(
        nfs("4", "Clone"),
        Some(77.0),
        "v4 beyond 59 values: ignored"
    );
    assert_eq!(
        v("node_nfs_rpc_retransmissions_total", &[]),
        Some(374_636.0)
    );
    assert_eq!(
        v("node_xfs_read_calls_total", &[("device", "nvme0n1")]),
        Some(94_045.0)
    );
    assert_eq!(
        v(
            "node_xfs_block_map_btree_lookups_total",
            &[("device", "sda1")]
        ),
        Some(0.0),
        "a line the kernel did not print counts zero"
    );
    assert_eq!(
        v(
            "node_nfsd_requests_total",
            &[("proto", "4"), ("method", "RelLockOwner")]
        ),
        Some(57.0)
    );
    assert_eq!(
        v("node_nfsd_requests_total", &[("method", "Null")]),
        None,
        "no Null procedure, as upstream"
    );
    assert_eq!(v("node_nfsd_server_threads", &[]), Some(8.0));
    let host0 = [("fc_host", "host0")];
    assert_eq!(v("node_fibrechannel_nos_total", &host0), Some(18.0));
    assert_eq!(
        v("node_fibrechannel_dumped_frames_total", &host0),
        None,
        "all ones: unsupported by the driver"
    );
    assert_eq!(
        v(
            "node_fibrechannel_info",
            &[("fc_host", "host0"), ("port_id", "000002")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v("node_tape_io_time_seconds_total", &[("device", "st0")]),
        Some(9247.01108772)
    );
    assert_eq!(
        v("node_tape_io_now", &[("device", "nst0")]),
        None,
        "only st<N> devices"
    );
    assert_eq!(
        v(
            "node_ipvs_backend_weight",
            &[("proto", "FWM"), ("remote_address", "192.168.50.26")]
        ),
        Some(5.0),
        "two backends with the same labels: summed"
    );
    assert_eq!(
        v(
            "node_ipvs_backend_connections_active",
            &[("local_address", "2620::1"), ("remote_address", "2620::3")]
        ),
        Some(0.0)
    );
    assert_eq!(
        v("node_ipvs_incoming_packets_total", &[]),
        Some(3_811_989_221.0)
    );
    assert_eq!(v("node_zfs_arc_hits", &[]), Some(8_772_612.0));
    assert_eq!(
        ours.types.get("node_zfs_arc_hits").map(String::as_str),
        Some("untyped")
    );
    assert_eq!(
        v(
            "node_zfs_zpool_state",
            &[("zpool", "data"), ("state", "degraded")]
        ),
        Some(1.0)
    );
    assert_eq!(
        v(
            "node_zfs_zpool_dataset_nwritten",
            &[("zpool", "tank"), ("dataset", "tank/db")]
        ),
        Some(12_302.0)
    );
    let bdev0 = [("backing_device", "bdev0")];
    assert_eq!(
        v("node_bcache_bypassed_bytes_total", &bdev0),
        Some(555_008.0),
        "542k"
    );
    assert_eq!(
        v("node_bcache_dirty_data_bytes", &bdev0),
        Some(30_818_304.0),
        "29.4M: tenths of 1/1.024, as bcache prints"
    );
    assert_eq!(v("node_bcache_writeback_change", &bdev0), Some(-12_688.0));
}

#[test]
fn a_damaged_tree_fails_only_the_collectors_it_damages_as_in_node_exporter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    copy_tree(&fixture(), root);
    let sys = root.join("sys");
    // An NVMe controller without its state, a CPU without its cpufreq driver name, an
    // unreadable ECC counter, an md array cut short.
    std::fs::remove_file(sys.join("class/nvme/nvme1/state")).expect("rm");
    std::fs::remove_file(sys.join("devices/system/cpu/cpu1/cpufreq/scaling_driver")).expect("rm");
    std::fs::write(sys.join("devices/system/edac/mc/mc0/ce_count"), "many\n").expect("write");
    std::fs::write(root.join("proc/mdstat"), "md0 : active raid1 sda1[0]\n").expect("write");
    // A line procfs does not know in the NFS client's statistics, a line of the wrong width
    // in one XFS filesystem's.
    let nfs = root.join("proc/net/rpc/nfs");
    let text = std::fs::read_to_string(&nfs).expect("read") + "bogus 1 2\n";
    std::fs::write(&nfs, text).expect("write");
    std::fs::write(sys.join("fs/xfs/sda1/stats/stats"), "rw 1 2 3\n").expect("write");
    let (theirs, ours) = scrape_both(root, &HARDWARE);
    assert_identical(&theirs, &ours, "damaged");
    for c in HARDWARE {
        let want = if ["nvme", "cpufreq", "edac", "mdadm", "nfs", "xfs"].contains(&c) {
            0.0
        } else {
            1.0
        };
        assert_eq!(
            ours.value("node_scrape_collector_success", &[("collector", c)]),
            Some(want),
            "{c}"
        );
    }
    assert!(ours.types.contains_key("node_hwmon_temp_celsius"));
    assert!(!ours.types.contains_key("node_nvme_info"));
}
