//! Building metric families by hand for each scrape.
//!
//! Collectors build fresh families on every scrape instead of mutating registered vectors:
//! concurrent scrapes then share no state, a series that disappears at the source disappears
//! from the output (no stale label sets), and the text encoder of the `prometheus` crate still
//! writes the exact exposition format the Go exporters do.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Summary,
};

/// One metric family under construction.
pub struct Family {
    mf: MetricFamily,
}

impl Family {
    fn new(name: &str, help: &str, ty: MetricType) -> Family {
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_string());
        mf.set_help(help.to_string());
        mf.set_field_type(ty);
        Family { mf }
    }

    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::GAUGE)
    }

    pub fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::COUNTER)
    }

    pub fn histogram(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::HISTOGRAM)
    }

    pub fn summary(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::SUMMARY)
    }

    /// A family without a declared type: postgres_exporter publishes columns it does not know
    /// this way, and dashboards written against it expect the same exposition.
    pub fn untyped(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::UNTYPED)
    }

    pub fn name(&self) -> &str {
        self.mf.name()
    }

    pub fn is_empty(&self) -> bool {
        self.mf.get_metric().is_empty()
    }

    /// Adds one sample with `labels` (name, value) pairs.
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Family {
        let mut m = Metric::from_label(label_pairs(labels));
        match self.mf.get_field_type() {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            // GAUGE, and UNTYPED stored as a gauge: `encode` writes it with `# TYPE untyped`
            // (the prometheus crate's text encoder cannot write untyped families itself).
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        self.mf.mut_metric().push(m);
        self
    }

    /// Adds one histogram series: `buckets` are (upper bound, cumulative count) pairs.
    pub fn add_histogram(
        &mut self,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) -> &mut Family {
        let mut m = Metric::from_label(label_pairs(labels));
        let mut h = Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            buckets
                .iter()
                .map(|(le, n)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*le);
                    b.set_cumulative_count(*n);
                    b
                })
                .collect(),
        );
        m.set_histogram(h);
        self.mf.mut_metric().push(m);
        self
    }

    /// Adds one summary series: `quantiles` are (quantile, value) pairs.
    pub fn add_summary(
        &mut self,
        labels: &[(&str, &str)],
        quantiles: &[(f64, f64)],
        count: u64,
        sum: f64,
    ) -> &mut Family {
        let mut m = Metric::from_label(label_pairs(labels));
        let mut s = Summary::default();
        s.set_sample_count(count);
        s.set_sample_sum(sum);
        s.set_quantile(
            quantiles
                .iter()
                .map(|(q, v)| {
                    let mut x = Quantile::default();
                    x.set_quantile(*q);
                    x.set_value(*v);
                    x
                })
                .collect(),
        );
        m.set_summary(s);
        self.mf.mut_metric().push(m);
        self
    }

    pub fn into_inner(self) -> MetricFamily {
        self.mf
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut lp = LabelPair::default();
            lp.set_name((*k).to_string());
            lp.set_value((*v).to_string());
            lp
        })
        .collect()
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
}

/// Renders families in the Prometheus text format (version 0.0.4).
pub fn encode(families: &[MetricFamily]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let encoder = prometheus::TextEncoder::new();
    let mut rest = families;
    while !rest.is_empty() {
        let typed = rest
            .iter()
            .position(|f| f.get_field_type() == MetricType::UNTYPED)
            .unwrap_or(rest.len());
        encoder
            .encode_utf8(&rest[..typed], &mut out)
            .expect("families built by Family always have a name and at least one sample");
        if let Some(untyped) = rest.get(typed) {
            // The encoder panics on UNTYPED; the samples are stored as gauges, so encode it as
            // a gauge and rewrite its TYPE line (escaping and number format stay the encoder's).
            let mut as_gauge = untyped.clone();
            as_gauge.set_field_type(MetricType::GAUGE);
            let mut text = String::new();
            encoder
                .encode_utf8(std::slice::from_ref(&as_gauge), &mut text)
                .expect("families built by Family always have a name and at least one sample");
            let from = format!("# TYPE {} gauge\n", untyped.name());
            let to = format!("# TYPE {} untyped\n", untyped.name());
            out.push_str(&text.replacen(&from, &to, 1));
        }
        rest = &rest[(typed + 1).min(rest.len())..];
    }
    out
}
