//! When a failed send is tried again: the first wait doubling per try, capped; webhooks add up to
//! `jitter_permille` of it at random so endpoints that fail together do not retry together.

use std::time::Duration;

pub fn backoff(
    first: Duration,
    max: Duration,
    attempt: i32,
    jitter_permille: u32,
) -> chrono::Duration {
    let doubled = first.saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1));
    let capped = doubled.min(max);
    let jitter = if jitter_permille == 0 {
        0
    } else {
        (uuid::Uuid::new_v4().as_u128() % u128::from(jitter_permille)) as u32
    };
    let waited = capped + capped.mul_f64(f64::from(jitter) / 1000.0);
    chrono::Duration::from_std(waited).unwrap_or(chrono::Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_per_try_up_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(5), s(60), 1, 0), chrono::Duration::seconds(5));
        assert_eq!(backoff(s(5), s(60), 3, 0), chrono::Duration::seconds(20));
        assert_eq!(backoff(s(5), s(60), 9, 0), chrono::Duration::seconds(60));
        let jittered = backoff(s(10), s(60), 1, 200);
        assert!(
            jittered >= chrono::Duration::seconds(10) && jittered < chrono::Duration::seconds(12)
        );
    }
}
