//! What the benchmark binaries share.

pub mod alerts;
pub mod router;
pub mod scrape;
pub mod timing;

/// The `q`-quantile (0.0–1.0) of an ascending slice, nearest rank: the element at
/// round((n − 1) · q). `None` for an empty slice, so a run with no samples says so instead of
/// printing a made-up figure.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let i = ((last as f64) * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(i.min(last)).copied()
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_of_a_sorted_slice() {
        let v: Vec<u32> = (1..=101).collect();
        assert_eq!(percentile(&v, 0.5), Some(51));
        assert_eq!(percentile(&v, 0.99), Some(100));
        assert_eq!(percentile(&v, 1.0), Some(101));
        assert_eq!(percentile(&[7u32], 0.99), Some(7));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }
}
