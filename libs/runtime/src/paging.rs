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

/// Sorts before every real instant (year 1; Postgres goes back to 4713 BC).
pub fn beginning() -> DateTime<Utc> {
    DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or_default()
}

/// Sorts after every real instant (the end of year 9999): where rows without a time go.
pub fn far_future() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default()
}

/// The keyset position to read after: the cursor, or before the first row.
pub fn after(cursor: Option<Cursor>) -> (DateTime<Utc>, Uuid) {
    cursor.map_or((beginning(), Uuid::nil()), |c| (c.at, c.id))
}

/// Cuts a page from rows fetched with one extra row (`limit + 1`): the extra row says a next page
/// exists, and the token names the last row shown.
pub fn cut<T>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> Cursor) -> (Vec<T>, String) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() <= limit {
        return (rows, String::new());
    }
    rows.truncate(limit);
    let next = rows.last().map(|r| encode(cursor(r))).unwrap_or_default();
    (rows, next)
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
    fn a_page_cut_from_one_extra_row_names_its_last_row() {
        let rows: Vec<i64> = (1..=4).collect();
        let at = |i: &i64| Cursor {
            at: DateTime::from_timestamp(*i, 0).unwrap(),
            id: Uuid::nil(),
        };
        let (page, next) = cut(rows.clone(), 3, at);
        assert_eq!(page, [1, 2, 3]);
        assert_eq!(decode(&next).unwrap(), Some(at(&3)));
        assert_eq!(cut(rows, 4, at).1, "");
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(100_000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size(-1).is_err());
    }
}
