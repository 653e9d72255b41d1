//! The arithmetic every measure shares: hours and percents with one decimal, median and nearest-
//! rank quantiles of durations.

use chrono::Duration;

pub fn hours(d: Duration) -> f64 {
    (d.num_seconds() as f64 / 360.0).round() / 10.0
}

/// Percent with one decimal, 0 for an empty denominator.
pub fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

/// The median of the durations (the mean of the middle two for an even count), in hours.
pub fn median(mut durations: Vec<Duration>) -> Option<f64> {
    durations.sort();
    let n = durations.len();
    if n == 0 {
        return None;
    }
    let m = if n % 2 == 1 {
        durations[n / 2]
    } else {
        (durations[n / 2 - 1] + durations[n / 2]) / 2
    };
    Some(hours(m))
}

/// The value at quantile `q` (nearest rank) of sorted durations, in hours.
pub fn quantile(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(hours(sorted[rank - 1]))
}
