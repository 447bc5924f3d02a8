//! Configuration: a YAML file (optional), `${VAR}` interpolation, environment overrides, and
//! one validation pass that reports every problem at once, so an operator fixes a config in one
//! round trip instead of one error per restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::plan::routing::{Matcher, RouteTree};
use crate::web::WebSettings;

/// Default listen address of the router (contract: "Both binaries").
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9878";
/// Default state location when nothing is configured: zero-config start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/router.db";

/// One problem found in the configuration, printed as `file: key: reason` (the type both
/// binaries and the web config share).
pub use crate::core::settings::{Env, Problem, ProcessEnv};
use crate::core::settings::{duration, signing_secret};

/// Every problem of a configuration; never empty.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration ({} problem(s)):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<Problem>);

use crate::core::language::Language;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen_address: Option<String>,
    database_url: Option<String>,
    sqlite_synchronous: Option<String>,
    public_url: Option<String>,
    ack_secret: Option<String>,
    ack_link_ttl: Option<String>,
    language: Option<Language>,
    /// IANA zone for times in messages, pages and charts (default UTC).
    timezone: Option<String>,
    prometheus_url: Option<String>,
    /// Base of relative `runbook_url` annotations (default `public_url`).
    runbook_base_url: Option<String>,
    /// Grafana's address, for `dashboard_uid` annotations.
    grafana_url: Option<String>,
    #[serde(default)]
    prometheus_auth: crate::context::settings::FilePromAuth,
    #[serde(default)]
    chart: crate::context::settings::FileChart,
    #[serde(default)]
    webhook: FileWebhook,
    #[serde(default)]
    api: FileApi,
    #[serde(default)]
    web: FileWeb,
    #[serde(default)]
    delivery: crate::delivery::FileDelivery,
    #[serde(default)]
    channels: Vec<ChannelConfig>,
    route: Option<FileRoute>,
    #[serde(default)]
    escalation_policies: std::collections::BTreeMap<String, crate::plan::escalation::FilePolicy>,
    /// Person -> channel name -> contact.
    #[serde(default)]
    people: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    rotations: std::collections::BTreeMap<String, crate::plan::oncall::FileRotation>,
    #[serde(default)]
    time_windows: std::collections::BTreeMap<String, crate::plan::oncall::FileWindow>,
    /// Alertmanagers that silences from message links are made on (see `silence`).
    #[serde(default)]
    alertmanager_urls: Vec<String>,
    #[serde(default)]
    silences: crate::plan::silence::FileSilences,
    /// Handoff announcements, gap warnings, ack reminders (see `rota`).
    #[serde(default)]
    rota: crate::plan::rota::FileRota,
    /// The dead man's switch (`heartbeat`).
    deadman: Option<crate::plan::heartbeat::FileDeadman<FileRoute>>,
    /// Heartbeat monitors (`heartbeat`).
    #[serde(default)]
    heartbeats: Vec<crate::plan::heartbeat::FileHeartbeat<FileRoute>>,
    /// What is deleted when (`store::retention`).
    #[serde(default)]
    retention: crate::store::retention::FileRetention,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDuring {
    window: String,
    escalation: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    token: Option<String>,
    max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileApi {
    token: Option<String>,
}

/// How the router serves HTTP: the exporter-toolkit web config and the connection limits.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    /// exporter-toolkit file (TLS, `basic_auth_users`, headers); env
    /// `ROUTER_WEB_CONFIG_FILE` and `--web.config.file` win.
    config_file: Option<PathBuf>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default, rename = "continue")]
    continue_: bool,
    #[serde(default)]
    escalation: Option<String>,
    #[serde(default)]
    escalation_during: Vec<FileDuring>,
    /// The context table's queries for this route's alerts (see `chart::context`).
    #[serde(default)]
    context: Option<Vec<crate::context::settings::FileContextQuery>>,
    #[serde(default)]
    routes: Vec<FileRoute>,
}

pub use crate::channels::aliyun::AliyunSmsConfig;
pub use crate::channels::aliyun_voice::AliyunVoiceConfig;
pub use crate::channels::dingtalk::DingtalkConfig;
pub use crate::channels::email::{EmailConfig, SmtpTls};
pub use crate::channels::feishu::FeishuConfig;
pub use crate::channels::log::LogConfig;
pub use crate::channels::slack::SlackConfig;
pub use crate::channels::webhook::WebhookConfig;
pub use crate::channels::wecom::WecomConfig;
use crate::channels::{self, ChannelSpec};

/// The channel registry: `Variant(config struct)`, one line per vendor. The variant's
/// snake_case name is the `type` key in the file.
macro_rules! channel_configs {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A channel as written in the file; `type` selects the vendor.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum ChannelConfig {
            $($variant($ty)),*
        }

        impl ChannelConfig {
            /// The vendor's own view of its config (name, checks, build).
            pub fn spec(&self) -> &dyn ChannelSpec {
                match self {
                    $(ChannelConfig::$variant(c) => c),*
                }
            }
        }
    };
}

channel_configs! {
    Dingtalk(DingtalkConfig),
    Wecom(WecomConfig),
    Slack(SlackConfig),
    Email(EmailConfig),
    Log(LogConfig),
    Feishu(FeishuConfig),
    Webhook(WebhookConfig),
    AliyunSms(AliyunSmsConfig),
    AliyunVoice(AliyunVoiceConfig),
}

impl ChannelConfig {
    pub fn name(&self) -> &str {
        self.spec().name()
    }
    pub fn kind(&self) -> &'static str {
        self.spec().kind()
    }
}

/// The validated configuration the process runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: String,
    pub listen_address: String,
    pub database_url: String,
    /// SQLite `synchronous=FULL` (default) rather than `NORMAL`.
    pub sqlite_synchronous_full: bool,
    pub public_url: Option<String>,
    pub ack_secret: Option<String>,
    /// Validity of ack links in messages.
    pub ack_link_ttl: Duration,
    /// `prometheus_url`, `prometheus_auth` and `chart:` (see `chart::settings`).
    pub chart: crate::context::ChartSettings,
    /// `runbook_base_url` (env `ROUTER_RUNBOOK_BASE_URL`), else `public_url`.
    pub runbook_base_url: Option<String>,
    /// `grafana_url` (env `ROUTER_GRAFANA_URL`).
    pub grafana_url: Option<String>,
    pub webhook_token: Option<String>,
    pub max_body_bytes: usize,
    pub api_token: Option<String>,
    pub web: WebSettings,
    pub delivery: crate::delivery::Settings,
    pub channels: Vec<ChannelConfig>,
    /// Language, zone, routes, policies, people, silences, rota and watches: the planners'
    /// part (`language`, `timezone`, env `ROUTER_LANGUAGE`/`ROUTER_TIMEZONE` included).
    pub plan: crate::plan::Settings,
    /// `retention:` (contract "Router: retention").
    pub retention: crate::store::retention::RetentionConfig,
}

impl Config {
    /// The chart and context service of this configuration.
    pub fn chart_service(&self) -> crate::context::ChartService {
        crate::context::ChartService::new(
            self.chart.clone(),
            self.plan.timezone,
            self.public_url.as_deref(),
            self.ack_secret.clone(),
            self.plan.routes.clone(),
        )
    }

    /// Build every configured channel (the channel layer never sees `Config` itself).
    pub fn build_channels(&self) -> Result<Vec<std::sync::Arc<dyn channels::Channel>>, String> {
        let specs: Vec<&dyn ChannelSpec> = self.channels.iter().map(ChannelConfig::spec).collect();
        channels::build_all(
            &specs,
            channels::Settings {
                language: self.plan.language,
                links: crate::render::template::LinkSettings {
                    public_url: self.public_url.clone(),
                    ack_secret: self.ack_secret.clone(),
                    ack_link_ttl: self.ack_link_ttl,
                    alertmanager_silences: !self.plan.silences.alertmanager_urls.is_empty(),
                },
                message: crate::render::template::MessageSettings {
                    tz: self.plan.timezone,
                    runbook_base_url: self
                        .runbook_base_url
                        .clone()
                        .or_else(|| self.public_url.clone()),
                    grafana_url: self.grafana_url.clone(),
                },
            },
        )
    }
}

/// Replace `${VAR}` and `${VAR:-default}` (`$$` is a literal `$`); an unset `${VAR}` is a
/// problem naming the line and the variable, never a value.
pub fn interpolate(text: &str, env: &dyn Env, file: &str) -> Result<String, Vec<Problem>> {
    quantwatch_web::config::interpolate(text, file, &|k| env.get(k))
}

/// Load from an optional file plus the environment; env wins over the file.
pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let (file_name, file) = match path {
        None => ("(no config file)".to_string(), FileConfig::default()),
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors(vec![Problem {
                    file: name.clone(),
                    key: "(file)".into(),
                    reason: format!("cannot read: {e}"),
                }])
            })?;
            let text = interpolate(&text, env, &name).map_err(ConfigErrors)?;
            let parsed: FileConfig = if text.trim().is_empty() {
                FileConfig::default()
            } else {
                // Errors name the key or line:column, never the line's text (it may hold a
                // secret after interpolation).
                quantwatch_web::config::parse_yaml(&text, &name)
                    .map_err(|p| ConfigErrors(vec![p]))?
            };
            (name, parsed)
        }
    };
    validate(file, &file_name, env)
}

fn validate(file: FileConfig, name: &str, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let mut p = Vec::new();
    // The planners' sections are read from here; the top-level keys below take theirs.
    let sections = file.clone();
    let prob = |p: &mut Vec<Problem>, key: &str, reason: String| {
        p.push(Problem {
            file: name.into(),
            key: key.into(),
            reason,
        })
    };

    let listen_address = env
        .get("ROUTER_LISTEN_ADDRESS")
        .or(file.listen_address)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    if listen_address.parse::<std::net::SocketAddr>().is_err() {
        prob(
            &mut p,
            "listen_address",
            format!("{listen_address:?} is not HOST:PORT (an IP address and a port)"),
        );
    }
    let database_url = env
        .get("ROUTER_DATABASE_URL")
        .or(file.database_url)
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    if !(database_url.starts_with("sqlite:")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        prob(&mut p, "database_url", "must start with sqlite:, postgres:// or postgresql:// (the value is not shown: it may hold a password)".into());
    }
    let sqlite_synchronous_full = match env
        .get("ROUTER_SQLITE_SYNCHRONOUS")
        .or(file.sqlite_synchronous)
        .as_deref()
    {
        None | Some("full") => true,
        Some("normal") => false,
        Some(other) => {
            prob(
                &mut p,
                "sqlite_synchronous",
                format!("{other:?} is neither full nor normal"),
            );
            true
        }
    };
    let public_url = env.get("ROUTER_PUBLIC_URL").or(file.public_url);
    if let Some(u) = &public_url
        && reqwest::Url::parse(u).is_err()
    {
        prob(
            &mut p,
            "public_url",
            format!("{u:?} is not an absolute URL"),
        );
    }
    let ack_secret = match env.get("ROUTER_ACK_SECRET") {
        Some(v) => signing_secret(&mut p, v, "(environment)", "ROUTER_ACK_SECRET"),
        None => file
            .ack_secret
            .and_then(|v| signing_secret(&mut p, v, name, "ack_secret")),
    };
    let ack_link_ttl = duration(
        &mut p,
        name,
        "ack_link_ttl",
        file.ack_link_ttl.as_deref(),
        crate::render::template::DEFAULT_ACK_LINK_TTL,
    );
    let webhook_token = env
        .get("ROUTER_WEBHOOK_TOKEN")
        .or(file.webhook.token)
        .filter(|t| !t.is_empty());
    let api_token = env
        .get("ROUTER_API_TOKEN")
        .or(file.api.token)
        .filter(|t| !t.is_empty());
    let max_body_bytes = file.webhook.max_body_bytes.unwrap_or(1 << 20);
    if max_body_bytes < 1024 {
        prob(
            &mut p,
            "webhook.max_body_bytes",
            "must be at least 1024".into(),
        );
    }
    let web = web_settings(&file.web, env, name, &mut p);
    let language = match env.get("ROUTER_LANGUAGE").as_deref() {
        Some("zh") => Language::Zh,
        Some("en") => Language::En,
        Some(other) => {
            p.push(Problem {
                file: "(environment)".into(),
                key: "ROUTER_LANGUAGE".into(),
                reason: format!("{other:?} is not zh or en"),
            });
            Language::Zh
        }
        None => file.language.unwrap_or_default(),
    };
    let timezone = match env.get("ROUTER_TIMEZONE").or(file.timezone) {
        None => chrono_tz::Tz::UTC,
        Some(z) => crate::core::timefmt::parse_zone(&z).unwrap_or_else(|reason| {
            prob(&mut p, "timezone", reason);
            chrono_tz::Tz::UTC
        }),
    };
    let mut base_url = |key: &str, var: &str, v: Option<String>| {
        let v = env.get(var).or(v).filter(|u| !u.is_empty())?;
        if crate::core::text::safe_url(&v).is_none() {
            prob(
                &mut p,
                key,
                "is not an absolute http(s) URL without credentials (the value is not shown)"
                    .into(),
            );
            return None;
        }
        Some(v)
    };
    let runbook_base_url = base_url(
        "runbook_base_url",
        "ROUTER_RUNBOOK_BASE_URL",
        file.runbook_base_url,
    );
    let grafana_url = base_url("grafana_url", "ROUTER_GRAFANA_URL", file.grafana_url);
    let chart = crate::context::settings::validate(
        file.prometheus_url,
        file.prometheus_auth,
        file.chart,
        env,
        name,
        &mut p,
    );
    let delivery = crate::delivery::validate(&file.delivery, name, &mut p);
    let retention = crate::store::retention::validate(&file.retention, name, &mut p);

    let (channels, names) = channels_section(file.channels, name, &mut p);

    let plan = plan_section(
        &sections,
        &channels,
        &names,
        (language, timezone),
        env,
        name,
        &mut p,
    );

    if p.is_empty() {
        Ok(Config {
            source: name.into(),
            listen_address,
            database_url,
            sqlite_synchronous_full,
            public_url,
            ack_secret,
            ack_link_ttl,
            chart,
            runbook_base_url,
            grafana_url,
            webhook_token,
            max_body_bytes,
            api_token,
            web,
            delivery,
            plan,
            channels,
            retention,
        })
    } else {
        Err(ConfigErrors(p))
    }
}

/// The planners' part: the route tree, people, rotations and windows, escalation policies,
/// silences, the rota and the watches, each validated by its own part.
fn plan_section(
    file: &FileConfig,
    channels: &[ChannelConfig],
    names: &BTreeSet<String>,
    (language, timezone): (Language, chrono_tz::Tz),
    env: &dyn Env,
    name: &str,
    p: &mut Vec<Problem>,
) -> crate::plan::Settings {
    let prob = |p: &mut Vec<Problem>, key: &str, reason: String| {
        p.push(Problem {
            file: name.into(),
            key: key.into(),
            reason,
        })
    };
    let route = file.route.clone().unwrap_or(FileRoute {
        matchers: vec![],
        channels: vec![channels[0].name().to_string()],
        continue_: false,
        escalation: None,
        escalation_during: vec![],
        context: None,
        routes: vec![],
    });
    if route.channels.is_empty() {
        prob(
            p,
            "route.channels",
            "the default (root) route must name at least one channel".into(),
        );
    }
    if !route.matchers.is_empty() {
        prob(
            p,
            "route.matchers",
            "the root route matches every alert and takes no matchers".into(),
        );
    }
    let routes = build_route(&route, "route", names, name, p);
    let mut directory = crate::plan::oncall::Directory::default();
    let mut dir_problems = Vec::new();
    for (who, contacts) in &file.people {
        for ch in contacts.keys() {
            if !names.contains(ch) {
                dir_problems.push((
                    format!("people.{who}.{ch}"),
                    format!("no channel is named {ch:?}"),
                ));
            }
        }
    }
    directory.people = file.people.clone();
    // Calling channels reach a step's people one after another (rotation order), not all at once.
    directory.call_in_turn = channels
        .iter()
        .filter(|c| c.spec().calls())
        .map(|c| c.name().to_string())
        .collect();
    for (rname, r) in &file.rotations {
        if let Some(rot) =
            crate::plan::oncall::validate_rotation(rname, r, &file.people, &mut dir_problems)
        {
            directory.rotations.insert(rname.clone(), rot);
        }
    }
    for (wname, w) in &file.time_windows {
        if let Some(win) = crate::plan::oncall::validate_window(wname, w, &mut dir_problems) {
            directory.windows.insert(wname.clone(), win);
        }
    }
    for (key, reason) in dir_problems {
        prob(p, &key, reason);
    }
    let rotation_names: BTreeSet<String> = file.rotations.keys().cloned().collect();
    let mut policies = std::collections::BTreeMap::new();
    for (pname, fp) in &file.escalation_policies {
        match crate::plan::escalation::validate(pname, fp, names, &rotation_names) {
            Ok(pol) => {
                policies.insert(pname.clone(), pol);
            }
            Err(errs) => {
                for (key, reason) in errs {
                    prob(p, &key, reason);
                }
            }
        }
    }
    let silences = crate::plan::silence::validate(
        file.alertmanager_urls.clone(),
        file.silences.clone(),
        env.get("ROUTER_ALERTMANAGER_URLS"),
        name,
        p,
    );
    let rota = crate::plan::rota::validate(file.rota.clone(), names, name, p);
    check_policy_names(
        &routes,
        "route",
        &file.escalation_policies,
        &file.time_windows,
        name,
        p,
    );
    let mut watch_problems = Vec::new();
    let watch = crate::plan::heartbeat::validate(
        file.deadman.as_ref(),
        &file.heartbeats,
        &|w| file.time_windows.contains_key(w),
        &mut |r: &FileRoute, key: &str| {
            if r.channels.is_empty() && r.escalation.is_none() && r.escalation_during.is_empty() {
                prob(
                    p,
                    &format!("{key}.channels"),
                    "names no channel and no escalation: its alerts would reach nobody".into(),
                );
            }
            let tree = build_route(r, key, names, name, p);
            check_policy_names(
                &tree,
                key,
                &file.escalation_policies,
                &file.time_windows,
                name,
                p,
            );
            tree
        },
        &mut watch_problems,
    );
    for (key, reason) in watch_problems {
        prob(p, &key, reason);
    }
    crate::plan::Settings {
        language,
        timezone,
        channels: channels.iter().map(|c| c.name().to_string()).collect(),
        routes,
        policies,
        directory,
        silences,
        rota,
        watch,
    }
}

/// The `channels:` section: at least one channel (a log channel when none is written), names
/// unique and plain, each vendor's own checks, fallbacks that exist.
fn channels_section(
    channels: Vec<ChannelConfig>,
    file: &str,
    p: &mut Vec<Problem>,
) -> (Vec<ChannelConfig>, BTreeSet<String>) {
    let prob = |p: &mut Vec<Problem>, key: &str, reason: String| {
        p.push(Problem {
            file: file.into(),
            key: key.into(),
            reason,
        })
    };
    let mut channels = channels;
    if channels.is_empty() {
        channels.push(ChannelConfig::Log(LogConfig {
            name: "log".into(),
            language: None,
            template: None,
            timezone: None,
        }));
    }
    let mut names = BTreeSet::new();
    for (i, c) in channels.iter().enumerate() {
        let key = format!("channels[{i}]");
        if c.name().is_empty()
            || !c
                .name()
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            prob(
                p,
                &format!("{key}.name"),
                format!(
                    "{:?} must be non-empty ASCII letters, digits, - or _",
                    c.name()
                ),
            );
        }
        if !names.insert(c.name().to_string()) {
            prob(
                p,
                &format!("{key}.name"),
                format!("channel name {:?} is used twice", c.name()),
            );
        }
        let key = format!("channels[{i}] ({})", c.name());
        let mut found = Vec::new();
        if let Some(z) = c.spec().timezone()
            && let Err(reason) = crate::core::timefmt::parse_zone(z)
        {
            found.push(("timezone".to_string(), reason));
        }
        c.spec().validate(&mut found);
        for (k, reason) in found {
            prob(p, &format!("{key}.{k}"), reason);
        }
    }

    for (i, c) in channels.iter().enumerate() {
        for f in c.spec().fallback() {
            let key = format!("channels[{i}] ({}).fallback", c.name());
            if f == c.name() {
                prob(p, &key, "a channel cannot be its own fallback".into());
            } else if !names.contains(f) {
                prob(p, &key, format!("no channel is named {f:?}"));
            }
        }
    }
    (channels, names)
}

/// The `web` section, `ROUTER_WEB_CONFIG_FILE` over `web.config_file`; the web config file's
/// own problems are reported under its own file name.
fn web_settings(w: &FileWeb, env: &dyn Env, name: &str, p: &mut Vec<Problem>) -> WebSettings {
    let defaults = quantwatch_web::serve::Limits::default();
    let limits = quantwatch_web::serve::Limits {
        header_read_timeout: duration(
            p,
            name,
            "web.header_read_timeout",
            w.header_read_timeout.as_deref(),
            defaults.header_read_timeout,
        ),
        body_read_timeout: duration(
            p,
            name,
            "web.body_read_timeout",
            w.body_read_timeout.as_deref(),
            defaults.body_read_timeout,
        ),
        max_connections: w.max_connections.unwrap_or(defaults.max_connections),
        drain_timeout: defaults.drain_timeout,
    };
    if limits.max_connections == 0 {
        p.push(Problem {
            file: name.into(),
            key: "web.max_connections".into(),
            reason: "must be at least 1".into(),
        });
    }
    let config_file = env
        .get("ROUTER_WEB_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| w.config_file.clone());
    let security = match &config_file {
        None => Default::default(),
        Some(path) => quantwatch_web::web_config::load(path).unwrap_or_else(|problems| {
            p.extend(problems);
            Default::default()
        }),
    };
    WebSettings {
        config_file,
        security,
        limits,
    }
}

fn check_policy_names<T, W>(
    r: &RouteTree,
    key: &str,
    policies: &std::collections::BTreeMap<String, T>,
    windows: &std::collections::BTreeMap<String, W>,
    file: &str,
    p: &mut Vec<Problem>,
) {
    for (i, (w, pol)) in r.escalation_during.iter().enumerate() {
        if !windows.contains_key(w) {
            p.push(Problem {
                file: file.into(),
                key: format!("{key}.escalation_during[{i}].window"),
                reason: format!("no time window is named {w:?} (see time_windows)"),
            });
        }
        if !policies.contains_key(pol) {
            p.push(Problem {
                file: file.into(),
                key: format!("{key}.escalation_during[{i}].escalation"),
                reason: format!("no escalation policy is named {pol:?} (see escalation_policies)"),
            });
        }
    }
    if let Some(e) = &r.escalation
        && !policies.contains_key(e)
    {
        p.push(Problem {
            file: file.into(),
            key: format!("{key}.escalation"),
            reason: format!("no escalation policy is named {e:?} (see escalation_policies)"),
        });
    }
    for (i, c) in r.routes.iter().enumerate() {
        check_policy_names(c, &format!("{key}.routes[{i}]"), policies, windows, file, p);
    }
}

fn build_route(
    r: &FileRoute,
    key: &str,
    names: &BTreeSet<String>,
    file: &str,
    p: &mut Vec<Problem>,
) -> RouteTree {
    let mut matchers = Vec::new();
    for (i, m) in r.matchers.iter().enumerate() {
        match Matcher::parse(m) {
            Ok(m) => matchers.push(m),
            Err(e) => p.push(Problem {
                file: file.into(),
                key: format!("{key}.matchers[{i}]"),
                reason: e,
            }),
        }
    }
    for (i, c) in r.channels.iter().enumerate() {
        if !names.contains(c) {
            p.push(Problem {
                file: file.into(),
                key: format!("{key}.channels[{i}]"),
                reason: format!("no channel is named {c:?}"),
            });
        }
    }
    let children = r
        .routes
        .iter()
        .enumerate()
        .map(|(i, c)| build_route(c, &format!("{key}.routes[{i}]"), names, file, p))
        .collect();
    let context = r.context.clone().map(|list| {
        crate::context::settings::context_queries(
            list,
            &format!("{key}.context"),
            &mut |k, reason| {
                p.push(Problem {
                    file: file.into(),
                    key: k.into(),
                    reason,
                })
            },
        )
    });
    RouteTree {
        context,
        matchers,
        channels: r.channels.clone(),
        continue_: r.continue_,
        escalation: r.escalation.clone(),
        escalation_during: r
            .escalation_during
            .iter()
            .map(|d| (d.window.clone(), d.escalation.clone()))
            .collect(),
        routes: children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_text(text: &str, e: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("router.yml");
        std::fs::write(&path, text).expect("write");
        load(Some(&path), e)
    }

    #[test]
    fn interpolation_defaults_and_missing() {
        let e = env(&[("A", "x")]);
        assert_eq!(
            interpolate("a=${A} b=${B:-def}\n", &e, "f").unwrap(),
            "a=x b=def\n"
        );
        let errs = interpolate("ok\nc=${MISSING}\n", &e, "f").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "line 2");
        assert!(errs[0].reason.contains("MISSING"));
    }

    #[test]
    fn zero_config_logs_to_default_channel() {
        let c = load(None, &env(&[])).unwrap();
        assert_eq!(c.listen_address, "0.0.0.0:9878");
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.channels.len(), 1);
        assert_eq!(c.channels[0].kind(), "log");
        assert_eq!(c.plan.routes.channels, vec!["log".to_string()]);
    }

    #[test]
    fn env_wins_over_file() {
        let c = load_text(
            "database_url: sqlite://file.db\nwebhook:\n  token: from-file\n",
            &env(&[
                ("ROUTER_DATABASE_URL", "postgres://u@h/db"),
                ("ROUTER_WEBHOOK_TOKEN", "from-env"),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url, "postgres://u@h/db");
        assert_eq!(c.webhook_token.as_deref(), Some("from-env"));
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
delivery:
  retry_initial: soon
channels:
  - type: dingtalk
    name: ops
    webhook_url: "not a url"
  - type: log
    name: ops
route:
  channels: [nope]
  routes:
    - matchers: ['severity=~"(crit"']
      channels: [ops]
"#;
        let errs = load_text(text, &env(&[])).unwrap_err().0;
        let keys: Vec<&str> = errs.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"delivery.retry_initial"), "{errs:?}");
        assert!(keys.contains(&"channels[1].name"), "{errs:?}");
        assert!(keys.contains(&"channels[0] (ops).webhook_url"), "{errs:?}");
        assert!(keys.contains(&"route.channels[0]"), "{errs:?}");
        assert!(keys.contains(&"route.routes[0].matchers[0]"), "{errs:?}");
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs.iter().all(|p| p.file.ends_with("router.yml")));
    }

    #[test]
    fn short_or_empty_signing_secrets_are_refused_without_their_value() {
        let long = "x".repeat(crate::core::settings::MIN_SECRET_BYTES);
        assert_eq!(
            load_text(&format!("ack_secret: {long}\n"), &env(&[]))
                .unwrap()
                .ack_secret
                .as_deref(),
            Some(long.as_str())
        );
        // Unset variable with an empty default, an empty string, one character.
        for (text, reason) in [
            ("ack_secret: \"${ACK_SECRET:-}\"\n", "is empty"),
            ("ack_secret: \"\"\n", "is empty"),
            (
                "ack_secret: \"k\"\n",
                "is 1 bytes; a signing secret needs at least 32",
            ),
        ] {
            let errs = load_text(text, &env(&[])).unwrap_err().0;
            assert_eq!(errs.len(), 1, "{text}: {errs:?}");
            assert!(errs[0].file.ends_with("router.yml"), "{errs:?}");
            assert_eq!(errs[0].key, "ack_secret");
            assert!(errs[0].reason.starts_with(reason), "{errs:?}");
        }
        let short = "s3cr3t-value-31-bytes-long-xxxx";
        let errs = load(None, &env(&[("ROUTER_ACK_SECRET", short)]))
            .unwrap_err()
            .0;
        assert_eq!(
            (errs[0].file.as_str(), errs[0].key.as_str()),
            ("(environment)", "ROUTER_ACK_SECRET")
        );
        assert!(!ConfigErrors(errs).to_string().contains(short));
        // No secret at all is valid: messages then carry no ack links.
        assert_eq!(load(None, &env(&[])).unwrap().ack_secret, None);
    }

    #[test]
    fn timezone_and_chart_keys() {
        let c = load_text(
            "timezone: Asia/Shanghai\nprometheus_url: http://127.0.0.1:9090\nchart:\n  width: 640\n",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.plan.timezone, chrono_tz::Tz::Asia__Shanghai);
        assert_eq!(c.chart.width, 640);
        assert!(c.chart.prometheus.is_some());
        assert_eq!(
            load(None, &env(&[])).unwrap().plan.timezone,
            chrono_tz::Tz::UTC
        );
        let errs = load_text(
            "timezone: Mars/Olympus\nchart:\n  deadline: fast\n",
            &env(&[]),
        )
        .unwrap_err()
        .0;
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].key, "timezone");
        assert!(errs[0].file.ends_with("router.yml"));
        assert!(
            errs[0]
                .reason
                .contains("\"Mars/Olympus\" is not an IANA time zone")
        );
        assert_eq!(errs[1].key, "chart.deadline");
    }

    #[test]
    fn channel_timezones_and_link_bases() {
        let c = load_text(
            "timezone: Asia/Shanghai\npublic_url: https://router.example\ngrafana_url: https://grafana.example\nchannels:\n  - type: log\n    name: ny\n    timezone: America/New_York\n  - type: log\n    name: sh\n",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.grafana_url.as_deref(), Some("https://grafana.example"));
        assert_eq!(c.runbook_base_url, None);
        assert_eq!(c.channels[0].spec().timezone(), Some("America/New_York"));
        assert_eq!(c.channels[1].spec().timezone(), None);
        assert_eq!(c.build_channels().unwrap().len(), 2);
        let errs = load_text(
            "runbook_base_url: /relative\ngrafana_url: \"https://u:pw@g.example\"\nchannels:\n  - type: log\n    name: a\n    timezone: Mars/Olympus\n",
            &env(&[]),
        )
        .unwrap_err()
        .0;
        let keys: Vec<&str> = errs.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "runbook_base_url",
                "grafana_url",
                "channels[0] (a).timezone"
            ],
            "{errs:?}"
        );
        assert!(errs.iter().all(|p| !p.reason.contains("pw")), "{errs:?}");
        assert!(
            errs[2]
                .reason
                .contains("\"Mars/Olympus\" is not an IANA time zone")
        );
    }

    #[test]
    fn route_context_queries() {
        let c = load_text(
            "route:\n  channels: [log]\n  routes:\n    - matchers: ['team=risk']\n      context:\n        - {title: VaR, query: 'var{desk=\"{{desk}}\"}', unit: money}\n",
            &env(&[]),
        )
        .unwrap();
        let risk: std::collections::BTreeMap<String, String> =
            [("team".to_string(), "risk".to_string())].into();
        let q = c
            .plan
            .routes
            .context_for(&risk)
            .expect("the route's queries");
        assert_eq!(
            (q[0].title.as_str(), q[0].unit),
            ("VaR", crate::plan::routing::Unit::Money)
        );
        assert!(c.plan.routes.context_for(&Default::default()).is_none());
        let errs = load_text(
            "route:\n  channels: [log]\n  routes:\n    - matchers: ['team=risk']\n      context:\n        - {title: VaR, query: up, unit: dollars}\n",
            &env(&[]),
        )
        .unwrap_err()
        .0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "route.routes[0].context[0].unit");
        assert!(
            errs[0].reason.contains("\"dollars\" is not money"),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let errs = load_text("listen_adress: 1.2.3.4:5\n", &env(&[]))
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1);
        assert!(errs[0].reason.contains("listen_adress"), "{errs:?}");
        let errs = load_text(
            "channels:\n  - type: log\n    name: a\n    colour: red\n",
            &env(&[]),
        )
        .unwrap_err()
        .0;
        assert!(errs[0].reason.contains("colour"), "{errs:?}");
    }
}
