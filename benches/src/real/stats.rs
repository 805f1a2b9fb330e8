//! Percentiles and small summaries over recorded durations.

use std::time::Duration;

/// Sorted samples in nanoseconds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples {
    sorted: Vec<u64>,
}

impl Samples {
    /// Takes the samples (any order) and sorts them.
    pub(crate) fn new(mut ns: Vec<u64>) -> Self {
        ns.sort_unstable();
        Samples { sorted: ns }
    }

    /// The samples, sorted.
    pub(crate) fn raw(&self) -> &[u64] {
        &self.sorted
    }

    /// Nearest-rank percentile (`p` in 0..=100); zero when empty.
    pub(crate) fn pct(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let n = self.sorted.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        let idx = rank.clamp(1, n) - 1;
        Duration::from_nanos(self.sorted[idx])
    }

    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.sorted.last().copied().unwrap_or(0))
    }
}

/// Milliseconds with a precision that suits the value.
pub(crate) fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Signed milliseconds between two offsets.
pub(crate) fn signed_ms(later: Duration, earlier: Duration) -> String {
    if later >= earlier {
        format!("+{}", ms(later - earlier))
    } else {
        format!("-{}", ms(earlier - later))
    }
}

/// Median of a few values (the lower middle for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples::new((1..=100).rev().collect());
        assert_eq!(s.pct(50.0), Duration::from_nanos(50));
        assert_eq!(s.pct(99.0), Duration::from_nanos(99));
        assert_eq!(s.pct(99.9), Duration::from_nanos(100));
        assert_eq!(s.pct(0.0), Duration::from_nanos(1));
        assert_eq!(s.max(), Duration::from_nanos(100));
        assert_eq!(Samples::default().pct(50.0), Duration::ZERO);
    }

    #[test]
    fn formatting_and_median() {
        assert_eq!(ms(Duration::from_micros(1234)), "1.23");
        assert_eq!(ms(Duration::from_millis(950)), "950");
        assert_eq!(
            signed_ms(Duration::from_millis(5), Duration::from_millis(7)),
            "-2.00"
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.0);
    }
}
