//! Escalation step firing precision: N alerts escalate at once through a 4-step policy (0s,
//! 5s, 10s, 15s over two channels); for every step row the store records when it fell due and
//! when it was sent. Prints lateness (sent − due) percentiles as a Markdown table.
//!
//! The router runs in-process (SQLite, `log` channels, whose send costs nothing), so the
//! figure is the router's own scheduling precision: worker wake-up, claim, render, mark.
//!
//! Usage: cargo run --release -p quantwatch-bench --bin escalation_precision -- [ALERTS]

use std::time::Duration;

use anyhow::Context;
use quantwatch_bench::router;
use quantwatch_bench::timing::timed;

const POLICY: &str = r#"
channels:
  - type: log
    name: team
  - type: log
    name: oncall
route:
  channels: [team]
  escalation: bench
escalation_policies:
  bench:
    steps:
      - delay: 0s
        channels: [team]
      - delay: 5s
        channels: [oncall]
      - delay: 10s
        channels: [team]
      - delay: 15s
        channels: [oncall]
"#;

fn payload(from: usize, to: usize) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = (from..to)
        .map(|n| {
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": format!("Esc{n}"), "severity": "critical", "instance": "db1:9187"},
                "annotations": {"summary": "replication lag above 30s"},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": format!("{n:016x}"),
            })
        })
        .collect();
    serde_json::json!({"version": "4", "groupKey": format!("g{from}"), "status": "firing", "alerts": alerts})
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let alerts: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("ALERTS must be a number")?
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let cfg_path = dir.path().join("router.yml");
    std::fs::write(&cfg_path, POLICY)?;
    let url = format!("sqlite://{}/router.db", dir.path().display());
    let router = router::start(Some(&cfg_path), &[("ROUTER_DATABASE_URL", &url)]).await?;
    let client = reqwest::Client::new();
    // All alerts arrive within the first moments, as in a storm: 100 per webhook.
    for from in (0..alerts).step_by(100) {
        let a = timed(
            client
                .post(format!("{}/webhook/alertmanager", router.base))
                .json(&payload(from, (from + 100).min(alerts))),
        )
        .await?;
        anyhow::ensure!(a.status.is_success(), "webhook answered {}", a.status);
    }
    let expected = alerts * 4;
    let store = quantwatch_alert_router::store::open(&url, false).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = store.list_notifications(Some("sent"), 1_000_000).await?;
        if rows.len() >= expected || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    router.stop().await?;
    anyhow::ensure!(
        rows.len() == expected,
        "{} of {expected} steps sent",
        rows.len()
    );
    println!(
        "| alerts | step rows | p50 ms | p90 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|"
    );
    let mut late: Vec<i64> = rows
        .iter()
        .map(|r| r.sent_at.unwrap_or(r.due_at) - r.due_at)
        .collect();
    late.sort_unstable();
    let pct = |q: f64| quantwatch_bench::percentile(&late, q).unwrap_or_default();
    println!(
        "| {alerts} | {} | {} | {} | {} | {} |",
        late.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
