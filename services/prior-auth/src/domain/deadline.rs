//! CMS-0057-F decision deadlines. Instants are UTC; an expedited decision is due 72 hours after
//! submission, a standard one 7 calendar days after it, counted in the configured time zone: the same
//! local clock time a week later, so a daylight-saving change moves the UTC instant by an hour.

use chrono::{DateTime, Days, Duration, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Standard,
    Expedited,
}

pub const EXPEDITED_WITHIN: Duration = Duration::hours(72);
pub const STANDARD_CALENDAR_DAYS: u64 = 7;

/// When the payer's decision is due for a request submitted at `submitted`.
pub fn decision_due(urgency: Urgency, submitted: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    match urgency {
        Urgency::Expedited => submitted + EXPEDITED_WITHIN,
        Urgency::Standard => add_calendar_days(submitted, STANDARD_CALENDAR_DAYS, zone),
    }
}

/// `days` calendar days later at the same local clock time in `zone`. A local time that does not
/// exist that day (spring forward) moves forward past the gap; an ambiguous one (fall back) takes the
/// earlier instant.
pub fn add_calendar_days(at: DateTime<Utc>, days: u64, zone: Tz) -> DateTime<Utc> {
    let local = at.with_timezone(&zone).naive_local();
    let target = local.checked_add_days(Days::new(days)).unwrap_or(local);
    match zone.from_local_datetime(&target) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // In the gap: the first valid instant after it.
            let later = target + Duration::hours(1);
            zone.from_local_datetime(&later)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(at + Duration::days(days as i64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_expedited_request_is_due_72_hours_later_whatever_the_clock_does() {
        // 2026-11-01 is the end of daylight saving time in New York.
        let submitted = utc("2026-10-31T14:00:00Z");
        assert_eq!(
            decision_due(Urgency::Expedited, submitted, New_York),
            utc("2026-11-03T14:00:00Z")
        );
    }

    #[test]
    fn a_standard_request_is_due_seven_calendar_days_later_across_the_fall_change() {
        // 10:00 EDT (UTC-4) on Oct 30 -> 10:00 EST (UTC-5) on Nov 6: 169 hours, not 168.
        let submitted = utc("2026-10-30T14:00:00Z");
        let due = decision_due(Urgency::Standard, submitted, New_York);
        assert_eq!(due, utc("2026-11-06T15:00:00Z"));
        assert_eq!((due - submitted).num_hours(), 169);
    }

    #[test]
    fn a_standard_request_is_due_seven_calendar_days_later_across_the_spring_change() {
        // 2027-03-14 starts daylight saving time: 10:00 EST on Mar 10 -> 10:00 EDT on Mar 17.
        let submitted = utc("2027-03-10T15:00:00Z");
        let due = decision_due(Urgency::Standard, submitted, New_York);
        assert_eq!(due, utc("2027-03-17T14:00:00Z"));
        assert_eq!((due - submitted).num_hours(), 167);
    }

    #[test]
    fn a_standard_request_rolls_over_a_month_end_and_a_year_end() {
        assert_eq!(
            decision_due(Urgency::Standard, utc("2027-01-28T17:30:00Z"), New_York),
            utc("2027-02-04T17:30:00Z")
        );
        assert_eq!(
            decision_due(Urgency::Standard, utc("2026-12-29T12:00:00Z"), New_York),
            utc("2027-01-05T12:00:00Z")
        );
        // Late evening local time is still the same calendar day locally (UTC is already tomorrow).
        assert_eq!(
            decision_due(Urgency::Standard, utc("2027-01-31T03:00:00Z"), New_York),
            utc("2027-02-07T03:00:00Z")
        );
    }

    #[test]
    fn a_local_time_inside_the_spring_gap_moves_past_it() {
        // 02:30 local on Mar 7 2027 exists (EST); a week later 02:30 on Mar 14 does not.
        let submitted = utc("2027-03-07T07:30:00Z");
        let due = add_calendar_days(submitted, 7, New_York);
        assert_eq!(due, utc("2027-03-14T07:30:00Z"));
    }
}
