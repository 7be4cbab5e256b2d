//! Medians, spreads and human-readable durations.

use std::time::Duration;

/// Timings of one side of a measurement, in seconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<f64>,
}

impl Samples {
    /// No samples yet.
    pub fn new() -> Samples {
        Samples::default()
    }

    /// Adds one duration.
    pub fn push(&mut self, d: Duration) {
        self.values.push(d.as_secs_f64());
    }

    /// Adds one value (seconds, or whatever unit the caller keeps).
    pub fn push_value(&mut self, v: f64) {
        self.values.push(v);
    }

    /// The median; NaN without samples.
    pub fn median(&self) -> f64 {
        self.percentile(50.0)
    }

    /// The `p`-th percentile (0–100), linearly interpolated between the two
    /// nearest ranks; NaN without samples.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
    }
}

/// `broker ÷ direct`, NaN when either is missing or direct is zero.
pub fn ratio(broker: f64, direct: f64) -> f64 {
    if direct > 0.0 && broker.is_finite() && direct.is_finite() {
        broker / direct
    } else {
        f64::NAN
    }
}

/// A duration in seconds as `87 µs`, `4.21 ms` or `1.30 s`.
pub fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        "—".into()
    } else if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1e-2 {
        format!("{:.2} ms", s * 1e3)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// Rounds to `digits` decimals (for the JSON, so that it reads well).
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let mut s = Samples::new();
        assert!(s.median().is_nan());
        for v in [5.0, 1.0, 3.0] {
            s.push_value(v);
        }
        assert_eq!(s.median(), 3.0);
        s.push_value(4.0);
        assert_eq!(s.median(), 3.5);
        assert_eq!(s.percentile(0.0), 1.0);
        assert_eq!(s.percentile(100.0), 5.0);
    }

    #[test]
    fn ratios_and_formatting() {
        assert_eq!(ratio(1.0, 4.0), 0.25);
        assert!(ratio(1.0, 0.0).is_nan());
        assert!(ratio(f64::NAN, 1.0).is_nan());
        assert_eq!(fmt_secs(0.000087), "87 µs");
        assert_eq!(fmt_secs(0.004212), "4.21 ms");
        assert_eq!(fmt_secs(0.0312), "31.2 ms");
        assert_eq!(fmt_secs(1.3), "1.30 s");
        assert_eq!(fmt_secs(f64::NAN), "—");
        assert_eq!(round(0.123456, 3), 0.123);
    }
}
