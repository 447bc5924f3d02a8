//! node_exporter 1.5's `systemd` collector: unit states, timers, sockets and the manager's
//! state, read from systemd's D-Bus API where node_exporter reads them: the system bus
//! (`DBUS_SYSTEM_BUS_ADDRESS`, else `/var/run/dbus/system_bus_socket`). node_exporter's hidden
//! `--collector.systemd.private` is refused at start (`settings.rs` says why).
//!
//! One connection per scrape, as node_exporter: nothing is held between scrapes, and a bus
//! that restarted is simply connected to afresh. The whole exchange runs under [`DEADLINE`],
//! below the per-collector limit of `mod.rs`, so a bus that accepts but never answers fails
//! the collector (success 0) and frees the scrape thread; dropping the future closes the
//! socket and aborts zbus's reader task, so nothing is left behind. Without a bus the connect
//! fails at once (ENOENT), before anything is allocated for the answer.
//!
//! The per-unit property reads (one to five per unit) are pipelined, [`IN_FLIGHT`] at a time
//! on the one connection (node_exporter runs its four families in parallel goroutines), so a
//! host with hundreds of units stays well inside the deadline.

use super::settings::HostConfig;
use super::{Ctx, NodeCollector, NodeError};
use crate::metrics::{Families, Family};
use futures::StreamExt as _;
use regex::Regex;
use std::collections::BTreeMap;
use std::time::Duration;
use zbus::address::transport::{Transport, UnixSocket};
use zbus::zvariant::{ObjectPath, OwnedValue};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const DEFAULT_SYSTEM_BUS: &str = "unix:path=/var/run/dbus/system_bus_socket";

/// The states `node_systemd_units` and `node_systemd_unit_state` always carry.
const STATES: [&str; 5] = ["active", "activating", "deactivating", "inactive", "failed"];

/// systemd 212 added the manager's `SystemState` and the timers' `LastTriggerUSec`; below it
/// node_exporter skips both.
const MIN_VERSION_SYSTEM_STATE: f64 = 212.0;

/// The whole exchange, connect to last answer. Below `mod.rs`'s one-second per-collector
/// limit, so the thread is free again by the time a later scrape would look for it.
const DEADLINE: Duration = Duration::from_millis(900);

/// Property reads in flight at once on the connection.
const IN_FLIGHT: usize = 16;

/// What the flags and `host:` keys set (node_exporter's `--collector.systemd.*`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub task_metrics: bool,
    pub restarts_metrics: bool,
    pub start_time_metrics: bool,
}

pub struct Systemd {
    /// The unit filters, anchored as node_exporter anchors them; an error when they do not
    /// compile (validation reports that at load; a caller that skipped it gets success 0).
    filters: Result<(Regex, Regex), String>,
    opts: Options,
}

impl Systemd {
    pub fn new(config: &HostConfig) -> Systemd {
        Systemd {
            filters: config.systemd_unit_filters().map_err(|(_, why)| why),
            opts: config.systemd_options(),
        }
    }
}

impl NodeCollector for Systemd {
    fn update(&self, _ctx: &Ctx<'_>, out: &mut Families) -> Result<(), NodeError> {
        let (include, exclude) = self.filters.as_ref().map_err(|why| bus_error(why))?;
        let scrape = async {
            tokio::time::timeout(DEADLINE, scrape(self.opts, include, exclude))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {DEADLINE:?}")))
        };
        // The node collectors run on a blocking thread of the exporter's runtime: drive the
        // exchange from here with that runtime's I/O and timers. Outside one (a unit test),
        // a throwaway runtime does.
        let result = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(scrape),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| bus_error(&e))?
                .block_on(scrape),
        };
        let fams = result.map_err(|why| bus_error(&why))?;
        out.0.extend(fams.0);
        Ok(())
    }
}

fn bus_error(why: &dyn std::fmt::Display) -> NodeError {
    NodeError::Io {
        path: "systemd over D-Bus".to_string(),
        source: std::io::Error::other(why.to_string()),
    }
}

/// One row of the manager's `ListUnits` (the fields node_exporter reads).
struct Unit<'a> {
    name: &'a str,
    load_state: &'a str,
    active_state: &'a str,
}

/// `ListUnits`' signature `a(ssssssouso)`, borrowed from the reply.
type ListedUnit<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    ObjectPath<'a>,
    u32,
    &'a str,
    ObjectPath<'a>,
);

/// What one filtered unit contributes beyond its state; `None` where node_exporter publishes
/// nothing (flag off, not that kind of unit, or the property could not be read).
#[derive(Default)]
struct Details {
    kind: String,
    restarts: Option<u32>,
    start_time: Option<f64>,
    tasks_current: Option<u64>,
    tasks_max: Option<u64>,
    last_trigger: Option<u64>,
    accepted: Option<u32>,
    connections: Option<u32>,
    refused: Option<u32>,
}

async fn connect() -> zbus::Result<zbus::Connection> {
    // godbus takes an empty variable as unset.
    let text = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty());
    let address: zbus::Address = text.as_deref().unwrap_or(DEFAULT_SYSTEM_BUS).parse()?;
    // A socket file (what a system bus is) we connect ourselves, on the runtime's reactor:
    // zbus would connect it with `spawn_blocking`, a second thread (and malloc arena) kept
    // alive between scrapes, while this thread is the blocking one already.
    let builder = match address.transport() {
        Transport::Unix(unix) => match unix.path() {
            UnixSocket::File(path) => {
                zbus::connection::Builder::unix_stream(tokio::net::UnixStream::connect(path).await?)
            }
            _ => zbus::connection::Builder::address(address)?,
        },
        _ => zbus::connection::Builder::address(address)?,
    };
    builder
        .auth_mechanism(zbus::AuthMechanism::External)
        .method_timeout(DEADLINE)
        .build()
        .await
}

async fn scrape(opts: Options, include: &Regex, exclude: &Regex) -> Result<Families, String> {
    let conn = connect()
        .await
        .map_err(|e| format!("couldn't get dbus connection: {e}"))?;
    let mut out = Families::default();

    let (version, version_label) = version(&conn).await;
    if version < MIN_VERSION_SYSTEM_STATE {
        tracing::debug!(
            version,
            "systemd older than 212: no system state nor timer metrics"
        );
    }
    let mut f = Family::gauge("node_systemd_version", "Detected systemd version");
    f.add(&[("version", &version_label)], version);
    out.push(f);

    let reply = conn
        .call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "ListUnits", &())
        .await
        .map_err(|e| format!("couldn't get units: {e}"))?;
    let body = reply.body();
    let listed: Vec<ListedUnit<'_>> = body
        .deserialize()
        .map_err(|e| format!("couldn't get units: {e}"))?;
    let mut all: Vec<Unit<'_>> = listed
        .iter()
        .map(|u| Unit {
            name: u.0,
            load_state: u.2,
            active_state: u.3,
        })
        .collect();
    all.sort_unstable_by(|a, b| a.name.cmp(b.name));

    // The summary counts every unit, whatever its load state and the filters.
    let mut summary: BTreeMap<&str, f64> = STATES.iter().map(|s| (*s, 0.0)).collect();
    for u in &all {
        *summary.entry(u.active_state).or_insert(0.0) += 1.0;
    }
    let mut f = Family::gauge("node_systemd_units", "Summary of systemd unit states");
    for (state, n) in &summary {
        f.add(&[("state", state)], *n);
    }
    out.push(f);

    let units: Vec<&Unit<'_>> = all
        .iter()
        .filter(|u| {
            include.is_match(u.name) && !exclude.is_match(u.name) && u.load_state == "loaded"
        })
        .collect();
    let timers = version >= MIN_VERSION_SYSTEM_STATE;
    let details: Vec<Details> =
        futures::stream::iter(units.iter().map(|u| details(&conn, u, opts, timers)))
            .buffered(IN_FLIGHT)
            .collect()
            .await;
    publish_units(&mut out, &units, &details);

    if timers {
        let state = get(&conn, MANAGER_PATH.to_string(), MANAGER, "SystemState")
            .await
            .and_then(|v| String::try_from(v).map_err(zbus::Error::from))
            .map_err(|e| format!("couldn't get system state: {e}"))?;
        out.gauge(
            "node_systemd_system_running",
            "Whether the system is operational (see 'systemctl is-system-running')",
            if state == "running" { 1.0 } else { 0.0 },
        );
    }
    Ok(out)
}

fn publish_units(out: &mut Families, units: &[&Unit<'_>], details: &[Details]) {
    let mut state = Family::gauge("node_systemd_unit_state", "Systemd unit");
    let mut restarts = Family::counter(
        "node_systemd_service_restart_total",
        "Service unit count of Restart triggers",
    );
    let mut start_time = Family::gauge(
        "node_systemd_unit_start_time_seconds",
        "Start time of the unit since unix epoch in seconds.",
    );
    let mut tasks_current = Family::gauge(
        "node_systemd_unit_tasks_current",
        "Current number of tasks per Systemd unit",
    );
    let mut tasks_max = Family::gauge(
        "node_systemd_unit_tasks_max",
        "Maximum number of tasks per Systemd unit",
    );
    let mut last_trigger = Family::gauge(
        "node_systemd_timer_last_trigger_seconds",
        "Seconds since epoch of last trigger.",
    );
    let mut accepted = Family::counter(
        "node_systemd_socket_accepted_connections_total",
        "Total number of accepted socket connections",
    );
    let mut connections = Family::gauge(
        "node_systemd_socket_current_connections",
        "Current number of socket connections",
    );
    // A gauge in 1.5, despite the name.
    let mut refused = Family::gauge(
        "node_systemd_socket_refused_connections_total",
        "Total number of refused socket connections",
    );
    for (u, d) in units.iter().zip(details) {
        let name = [("name", u.name)];
        for s in STATES {
            let v = if s == u.active_state { 1.0 } else { 0.0 };
            state.add(&[("name", u.name), ("state", s), ("type", &d.kind)], v);
        }
        if let Some(n) = d.restarts {
            restarts.add(&name, f64::from(n));
        }
        if let Some(t) = d.start_time {
            start_time.add(&name, t);
        }
        if let Some(n) = d.tasks_current {
            tasks_current.add(&name, n as f64);
        }
        if let Some(n) = d.tasks_max {
            tasks_max.add(&name, n as f64);
        }
        if let Some(us) = d.last_trigger {
            last_trigger.add(&name, us as f64 / 1e6);
        }
        if let Some(n) = d.accepted {
            accepted.add(&name, f64::from(n));
        }
        if let Some(n) = d.connections {
            connections.add(&name, f64::from(n));
        }
        if let Some(n) = d.refused {
            refused.add(&name, f64::from(n));
        }
    }
    out.push(state);
    for f in [
        restarts,
        start_time,
        tasks_current,
        tasks_max,
        last_trigger,
        accepted,
        connections,
        refused,
    ] {
        out.push(f);
    }
}

/// The properties node_exporter reads for one filtered unit, in its order and with its
/// skips (a socket whose `NAccepted` cannot be read publishes none of the three).
async fn details(conn: &zbus::Connection, u: &Unit<'_>, opts: Options, timers: bool) -> Details {
    let path = unit_path(u.name);
    let mut d = Details::default();
    let service = u.name.ends_with(".service");
    let typed =
        |iface: &'static str, prop: &'static str| prop_of(conn, path.clone(), u.name, iface, prop);
    if service {
        d.kind = typed("org.freedesktop.systemd1.Service", "Type")
            .await
            .and_then(|v| String::try_from(v).ok())
            .unwrap_or_default();
    } else if u.name.ends_with(".mount") {
        d.kind = typed("org.freedesktop.systemd1.Mount", "Type")
            .await
            .and_then(|v| String::try_from(v).ok())
            .unwrap_or_default();
    }
    if opts.restarts_metrics && service {
        d.restarts = typed("org.freedesktop.systemd1.Service", "NRestarts")
            .await
            .and_then(|v| u32::try_from(v).ok());
    }
    if opts.start_time_metrics {
        d.start_time = if u.active_state != "active" {
            Some(0.0)
        } else {
            typed("org.freedesktop.systemd1.Unit", "ActiveEnterTimestamp")
                .await
                .and_then(|v| u64::try_from(v).ok())
                .map(|us| us as f64 / 1e6)
        };
    }
    if opts.task_metrics && service {
        // systemd reports "no value" as u64::MAX; node_exporter leaves those out.
        let known = |v: OwnedValue| u64::try_from(v).ok().filter(|n| *n != u64::MAX);
        d.tasks_current = typed("org.freedesktop.systemd1.Service", "TasksCurrent")
            .await
            .and_then(known);
        d.tasks_max = typed("org.freedesktop.systemd1.Service", "TasksMax")
            .await
            .and_then(known);
    }
    if timers && u.name.ends_with(".timer") {
        d.last_trigger = typed("org.freedesktop.systemd1.Timer", "LastTriggerUSec")
            .await
            .and_then(|v| u64::try_from(v).ok());
    }
    if u.name.ends_with(".socket") {
        let socket = "org.freedesktop.systemd1.Socket";
        let count = |v: OwnedValue| u32::try_from(v).ok();
        d.accepted = typed(socket, "NAccepted").await.and_then(count);
        if d.accepted.is_some() {
            d.connections = typed(socket, "NConnections").await.and_then(count);
        }
        if d.connections.is_some() {
            d.refused = typed(socket, "NRefused").await.and_then(count);
        }
    }
    d
}

/// One property of a unit; a failure is logged (debug, as node_exporter) and read as absent.
async fn prop_of(
    conn: &zbus::Connection,
    path: String,
    unit: &str,
    iface: &str,
    prop: &str,
) -> Option<OwnedValue> {
    match get(conn, path, iface, prop).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(unit, property = prop, error = %e, "couldn't read unit property");
            None
        }
    }
}

async fn get(
    conn: &zbus::Connection,
    path: String,
    iface: &str,
    prop: &str,
) -> zbus::Result<OwnedValue> {
    let path = ObjectPath::try_from(path)?;
    let reply = conn
        .call_method(Some(DEST), path, Some(PROPERTIES), "Get", &(iface, prop))
        .await?;
    reply.body().deserialize::<OwnedValue>()
}

/// The manager's version as node_exporter reads it: the label is the `Version` property as Go
/// quotes it minus the outer quotes, the value its first `NNN[.N]`; `(0, "")` when either
/// is missing.
async fn version(conn: &zbus::Connection) -> (f64, String) {
    let raw = match get(conn, MANAGER_PATH.to_string(), MANAGER, "Version")
        .await
        .and_then(|v| String::try_from(v).map_err(zbus::Error::from))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "unable to get the systemd version, defaulting to 0");
            return (0.0, String::new());
        }
    };
    parse_version(&raw)
}

fn parse_version(raw: &str) -> (f64, String) {
    let label = go_quote_inner(raw);
    match version_number(&label).and_then(|n| n.parse::<f64>().ok()) {
        Some(v) => (v, label),
        None => (0.0, String::new()),
    }
}

/// The leftmost match of node_exporter's `[0-9]{3,}(\.[0-9]+)?`: the first run of three or
/// more digits, with a `.` and the digits after it when there are some.
fn version_number(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let digits_from = |i: usize| b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = 0;
    while i < b.len() {
        let run = digits_from(i);
        if run >= 3 {
            let mut end = i + run;
            if b.get(end) == Some(&b'.') {
                let frac = digits_from(end + 1);
                if frac > 0 {
                    end += 1 + frac;
                }
            }
            return s.get(i..end);
        }
        i += run.max(1);
    }
    None
}

/// `strconv.Quote(s)` without its outer quotes (godbus formats a string property that way,
/// and node_exporter trims only the quotes): backslash, quote and control characters
/// escaped, printable text as is.
fn go_quote_inner(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The object path of a unit, escaped as go-systemd's `PathBusEscape` (and systemd) do:
/// every byte but `[A-Za-z0-9]`, and a leading digit, becomes `_` and its hex.
fn unit_path(name: &str) -> String {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    if name.is_empty() {
        p.push('_');
        return p;
    }
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            p.push(char::from(b));
        } else {
            p.push_str(&format!("_{b:x}"));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_are_escaped_as_go_systemd_does() {
        assert_eq!(
            unit_path("a-b\\x2dc@x.service"),
            "/org/freedesktop/systemd1/unit/a_2db_5cx2dc_40x_2eservice"
        );
        assert_eq!(
            unit_path("1x.timer"),
            "/org/freedesktop/systemd1/unit/_31x_2etimer"
        );
        assert_eq!(unit_path(""), "/org/freedesktop/systemd1/unit/_");
    }

    #[test]
    fn versions_parse_as_node_exporter_parses_them() {
        assert_eq!(
            parse_version("252.39-1~deb12u2"),
            (252.39, "252.39-1~deb12u2".to_string())
        );
        assert_eq!(parse_version("249"), (249.0, "249".to_string()));
        assert_eq!(parse_version("v25"), (0.0, String::new()));
        assert_eq!(parse_version("12.3456."), (3456.0, "12.3456.".to_string()));
        assert_eq!(parse_version("1234.x"), (1234.0, "1234.x".to_string()));
        assert_eq!(
            parse_version("255 \"x\"\t"),
            (255.0, "255 \\\"x\\\"\\t".to_string())
        );
    }
}
