//! Input checks shared by every API: each failure names the field it is about.

use crate::error::ApiError;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

/// The longest free-text field we accept; longer input is refused, never truncated.
pub const MAX_TEXT: usize = 4000;
/// The longest short field (names, codes, ids from other systems).
pub const MAX_SHORT: usize = 200;
/// The most items a repeated field may hold.
pub const MAX_ITEMS: usize = 100;

pub fn uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, "must be a uuid"))
}

pub fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    uuid(field, value).map(Some)
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(|c| c == '\0') {
        return Err(ApiError::invalid(field, "must not contain nul characters"));
    }
    Ok(())
}

/// A required text field: trimmed, non-empty, at most `max` characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    check_len(field, trimmed, max)?;
    Ok(trimmed.to_owned())
}

/// An optional text field: trimmed, may be empty, at most `max` characters.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    check_len(field, trimmed, max)?;
    Ok(trimmed.to_owned())
}

/// A repeated text field: at most MAX_ITEMS entries, each required and bounded.
pub fn text_list(field: &str, values: &[String], max: usize) -> Result<Vec<String>, ApiError> {
    items(field, values)?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| text(&format!("{field}[{i}]"), v, max))
        .collect()
}

pub fn items<T>(field: &str, values: &[T]) -> Result<(), ApiError> {
    if values.len() > MAX_ITEMS {
        return Err(ApiError::invalid(
            field,
            format!("must hold at most {MAX_ITEMS} items"),
        ));
    }
    Ok(())
}

/// The idempotency key every mutating RPC requires.
pub fn idempotency_key(value: &str) -> Result<String, ApiError> {
    let key = text("idempotency_key", value, 128)?;
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "idempotency_key",
            "must be printable ascii",
        ));
    }
    Ok(key)
}

/// The version a client read; the first version of an aggregate is 1.
pub fn expected_version(value: i64) -> Result<i64, ApiError> {
    if value < 1 {
        return Err(ApiError::invalid(
            "expected_version",
            "must be the version you read (1 or more)",
        ));
    }
    Ok(value)
}

pub fn timestamp(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<DateTime<Utc>, ApiError> {
    let ts = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    crate::time::from_timestamp(ts).ok_or_else(|| ApiError::invalid(field, "is out of range"))
}

pub fn optional_timestamp(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    value.map(|ts| timestamp(field, Some(ts))).transpose()
}

/// An ISO calendar date, YYYY-MM-DD.
pub fn date(field: &str, value: &str) -> Result<NaiveDate, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(field, "must be a date as YYYY-MM-DD"))
}

pub fn optional_date(field: &str, value: &str) -> Result<Option<NaiveDate>, ApiError> {
    if value.is_empty() {
        return Ok(None);
    }
    date(field, value).map(Some)
}

/// A protobuf enum given as i32: unknown numbers and the zero value are refused.
pub fn enum_value<E>(field: &str, value: i32) -> Result<E, ApiError>
where
    E: TryFrom<i32>,
{
    if value == 0 {
        return Err(ApiError::invalid(field, "is required"));
    }
    E::try_from(value).map_err(|_| ApiError::invalid(field, format!("unknown value {value}")))
}

/// An optional enum: zero means absent, unknown numbers are refused.
pub fn optional_enum<E>(field: &str, value: i32) -> Result<Option<E>, ApiError>
where
    E: TryFrom<i32>,
{
    if value == 0 {
        return Ok(None);
    }
    enum_value(field, value).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_text_is_refused_not_truncated() {
        let long = "x".repeat(MAX_SHORT + 1);
        assert!(text("title", &long, MAX_SHORT).is_err());
        assert_eq!(text("title", "  ok ", MAX_SHORT).unwrap(), "ok");
    }

    #[test]
    fn a_bad_uuid_names_its_field() {
        match uuid("patient_id", "nope") {
            Err(ApiError::InvalidArgument { field, .. }) => assert_eq!(field, "patient_id"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dates_must_be_iso() {
        assert!(date("birth_date", "1950-02-30").is_err());
        assert!(date("birth_date", "03/04/1950").is_err());
        assert!(date("birth_date", "1950-03-04").is_ok());
    }
}
