//! Runbooks served by the router: every alert of our rules has a section that opens without a
//! login, unknown names are 404, and the runbook link in a delivered message opens.

mod common;

use std::time::Duration;

use testkit::fakes::dingtalk::DingTalkFake;

/// Every `- alert: Name` and its `runbook_url` in `rules/*.yml`.
fn our_alerts() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("rules/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("rule file");
        let mut name = None;
        for line in text.lines() {
            let l = line.trim();
            if let Some(n) = l.strip_prefix("- alert: ") {
                name = Some(n.trim().to_string());
            } else if let Some(u) = l.strip_prefix("runbook_url: ") {
                let n = name.take().expect("runbook_url after its alert");
                out.push((n, u.trim_matches('"').to_string()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_of_ours_has_a_runbook_that_opens() {
    // The API token is set: anonymous access to /runbooks/ is the allowlist's, not an open router.
    let r = common::start("language: en\n", &[("ROUTER_API_TOKEN", "api-token")]).await;
    let alerts = our_alerts();
    assert!(alerts.len() > 30, "{alerts:?}");
    let http = reqwest::Client::new();
    for (name, url) in &alerts {
        assert_eq!(url, &format!("/runbooks/{name}"));
        let resp = http.get(format!("{}{url}", r.url)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let body = resp.text().await.unwrap();
        assert!(
            body.contains(&format!("<h1>Runbook: {name}</h1>")),
            "{name}"
        );
        assert!(body.contains("<strong>Meaning.</strong>"), "{name}: {body}");
    }
    // Unknown: 404, JSON for an API client, HTML for a browser; the name is data.
    let resp = http
        .get(format!("{}/runbooks/NoSuchAlert", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "not_found");
    assert_eq!(v["reason"], "no runbook section for \"NoSuchAlert\"");
    let resp = http
        .get(format!("{}/runbooks/%3Cscript%3E", r.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("&lt;script&gt;") && !body.contains("<script>"),
        "{body}"
    );
    // The status page next to it still needs the token.
    assert_eq!(
        http.get(format!("{}/", r.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runbook_link_in_a_message_opens() {
    let ding = DingTalkFake::start("tok", None);
    let yaml = format!(
        "language: en\ngrafana_url: https://grafana.example\nchannels:\n  - {{type: dingtalk, name: ding, webhook_url: \"{}\"}}\nroute:\n  channels: [ding]\n",
        ding.webhook_url()
    );
    let r = common::start(&yaml, &[("ROUTER_PUBLIC_URL", common::ROUTER_URL)]).await;
    let mut a = common::alert("HostHighCpuUsage", "firing", "2026-01-01T00:00:00Z", &[]);
    a["annotations"]["runbook_url"] = "/runbooks/HostHighCpuUsage".into();
    a["annotations"]["dashboard_uid"] = "quantwatch-host".into();
    a["annotations"]["dashboard_panel"] = "2".into();
    assert_eq!(r.post(&common::payload("g", vec![a])).await.0, 200);
    let d = tokio::task::block_in_place(|| ding.server.wait_accepted(1, Duration::from_secs(20)));
    assert_eq!(d.len(), 1);
    let text = d[0]["markdown"]["text"].as_str().unwrap();
    let runbook = format!("{}/runbooks/HostHighCpuUsage", r.url);
    assert!(
        text.contains(&format!(
            "[Runbook]({runbook}) · [Dashboard](https://grafana.example/d/quantwatch-host?viewPanel=2) · [Source graph](http://prometheus/graph)"
        )),
        "{text}"
    );
    let resp = reqwest::get(&runbook).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("80 %"));
    r.shutdown().await;
}
