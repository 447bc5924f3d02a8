//! Requests timed from sending to the last byte of the answer, and their latencies summed up
//! as the router benchmarks print them.

use std::time::{Duration, Instant};

/// One request's answer, read whole.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub body: Vec<u8>,
    /// From sending the request to the answer's last byte.
    pub took: Duration,
}

impl Answer {
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Send `req` and read its whole answer, timed: a latency that stops at the headers would
/// leave out the body the server still has to produce.
pub async fn timed(req: reqwest::RequestBuilder) -> reqwest::Result<Answer> {
    let t = Instant::now();
    let r = req.send().await?;
    let status = r.status();
    let body = r.bytes().await?.to_vec();
    Ok(Answer {
        status,
        body,
        took: t.elapsed(),
    })
}

/// Latencies of a run.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn append(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q`-quantile in milliseconds ([`crate::percentile`]); NaN for a run without a
    /// sample, so it prints as such rather than as a figure.
    pub fn ms(&self, q: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        crate::percentile(&sorted, q)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_milliseconds_and_nan_without_samples() {
        let mut l = Latencies::default();
        assert!(l.ms(0.5).is_nan());
        for ms in [30, 10, 20] {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!((l.ms(0.5), l.ms(1.0), l.len()), (20.0, 30.0, 3));
    }
}
