//! What the exporter's in-process collector tests share: a configuration loaded through the
//! real loader (file and environment, as the binary loads them) and one scrape as served.

use quantwatch_exporter::collectors::Collector;
use quantwatch_exporter::config::Config;
use quantwatch_exporter::scrape::Scraper;
use std::sync::Arc;
use std::time::Duration;

/// `yaml` written to a file and loaded by `Config::load`, with `env` as the whole environment.
pub fn load_config(yaml: &str, env: &[(&'static str, &'static str)]) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("exporter.yml");
    std::fs::write(&path, yaml).expect("write config");
    let pairs = env.to_vec();
    let env = move |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    Config::load(Some(&path), &env).expect("valid config")
}

/// One scrape of `collector` alone, within a 10 s budget: the text as served.
pub async fn scrape_text(collector: Arc<dyn Collector>) -> String {
    let scraper = Scraper::new(vec![collector], Duration::from_secs(10), Duration::ZERO);
    scraper.scrape(Duration::from_secs(10)).await
}
