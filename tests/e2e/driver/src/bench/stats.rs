//! Order statistics of a handful of samples: median, p90, min (nearest-rank, no interpolation:
//! with N=10 the p90 is the 9th sample, a time that really happened).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub p90: f64,
    pub min: f64,
}

/// The nearest-rank percentile `p` (0..=100) of sorted, non-empty `v`.
fn rank(v: &[f64], p: f64) -> f64 {
    let n = v.len();
    let r = ((p / 100.0) * n as f64).ceil() as usize;
    v[r.clamp(1, n) - 1]
}

impl Stats {
    /// None for no samples.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        // The median of an even count is the mean of the middle two.
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stats {
            n,
            median,
            p90: rank(&v, 90.0),
            min: v[0],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_empty() {
        let s = Stats::of([3.0, 1.0, 2.0]).expect("samples");
        assert_eq!((s.n, s.median, s.p90, s.min), (3, 2.0, 3.0, 1.0));
        let s = Stats::of([4.0, 1.0, 3.0, 2.0]).expect("samples");
        assert_eq!(s.median, 2.5);
        assert_eq!(s.p90, 4.0);
        assert!(Stats::of(Vec::new()).is_none());
        assert!(Stats::of([f64::NAN]).is_none());
    }

    #[test]
    fn p90_of_ten_is_the_ninth() {
        let s = Stats::of((1..=10).map(f64::from)).expect("samples");
        assert_eq!(s.p90, 9.0);
        assert_eq!(s.median, 5.5);
        assert_eq!(s.min, 1.0);
    }
}
