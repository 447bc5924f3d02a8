//! Building metric families by hand for each scrape, rendered straight to the text format.
//!
//! Collectors build fresh families on every scrape instead of mutating registered vectors:
//! concurrent scrapes then share no state, and a series that disappears at the source
//! disappears from the output (no stale label sets). Each sample is written as its exposition
//! line the moment it is added, into the family's one buffer: a scrape of ~1,000 series then
//! costs a few hundred allocations instead of the protobuf structs (a `Metric`, a `LabelPair`
//! and two `String`s per label) the `prometheus` crate's encoder needs.

use std::fmt::Write as _;

/// The `Content-Type` of the text exposition format we write (version 0.0.4).
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `# TYPE` of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }
}

/// A finished family: its header and its rendered sample lines.
#[derive(Clone, Debug)]
pub struct MetricFamily {
    name: String,
    help: String,
    kind: Kind,
    body: String,
    samples: usize,
}

impl MetricFamily {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// How many series (histograms count once) the family holds.
    pub fn len(&self) -> usize {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// Appends `# HELP`, `# TYPE` and the samples to `out`.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP ");
        out.push_str(&self.name);
        out.push(' ');
        escape_help(&self.help, out);
        out.push_str("\n# TYPE ");
        out.push_str(&self.name);
        out.push(' ');
        out.push_str(self.kind.as_str());
        out.push('\n');
        out.push_str(&self.body);
    }
}

/// One metric family under construction.
pub struct Family {
    mf: MetricFamily,
    /// Labels written first on every series (already rendered, `name="value",` each): a
    /// trading source's `source` label, added without touching the code that builds the
    /// family's own labels.
    constant: String,
}

impl Family {
    pub fn new(name: &str, help: &str, kind: Kind) -> Family {
        Family {
            mf: MetricFamily {
                name: name.to_string(),
                help: help.to_string(),
                kind,
                body: String::new(),
                samples: 0,
            },
            constant: String::new(),
        }
    }

    /// Puts `labels` on every series added from now on, before the series' own labels.
    pub fn with_constant_labels(mut self, labels: &[(&str, &str)]) -> Family {
        self.constant.clear();
        for (k, v) in labels {
            self.constant.push_str(k);
            self.constant.push_str("=\"");
            escape_label_value(v, &mut self.constant);
            self.constant.push_str("\",");
        }
        self
    }

    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, Kind::Gauge)
    }

    pub fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, Kind::Counter)
    }

    pub fn histogram(name: &str, help: &str) -> Family {
        Family::new(name, help, Kind::Histogram)
    }

    /// node_exporter publishes its generic /proc tables (netstat, vmstat) untyped, and
    /// postgres_exporter the columns it does not know: dashboards expect the same exposition.
    pub fn untyped(name: &str, help: &str) -> Family {
        Family::new(name, help, Kind::Untyped)
    }

    pub fn summary(name: &str, help: &str) -> Family {
        Family::new(name, help, Kind::Summary)
    }

    pub fn name(&self) -> &str {
        &self.mf.name
    }

    pub fn is_empty(&self) -> bool {
        self.mf.samples == 0
    }

    /// Adds one sample with `labels` (name, value) pairs.
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Family {
        write_line(
            &mut self.mf.body,
            &self.constant,
            &self.mf.name,
            "",
            labels,
            None,
            value,
        );
        self.mf.samples += 1;
        self
    }

    /// Adds one sample line named `sample` (the family's name, or its `_bucket`, `_sum`,
    /// `_count` series), for families copied from elsewhere (the textfile collector).
    pub fn add_sample(&mut self, sample: &str, labels: &[(&str, &str)], value: f64) -> &mut Family {
        write_line(
            &mut self.mf.body,
            &self.constant,
            sample,
            "",
            labels,
            None,
            value,
        );
        self.mf.samples += 1;
        self
    }

    /// Adds one histogram series: `buckets` are (upper bound, cumulative count) pairs; the
    /// `+Inf` bucket is written from `count`.
    pub fn add_histogram(
        &mut self,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) -> &mut Family {
        let (body, c, name) = (&mut self.mf.body, &self.constant, &self.mf.name);
        let mut le = String::new();
        for (bound, n) in buckets.iter().filter(|(b, _)| b.is_finite()) {
            le.clear();
            write_value(&mut le, *bound);
            write_line(
                body,
                c,
                name,
                "_bucket",
                labels,
                Some(("le", &le)),
                *n as f64,
            );
        }
        write_line(
            body,
            c,
            name,
            "_bucket",
            labels,
            Some(("le", "+Inf")),
            count as f64,
        );
        write_sum_count(body, c, name, labels, sum, count);
        self.mf.samples += 1;
        self
    }

    /// Adds one summary series: `quantiles` are (quantile, value) pairs (redis_exporter's
    /// latency percentiles are published this way).
    pub fn add_summary(
        &mut self,
        labels: &[(&str, &str)],
        quantiles: &[(f64, f64)],
        count: u64,
        sum: f64,
    ) -> &mut Family {
        let (body, c, name) = (&mut self.mf.body, &self.constant, &self.mf.name);
        let mut q = String::new();
        for (quantile, v) in quantiles {
            q.clear();
            write_value(&mut q, *quantile);
            write_line(body, c, name, "", labels, Some(("quantile", &q)), *v);
        }
        write_sum_count(body, c, name, labels, sum, count);
        self.mf.samples += 1;
        self
    }

    pub fn into_inner(self) -> MetricFamily {
        self.mf
    }
}

/// One exposition line: `name` + `suffix`, the labels (`constant` first, `extra` last), the
/// value.
fn write_line(
    out: &mut String,
    constant: &str,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    write_labels(out, constant, labels, extra);
    out.push(' ');
    write_value(out, value);
    out.push('\n');
}

/// The `_sum` and `_count` lines every histogram and summary series ends with.
fn write_sum_count(
    out: &mut String,
    constant: &str,
    name: &str,
    labels: &[(&str, &str)],
    sum: f64,
    count: u64,
) {
    write_line(out, constant, name, "_sum", labels, None, sum);
    write_line(out, constant, name, "_count", labels, None, count as f64);
}

/// `extra` is the one label a series of a histogram (`le`) or summary (`quantile`) adds.
fn write_labels(
    out: &mut String,
    constant: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
) {
    if constant.is_empty() && labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    // `constant` ends with a comma, dropped below when no other label follows.
    out.push_str(constant);
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(v, out);
        out.push('"');
    }
    if first && !constant.is_empty() {
        out.pop();
    }
    out.push('}');
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(help: &str, out: &mut String) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Shortest text that parses back to `v` (integers without a fraction, as Go writes them).
pub fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The families a collector produced, in the order it produced them.
#[derive(Default)]
pub struct Families(pub Vec<MetricFamily>);

impl Families {
    /// Keeps `f` unless it has no samples (the text format has no way to say "no series").
    pub fn push(&mut self, f: Family) {
        if !f.is_empty() {
            self.0.push(f.into_inner());
        }
    }

    /// A one-sample gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        let mut f = Family::gauge(name, help);
        f.add(&[], value);
        self.push(f);
    }

    /// A one-sample counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        let mut f = Family::counter(name, help);
        f.add(&[], value);
        self.push(f);
    }

    /// A one-sample untyped metric without labels.
    pub fn untyped(&mut self, name: &str, help: &str, value: f64) {
        let mut f = Family::untyped(name, help);
        f.add(&[], value);
        self.push(f);
    }
}

/// Joins families of the same name into one, at the place of the first, so that a name has
/// one `# TYPE` line and its series stay together, as the text format requires (several
/// trading sources, each labelled `source`, publish the same families). A later family of
/// another kind under the same name would make the exposition invalid: it is dropped.
pub fn merge_same_names(families: Vec<MetricFamily>) -> Vec<MetricFamily> {
    // The common case (no name twice) costs one set of borrowed names, no copies.
    let mut names = std::collections::HashSet::with_capacity(families.len());
    if families.iter().all(|f| names.insert(f.name.as_str())) {
        return families;
    }
    drop(names);
    let mut out: Vec<MetricFamily> = Vec::with_capacity(families.len());
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for f in families {
        match index.get(f.name.as_str()) {
            Some(&i) => {
                let first = &mut out[i];
                if first.kind == f.kind {
                    first.body.push_str(&f.body);
                    first.samples += f.samples;
                } else {
                    tracing::warn!(family = %f.name, "two kinds under one family name; dropped the second");
                }
            }
            None => {
                index.insert(f.name.clone(), out.len());
                out.push(f);
            }
        }
    }
    out
}

/// Renders families in the Prometheus text format (version 0.0.4).
pub fn encode(families: &[MetricFamily]) -> String {
    let mut out = String::with_capacity(families.iter().map(|f| f.body.len() + 128).sum());
    for f in families {
        f.render(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_escapes_and_formats_like_go() {
        let mut f = Family::counter("a_total", "Help with \\ and\nnewline.");
        f.add(&[("x", "q\"b\\s\nn"), ("y", "")], 12.0);
        f.add(&[], 0.119_000_000_000_000_01);
        let mut g = Family::gauge("g", "G.");
        g.add(&[], f64::NAN)
            .add(&[], f64::NEG_INFINITY)
            .add(&[], -125000.0);
        let text = encode(&[f.into_inner(), g.into_inner()]);
        assert_eq!(
            text,
            "# HELP a_total Help with \\\\ and\\nnewline.\n# TYPE a_total counter\n\
             a_total{x=\"q\\\"b\\\\s\\nn\",y=\"\"} 12\na_total 0.11900000000000001\n\
             # HELP g G.\n# TYPE g gauge\ng NaN\ng -Inf\ng -125000\n"
        );
    }

    #[test]
    fn constant_labels_come_first_and_same_names_merge() {
        let mut a = Family::gauge("g", "G.").with_constant_labels(&[("source", "ft\"bot")]);
        a.add(&[], 1.0).add(&[("strategy", "s")], 2.0);
        let mut h = Family::histogram("h", "H.").with_constant_labels(&[("source", "x")]);
        h.add_histogram(&[], &[(1.0, 1)], 2, 3.0);
        let mut b = Family::gauge("g", "G2.");
        b.add(&[("strategy", "t")], 3.0);
        let mut c = Family::counter("g", "C.");
        c.add(&[], 4.0);
        let merged = merge_same_names(vec![
            a.into_inner(),
            h.into_inner(),
            b.into_inner(),
            c.into_inner(),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].len(), 3);
        assert_eq!(
            encode(&merged),
            "# HELP g G.\n# TYPE g gauge\ng{source=\"ft\\\"bot\"} 1\n\
             g{source=\"ft\\\"bot\",strategy=\"s\"} 2\ng{strategy=\"t\"} 3\n\
             # HELP h H.\n# TYPE h histogram\nh_bucket{source=\"x\",le=\"1\"} 1\n\
             h_bucket{source=\"x\",le=\"+Inf\"} 2\nh_sum{source=\"x\"} 3\nh_count{source=\"x\"} 2\n"
        );
    }

    #[test]
    fn histogram_lines() {
        let mut h = Family::histogram("h", "H.");
        h.add_histogram(&[("s", "a")], &[(0.5, 1), (f64::INFINITY, 3)], 3, 2.5);
        let text = encode(&[h.into_inner()]);
        assert_eq!(
            text,
            "# HELP h H.\n# TYPE h histogram\nh_bucket{s=\"a\",le=\"0.5\"} 1\n\
             h_bucket{s=\"a\",le=\"+Inf\"} 3\nh_sum{s=\"a\"} 2.5\nh_count{s=\"a\"} 3\n"
        );
    }

    #[test]
    fn summary_and_untyped_lines() {
        let mut s = Family::summary("lat", "L.");
        s.add_summary(&[("cmd", "get")], &[(0.5, 11.0), (0.99, 40.5)], 7, 120.0);
        let mut u = Family::untyped("u", "U.");
        u.add(&[], 3.0);
        let text = encode(&[s.into_inner(), u.into_inner()]);
        assert_eq!(
            text,
            "# HELP lat L.\n# TYPE lat summary\nlat{cmd=\"get\",quantile=\"0.5\"} 11\n\
             lat{cmd=\"get\",quantile=\"0.99\"} 40.5\nlat_sum{cmd=\"get\"} 120\n\
             lat_count{cmd=\"get\"} 7\n# HELP u U.\n# TYPE u untyped\nu 3\n"
        );
    }
}
