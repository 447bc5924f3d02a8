//! One loopback robot per escalation step, for the tests that count pages end to end (the
//! chaos tests): step `i` of the `chain` policy goes to channel `step{i}` alone, so what a
//! robot received says which step it was, and a digest carrying many alerts is counted alert
//! by alert. The tally says, per (step, alert), how many times it reached its robot.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use testkit::fakes::dingtalk::DingTalkFake;
use testkit::fakes::webhook::WebhookReceiver;
use testkit::fakes::{FakeServer, Mode};

/// HMAC key of the webhook robots (the router wants at least 16 bytes).
const WEBHOOK_SECRET: &str = "chaos-webhook-secret-0123456789";
const DING_SECRET: &str = "SECchaos";

enum Kind {
    /// The signed generic webhook: JSON with every alert's name, no vendor rate limit.
    Webhook(Vec<WebhookReceiver>),
    /// DingTalk robots (signed, 20 a minute): for a router whose clock is faked, which a
    /// webhook receiver refuses past its 5-minute replay window.
    DingTalk(Vec<DingTalkFake>),
}

pub struct StepRobots {
    kind: Kind,
    delays: Vec<String>,
}

/// One page: an alert that reached the robot of a step, and when.
#[derive(Debug, Clone)]
pub struct Page {
    pub step: usize,
    pub alert: String,
    pub at: Instant,
}

/// What the robots received against what they should have: every (step, alert) once.
#[derive(Debug, Default)]
pub struct Tally {
    pub expected: usize,
    pub lost: Vec<(usize, String)>,
    /// (step, alert, times received) for those received more than once.
    pub duplicates: Vec<(usize, String, usize)>,
    /// Pages of alerts nobody sent.
    pub unexpected: Vec<(usize, String)>,
}

impl Tally {
    pub fn exactly_once(&self) -> bool {
        self.lost.is_empty() && self.duplicates.is_empty() && self.unexpected.is_empty()
    }
}

impl StepRobots {
    /// Webhook robots for a chain with these step delays ("0s", "4s", ...).
    pub fn webhooks(delays: &[&str]) -> StepRobots {
        let hooks = delays
            .iter()
            .map(|_| WebhookReceiver::start(WEBHOOK_SECRET))
            .collect();
        StepRobots {
            kind: Kind::Webhook(hooks),
            delays: delays.iter().map(|d| d.to_string()).collect(),
        }
    }

    /// DingTalk robots for a chain with these step delays.
    pub fn dingtalk(delays: &[&str]) -> StepRobots {
        let robots = (0..delays.len())
            .map(|i| DingTalkFake::start(&format!("step{i}"), Some(DING_SECRET)))
            .collect();
        StepRobots {
            kind: Kind::DingTalk(robots),
            delays: delays.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn servers(&self) -> Vec<&FakeServer> {
        match &self.kind {
            Kind::Webhook(v) => v.iter().map(|h| &h.server).collect(),
            Kind::DingTalk(v) => v.iter().map(|d| &d.server).collect(),
        }
    }

    /// The router's `channels:`, `route:` and `escalation_policies:` for the chain.
    pub fn yaml(&self) -> String {
        let mut y = String::from("channels:\n");
        for i in 0..self.delays.len() {
            match &self.kind {
                Kind::Webhook(v) => y.push_str(&format!(
                    "  - type: webhook\n    name: step{i}\n    url: \"{}\"\n    secret: \"{WEBHOOK_SECRET}\"\n    timeout: 5s\n",
                    v[i].url()
                )),
                Kind::DingTalk(v) => y.push_str(&format!(
                    "  - type: dingtalk\n    name: step{i}\n    webhook_url: \"{}\"\n    secret: \"{DING_SECRET}\"\n    timeout: 5s\n",
                    v[i].webhook_url()
                )),
            }
        }
        y.push_str("route:\n  channels: [step0]\n  escalation: chain\nescalation_policies:\n  chain:\n    steps:\n");
        for (i, d) in self.delays.iter().enumerate() {
            y.push_str(&format!(
                "      - delay: {d}\n        channels: [step{i}]\n"
            ));
        }
        y
    }

    pub fn steps(&self) -> usize {
        self.delays.len()
    }

    /// Switch every robot to `mode` (see [`Mode`]).
    pub fn set_mode(&self, mode: Mode) {
        for s in self.servers() {
            s.set_mode(mode);
        }
    }

    /// Every page received so far, robot by robot in arrival order.
    pub fn pages(&self) -> Vec<Page> {
        let mut out = Vec::new();
        for (step, server) in self.servers().into_iter().enumerate() {
            for r in server.received().into_iter().filter(|r| r.errcode == 0) {
                for alert in alert_names(&r.body) {
                    out.push(Page {
                        step,
                        alert,
                        at: r.at,
                    });
                }
            }
        }
        out
    }

    /// Requests the robots refused (a bad signature, a rate limit): none is expected.
    pub fn refused(&self) -> usize {
        self.servers()
            .iter()
            .map(|s| s.received().iter().filter(|r| r.errcode != 0).count())
            .sum()
    }

    /// When each (step, alert) first reached its robot.
    pub fn first_pages(&self) -> BTreeMap<(usize, String), Instant> {
        let mut first = BTreeMap::new();
        for p in self.pages() {
            first.entry((p.step, p.alert)).or_insert(p.at);
        }
        first
    }

    /// Every step of every alert in `alerts` against what arrived.
    pub fn tally(&self, alerts: &[String]) -> Tally {
        let mut seen: BTreeMap<(usize, String), usize> = BTreeMap::new();
        for p in self.pages() {
            *seen.entry((p.step, p.alert)).or_default() += 1;
        }
        let mut t = Tally {
            expected: alerts.len() * self.steps(),
            ..Tally::default()
        };
        for step in 0..self.steps() {
            for a in alerts {
                match seen.remove(&(step, a.clone())).unwrap_or(0) {
                    0 => t.lost.push((step, a.clone())),
                    1 => {}
                    n => t.duplicates.push((step, a.clone(), n)),
                }
            }
        }
        t.unexpected = seen.into_keys().collect();
        t
    }

    /// Waits until every step of every alert in `alerts` has reached its robot at least once;
    /// past `timeout`, fails naming what is missing.
    pub fn wait_all(&self, alerts: &[String], steps: std::ops::Range<usize>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let first = self.first_pages();
            let missing: Vec<(usize, &String)> = steps
                .clone()
                .flat_map(|s| alerts.iter().map(move |a| (s, a)))
                .filter(|(s, a)| !first.contains_key(&(*s, (*a).clone())))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} pages (step, alert) never reached their robot within {timeout:?}: {:?}",
                missing.len(),
                steps.len() * alerts.len(),
                &missing[..missing.len().min(20)]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The alert names in one request a robot accepted: the webhook's JSON list, or DingTalk's
/// markdown (`[FIRING] Name` per alert of a digest).
fn alert_names(body: &serde_json::Value) -> Vec<String> {
    if let Some(list) = body["alerts"].as_array() {
        return list
            .iter()
            .filter_map(|a| a["alertname"].as_str().map(str::to_string))
            .collect();
    }
    let text = body["markdown"]["text"].as_str().unwrap_or("");
    let re = regex::Regex::new(r"\[FIRING\] (?:\*\*)?([A-Za-z0-9_]+)").expect("valid regex");
    re.captures_iter(text).map(|c| c[1].to_string()).collect()
}
