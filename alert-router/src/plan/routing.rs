//! Label routing: an Alertmanager-style route tree, so operators reuse the matcher syntax they
//! already write (`name="v"`, `!=`, `=~`, `!~`; regexes anchored like Alertmanager's).

use std::collections::BTreeMap;

use crate::core::model::AlertEvent;

use regex::Regex;

#[derive(Debug, Clone)]
pub enum MatchOp {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
}

impl Matcher {
    /// Parse `label=value`, `label!="value"`, `label=~"re"`, `label!~re`.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let s = s.trim();
        let pos = s
            .find(['=', '!'])
            .ok_or_else(|| format!("{s:?} has no operator (=, !=, =~, !~)"))?;
        let label = s[..pos].trim();
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{s:?}: label name {label:?} is not a valid label name"
            ));
        }
        let rest = &s[pos..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            ("=~", v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            ("!~", v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            ("!=", v)
        } else if let Some(v) = rest.strip_prefix('=') {
            ("=", v)
        } else {
            return Err(format!("{s:?} has no operator (=, !=, =~, !~)"));
        };
        let value = value.trim();
        let value = if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value[1..value.len() - 1].replace("\\\"", "\"")
        } else {
            value.to_string()
        };
        let re = |v: &str| {
            Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("{s:?}: invalid regex: {e}"))
        };
        let op = match op {
            "=" => MatchOp::Eq(value),
            "!=" => MatchOp::Ne(value),
            "=~" => MatchOp::Re(re(&value)?),
            _ => MatchOp::NotRe(re(&value)?),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// A missing label matches as the empty string, as in Alertmanager.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map(String::as_str).unwrap_or("");
        match &self.op {
            MatchOp::Eq(x) => v == x,
            MatchOp::Ne(x) => v != x,
            MatchOp::Re(r) => r.is_match(v),
            MatchOp::NotRe(r) => !r.is_match(v),
        }
    }
}

/// A node of the route tree. The root matches everything and is the default route.
#[derive(Debug, Clone)]
pub struct RouteTree {
    pub matchers: Vec<Matcher>,
    pub channels: Vec<String>,
    pub continue_: bool,
    /// Escalation policy name; children inherit it.
    pub escalation: Option<String>,
    /// (time window, policy): while a window is open its policy replaces `escalation`; the
    /// first open window wins. Inherited together with `escalation`.
    pub escalation_during: Vec<(String, String)>,
    /// The context table's queries for alerts of this route (`context:`); `None` inherits
    /// the parent's, and at the root the router-wide `chart.context`.
    pub context: Option<Vec<ContextQuery>>,
    pub routes: Vec<RouteTree>,
}

impl RouteTree {
    /// The channels an alert goes to, deduplicated, in route order. Like Alertmanager: children
    /// are tried in order, the first match wins unless it sets `continue`; when no child matches
    /// the node itself applies.
    pub fn channels_for(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(labels, &mut out);
        let mut seen = std::collections::HashSet::new();
        out.retain(|c| seen.insert(c.clone()));
        out
    }

    /// The escalation policy of an alert: that of the first matching leaf route, inherited
    /// from its nearest ancestor that names one (as Alertmanager inherits receiver settings).
    pub fn policy_for(
        &self,
        labels: &BTreeMap<String, String>,
        window_open: &dyn Fn(&str) -> bool,
    ) -> Option<String> {
        let node = self.policy_walk(labels, None).flatten()?;
        node.escalation_during
            .iter()
            .find(|(w, _)| window_open(w))
            .map(|(_, p)| p.clone())
            .or_else(|| node.escalation.clone())
    }

    /// `None`: this node does not match; `Some(node)`: it matched, and `node` (itself or an
    /// ancestor) carries its escalation settings.
    fn policy_walk<'a>(
        &'a self,
        labels: &BTreeMap<String, String>,
        inherited: Option<&'a RouteTree>,
    ) -> Option<Option<&'a RouteTree>> {
        if !self.matchers.iter().all(|m| m.matches(labels)) {
            return None;
        }
        let mine = if self.escalation.is_some() || !self.escalation_during.is_empty() {
            Some(self)
        } else {
            inherited
        };
        for child in &self.routes {
            if let Some(p) = child.policy_walk(labels, mine) {
                return Some(p);
            }
        }
        Some(mine)
    }

    /// The context queries of an alert: those of the first matching leaf route, inherited
    /// from its nearest ancestor that sets `context` (like `policy_for`); `None` when no route
    /// on the way sets any.
    pub fn context_for(&self, labels: &BTreeMap<String, String>) -> Option<&[ContextQuery]> {
        fn walk<'a>(
            node: &'a RouteTree,
            labels: &BTreeMap<String, String>,
            inherited: Option<&'a [ContextQuery]>,
        ) -> Option<Option<&'a [ContextQuery]>> {
            if !node.matchers.iter().all(|m| m.matches(labels)) {
                return None;
            }
            let mine = node.context.as_deref().or(inherited);
            node.routes
                .iter()
                .find_map(|c| walk(c, labels, mine))
                .or(Some(mine))
        }
        walk(self, labels, None).flatten()
    }

    fn walk(&self, labels: &BTreeMap<String, String>, out: &mut Vec<String>) -> bool {
        if !self.matchers.iter().all(|m| m.matches(labels)) {
            return false;
        }
        let mut any = false;
        for child in &self.routes {
            if child.walk(labels, out) {
                any = true;
                if !child.continue_ {
                    break;
                }
            }
        }
        if !any {
            out.extend(self.channels.iter().cloned());
        }
        true
    }
}

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `-1,234.50`
    Money,
    /// A ratio shown as percent: `-0.0425` → `-4.25%`
    Percent,
    /// `3`
    Count,
    /// As on the chart's axis.
    Plain,
}

/// One row of the context table a route asks for (run by `context::context`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextQuery {
    pub title: String,
    /// PromQL with `{{label}}` placeholders inside double-quoted strings.
    pub query: String,
    pub unit: Unit,
    /// A label of the result to print before the value (the largest position's `symbol`).
    pub show_label: Option<String>,
}

/// Route one event. An alert whose route names an escalation policy is notified by the
/// policy's steps (the chain), not by the route's channels; its resolve goes to the channels
/// the chain notified (the route's channels are the fallback when no chain is stored).
/// `now_ms` decides which time windows are open and who is on call at each step's due time.
pub fn route_event(
    s: &super::Settings,
    event: AlertEvent,
    now_ms: i64,
) -> crate::store::RoutedEvent {
    route_event_via(s, &s.routes, event, now_ms)
}

/// [`route_event`] through another route tree than the main one (a heartbeat monitor's own
/// `route`); policies, windows and rotations are the configuration's.
pub fn route_event_via(
    s: &super::Settings,
    routes: &RouteTree,
    event: AlertEvent,
    now_ms: i64,
) -> crate::store::RoutedEvent {
    let channels = routes.channels_for(&event.labels);
    let at = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let policy = routes
        .policy_for(&event.labels, &|w| s.directory.in_window(w, at))
        .and_then(|p| s.policies.get(&p));
    match policy {
        Some(p) if event.status == crate::core::model::Status::Firing => {
            crate::store::RoutedEvent {
                event,
                channels: Vec::new(),
                escalation: Some(p.plan(now_ms, &s.directory)),
            }
        }
        _ => crate::store::RoutedEvent {
            event,
            channels,
            escalation: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn route(m: &[&str], ch: &[&str], cont: bool, routes: Vec<RouteTree>) -> RouteTree {
        RouteTree {
            matchers: m.iter().map(|s| Matcher::parse(s).unwrap()).collect(),
            channels: ch.iter().map(|s| s.to_string()).collect(),
            continue_: cont,
            escalation: None,
            escalation_during: vec![],
            context: None,
            routes,
        }
    }

    #[test]
    fn matcher_operators() {
        let l = labels(&[("severity", "critical"), ("team", "quant-eq")]);
        assert!(Matcher::parse("severity=critical").unwrap().matches(&l));
        assert!(Matcher::parse("severity=\"critical\"").unwrap().matches(&l));
        assert!(!Matcher::parse("severity!=critical").unwrap().matches(&l));
        assert!(Matcher::parse("team=~\"quant-.*\"").unwrap().matches(&l));
        assert!(
            !Matcher::parse("team=~quant").unwrap().matches(&l),
            "regex is anchored"
        );
        assert!(Matcher::parse("team!~ops.*").unwrap().matches(&l));
        assert!(Matcher::parse("missing=\"\"").unwrap().matches(&l));
        assert!(Matcher::parse("nolabel").is_err());
        assert!(Matcher::parse("a=~(").is_err());
    }

    #[test]
    fn policy_is_the_first_matching_leafs_or_inherited() {
        let mut child = route(&["team=quant"], &["quant"], false, vec![]);
        child.escalation = Some("fast".into());
        let plain = route(&["team=ops"], &["ops"], false, vec![]);
        let mut tree = route(&[], &["default"], false, vec![child, plain]);
        assert_eq!(
            tree.policy_for(&labels(&[("team", "quant")]), &|_| false)
                .as_deref(),
            Some("fast")
        );
        assert_eq!(
            tree.policy_for(&labels(&[("team", "ops")]), &|_| false),
            None
        );
        tree.escalation = Some("base".into());
        tree.escalation_during = vec![("trading".into(), "fast-base".into())];
        let open = |w: &str| w == "trading";
        assert_eq!(
            tree.policy_for(&labels(&[("team", "ops")]), &open)
                .as_deref(),
            Some("fast-base"),
            "the window's policy, inherited with the route's"
        );
        assert_eq!(
            tree.policy_for(&labels(&[("team", "quant")]), &open)
                .as_deref(),
            Some("fast"),
            "a child's own policy replaces the parent's windows too"
        );
        assert_eq!(
            tree.policy_for(&labels(&[("team", "ops")]), &|_| false)
                .as_deref(),
            Some("base")
        );
        assert_eq!(
            tree.policy_for(&labels(&[("team", "x")]), &|_| false)
                .as_deref(),
            Some("base")
        );
        assert_eq!(
            tree.policy_for(&labels(&[("team", "quant")]), &|_| false)
                .as_deref(),
            Some("fast")
        );
    }

    #[test]
    fn first_match_continue_and_default() {
        let tree = route(
            &[],
            &["default"],
            false,
            vec![
                route(&["severity=critical"], &["pager"], true, vec![]),
                route(&["team=~quant.*"], &["quant"], false, vec![]),
                route(&["team=~.+"], &["teams"], false, vec![]),
            ],
        );
        assert_eq!(
            tree.channels_for(&labels(&[("severity", "critical"), ("team", "quant")])),
            vec!["pager", "quant"]
        );
        assert_eq!(
            tree.channels_for(&labels(&[("team", "quant")])),
            vec!["quant"]
        );
        assert_eq!(
            tree.channels_for(&labels(&[("team", "ops")])),
            vec!["teams"]
        );
        assert_eq!(tree.channels_for(&labels(&[("x", "y")])), vec!["default"]);
    }

    #[test]
    fn nested_route_falls_back_to_parent_channels() {
        let tree = route(
            &[],
            &["default"],
            false,
            vec![route(
                &["team=quant"],
                &["quant"],
                false,
                vec![route(
                    &["severity=critical"],
                    &["quant-pager"],
                    false,
                    vec![],
                )],
            )],
        );
        assert_eq!(
            tree.channels_for(&labels(&[("team", "quant"), ("severity", "critical")])),
            vec!["quant-pager"]
        );
        assert_eq!(
            tree.channels_for(&labels(&[("team", "quant"), ("severity", "info")])),
            vec!["quant"]
        );
    }

    #[test]
    fn context_queries_are_inherited_from_the_nearest_route_that_sets_them() {
        let q = |t: &str| {
            Some(vec![ContextQuery {
                title: t.into(),
                query: "up".into(),
                unit: Unit::Plain,
                show_label: None,
            }])
        };
        let mut desk = route(
            &["team=quant"],
            &["quant"],
            false,
            vec![route(&["severity=critical"], &["pager"], false, vec![])],
        );
        desk.context = q("desk");
        let mut risk = route(&["team=risk"], &["risk"], false, vec![]);
        risk.context = q("risk");
        let tree = route(&[], &["default"], false, vec![desk, risk]);
        let title =
            |pairs: &[(&str, &str)]| tree.context_for(&labels(pairs)).map(|q| q[0].title.clone());
        assert_eq!(
            title(&[("team", "quant"), ("severity", "critical")]).as_deref(),
            Some("desk")
        );
        assert_eq!(title(&[("team", "risk")]).as_deref(), Some("risk"));
        assert_eq!(title(&[("team", "other")]), None);
    }
}
