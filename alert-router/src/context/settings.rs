//! The chart's configuration: `prometheus_url`, `prometheus_auth` and the `chart:` block,
//! validated once at load like every other key (file, key, reason; never a secret's value).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::core::settings::{Env, Problem};
use crate::plan::routing::{ContextQuery, Unit};

/// `prometheus_auth:` as written. Secrets may come from `${VAR}` in the file or from
/// `ROUTER_PROMETHEUS_PASSWORD` / `ROUTER_PROMETHEUS_BEARER_TOKEN`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FilePromAuth {
    username: Option<String>,
    password: Option<String>,
    bearer_token: Option<String>,
}

/// `chart:` as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileChart {
    range: Option<String>,
    deadline: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    max_series: Option<usize>,
    cjk_font_path: Option<PathBuf>,
    link_ttl: Option<String>,
    cache_entries: Option<usize>,
    /// The context table's queries; absent: the trading book (`context::trading_defaults`).
    context: Option<Vec<FileContextQuery>>,
}

/// One `chart.context` entry: `{title, query, unit, show_label}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileContextQuery {
    pub title: String,
    /// PromQL with `{{label}}` placeholders inside double-quoted strings.
    pub query: String,
    /// `money`, `percent`, `count` or `plain` (default).
    pub unit: Option<String>,
    pub show_label: Option<String>,
}

/// How the router authenticates to Prometheus. `Debug` never prints a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum PromAuth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for PromAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PromAuth::None => f.write_str("None"),
            PromAuth::Basic { username, .. } => write!(f, "Basic({username:?}, <redacted>)"),
            PromAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Where charts and context come from.
#[derive(Debug, Clone)]
pub struct PromTarget {
    /// Base URL; `/api/v1/query_range` is appended to its path.
    pub url: reqwest::Url,
    pub auth: PromAuth,
}

/// Default chart size: fits a DingTalk/Slack message column without scaling text away.
pub const DEFAULT_SIZE: (u32, u32) = (800, 300);
/// Default time shared by the queries and the rendering of one message.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// The validated chart settings.
#[derive(Clone)]
pub struct ChartSettings {
    /// `None`: charts are off (no `prometheus_url`).
    pub prometheus: Option<PromTarget>,
    /// How far back a chart looks (default 1h).
    pub range: Duration,
    pub deadline: Duration,
    pub width: u32,
    pub height: u32,
    /// Series drawn; the rest are counted in the legend as "+N more".
    pub max_series: usize,
    /// A font with CJK glyphs, loaded once per path for the life of the process.
    pub cjk_font: Option<&'static [u8]>,
    /// Validity of chart URLs (default 7 days, like ack links).
    pub link_ttl: Duration,
    /// Images kept in memory (least recently used beyond it are dropped).
    pub cache_entries: usize,
    /// The context table's queries (`chart.context`, default the trading book).
    pub context: Vec<ContextQuery>,
}

impl std::fmt::Debug for ChartSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChartSettings")
            .field("prometheus", &self.prometheus)
            .field("range", &self.range)
            .field("deadline", &self.deadline)
            .field("size", &(self.width, self.height))
            .field("max_series", &self.max_series)
            .field("cjk_font", &self.cjk_font.map(<[u8]>::len))
            .field("link_ttl", &self.link_ttl)
            .field("cache_entries", &self.cache_entries)
            .field("context", &self.context.len())
            .finish()
    }
}

impl Default for ChartSettings {
    fn default() -> Self {
        ChartSettings {
            prometheus: None,
            range: Duration::from_secs(3600),
            deadline: DEFAULT_DEADLINE,
            width: DEFAULT_SIZE.0,
            height: DEFAULT_SIZE.1,
            max_series: 8,
            cjk_font: None,
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            cache_entries: 256,
            context: trading_defaults(),
        }
    }
}

/// A font file as read: path, size and modification time.
type FontKey = (PathBuf, u64, Option<std::time::SystemTime>);

/// Fonts are registered with the plotting crate as `&'static` bytes, so each font file is
/// read and leaked once per (path, size, mtime): a SIGHUP reload does not leak it again.
fn load_font(path: &Path) -> Result<&'static [u8], String> {
    static LOADED: OnceLock<Mutex<HashMap<FontKey, &'static [u8]>>> = OnceLock::new();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let loaded = LOADED.get_or_init(Default::default);
    if let Some(b) = loaded.lock().ok().and_then(|m| m.get(&key).copied()) {
        return Ok(b);
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ab_glyph::FontRef::try_from_slice(&bytes)
        .map_err(|_| format!("{} is not a TrueType/OpenType font", path.display()))?;
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if let Ok(mut m) = loaded.lock() {
        m.insert(key, leaked);
    }
    Ok(leaked)
}

/// Validate a list of context queries written at `key` (`chart.context`, a route's
/// `context`); a bad entry is reported as `{key}[i]…` and left out.
pub fn context_queries(
    list: Vec<FileContextQuery>,
    key: &str,
    prob: &mut dyn FnMut(&str, String),
) -> Vec<ContextQuery> {
    list.into_iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let key = format!("{key}[{i}]");
            let unit = match q.unit.as_deref() {
                None | Some("plain") => Unit::Plain,
                Some("money") => Unit::Money,
                Some("percent") => Unit::Percent,
                Some("count") => Unit::Count,
                Some(other) => {
                    prob(
                        &format!("{key}.unit"),
                        format!("{other:?} is not money, percent, count or plain"),
                    );
                    return None;
                }
            };
            if q.title.trim().is_empty() || q.query.trim().is_empty() {
                prob(&key, "needs a title and a query".into());
                return None;
            }
            Some(ContextQuery {
                title: q.title,
                query: q.query,
                unit,
                show_label: q.show_label,
            })
        })
        .collect()
}

/// Validate the chart keys; problems are pushed, the defaults stand in for bad values.
pub fn validate(
    prometheus_url: Option<String>,
    auth: FilePromAuth,
    chart: FileChart,
    env: &dyn Env,
    file: &str,
    p: &mut Vec<Problem>,
) -> ChartSettings {
    let mut prob = |key: &str, reason: String| {
        p.push(Problem {
            file: file.into(),
            key: key.into(),
            reason,
        })
    };
    let d = ChartSettings::default();
    let mut dur = |key: &str, v: Option<&str>, default: Duration| match v {
        None => default,
        Some(s) => match humantime::parse_duration(s) {
            Ok(x) if !x.is_zero() => x,
            Ok(_) => {
                prob(key, "must be greater than zero".into());
                default
            }
            Err(e) => {
                prob(
                    key,
                    format!("{s:?} is not a duration like \"2s\" or \"1h\": {e}"),
                );
                default
            }
        },
    };
    let range = dur("chart.range", chart.range.as_deref(), d.range);
    let deadline = dur("chart.deadline", chart.deadline.as_deref(), d.deadline);
    let link_ttl = dur("chart.link_ttl", chart.link_ttl.as_deref(), d.link_ttl);
    let mut prob = |key: &str, reason: String| {
        p.push(Problem {
            file: file.into(),
            key: key.into(),
            reason,
        })
    };
    let width = chart.width.unwrap_or(d.width);
    let height = chart.height.unwrap_or(d.height);
    if !(200..=4000).contains(&width) {
        prob(
            "chart.width",
            format!("{width} is outside 200..=4000 pixels"),
        );
    }
    if !(120..=4000).contains(&height) {
        prob(
            "chart.height",
            format!("{height} is outside 120..=4000 pixels"),
        );
    }
    let max_series = chart.max_series.unwrap_or(d.max_series);
    if !(1..=50).contains(&max_series) {
        prob(
            "chart.max_series",
            format!("{max_series} is outside 1..=50"),
        );
    }
    let cache_entries = chart.cache_entries.unwrap_or(d.cache_entries);
    if cache_entries == 0 {
        prob("chart.cache_entries", "must be at least 1".into());
    }
    if range < Duration::from_secs(60) {
        prob("chart.range", "must be at least 1m".into());
    }
    let cjk_font = match &chart.cjk_font_path {
        None => None,
        Some(path) => match load_font(path) {
            Ok(b) => Some(b),
            Err(e) => {
                prob("chart.cjk_font_path", e);
                None
            }
        },
    };
    let context = match chart.context {
        None => d.context.clone(),
        Some(list) => context_queries(list, "chart.context", &mut |k, r| prob(k, r)),
    };
    let url = env.get("ROUTER_PROMETHEUS_URL").or(prometheus_url);
    let password = env.get("ROUTER_PROMETHEUS_PASSWORD").or(auth.password);
    let bearer = env
        .get("ROUTER_PROMETHEUS_BEARER_TOKEN")
        .or(auth.bearer_token);
    let auth = match (auth.username, password, bearer) {
        (None, None, None) => PromAuth::None,
        (Some(username), Some(password), None) => PromAuth::Basic { username, password },
        (None, None, Some(token)) => PromAuth::Bearer(token),
        (Some(_), None, None) => {
            prob(
                "prometheus_auth.password",
                "a username needs a password (or ROUTER_PROMETHEUS_PASSWORD)".into(),
            );
            PromAuth::None
        }
        (None, Some(_), None) => {
            prob(
                "prometheus_auth.username",
                "a password needs a username".into(),
            );
            PromAuth::None
        }
        (_, _, Some(_)) => {
            prob(
                "prometheus_auth",
                "give either username/password or bearer_token, not both".into(),
            );
            PromAuth::None
        }
    };
    let prometheus = match url.filter(|u| !u.is_empty()) {
        None => {
            if auth != PromAuth::None {
                prob(
                    "prometheus_auth",
                    "credentials are set but prometheus_url is not".into(),
                );
            }
            None
        }
        Some(u) => match reqwest::Url::parse(&u) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.username().is_empty()
                    && url.password().is_none() =>
            {
                Some(PromTarget { url, auth })
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                // Not echoed: the value holds a credential.
                prob(
                    "prometheus_url",
                    "must not carry credentials; use prometheus_auth (the value is not shown)"
                        .into(),
                );
                None
            }
            _ => {
                prob(
                    "prometheus_url",
                    format!(
                        "{u:?} is not an absolute http(s) URL such as \"http://prometheus:9090\""
                    ),
                );
                None
            }
        },
    };
    ChartSettings {
        prometheus,
        range,
        deadline,
        width,
        height,
        max_series,
        cjk_font,
        link_ttl,
        cache_entries,
        context,
    }
}

/// DejaVu Sans, subset (see `alert-router/assets/README.md`).
pub const EMBEDDED_FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");

fn q(title: &str, query: &str, unit: Unit, show_label: Option<&str>) -> ContextQuery {
    ContextQuery {
        title: title.into(),
        query: query.into(),
        unit,
        show_label: show_label.map(String::from),
    }
}

/// The trading book of the alert's `strategy` (metric names from the contract).
pub fn trading_defaults() -> Vec<ContextQuery> {
    vec![
        q(
            "Equity",
            r#"sum(trading_equity{strategy="{{strategy}}"})"#,
            Unit::Money,
            None,
        ),
        q(
            "Daily PnL",
            r#"sum(trading_pnl_daily{strategy="{{strategy}}"})"#,
            Unit::Money,
            None,
        ),
        q(
            "Drawdown",
            r#"min(trading_drawdown_ratio{strategy="{{strategy}}"})"#,
            Unit::Percent,
            None,
        ),
        q(
            "Gross exposure",
            r#"sum(trading_gross_exposure{strategy="{{strategy}}"})"#,
            Unit::Money,
            None,
        ),
        q(
            "Open positions",
            r#"sum(trading_positions_open{strategy="{{strategy}}"})"#,
            Unit::Count,
            None,
        ),
        q(
            "Largest position",
            r#"topk(1, trading_position_notional{strategy="{{strategy}}"})"#,
            Unit::Money,
            Some("symbol"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        url: Option<&str>,
        auth: FilePromAuth,
        chart: FileChart,
        env: &[(&str, &str)],
    ) -> (ChartSettings, Vec<Problem>) {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut p = Vec::new();
        let s = validate(url.map(String::from), auth, chart, &env, "r.yml", &mut p);
        (s, p)
    }

    #[test]
    fn defaults_and_env() {
        let (s, p) = run(None, FilePromAuth::default(), FileChart::default(), &[]);
        assert!(p.is_empty());
        assert!(s.prometheus.is_none());
        assert_eq!((s.width, s.height, s.max_series), (800, 300, 8));
        assert_eq!(s.deadline, Duration::from_secs(2));
        assert_eq!(s.range, Duration::from_secs(3600));
        let (s, p) = run(
            Some("http://file:9090"),
            FilePromAuth {
                username: Some("u".into()),
                ..Default::default()
            },
            FileChart::default(),
            &[
                ("ROUTER_PROMETHEUS_URL", "https://prom.example/base/"),
                ("ROUTER_PROMETHEUS_PASSWORD", "pw-from-env"),
            ],
        );
        assert!(p.is_empty(), "{p:?}");
        let t = s.prometheus.unwrap();
        assert_eq!(t.url.as_str(), "https://prom.example/base/");
        assert_eq!(
            t.auth,
            PromAuth::Basic {
                username: "u".into(),
                password: "pw-from-env".into()
            }
        );
        assert!(!format!("{t:?}").contains("pw-from-env"));
    }

    #[test]
    fn bad_values_name_their_key_and_hide_secrets() {
        let (_, p) = run(
            Some("http://user:hunter2@prom:9090"),
            FilePromAuth {
                bearer_token: Some("tok".into()),
                password: Some("pw".into()),
                ..Default::default()
            },
            FileChart {
                range: Some("soon".into()),
                deadline: Some("0s".into()),
                width: Some(10),
                max_series: Some(0),
                cjk_font_path: Some("/nonexistent/font.ttf".into()),
                ..Default::default()
            },
            &[],
        );
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "chart.range",
                "chart.deadline",
                "chart.width",
                "chart.max_series",
                "chart.cjk_font_path",
                "prometheus_auth",
                "prometheus_url"
            ],
            "{p:?}"
        );
        assert!(
            p.iter()
                .all(|p| !p.reason.contains("hunter2") && !p.reason.contains("tok\""))
        );
        let (_, p) = run(
            Some("prom:9090"),
            FilePromAuth::default(),
            FileChart::default(),
            &[],
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].reason.contains("absolute http(s) URL"), "{p:?}");
    }

    #[test]
    fn a_cjk_font_must_be_a_font() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("x.ttf");
        std::fs::write(&bogus, b"not a font").unwrap();
        let (_, p) = run(
            None,
            FilePromAuth::default(),
            FileChart {
                cjk_font_path: Some(bogus),
                ..Default::default()
            },
            &[],
        );
        assert_eq!(p.len(), 1);
        assert!(
            p[0].reason.contains("is not a TrueType/OpenType font"),
            "{p:?}"
        );
        let good = dir.path().join("f.ttf");
        std::fs::write(&good, EMBEDDED_FONT).unwrap();
        let (s, p) = run(
            None,
            FilePromAuth::default(),
            FileChart {
                cjk_font_path: Some(good),
                ..Default::default()
            },
            &[],
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.cjk_font.map(<[u8]>::len), Some(EMBEDDED_FONT.len()));
    }
}
