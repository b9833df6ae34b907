//! The statistics of the report: percentiles of one measurement's samples, and the median over
//! repetitions (of values, or of per-repetition ratios, so that a drifting machine cancels out).

/// One latency measurement: every round trip, in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub median_ns: f64,
    pub p99_ns: f64,
    pub mean_ns: f64,
    pub samples: usize,
}

impl Summary {
    /// Summarises `samples` (sorted in place); `None` if there are none.
    pub fn of(samples: &mut [u64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Some(Summary {
            median_ns: percentile(samples, 50.0),
            p99_ns: percentile(samples, 99.0),
            mean_ns: sum as f64 / samples.len() as f64,
            samples: samples.len(),
        })
    }
}

/// The `p`-th percentile of sorted `samples`, interpolating linearly between the two nearest
/// ranks (the "R-7" definition that spreadsheets and numpy use).
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let frac = rank - low as f64;
    sorted[low] as f64 + (sorted[high] as f64 - sorted[low] as f64) * frac
}

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// The median over repetitions of `num[i] / den[i]`, pairing values of the same repetition.
pub fn median_ratio(pairs: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let ratios: Vec<f64> = pairs
        .into_iter()
        .filter(|&(_, den)| den != 0.0)
        .map(|(num, den)| num / den)
        .collect();
    median(&ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.5);
        assert!((percentile(&sorted, 99.0) - 99.01).abs() < 1e-9);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
    }

    #[test]
    fn a_summary_sorts_and_sees_the_tail() {
        let mut samples = vec![10, 1000, 10, 12, 11, 10, 13, 10, 11, 10];
        let summary = Summary::of(&mut samples).unwrap();
        assert_eq!(summary.median_ns, 10.5);
        assert!(summary.p99_ns > 900.0, "{summary:?}");
        assert_eq!(summary.mean_ns, 109.7);
        assert_eq!(summary.samples, 10);
        assert_eq!(Summary::of(&mut []), None);
    }

    #[test]
    fn medians_of_values_and_of_paired_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(median(&[]), None);
        // Repetition 2 ran on a slow machine: both sides slowed, the ratio did not.
        let pairs = [(11.0, 10.0), (22.0, 20.0), (12.0, 10.0)];
        assert_eq!(median_ratio(pairs), Some(1.1));
        assert_eq!(median_ratio([(1.0, 0.0)]), None);
    }
}
