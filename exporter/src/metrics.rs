//! Building metric families by hand for each scrape.
//!
//! Collectors build fresh families on every scrape instead of mutating registered vectors:
//! concurrent scrapes then share no state, a series that disappears at the source disappears
//! from the output (no stale label sets), and the text encoder of the `prometheus` crate still
//! writes the exact exposition format the Go exporters do.

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
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
    prometheus::TextEncoder::new()
        .encode_utf8(families, &mut out)
        .expect("families built by Family always have a name and at least one sample");
    out
}
