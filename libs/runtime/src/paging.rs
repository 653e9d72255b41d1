//! Keyset paging: page tokens are opaque to clients and name the last row returned, so pages stay
//! stable while rows are added.

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;

pub fn page_size(value: i32) -> Result<i64, ApiError> {
    match value {
        v if v < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        v => Ok(i64::from(v).min(MAX_PAGE_SIZE)),
    }
}

/// The position after which the next page starts: a sort instant and the row id as tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

pub fn encode(cursor: Cursor) -> String {
    let raw = format!("{}.{}", cursor.at.timestamp_micros(), cursor.id.simple());
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode(token: &str) -> Result<Option<Cursor>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    if !token.len().is_multiple_of(2) || token.len() > 200 {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let raw = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, id) = raw.split_once('.').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Some(Cursor { at, id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_garbage_is_refused() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode(&encode(cursor)).unwrap(), Some(cursor));
        assert!(decode("zz").is_err());
        assert!(decode("abc").is_err());
        assert_eq!(decode("").unwrap(), None);
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(100_000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
