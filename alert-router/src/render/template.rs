//! Message templates (minijinja). Defaults exist per format (markdown, Slack mrkdwn, plain text,
//! HTML) and speak Chinese or English through a word table, so an override only has to change
//! the layout; a channel can replace its template entirely.
//!
//! Every value a template prints is escaped for the template's markup ([`Markup`], chosen by
//! the template's name): label and annotation values, the acker's typed name and fingerprints
//! are data, so only the template's own text makes links, mentions and tags. Escaping happens
//! here, once, through minijinja's auto-escaping, not in each channel.

use std::collections::BTreeMap;

use minijinja::Environment;
use serde_json::{Value, json};

use crate::core::annotations;
use crate::core::language::Language;
use crate::core::model::AlertEvent;
use crate::core::text::{path_segment, safe_url};

pub const MARKDOWN: &str = r#"{% if alerts|length == 1 %}{% set a = alerts[0] %}### {{ a.icon }} [{{ t[a.status] }}] {{ a.alertname }}
- **{{ t.severity }}**: {{ a.severity }}
- **{{ t.summary }}**: {{ a.summary }}
- **{{ t.description }}**: {{ a.description }}
- **{{ t.starts_at }}**: {{ a.starts_at }}
{% if a.status == "resolved" %}- **{{ t.ends_at }}**: {{ a.ends_at }}
{% endif %}- **{{ t.labels }}**: {% for k, v in a.labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}
{% for r in a.context %}- **{{ r.title }}**: {{ r.value }}
{% endfor %}{% if a.chart_url %}
![{{ t.chart }}]({{ a.chart_url }})
{% endif %}{% if a.chart_note %}
> {{ a.chart_note }}
{% endif %}{% if a.links %}
{% for l in a.links %}[{{ l.label }}]({{ l.url }}){% if not loop.last %} · {% endif %}{% endfor %}
{% endif %}{% else %}### {{ t.digest }}: {{ firing }} {{ t.firing }}, {{ resolved }} {{ t.resolved }}
{% for a in alerts %}- {{ a.icon }} [{{ t[a.status] }}] **{{ a.alertname }}** {{ a.severity }} {{ a.instance }} {{ a.summary }} ({{ a.starts_at }}{% if a.status == "resolved" %} → {{ a.ends_at }}{% endif %}){% for l in a.digest_links %} [{{ l.label }}]({{ l.url }}){% endfor %}
{% endfor %}{% endif %}"#;

pub const SLACK: &str = r#"{% if alerts|length == 1 %}{% set a = alerts[0] %}{{ a.icon }} *[{{ t[a.status] }}] {{ a.alertname }}*
*{{ t.severity }}*: {{ a.severity }}
*{{ t.summary }}*: {{ a.summary }}
*{{ t.description }}*: {{ a.description }}
*{{ t.starts_at }}*: {{ a.starts_at }}
{% if a.status == "resolved" %}*{{ t.ends_at }}*: {{ a.ends_at }}
{% endif %}*{{ t.labels }}*: {% for k, v in a.labels|items %}`{{ k }}={{ v }}`{% if not loop.last %} {% endif %}{% endfor %}
{% for r in a.context %}*{{ r.title }}*: {{ r.value }}
{% endfor %}{% if a.chart_url %}<{{ a.chart_url }}|{{ t.chart }}>
{% endif %}{% if a.chart_note %}_{{ a.chart_note }}_
{% endif %}{% if a.links %}{% for l in a.links %}<{{ l.url }}|{{ l.label }}>{% if not loop.last %} · {% endif %}{% endfor %}
{% endif %}{% else %}*{{ t.digest }}: {{ firing }} {{ t.firing }}, {{ resolved }} {{ t.resolved }}*
{% for a in alerts %}• {{ a.icon }} [{{ t[a.status] }}] *{{ a.alertname }}* {{ a.severity }} {{ a.instance }} {{ a.summary }} ({{ a.starts_at }}{% if a.status == "resolved" %} → {{ a.ends_at }}{% endif %}){% for l in a.digest_links %} <{{ l.url }}|{{ l.label }}>{% endfor %}
{% endfor %}{% endif %}"#;

pub const TEXT: &str = r#"{% for a in alerts %}[{{ t[a.status] }}] {{ a.alertname }}
{{ t.severity }}: {{ a.severity }}
{{ t.summary }}: {{ a.summary }}
{{ t.description }}: {{ a.description }}
{{ t.starts_at }}: {{ a.starts_at }}
{% if a.status == "resolved" %}{{ t.ends_at }}: {{ a.ends_at }}
{% endif %}{{ t.labels }}: {% for k, v in a.labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}
{% for r in a.context %}{{ r.title }}: {{ r.value }}
{% endfor %}{% if a.chart_note %}{{ a.chart_note }}
{% endif %}{% for l in a.links %}{{ l.label }}: {{ l.url }}
{% endfor %}{% if not loop.last %}
{% endif %}{% endfor %}"#;

/// Feishu's default card markdown: the header carries the title, the buttons the links of a single
/// alert; a digest lists its alerts with their ack links inline.
pub const FEISHU: &str = r#"{% if alerts|length == 1 %}{% set a = alerts[0] %}**{{ t.severity }}**: {{ a.severity }}
**{{ t.summary }}**: {{ a.summary }}
**{{ t.description }}**: {{ a.description }}
**{{ t.starts_at }}**: {{ a.starts_at }}
{% if a.status == "resolved" %}**{{ t.ends_at }}**: {{ a.ends_at }}
{% endif %}**{{ t.labels }}**: {% for k, v in a.labels|items %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}
{% else %}**{{ firing }} {{ t.firing }}, {{ resolved }} {{ t.resolved }}**
{% for a in alerts %}- {{ a.icon }} [{{ t[a.status] }}] **{{ a.alertname }}** {{ a.severity }} {{ a.instance }} {{ a.summary }} ({{ a.starts_at }}{% if a.status == "resolved" %} → {{ a.ends_at }}{% endif %}){% for l in a.digest_links %} [{{ l.label }}]({{ l.url }}){% endfor %}
{% endfor %}{% endif %}"#;

pub const HTML: &str = r#"<!DOCTYPE html><html><body>
{% for a in alerts %}<h3>{{ a.icon }} [{{ t[a.status] }}] {{ a.alertname }}</h3>
<table>
<tr><th align="left">{{ t.severity }}</th><td>{{ a.severity }}</td></tr>
<tr><th align="left">{{ t.summary }}</th><td>{{ a.summary }}</td></tr>
<tr><th align="left">{{ t.description }}</th><td>{{ a.description }}</td></tr>
<tr><th align="left">{{ t.starts_at }}</th><td>{{ a.starts_at }}</td></tr>
{% if a.status == "resolved" %}<tr><th align="left">{{ t.ends_at }}</th><td>{{ a.ends_at }}</td></tr>
{% endif %}<tr><th align="left">{{ t.labels }}</th><td>{% for k, v in a.labels|items %}<code>{{ k }}={{ v }}</code> {% endfor %}</td></tr>
{% for r in a.context %}<tr><th align="left">{{ r.title }}</th><td>{{ r.value }}</td></tr>
{% endfor %}</table>
{% if a.chart_cid %}<p><img src="cid:{{ a.chart_cid }}" alt="{{ t.chart }}"></p>
{% endif %}{% if a.chart_note %}<p><em>{{ a.chart_note }}</em></p>
{% endif %}{% if a.links %}<p>{% for l in a.links %}<a href="{{ l.url }}">{{ l.label }}</a>{% if not loop.last %} · {% endif %}{% endfor %}</p>
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
            "runbook": "处理手册", "dashboard": "监控面板", "source": "告警表达式", "chart": "近一小时走势",
        }),
        Language::En => json!({
            "firing": "FIRING", "resolved": "RESOLVED", "severity": "Severity", "summary": "Summary",
            "description": "Description", "starts_at": "Started", "ends_at": "Resolved", "labels": "Labels",
            "ack": "Acknowledge", "digest": "Alert digest", "alerts": "alerts", "silence": "Silence",
            "runbook": "Runbook", "dashboard": "Dashboard", "source": "Source graph", "chart": "Last hour",
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
        crate::plan::silence::links(
            ev,
            lang,
            self.public_url.as_deref(),
            self.ack_secret.as_deref(),
            crate::core::clock::now()
                .timestamp()
                .saturating_add(i64::try_from(self.ttl().as_secs()).unwrap_or(i64::MAX / 2)),
            self.alertmanager_silences,
        )
    }

    /// `{public_url}/ack/{token}` (see `ack`): signed, bound to the firing, expiring.
    pub fn ack_url(&self, fingerprint: &str, starts_at: i64) -> Option<String> {
        let (base, secret) = (self.public_url.as_ref()?, self.ack_secret.as_ref()?);
        let ttl = self.ttl();
        let expires = crate::core::clock::now().timestamp()
            + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        Some(format!(
            "{}/ack/{}",
            base.trim_end_matches('/'),
            path_segment(&crate::core::signing::token(
                secret,
                fingerprint,
                starts_at,
                expires
            ))
        ))
    }
}

/// A time on a page or in API text: the router-wide `timezone` (see
/// [`crate::core::timefmt::router_zone`]). Messages use their channel's zone instead.
pub fn format_time(ms: i64) -> String {
    crate::core::timefmt::human_ms(ms, crate::core::timefmt::router_zone())
}

/// What a channel's messages say beyond the alerts' own data: the zone its times are written
/// in (the channel's `timezone`, else the router's) and where relative runbook links and
/// dashboard uids point.
#[derive(Debug, Clone)]
pub struct MessageSettings {
    pub tz: chrono_tz::Tz,
    /// Base of a relative `runbook_url` annotation (`/runbooks/HostDown`): `runbook_base_url`,
    /// else `ROUTER_PUBLIC_URL` (the router serves our runbooks itself).
    pub runbook_base_url: Option<String>,
    /// `grafana_url`: with a `dashboard_uid` annotation (and optionally `dashboard_panel`) it
    /// makes the dashboard link when the rule has no absolute `dashboard_url`.
    pub grafana_url: Option<String>,
}

impl Default for MessageSettings {
    fn default() -> Self {
        MessageSettings {
            tz: chrono_tz::Tz::UTC,
            runbook_base_url: None,
            grafana_url: None,
        }
    }
}

/// The links a message carries for one alert, each an http(s) URL safe in every markup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertLinks {
    pub runbook: Option<String>,
    pub dashboard: Option<String>,
    /// The Prometheus graph of the alert's expression (`generatorURL`).
    pub source: Option<String>,
}

/// The runbook, dashboard and source links of `a` (see [`MessageSettings`]): an absolute
/// `runbook_url`/`dashboard_url` annotation is kept as the operator wrote it.
pub fn alert_links(a: &AlertEvent, settings: &MessageSettings) -> AlertLinks {
    let ann = |k: &str| {
        a.annotations
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let runbook = ann("runbook_url").and_then(|r| {
        if r.starts_with('/') && !r.starts_with("//") {
            let base = settings.runbook_base_url.as_deref()?;
            safe_url(&format!("{}{r}", base.trim_end_matches('/')))
        } else {
            safe_url(r)
        }
    });
    let dashboard = ann("dashboard_url").and_then(safe_url).or_else(|| {
        let base = settings.grafana_url.as_deref()?;
        let uid = ann("dashboard_uid")?;
        let mut u = format!("{}/d/{}", base.trim_end_matches('/'), path_segment(uid));
        if let Some(panel) =
            ann("dashboard_panel").filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        {
            u.push_str(&format!("?viewPanel={panel}"));
        }
        safe_url(&u)
    });
    AlertLinks {
        runbook,
        dashboard,
        source: a.generator_url.as_deref().and_then(safe_url),
    }
}

/// The template context for a list of alerts, times in UTC (see [`context_for`]).
pub fn context(alerts: &[AlertEvent], lang: Language, links: &LinkSettings) -> Value {
    context_for(alerts, lang, links, &MessageSettings::default())
}

/// The template context for a list of alerts as a channel with `settings` writes it.
pub fn context_for(
    alerts: &[AlertEvent],
    lang: Language,
    links: &LinkSettings,
    settings: &MessageSettings,
) -> Value {
    let format_time = |ms: i64| crate::core::timefmt::human_ms(ms, settings.tz);
    let w = words(lang);
    let list: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
            let l = alert_links(a, settings);
            let notice = a.annotations.contains_key(crate::core::annotations::NOTICE);
            // A rota notice is about no firing: nothing to acknowledge.
            let ack_url = if notice {
                None
            } else {
                links.ack_url(&a.fingerprint, a.starts_at)
            };
            // All three silence links in a message about one alert; a digest line carries one
            // link to the router's page (the page offers the three), and none to
            // Alertmanager's long form.
            let silence_links = links.silence_links(a, lang);
            let silence_url = silence_links
                .first()
                .filter(|_| links.alertmanager_silences)
                .and_then(|l| l["url"].as_str())
                .map(|u| u.split('?').next().unwrap_or(u).to_string());
            // The links line of every default template, in this order: runbook, dashboard,
            // source graph, silence, ack.
            let mut link_list = Vec::new();
            let mut digest_links = Vec::new();
            for (key, url) in [
                ("runbook", &l.runbook),
                ("dashboard", &l.dashboard),
                ("source", &l.source),
            ] {
                if let Some(url) = url {
                    link_list.push(json!({"label": w[key], "url": url}));
                    digest_links.push(json!({"label": w[key], "url": url}));
                }
            }
            link_list.extend(silence_links.iter().cloned());
            if let Some(url) = &silence_url {
                digest_links.push(json!({"label": w["silence"], "url": url}));
            }
            if let Some(url) = &ack_url {
                link_list.push(json!({"label": w["ack"], "url": url}));
                digest_links.push(json!({"label": w["ack"], "url": url}));
            }
            let mut summary = get(&a.annotations, "summary");
            if let Some(by) = a.annotations.get(crate::core::annotations::REMINDER) {
                let at = a
                    .annotations
                    .get(annotations::ACKED_AT)
                    .and_then(|ms| ms.parse().ok())
                    .map(format_time)
                    .unwrap_or_default();
                summary = reminder_summary(lang, by, &at, &summary);
            } else if let Some(by) = a.annotations.get(annotations::ACKED_BY) {
                let at = a
                    .annotations
                    .get(annotations::ACKED_AT)
                    .and_then(|ms| ms.parse().ok())
                    .map(format_time)
                    .unwrap_or_default();
                summary = acked_summary(lang, by, &at, &summary);
            }
            json!({
                "status": a.status,
                "icon": if notice { "📣" } else if a.status == crate::core::model::Status::Firing { "🔥" } else { "✅" },
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
                "ack_url": ack_url,
                "links": link_list,
                "digest_links": digest_links,
                "silence_url": silence_url,
                "silence_links": silence_links,
                "chart_url": a.annotations.get(crate::core::annotations::CHART_URL),
                "chart_cid": a.annotations.get(crate::core::annotations::CHART_CID),
                "chart_note": a.annotations.get(crate::core::annotations::CHART_NOTE),
                "context": a
                    .annotations
                    .get(crate::core::annotations::CONTEXT)
                    .and_then(|c| serde_json::from_str::<Vec<(String, String)>>(c).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(title, value)| json!({"title": title, "value": value}))
                    .collect::<Vec<_>>(),
                "runbook_url": l.runbook,
                "dashboard_url": l.dashboard,
                "source_url": l.source,
            })
        })
        .collect();
    let firing = alerts
        .iter()
        .filter(|a| a.status == crate::core::model::Status::Firing)
        .count();
    json!({
        "alerts": list,
        "firing": firing,
        "resolved": alerts.len() - firing,
        "t": w,
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
            status: crate::core::model::Status::parse(status).expect("test status"),
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
        a.annotations.remove(annotations::ACKED_BY);
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

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn zone(name: &str) -> MessageSettings {
        MessageSettings {
            tz: crate::core::timefmt::parse_zone(name).unwrap(),
            ..Default::default()
        }
    }

    /// Every default format, one alert and a digest, in `settings`' zone.
    fn rendered(alerts: &[AlertEvent], settings: &MessageSettings) -> Vec<(String, String)> {
        let formats = [
            ("markdown", MARKDOWN),
            ("slack", SLACK),
            ("text", TEXT),
            ("email.html", HTML),
            ("markdown", FEISHU),
        ];
        let mut out = Vec::new();
        for lang in [Language::Zh, Language::En] {
            let ctx = context_for(alerts, lang, &LinkSettings::default(), settings);
            for (name, src) in formats {
                let body = Template::new(name, src).unwrap().render(&ctx).unwrap();
                out.push((format!("{name}/{lang:?}/{}", alerts.len()), body));
            }
        }
        out
    }

    #[test]
    fn times_follow_the_channels_zone_across_dst_in_every_format() {
        // Fall back in New York: 01:30 happens twice, the zone tells them apart. Spring
        // forward: 01:59:59 EST is followed by 03:00:00 EDT. Shanghai has no DST.
        let cases = [
            (
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "America/New_York",
                "2026-11-01 01:30:00 EDT",
                "2026-11-01 01:30:00 EST",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:30:00-05:00",
            ),
            (
                "2026-03-08T06:59:59Z",
                "2026-03-08T07:00:00Z",
                "America/New_York",
                "2026-03-08 01:59:59 EST",
                "2026-03-08 03:00:00 EDT",
                "2026-03-08T01:59:59-05:00",
                "2026-03-08T03:00:00-04:00",
            ),
            (
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "Asia/Shanghai",
                "2026-11-01 13:30:00 CST",
                "2026-11-01 14:30:00 CST",
                "2026-11-01T13:30:00+08:00",
                "2026-11-01T14:30:00+08:00",
            ),
        ];
        for (start, end, tz, start_h, end_h, start_j, end_j) in cases {
            let settings = zone(tz);
            let mut a = alert("DiskFull", "resolved");
            a.starts_at = ms(start);
            a.ends_at = Some(ms(end));
            let mut b = a.clone();
            b.fingerprint = "fp-other".into();
            for alerts in [vec![a.clone()], vec![a.clone(), b]] {
                for (what, body) in rendered(&alerts, &settings) {
                    assert!(body.contains(start_h), "{tz} {what}: {body}");
                    assert!(body.contains(end_h), "{tz} {what}: {body}");
                    assert!(!body.contains("UTC"), "{tz} {what}: {body}");
                }
            }
            // JSON (the webhook channel) keeps RFC 3339 with the zone's offset.
            assert_eq!(
                crate::core::timefmt::rfc3339_ms(a.starts_at, settings.tz).as_deref(),
                Some(start_j)
            );
            assert_eq!(
                crate::core::timefmt::rfc3339_ms(ms(end), settings.tz).as_deref(),
                Some(end_j)
            );
            // An ack announcement says when, in the same zone.
            let ev = crate::store::ack_event(
                &serde_json::to_string(&alert("DiskFull", "firing")).unwrap(),
                "alice",
                ms(end),
            )
            .unwrap();
            let zh = Template::new("markdown", MARKDOWN)
                .unwrap()
                .render(&context_for(
                    std::slice::from_ref(&ev),
                    Language::Zh,
                    &LinkSettings::default(),
                    &settings,
                ))
                .unwrap();
            assert!(zh.contains(&format!("alice 于 {end_h} 确认")), "{zh}");
        }
    }

    #[test]
    fn links_resolve_against_the_configured_bases_and_stay_inert() {
        let settings = MessageSettings {
            runbook_base_url: Some("https://router.example/".into()),
            grafana_url: Some("https://grafana.example".into()),
            ..Default::default()
        };
        let mut a = alert("DiskFull", "firing");
        a.annotations
            .insert("runbook_url".into(), "/runbooks/DiskFull".into());
        a.annotations
            .insert("dashboard_uid".into(), "quantwatch-host".into());
        a.annotations.insert("dashboard_panel".into(), "4".into());
        a.generator_url = Some("http://prom:9090/graph?g0.expr=up+%3E+0&g0.tab=1".into());
        let l = alert_links(&a, &settings);
        assert_eq!(
            l,
            AlertLinks {
                runbook: Some("https://router.example/runbooks/DiskFull".into()),
                dashboard: Some("https://grafana.example/d/quantwatch-host?viewPanel=4".into()),
                source: Some("http://prom:9090/graph?g0.expr=up+%3E+0&g0.tab=1".into()),
            }
        );
        // Without bases the relative runbook and the uid make no link; the source stays.
        let bare = alert_links(&a, &MessageSettings::default());
        assert_eq!((bare.runbook, bare.dashboard), (None, None));
        // An operator's own absolute URLs are kept, written so no markup reads them as syntax.
        let mut own = a.clone();
        own.annotations.insert(
            "runbook_url".into(),
            "https://wiki.example/Disk_(full)|x <b>@here]".into(),
        );
        own.annotations
            .insert("dashboard_url".into(), "https://g.example/d/abc".into());
        let l = alert_links(&own, &settings);
        assert_eq!(
            l.runbook.as_deref(),
            Some("https://wiki.example/Disk_%28full%29%7Cx%20%3Cb%3E%40here%5D")
        );
        assert_eq!(l.dashboard.as_deref(), Some("https://g.example/d/abc"));
        for bad in [
            "javascript:alert(1)",
            "https://user:pw@h.example/",
            "//h.example/x",
            "x",
        ] {
            own.annotations.insert("runbook_url".into(), bad.into());
            assert_eq!(alert_links(&own, &settings).runbook, None, "{bad}");
        }
        // Every default template carries them, in both languages, before the ack link.
        let links = LinkSettings {
            public_url: Some("https://router.example".into()),
            ack_secret: Some("0123456789abcdef0123456789abcdef".into()),
            ack_link_ttl: std::time::Duration::ZERO,
            alertmanager_silences: false,
        };
        let zh = Template::new("markdown", MARKDOWN)
            .unwrap()
            .render(&context_for(
                std::slice::from_ref(&a),
                Language::Zh,
                &links,
                &settings,
            ))
            .unwrap();
        assert!(
            zh.contains(
                "\n[处理手册](https://router.example/runbooks/DiskFull) · \
                 [监控面板](https://grafana.example/d/quantwatch-host?viewPanel=4) · \
                 [告警表达式](http://prom:9090/graph?g0.expr=up+%3E+0&g0.tab=1) · \
                 [确认告警](https://router.example/ack/ack.fp-DiskFull."
            ),
            "{zh}"
        );
        let en = |name: &str, src: &str| {
            Template::new(name, src)
                .unwrap()
                .render(&context_for(
                    std::slice::from_ref(&a),
                    Language::En,
                    &links,
                    &settings,
                ))
                .unwrap()
        };
        let slack = en("slack", SLACK);
        assert!(
            slack.contains("<https://router.example/runbooks/DiskFull|Runbook> · <https://grafana.example/d/quantwatch-host?viewPanel=4|Dashboard> · <http://prom:9090/graph?g0.expr=up+%3E+0&amp;g0.tab=1|Source graph> · <https://router.example/ack/"),
            "{slack}"
        );
        let text = en("text", TEXT);
        assert!(text.contains("Runbook: https://router.example/runbooks/DiskFull\nDashboard: https://grafana.example/d/quantwatch-host?viewPanel=4\nSource graph: http://prom:9090/graph?g0.expr=up+%3E+0&g0.tab=1\nAcknowledge: https://router.example/ack/"), "{text}");
        let html = en("email.html", HTML);
        assert!(html.contains("<a href=\"https:&#x2f;&#x2f;router.example&#x2f;runbooks&#x2f;DiskFull\">Runbook</a> · ") || html.contains("<a href=\"https://router.example/runbooks/DiskFull\">Runbook</a> · "), "{html}");
        // The digest carries the links too (no charts).
        let digest = Template::new("markdown", MARKDOWN)
            .unwrap()
            .render(&context_for(
                &[a.clone(), alert("B", "firing")],
                Language::En,
                &links,
                &settings,
            ))
            .unwrap();
        assert!(
            digest.contains("[Runbook](https://router.example/runbooks/DiskFull) [Dashboard]("),
            "{digest}"
        );
    }

    #[test]
    fn chart_context_and_note_reach_single_alert_messages() {
        let mut a = alert("DiskFull", "firing");
        a.annotations.insert(
            crate::core::annotations::CHART_URL.into(),
            "https://router.example/charts/chart.ab.0.9.cd.png".into(),
        );
        a.annotations.insert(
            crate::core::annotations::CHART_CID.into(),
            crate::render::chart::EMAIL_CID.into(),
        );
        a.annotations.insert(
            crate::core::annotations::CONTEXT.into(),
            r#"[["Equity","1,000.00"],["Largest <b>","AAPL 5.00"]]"#.into(),
        );
        a.annotations.insert(
            crate::core::annotations::CHART_NOTE.into(),
            "context unavailable: Prometheus did not answer within the deadline".into(),
        );
        let ctx = context_for(
            std::slice::from_ref(&a),
            Language::En,
            &LinkSettings::default(),
            &MessageSettings::default(),
        );
        let md = Template::new("markdown", MARKDOWN)
            .unwrap()
            .render(&ctx)
            .unwrap();
        assert!(
            md.contains("- **Equity**: 1,000.00\n- **Largest ＜b＞**: AAPL 5.00\n"),
            "{md}"
        );
        assert!(
            md.contains("\n![Last hour](https://router.example/charts/chart.ab.0.9.cd.png)\n"),
            "{md}"
        );
        assert!(
            md.contains("\n> context unavailable: Prometheus did not answer within the deadline\n"),
            "{md}"
        );
        let html = Template::new("email.html", HTML)
            .unwrap()
            .render(&ctx)
            .unwrap();
        assert!(
            html.contains("<img src=\"cid:chart@quantwatch\" alt=\"Last hour\">"),
            "{html}"
        );
        assert!(
            html.contains("<tr><th align=\"left\">Largest &lt;b&gt;</th><td>AAPL 5.00</td></tr>"),
            "{html}"
        );
        let text = Template::new("text", TEXT).unwrap().render(&ctx).unwrap();
        assert!(text.contains("Equity: 1,000.00\n"), "{text}");
        assert!(
            text.contains("\ncontext unavailable: Prometheus did not answer within the deadline\n"),
            "{text}"
        );
        let slack = Template::new("slack", SLACK).unwrap().render(&ctx).unwrap();
        assert!(
            slack.contains("<https://router.example/charts/chart.ab.0.9.cd.png|Last hour>\n"),
            "{slack}"
        );
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
        assert!(zh.contains("?duration=4h) · [静默至恢复]("), "{zh}");
        let en = render("slack", SLACK, &one, Language::En, &links);
        assert!(en.contains("?duration=4h|Silence 4h> · <"), "{en}");
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
            crate::core::annotations::EXTERNAL_URL.into(),
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
