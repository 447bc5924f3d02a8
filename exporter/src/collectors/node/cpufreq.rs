//! `cpufreq` collector: `/sys/devices/system/cpu/cpuN/cpufreq` frequencies in hertz (sysfs
//! holds kHz). A CPU without a `cpufreq` directory (most VMs) is skipped; as in procfs'
//! `SystemCpufreq`, an absent or forbidden frequency is left out while a missing governor or
//! driver attribute fails the collector.

use super::sysfs::{glob_numbered, io_err, read_u64, sys_read};
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};

pub struct Cpufreq;

/// (sysfs file, metric, help) in node_exporter's order.
const FREQS: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
];

/// Read (and required) by procfs although node_exporter publishes none of them.
const REQUIRED_TEXT: [&str; 5] = [
    "scaling_available_governors",
    "scaling_driver",
    "scaling_governor",
    "related_cpus",
    "scaling_setspeed",
];

impl NodeCollector for Cpufreq {
    fn update(&self, ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let mut fams: Vec<Family> = FREQS
            .iter()
            .map(|(_, name, help)| Family::gauge(name, help))
            .collect();
        for (cpu, dir) in glob_numbered(&ctx.paths.sys("devices/system/cpu"), "cpu") {
            let freq = dir.join("cpufreq");
            match std::fs::metadata(&freq) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&freq, e)),
            }
            let mut values = Vec::with_capacity(FREQS.len());
            for (file, _, _) in FREQS {
                let p = freq.join(file);
                match read_u64(&p) {
                    Ok(khz) => values.push(Some(khz)),
                    Err(e) if e.is_absent() => values.push(None),
                    Err(e) => return Err(e.at(&p)),
                }
            }
            // cpuinfo_transition_latency is read (and must parse) too.
            let p = freq.join("cpuinfo_transition_latency");
            if let Err(e) = read_u64(&p)
                && !e.is_absent()
            {
                return Err(e.at(&p));
            }
            for file in REQUIRED_TEXT {
                let p = freq.join(file);
                sys_read(&p).map_err(|e| io_err(&p, e))?;
            }
            for (fam, v) in fams.iter_mut().zip(values) {
                if let Some(khz) = v {
                    fam.add(&[("cpu", &cpu)], khz as f64 * 1000.0);
                }
            }
        }
        for f in fams {
            out.push(f);
        }
        Ok(())
    }
}
