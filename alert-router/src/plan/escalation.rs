//! Escalation policies: ordered steps, each due a fixed delay after the first notification,
//! optionally repeated. A chain is planned in full when its firing alert is stored, as
//! future-dated outbox rows in the same transaction: nothing about a pending step lives only in
//! memory, so a restarted router (or another replica) fires it on time, and ack or resolve
//! stops it by deleting the rows that have not gone out yet.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::store::escalation::{Plan, PlannedStep};

/// Most repetitions of a whole chain: a chain that never stops would page forever.
pub const MAX_REPEAT: u32 = 5;

/// One step of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// From the first notification of the chain (step 0 is usually `0s`).
    pub delay: Duration,
    pub channels: Vec<String>,
    /// Per channel: who to mention (DingTalk mobiles, WeCom user ids, Slack user ids, email
    /// addresses), in the form that channel understands.
    pub mentions: BTreeMap<String, Vec<String>>,
    /// Rotations whose on-call person (at the step's due time) is mentioned on every channel
    /// of the step where that person has a contact.
    pub rotations: Vec<String>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub steps: Vec<Step>,
    /// Extra runs of the whole chain after the first one (0..=5).
    pub repeat: u32,
    /// Run k of the chain starts `k * repeat_interval` after the first notification; longer
    /// than the last step's delay (validated), so runs never interleave.
    pub repeat_interval: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Policy {
    /// Every row of the chain, repeats included, ordered by due time (then step, then the
    /// channel order of the step): the outbox keeps per-alert order by row id, so rows must be
    /// inserted in the order they fall due. Rotations resolve at each row's due time.
    pub fn plan(&self, now_ms: i64, dir: &crate::plan::oncall::Directory) -> Plan {
        let mut steps = Vec::new();
        let n = self.steps.len() as i64;
        for run in 0..=i64::from(self.repeat) {
            let base = run.saturating_mul(ms(self.repeat_interval));
            for (i, s) in self.steps.iter().enumerate() {
                let offset_ms = base.saturating_add(ms(s.delay));
                let due = chrono::DateTime::from_timestamp_millis(now_ms.saturating_add(offset_ms))
                    .unwrap_or_default();
                for ch in &s.channels {
                    let mut mentions = s.mentions.get(ch).cloned().unwrap_or_default();
                    for r in &s.rotations {
                        // A calling channel tries the rotation's people in turn.
                        let contacts = if dir.call_in_turn.contains(ch) {
                            dir.contacts_in_turn(r, ch, due)
                        } else {
                            dir.contact(r, ch, due).into_iter().collect()
                        };
                        for c in contacts {
                            if !mentions.contains(&c) {
                                mentions.push(c);
                            }
                        }
                    }
                    steps.push(PlannedStep {
                        offset_ms,
                        step: run * n + i as i64,
                        channel: ch.clone(),
                        mentions,
                    });
                }
            }
        }
        steps.sort_by_key(|s| (s.offset_ms, s.step));
        Plan {
            policy: self.name.clone(),
            steps,
        }
    }
}

/// Policies as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    pub steps: Vec<FileStep>,
    #[serde(default)]
    pub repeat: u32,
    pub repeat_interval: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStep {
    pub delay: String,
    pub channels: Vec<String>,
    #[serde(default)]
    pub mentions: BTreeMap<String, Vec<String>>,
    /// Mention the current on-call person of these rotations.
    #[serde(default)]
    pub rotations: Vec<String>,
}

/// Validate one policy; every problem is reported as (key, reason).
pub fn validate(
    name: &str,
    p: &FilePolicy,
    channel_names: &std::collections::BTreeSet<String>,
    rotation_names: &std::collections::BTreeSet<String>,
) -> Result<Policy, Vec<(String, String)>> {
    let key = format!("escalation_policies.{name}");
    let mut errs = Vec::new();
    if p.steps.is_empty() {
        errs.push((
            format!("{key}.steps"),
            "a policy needs at least one step".into(),
        ));
    }
    if p.repeat > MAX_REPEAT {
        errs.push((
            format!("{key}.repeat"),
            format!("{} is more than {MAX_REPEAT}", p.repeat),
        ));
    }
    let mut steps = Vec::new();
    let mut prev = Duration::ZERO;
    for (i, s) in p.steps.iter().enumerate() {
        let sk = format!("{key}.steps[{i}]");
        let delay = match humantime::parse_duration(&s.delay) {
            Ok(d) => d,
            Err(e) => {
                errs.push((
                    format!("{sk}.delay"),
                    format!("{:?} is not a duration like \"0s\" or \"5m\": {e}", s.delay),
                ));
                // Reported once: an unreadable delay is not also "out of order".
                prev
            }
        };
        if delay < prev {
            errs.push((
                format!("{sk}.delay"),
                format!(
                    "{} is earlier than the previous step's {}: steps are ordered by delay",
                    s.delay,
                    humantime::format_duration(prev)
                ),
            ));
        }
        prev = prev.max(delay);
        if s.channels.is_empty() {
            errs.push((
                format!("{sk}.channels"),
                "a step needs at least one channel".into(),
            ));
        }
        for (j, c) in s.channels.iter().enumerate() {
            if !channel_names.contains(c) {
                errs.push((
                    format!("{sk}.channels[{j}]"),
                    format!("no channel is named {c:?}"),
                ));
            }
        }
        for c in s.mentions.keys() {
            if !s.channels.contains(c) {
                errs.push((
                    format!("{sk}.mentions.{c}"),
                    format!("{c:?} is not one of this step's channels"),
                ));
            }
        }
        for (j, r) in s.rotations.iter().enumerate() {
            if !rotation_names.contains(r) {
                errs.push((
                    format!("{sk}.rotations[{j}]"),
                    format!("no rotation is named {r:?} (see rotations)"),
                ));
            }
        }
        steps.push(Step {
            delay,
            channels: s.channels.clone(),
            mentions: s.mentions.clone(),
            rotations: s.rotations.clone(),
        });
    }
    let repeat_interval = match (&p.repeat_interval, p.repeat) {
        (None, 0) => Duration::ZERO,
        (None, _) => {
            errs.push((
                format!("{key}.repeat_interval"),
                "required when repeat is above 0 (when the next run of the chain starts)".into(),
            ));
            Duration::ZERO
        }
        (Some(s), _) => match humantime::parse_duration(s) {
            Ok(d) if d > prev => d,
            Ok(_) => {
                errs.push((
                    format!("{key}.repeat_interval"),
                    format!(
                        "{s} must be longer than the last step's delay ({})",
                        humantime::format_duration(prev)
                    ),
                ));
                Duration::ZERO
            }
            Err(e) => {
                errs.push((
                    format!("{key}.repeat_interval"),
                    format!("{s:?} is not a duration like \"30m\": {e}"),
                ));
                Duration::ZERO
            }
        },
    };
    if errs.is_empty() {
        Ok(Policy {
            name: name.into(),
            steps,
            repeat: p.repeat,
            repeat_interval,
        })
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> std::collections::BTreeSet<String> {
        ["ding", "mail"].iter().map(|s| s.to_string()).collect()
    }

    fn step(delay: &str, ch: &[&str]) -> FileStep {
        FileStep {
            delay: delay.into(),
            channels: ch.iter().map(|s| s.to_string()).collect(),
            mentions: BTreeMap::new(),
            rotations: vec![],
        }
    }

    #[test]
    fn plan_orders_rows_by_due_time_across_repeats() {
        let mut s1 = step("5m", &["ding", "mail"]);
        s1.mentions
            .insert("ding".into(), vec!["13800000000".into()]);
        let p = validate(
            "crit",
            &FilePolicy {
                steps: vec![step("0s", &["ding"]), s1],
                repeat: 1,
                repeat_interval: Some("30m".into()),
            },
            &names(),
            &Default::default(),
        )
        .unwrap();
        let plan = p.plan(0, &Default::default());
        let got: Vec<(i64, i64, &str, usize)> = plan
            .steps
            .iter()
            .map(|s| (s.offset_ms, s.step, s.channel.as_str(), s.mentions.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, "ding", 0),
                (300_000, 1, "ding", 1),
                (300_000, 1, "mail", 0),
                (1_800_000, 2, "ding", 0),
                (2_100_000, 3, "ding", 1),
                (2_100_000, 3, "mail", 0),
            ]
        );
        assert_eq!(plan.policy, "crit");
    }

    #[test]
    fn validation_names_every_problem() {
        let mut bad = step("1m", &["pager"]);
        bad.mentions.insert("mail".into(), vec!["a@b".into()]);
        let errs = validate(
            "p",
            &FilePolicy {
                steps: vec![step("5m", &["ding"]), bad, step("soon", &[])],
                repeat: 6,
                repeat_interval: None,
            },
            &names(),
            &Default::default(),
        )
        .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "escalation_policies.p.repeat",
                "escalation_policies.p.steps[1].delay",
                "escalation_policies.p.steps[1].channels[0]",
                "escalation_policies.p.steps[1].mentions.mail",
                "escalation_policies.p.steps[2].delay",
                "escalation_policies.p.steps[2].channels",
                "escalation_policies.p.repeat_interval",
            ]
        );
        let interval = validate(
            "q",
            &FilePolicy {
                steps: vec![step("0s", &["ding"]), step("10m", &["ding"])],
                repeat: 2,
                repeat_interval: Some("10m".into()),
            },
            &names(),
            &Default::default(),
        )
        .unwrap_err();
        assert_eq!(
            interval,
            vec![(
                "escalation_policies.q.repeat_interval".to_string(),
                "10m must be longer than the last step's delay (10m)".to_string()
            )]
        );
    }
}
