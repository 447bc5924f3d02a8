//! Scraping as Prometheus does, and reading a process's memory: what the exporter benchmarks
//! share (`exporter_scrape`, `systemd_scrape`).

use crate::percentile;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Scrapes each benchmark makes after its warm-up.
pub const WARMUP: usize = 20;

/// VmRSS of `pid`, KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// (anonymous, file-backed) resident KiB from /proc/PID/status, the split of VmRSS: the heap
/// and stacks against the pages of the binary and its libraries.
pub fn rss_split_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:") + field("RssShmem:"))
}

/// One target, scraped as Prometheus does: its own client holding one kept-alive connection,
/// the scrape-timeout header on every request.
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub pid: i32,
    client: reqwest::blocking::Client,
    latencies: Vec<Duration>,
    /// Sample lines of the last scrape (all series; and node_* ones).
    pub series: (usize, usize),
    /// Per-collector durations (seconds) seen in our self metrics, every scrape.
    pub collectors: BTreeMap<String, Vec<f64>>,
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build()
        .expect("client")
}

impl Target {
    pub fn new(name: &'static str, url: String, pid: i32) -> Target {
        Target {
            name,
            url,
            pid,
            client: client(),
            latencies: Vec::with_capacity(1000),
            series: (0, 0),
            collectors: BTreeMap::new(),
        }
    }

    pub fn scrape(&mut self, record: bool) {
        let t = Instant::now();
        let body = fetch(&self.client, &self.url);
        let took = t.elapsed();
        if !record {
            return;
        }
        self.latencies.push(took);
        let (mut all, mut node) = (0, 0);
        for l in body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            all += 1;
            if l.starts_with("node_") {
                node += 1;
            }
            for (family, prefix) in [
                ("node_scrape_collector_duration_seconds", "node/"),
                ("quantwatch_exporter_collector_duration_seconds", ""),
            ] {
                if let Some(rest) = l.strip_prefix(family)
                    && let Some((labels, v)) = rest.rsplit_once(' ')
                    && let Some(c) = labels
                        .strip_prefix("{collector=\"")
                        .and_then(|x| x.strip_suffix("\"}"))
                    && let Ok(v) = v.parse::<f64>()
                {
                    self.collectors
                        .entry(format!("{prefix}{c}"))
                        .or_default()
                        .push(v);
                }
            }
        }
        self.series = (all, node);
    }

    pub fn p(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        percentile(&l, q).expect("at least one scrape")
    }
}

/// Our exporter's binary, beside the running benchmark's (cargo puts both in the profile's
/// directory); `build` says how to make it when it is missing.
pub fn our_exporter(build: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let ours = exe.with_file_name("quantwatch-exporter");
    assert!(ours.exists(), "{} missing: {build}", ours.display());
    ours
}

/// One scrape, as Prometheus sends it; the body of a successful answer.
pub fn fetch(client: &reqwest::blocking::Client, url: &str) -> String {
    let resp = client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
        .send()
        .expect("scrape");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let body = resp.text().expect("body");
    assert!(!body.is_empty());
    body
}

/// Milliseconds with two decimals, as the tables print them.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}
