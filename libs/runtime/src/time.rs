//! Conversions between protobuf timestamps and chrono instants (always UTC).

use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;

pub fn to_timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub fn opt_timestamp(at: Option<DateTime<Utc>>) -> Option<Timestamp> {
    at.map(to_timestamp)
}

/// None when the timestamp is outside the range chrono and Postgres can hold.
pub fn from_timestamp(ts: &Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    // Postgres timestamptz covers 4713 BC to 294276 AD; keep to years 1..9999 to stay well inside.
    // Postgres keeps microseconds: truncate now so what is returned equals what is stored.
    let nanos = (ts.nanos as u32 / 1_000) * 1_000;
    let at = Utc.timestamp_opt(ts.seconds, nanos).single()?;
    let year = chrono::Datelike::year(&at);
    (1..=9999).contains(&year).then_some(at)
}

/// Postgres stores microseconds; round instants the same way before comparing or returning them.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
