//! Message templates (minijinja). Defaults exist per format (markdown, Slack mrkdwn, plain text,
//! HTML) and speak Chinese or English through a word table, so an override only has to change
//! the layout; a channel can replace its template entirely.
//!
//! Every value a template prints is escaped for the template's markup ([`Markup`], chosen by
//! the template's name): label and annotation values, the acker's typed name and fingerprints
//! are data, so only the template's own text makes links, mentions and tags. Escaping happens
//! here, once, through minijinja's auto-escaping, not in each channel.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use minijinja::Environment;
use serde_json::{Value, json};

use crate::model::AlertEvent;

/// Message language of the default templates (the `language` key, globally or per channel).
#[derive(Debug, Clone, Copy, serde::Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    Zh,
    En,
}

pub const MARKDOWN: &str = r#"{% if alerts|length == 1 %}{% set a = alerts[0] %}### {{ a.icon }} [{{ t[a.status] }}] {{ a.alertname }}
- **{{ t.severity }}**: {{ a.severity }}
- **{{ t.summary }}**: {{ a.summary }}
- **{{ t.description }}**: {{ a.description }}
- **{{ t.starts_at }}**: {{ a.starts_at }}
{% if a.status == "resolved" %}- **{{ t.ends_at }}**: {{ a.ends_at }}
{% endif %}- **{{ t.labels }}**: {% for k, v in a.labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}
{% if a.ack_url %}
[{{ t.ack }}]({{ a.ack_url }})
{% endif %}{% if a.silence_links %}{% for s in a.silence_links %}[{{ s.label }}]({{ s.url }}){% if not loop.last %} | {% endif %}{% endfor %}
{% endif %}{% else %}### {{ t.digest }}: {{ firing }} {{ t.firing }}, {{ resolved }} {{ t.resolved }}
{% for a in alerts %}- {{ a.icon }} [{{ t[a.status] }}] **{{ a.alertname }}** {{ a.severity }} {{ a.instance }} {{ a.summary }} ({{ a.starts_at }}{% if a.status == "resolved" %} → {{ a.ends_at }}{% endif %}){% if a.ack_url %} [{{ t.ack }}]({{ a.ack_url }}){% endif %}{% if a.silence_url %} [{{ t.silence }}]({{ a.silence_url }}){% endif %}
{% endfor %}{% endif %}"#;

pub const SLACK: &str = r#"{% if alerts|length == 1 %}{% set a = alerts[0] %}{{ a.icon }} *[{{ t[a.status] }}] {{ a.alertname }}*
*{{ t.severity }}*: {{ a.severity }}
*{{ t.summary }}*: {{ a.summary }}
*{{ t.description }}*: {{ a.description }}
*{{ t.starts_at }}*: {{ a.starts_at }}
{% if a.status == "resolved" %}*{{ t.ends_at }}*: {{ a.ends_at }}
{% endif %}*{{ t.labels }}*: {% for k, v in a.labels|items %}`{{ k }}={{ v }}`{% if not loop.last %} {% endif %}{% endfor %}
{% if a.ack_url %}<{{ a.ack_url }}|{{ t.ack }}>
{% endif %}{% if a.silence_links %}{% for s in a.silence_links %}<{{ s.url }}|{{ s.label }}>{% if not loop.last %} | {% endif %}{% endfor %}
{% endif %}{% else %}*{{ t.digest }}: {{ firing }} {{ t.firing }}, {{ resolved }} {{ t.resolved }}*
{% for a in alerts %}• {{ a.icon }} [{{ t[a.status] }}] *{{ a.alertname }}* {{ a.severity }} {{ a.instance }} {{ a.summary }} ({{ a.starts_at }}{% if a.status == "resolved" %} → {{ a.ends_at }}{% endif %}){% if a.ack_url %} <{{ a.ack_url }}|{{ t.ack }}>{% endif %}{% if a.silence_url %} <{{ a.silence_url }}|{{ t.silence }}>{% endif %}
{% endfor %}{% endif %}"#;

pub const TEXT: &str = r#"{% for a in alerts %}[{{ t[a.status] }}] {{ a.alertname }}
{{ t.severity }}: {{ a.severity }}
{{ t.summary }}: {{ a.summary }}
{{ t.description }}: {{ a.description }}
{{ t.starts_at }}: {{ a.starts_at }}
{% if a.status == "resolved" %}{{ t.ends_at }}: {{ a.ends_at }}
{% endif %}{{ t.labels }}: {% for k, v in a.labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}
{% if a.ack_url %}{{ t.ack }}: {{ a.ack_url }}
{% endif %}{% for s in a.silence_links %}{{ s.label }}: {{ s.url }}
{% endfor %}{% if not loop.last %}
{% endif %}{% endfor %}"#;

pub const HTML: &str = r#"<!DOCTYPE html><html><body>
{% for a in alerts %}<h3>{{ a.icon }} [{{ t[a.status] }}] {{ a.alertname }}</h3>
<table>
<tr><th align="left">{{ t.severity }}</th><td>{{ a.severity }}</td></tr>
<tr><th align="left">{{ t.summary }}</th><td>{{ a.summary }}</td></tr>
<tr><th align="left">{{ t.description }}</th><td>{{ a.description }}</td></tr>
<tr><th align="left">{{ t.starts_at }}</th><td>{{ a.starts_at }}</td></tr>
{% if a.status == "resolved" %}<tr><th align="left">{{ t.ends_at }}</th><td>{{ a.ends_at }}</td></tr>
{% endif %}<tr><th align="left">{{ t.labels }}</th><td>{% for k, v in a.labels|items %}<code>{{ k }}={{ v }}</code> {% endfor %}</td></tr>
</table>
{% if a.ack_url %}<p><a href="{{ a.ack_url }}">{{ t.ack }}</a></p>
{% endif %}{% if a.silence_links %}<p>{% for s in a.silence_links %}<a href="{{ s.url }}">{{ s.label }}</a> {% endfor %}</p>
{% endif %}{% endfor %}</body></html>"#;

/// What a rendered message is read as: decides how printed values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    /// DingTalk and WeCom markdown: `[text](url)` links, `<font>`/`<@userid>` tags, `@mobile`.
    Markdown,
    /// Slack mrkdwn: `<url|text>` links and `<!channel>`-style control sequences.
    Slack,
    /// Plain text lines (the log, an email's text part): one value must stay on one line.
    Text,
    /// HTML (an email's HTML part).
    Html,
}

impl Markup {
    /// The markup of a template by its name: `*.html` is HTML, `slack` Slack mrkdwn, `text`
    /// plain text, anything else (`markdown`) DingTalk/WeCom markdown.
    pub fn of_template(name: &str) -> Markup {
        if name.ends_with(".html") || name.ends_with(".htm") {
            Markup::Html
        } else {
            match name {
                "slack" => Markup::Slack,
                "text" => Markup::Text,
                _ => Markup::Markdown,
            }
        }
    }

    fn auto_escape(self) -> minijinja::AutoEscape {
        match self {
            Markup::Html => minijinja::AutoEscape::Html,
            Markup::Markdown => minijinja::AutoEscape::Custom("markdown"),
            Markup::Slack => minijinja::AutoEscape::Custom("slack"),
            Markup::Text => minijinja::AutoEscape::Custom("text"),
        }
    }

    /// `s` as inert data in this markup.
    pub fn escape(self, s: &str) -> String {
        let mut o = String::with_capacity(s.len());
        for c in s.chars() {
            match (self, c) {
                // Slack documents exactly these three: with them escaped no `<...>` sequence
                // (link, mention, `<!here>`) can start inside a value.
                (Markup::Slack, '&') => o.push_str("&amp;"),
                (Markup::Slack, '<') => o.push_str("&lt;"),
                (Markup::Slack, '>') => o.push_str("&gt;"),
                // Neither DingTalk nor WeCom documents an escape character (a backslash shows
                // literally), so the characters that open links, tags and mentions become their
                // full-width forms: the reader sees the same text, the renderer no syntax.
                (Markup::Markdown, '[') => o.push('［'),
                (Markup::Markdown, ']') => o.push('］'),
                (Markup::Markdown, '<') => o.push('＜'),
                (Markup::Markdown, '>') => o.push('＞'),
                (Markup::Markdown, '@') => o.push('＠'),
                // A line break inside a value could forge a line of its own.
                (Markup::Text, '\n') => o.push_str("\\n"),
                (Markup::Text, '\r') => o.push_str("\\r"),
                (Markup::Text, '\t') => o.push_str("\\t"),
                (Markup::Text, c) if c.is_control() => {
                    o.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
                }
                // In chat markup a line break would let a value start a line of its own (a
                // heading, a forged "Severity" line): a value stays on its line.
                (Markup::Markdown | Markup::Slack, c) if c.is_control() => o.push(' '),
                // Templates use minijinja's own HTML escaping; this serves titles and callers.
                (Markup::Html, '&') => o.push_str("&amp;"),
                (Markup::Html, '<') => o.push_str("&lt;"),
                (Markup::Html, '>') => o.push_str("&gt;"),
                (Markup::Html, '"') => o.push_str("&quot;"),
                (Markup::Html, '\'') => o.push_str("&#39;"),
                _ => o.push(c),
            }
        }
        o
    }
}

/// minijinja formatter for our custom auto-escape modes (HTML uses the engine's own).
fn format_value(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    let markup = match state.auto_escape() {
        minijinja::AutoEscape::Custom("markdown") => Markup::Markdown,
        minijinja::AutoEscape::Custom("slack") => Markup::Slack,
        minijinja::AutoEscape::Custom("text") => Markup::Text,
        _ => return minijinja::escape_formatter(out, state, value),
    };
    let s = value.to_string();
    let s = if value.is_safe() {
        s
    } else {
        markup.escape(&s)
    };
    out.write_str(&s).map_err(minijinja::Error::from)
}

/// Annotations that make an event an acknowledgement announcement (set by the store when an
/// alert is acked; the value of `ACKED_AT` is Unix milliseconds).
pub const ACKED_BY: &str = "quantwatch_acked_by";
pub const ACKED_AT: &str = "quantwatch_acked_at";
/// Prefix of every annotation the router uses internally; refused from outside at intake.
pub const INTERNAL_PREFIX: &str = "quantwatch_";

/// The summary line of an ack announcement, in the channel's language.
fn acked_summary(lang: Language, by: &str, at: &str, summary: &str) -> String {
    match lang {
        Language::Zh => format!("【已确认】{by} 于 {at} 确认了此告警，后续升级已停止。{summary}"),
        Language::En => {
            format!("ACK: acknowledged by {by} at {at}; escalation stopped. {summary}")
        }
    }
}

/// The summary line of an ack reminder, in the channel's language.
fn reminder_summary(lang: Language, by: &str, at: &str, summary: &str) -> String {
    match lang {
        Language::Zh => format!("【提醒】{by} 于 {at} 确认的告警仍未恢复。{summary}"),
        Language::En => {
            format!("REMINDER: acknowledged by {by} at {at} and still firing. {summary}")
        }
    }
}

fn words(lang: Language) -> Value {
    match lang {
        Language::Zh => json!({
            "firing": "告警", "resolved": "恢复", "severity": "级别", "summary": "摘要",
            "description": "详情", "starts_at": "开始时间", "ends_at": "恢复时间", "labels": "标签",
            "ack": "确认告警", "digest": "告警汇总", "alerts": "条告警", "silence": "静默",
        }),
        Language::En => json!({
            "firing": "FIRING", "resolved": "RESOLVED", "severity": "Severity", "summary": "Summary",
            "description": "Description", "starts_at": "Started", "ends_at": "Resolved", "labels": "Labels",
            "ack": "Acknowledge", "digest": "Alert digest", "alerts": "alerts", "silence": "Silence",
        }),
    }
}

/// Link-building inputs shared by every channel.
#[derive(Debug, Clone, Default)]
pub struct LinkSettings {
    pub public_url: Option<String>,
    pub ack_secret: Option<String>,
    /// How long an ack link works after the message was rendered (zero: the default, 7 days).
    pub ack_link_ttl: std::time::Duration,
    /// `alertmanager_urls` are configured: silence links go to the router's own page (else
    /// to Alertmanager's form, see `silence::links`).
    pub alertmanager_silences: bool,
}

/// Default validity of an ack link: long enough for a weekend, short enough that an old
/// message forwarded somewhere cannot ack next month's alert of the same fingerprint.
pub const DEFAULT_ACK_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl LinkSettings {
    fn ttl(&self) -> std::time::Duration {
        if self.ack_link_ttl.is_zero() {
            DEFAULT_ACK_LINK_TTL
        } else {
            self.ack_link_ttl
        }
    }

    /// Silence links of a firing alert (`[{label, url}]`, see `silence::links`), signed like
    /// ack links and valid as long.
    pub fn silence_links(&self, ev: &AlertEvent, lang: Language) -> Vec<Value> {
        crate::silence::links(
            ev,
            lang,
            self.public_url.as_deref(),
            self.ack_secret.as_deref(),
            i64::try_from(self.ttl().as_secs()).unwrap_or(i64::MAX / 2),
            self.alertmanager_silences,
        )
    }

    /// `{public_url}/ack/{token}` (see `ack`): signed, bound to the firing, expiring.
    pub fn ack_url(&self, fingerprint: &str, starts_at: i64) -> Option<String> {
        let (base, secret) = (self.public_url.as_ref()?, self.ack_secret.as_ref()?);
        let ttl = self.ttl();
        let expires = Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        Some(format!(
            "{}/ack/{}",
            base.trim_end_matches('/'),
            path_segment(&crate::ack::token(secret, fingerprint, starts_at, expires))
        ))
    }
}

/// Percent-encode everything but unreserved characters: a fingerprint is sender-chosen, and a
/// link must stay one path segment that no markup reads as syntax.
pub fn path_segment(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(char::from(b));
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

pub fn format_time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// The template context for a list of alerts.
pub fn context(alerts: &[AlertEvent], lang: Language, links: &LinkSettings) -> Value {
    let list: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
            let mut summary = get(&a.annotations, "summary");
            let notice = a.annotations.contains_key(crate::rota::NOTICE);
            // All three in a message about one alert; a digest line carries one link to the
            // router's page (the page offers the three), and none to Alertmanager's long form.
            let silence_links = links.silence_links(a, lang);
            if let Some(by) = a.annotations.get(crate::rota::REMINDER) {
                let at = a
                    .annotations
                    .get(ACKED_AT)
                    .and_then(|ms| ms.parse().ok())
                    .map(format_time)
                    .unwrap_or_default();
                summary = reminder_summary(lang, by, &at, &summary);
            } else if let Some(by) = a.annotations.get(ACKED_BY) {
                let at = a
                    .annotations
                    .get(ACKED_AT)
                    .and_then(|ms| ms.parse().ok())
                    .map(format_time)
                    .unwrap_or_default();
                summary = acked_summary(lang, by, &at, &summary);
            }
            json!({
                "status": a.status,
                "icon": if notice { "📣" } else if a.status == "firing" { "🔥" } else { "✅" },
                "alertname": a.alertname(),
                "severity": get(&a.labels, "severity"),
                "instance": get(&a.labels, "instance"),
                "summary": summary,
                "description": get(&a.annotations, "description"),
                "labels": a.labels,
                "annotations": a.annotations,
                "starts_at": format_time(a.starts_at),
                "ends_at": a.ends_at.map(format_time).unwrap_or_default(),
                "fingerprint": a.fingerprint,
                "generator_url": a.generator_url,
                "ack_url": if notice { None } else { links.ack_url(&a.fingerprint, a.starts_at) },
                "silence_url": silence_links.first().filter(|_| links.alertmanager_silences)
                    .and_then(|l| l["url"].as_str())
                    .map(|u| u.split('?').next().unwrap_or(u).to_string()),
                "silence_links": silence_links,
            })
        })
        .collect();
    let firing = alerts.iter().filter(|a| a.status == "firing").count();
    json!({
        "alerts": list,
        "firing": firing,
        "resolved": alerts.len() - firing,
        "t": words(lang),
    })
}

/// A short title: the alert for one, a count for a digest; escaped for `markup`.
pub fn title(alerts: &[AlertEvent], lang: Language, markup: Markup) -> String {
    let w = words(lang);
    match alerts {
        [a] => format!(
            "[{}] {}",
            w[a.status.as_str()].as_str().unwrap_or(""),
            markup.escape(a.alertname())
        ),
        _ => format!(
            "{}: {} {}",
            w["digest"].as_str().unwrap_or(""),
            alerts.len(),
            w["alerts"].as_str().unwrap_or("")
        ),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct TemplateError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

/// One compiled template.
pub struct Template {
    env: Environment<'static>,
    name: String,
}

impl Template {
    /// Compile `source`; its name decides the escaping of printed values ([`Markup::of_template`]).
    pub fn new(name: &str, source: &str) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| Markup::of_template(name).auto_escape());
        env.set_formatter(format_value);
        env.add_template_owned(name.to_string(), source.to_string())
            .map_err(|source| TemplateError {
                name: name.into(),
                source,
            })?;
        Ok(Template {
            env,
            name: name.into(),
        })
    }

    pub fn render(&self, ctx: &Value) -> Result<String, TemplateError> {
        let t = self
            .env
            .get_template(&self.name)
            .map_err(|source| TemplateError {
                name: self.name.clone(),
                source,
            })?;
        t.render(ctx).map_err(|source| TemplateError {
            name: self.name.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn alert(name: &str, status: &str) -> AlertEvent {
        AlertEvent {
            group_key: "g".into(),
            fingerprint: format!("fp-{name}"),
            status: status.into(),
            labels: [
                ("alertname", name),
                ("severity", "critical"),
                ("instance", "db1"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            annotations: [
                ("summary", "磁盘快满了"),
                ("description", "<b>90%</b> used"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            starts_at: 1_767_225_600_000,
            ends_at: (status == "resolved").then_some(1_767_229_200_000),
            generator_url: None,
            receiver: None,
        }
    }

    #[test]
    fn single_alert_markdown_in_chinese_and_english() {
        let links = LinkSettings {
            public_url: Some("https://r.example/".into()),
            ack_secret: Some("0123456789abcdef0123456789abcdef".into()),
            ack_link_ttl: std::time::Duration::ZERO,
            alertmanager_silences: false,
        };
        let t = Template::new("markdown", MARKDOWN).unwrap();
        let zh = t
            .render(&context(
                &[alert("DiskFull", "resolved")],
                Language::Zh,
                &links,
            ))
            .unwrap();
        assert!(zh.starts_with("### ✅ [恢复] DiskFull\n"), "{zh}");
        assert!(zh.contains("- **摘要**: 磁盘快满了\n"), "{zh}");
        assert!(
            zh.contains("- **开始时间**: 2026-01-01 00:00:00 UTC\n"),
            "{zh}"
        );
        assert!(
            zh.contains("- **恢复时间**: 2026-01-01 01:00:00 UTC\n"),
            "{zh}"
        );
        assert!(
            zh.contains("alertname=DiskFull, instance=db1, severity=critical"),
            "{zh}"
        );
        assert!(
            zh.contains("[确认告警](https://r.example/ack/ack.fp-DiskFull.1767225600000."),
            "{zh}"
        );
        let en = t
            .render(&context(
                &[alert("DiskFull", "firing")],
                Language::En,
                &LinkSettings::default(),
            ))
            .unwrap();
        assert!(en.starts_with("### 🔥 [FIRING] DiskFull\n"), "{en}");
        assert!(!en.contains("Resolved"), "{en}");
        assert!(!en.contains("/ack/"), "{en}");
    }

    #[test]
    fn an_ack_announcement_speaks_the_channels_language() {
        let mut a = alert("DiskFull", "firing");
        let ev = crate::store::ack_event(
            &serde_json::to_string(&a).unwrap(),
            "alice",
            1_767_229_200_000,
        )
        .unwrap();
        let t = Template::new("markdown", MARKDOWN).unwrap();
        let links = LinkSettings::default();
        let zh = t
            .render(&context(std::slice::from_ref(&ev), Language::Zh, &links))
            .unwrap();
        assert!(
            zh.contains(
                "- **摘要**: 【已确认】alice 于 2026-01-01 01:00:00 UTC 确认了此告警，后续升级已停止。磁盘快满了\n"
            ),
            "{zh}"
        );
        let en = t
            .render(&context(std::slice::from_ref(&ev), Language::En, &links))
            .unwrap();
        assert!(
            en.contains("- **Summary**: ACK: acknowledged by alice at 2026-01-01 01:00:00 UTC; escalation stopped. 磁盘快满了\n"),
            "{en}"
        );
        // Without the marks, the summary is the alert's own.
        a.annotations.remove(ACKED_BY);
        let plain = t
            .render(&context(std::slice::from_ref(&a), Language::Zh, &links))
            .unwrap();
        assert!(plain.contains("- **摘要**: 磁盘快满了\n"), "{plain}");
    }

    #[test]
    fn digest_lists_every_alert_on_one_line() {
        let t = Template::new("markdown", MARKDOWN).unwrap();
        let alerts = vec![
            alert("A", "firing"),
            alert("B", "firing"),
            alert("C", "resolved"),
        ];
        let s = t
            .render(&context(&alerts, Language::En, &LinkSettings::default()))
            .unwrap();
        assert!(
            s.starts_with("### Alert digest: 2 FIRING, 1 RESOLVED\n"),
            "{s}"
        );
        assert_eq!(s.lines().filter(|l| l.starts_with("- ")).count(), 3, "{s}");
        assert_eq!(
            title(&alerts, Language::En, Markup::Markdown),
            "Alert digest: 3 alerts"
        );
        assert_eq!(
            title(&alerts[..1], Language::Zh, Markup::Markdown),
            "[告警] A"
        );
    }

    #[test]
    fn each_markup_makes_values_inert_but_not_the_template() {
        let v = "a&b <!here> [x](http://p) <@all> @138 line\nnext\u{1b}";
        assert_eq!(
            Markup::Slack.escape(v),
            "a&amp;b &lt;!here&gt; [x](http://p) &lt;@all&gt; @138 line next "
        );
        assert_eq!(
            Markup::Markdown.escape(v),
            "a&b ＜!here＞ ［x］(http://p) ＜＠all＞ ＠138 line next "
        );
        assert_eq!(
            Markup::Html.escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(
            Markup::Text.escape(v),
            "a&b <!here> [x](http://p) <@all> @138 line\\nnext\\u{1b}"
        );
        let mut a = alert("A", "firing");
        a.annotations.insert("summary".into(), "<!channel>".into());
        let links = LinkSettings {
            public_url: Some("https://r.example".into()),
            ack_secret: Some("0123456789abcdef0123456789abcdef".into()),
            ack_link_ttl: std::time::Duration::ZERO,
            alertmanager_silences: false,
        };
        let s = Template::new("slack", SLACK)
            .unwrap()
            .render(&context(std::slice::from_ref(&a), Language::En, &links))
            .unwrap();
        assert!(s.contains("*Summary*: &lt;!channel&gt;\n"), "{s}");
        assert!(s.contains("<https://r.example/ack/ack.fp-A."), "{s}");
        // A custom template's own markup stays; its values are escaped all the same.
        let t = Template::new("markdown", "[{{ a }}](https://ok) <@u1> {{ a|safe }}").unwrap();
        assert_eq!(
            t.render(&json!({"a": "[x](y)"})).unwrap(),
            "[［x］(y)](https://ok) <@u1> [x](y)"
        );
        assert_eq!(
            title(
                &[alert("<!channel>", "firing")],
                Language::En,
                Markup::Slack
            ),
            "[FIRING] &lt;!channel&gt;"
        );
        // A sender-chosen fingerprint stays one inert path segment.
        assert_eq!(path_segment("a/b c|<x>"), "a%2Fb%20c%7C%3Cx%3E");
    }

    #[test]
    fn every_default_template_carries_silence_links_in_both_languages() {
        let links = LinkSettings {
            public_url: Some("https://r.example/".into()),
            ack_secret: Some("0123456789abcdef0123456789abcdef".into()),
            ack_link_ttl: std::time::Duration::ZERO,
            alertmanager_silences: true,
        };
        let one = [alert("DiskFull", "firing")];
        let render = |name: &str, src: &str, alerts: &[AlertEvent], lang, links: &LinkSettings| {
            Template::new(name, src)
                .unwrap()
                .render(&context(alerts, lang, links))
                .unwrap()
        };
        let base = "https://r.example/silence/silence.fp-DiskFull.1767225600000.";
        let zh = render("markdown", MARKDOWN, &one, Language::Zh, &links);
        assert!(zh.contains(&format!("[静默1小时]({base}")), "{zh}");
        assert!(zh.contains("?duration=4h) | [静默至恢复]("), "{zh}");
        let en = render("slack", SLACK, &one, Language::En, &links);
        assert!(en.contains("?duration=4h|Silence 4h> | <"), "{en}");
        let text = render("text", TEXT, &one, Language::En, &links);
        assert!(
            text.contains(&format!("Silence until resolved: {base}")),
            "{text}"
        );
        let html = render("email.html", HTML, &one, Language::Zh, &links);
        // minijinja's HTML escaping writes `/` as `&#x2f;` (an href decodes it).
        let escaped = base.replace('/', "&#x2f;");
        assert!(html.contains(&format!("<a href=\"{escaped}")), "{html}");
        assert!(html.contains("?duration=1h\">静默1小时</a>"), "{html}");
        // A digest line: one link to the page, which offers the three.
        let two = [alert("A", "firing"), alert("B", "resolved")];
        let d = render("markdown", MARKDOWN, &two, Language::En, &links);
        let line = d.lines().find(|l| l.contains("**A**")).unwrap();
        assert!(
            line.contains(" [Silence](https://r.example/silence/silence.fp-A."),
            "{line}"
        );
        assert!(!line.contains("?duration"), "{line}");
        let line = d.lines().find(|l| l.contains("**B**")).unwrap();
        assert!(
            !line.contains("silence"),
            "nothing to silence once resolved: {line}"
        );
        // Without alertmanager_urls: Alertmanager's own form, from the alert's externalURL.
        let mut a = alert("DiskFull", "firing");
        a.annotations.insert(
            crate::silence::EXTERNAL_URL.into(),
            "http://am.example:9093".into(),
        );
        let plain = LinkSettings::default();
        let s = render(
            "markdown",
            MARKDOWN,
            std::slice::from_ref(&a),
            Language::En,
            &plain,
        );
        assert!(
            s.contains("[Silence in Alertmanager](http://am.example:9093/#/silences/new?filter=%7Balertname%3D%22DiskFull%22%2C"),
            "{s}"
        );
        let s = render("markdown", MARKDOWN, &[a.clone(), a], Language::En, &plain);
        assert!(
            !s.contains("silences/new"),
            "no long form links in a digest: {s}"
        );
    }

    #[test]
    fn html_is_escaped() {
        let t = Template::new("email.html", HTML).unwrap();
        let s = t
            .render(&context(
                &[alert("A", "firing")],
                Language::En,
                &LinkSettings::default(),
            ))
            .unwrap();
        assert!(
            s.contains("&lt;b&gt;90%&lt;&#x2f;b&gt; used")
                || s.contains("&lt;b&gt;90%&lt;/b&gt; used"),
            "{s}"
        );
    }
}
