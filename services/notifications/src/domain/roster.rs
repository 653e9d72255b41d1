//! Rosters and hours: who holds a role when, in the organization's time zone. A role is on duty
//! while any member's shift covers the instant; a shift whose end is not after its start runs
//! overnight into the next day. Quiet hours follow from it: a routine item raised while nobody is
//! on duty waits for the next shift start; urgent and critical ones go at once (to the roster's
//! backup role when it names one).

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    /// ISO weekdays the shift starts on: 1 Monday .. 7 Sunday.
    pub weekdays: Vec<u32>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub subject: String,
    pub shifts: Vec<Shift>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
}

/// The local date and time as an instant: a time in the spring gap moves past it, an ambiguous one
/// takes the earlier instant.
fn instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => zone
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

impl Shift {
    /// The shift's span starting on local `date`, if it works that weekday.
    fn span_on(&self, zone: Tz, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.weekdays.contains(&date.weekday().number_from_monday()) {
            return None;
        }
        let start = instant(zone, date, self.start)?;
        let end_date = if self.end > self.start {
            date
        } else {
            date.checked_add_days(Days::new(1))?
        };
        let end = instant(zone, end_date, self.end)?;
        Some((start, end))
    }
}

fn local_date(zone: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}

/// Whether any member is on duty at `at`.
pub fn on_duty(members: &[Member], zone: Tz, at: DateTime<Utc>) -> bool {
    let today = local_date(zone, at);
    let days = [today.checked_sub_days(Days::new(1)), Some(today)];
    members.iter().flat_map(|m| &m.shifts).any(|shift| {
        days.iter()
            .flatten()
            .filter_map(|d| shift.span_on(zone, *d))
            .any(|(start, end)| start <= at && at < end)
    })
}

/// The next instant after `at` when someone comes on duty (within the next eight days); `None`
/// for a roster without shifts.
pub fn next_on_duty(members: &[Member], zone: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = local_date(zone, at);
    members
        .iter()
        .flat_map(|m| &m.shifts)
        .flat_map(|shift| {
            (0..=8u64).filter_map(move |d| {
                let date = today.checked_add_days(Days::new(d))?;
                shift.span_on(zone, date).map(|(start, _)| start)
            })
        })
        .filter(|start| *start > at)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn ny(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        New_York
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn weekdays_day_shift() -> Vec<Member> {
        vec![Member {
            subject: "rn-day".into(),
            shifts: vec![Shift {
                weekdays: vec![1, 2, 3, 4, 5],
                start: t(7, 0),
                end: t(19, 0),
            }],
            email: String::new(),
            phone: String::new(),
        }]
    }

    #[test]
    fn a_weekday_day_shift_is_on_duty_at_noon_and_off_at_night_and_on_sunday() {
        let roster = weekdays_day_shift();
        // Tuesday 1 December 2026.
        assert!(on_duty(&roster, New_York, ny(2026, 12, 1, 12, 0)));
        assert!(!on_duty(&roster, New_York, ny(2026, 12, 1, 22, 0)));
        assert!(
            !on_duty(&roster, New_York, ny(2026, 12, 6, 12, 0)),
            "Sunday"
        );
    }

    #[test]
    fn off_hours_wait_for_the_next_shift_start_in_local_time() {
        let roster = weekdays_day_shift();
        assert_eq!(
            next_on_duty(&roster, New_York, ny(2026, 12, 1, 22, 0)),
            Some(ny(2026, 12, 2, 7, 0))
        );
        // Friday night waits for Monday morning.
        assert_eq!(
            next_on_duty(&roster, New_York, ny(2026, 12, 4, 20, 0)),
            Some(ny(2026, 12, 7, 7, 0))
        );
    }

    #[test]
    fn a_night_shift_runs_past_midnight() {
        let roster = vec![Member {
            subject: "rn-night".into(),
            shifts: vec![Shift {
                weekdays: vec![1, 2, 3, 4, 5, 6, 7],
                start: t(19, 0),
                end: t(7, 0),
            }],
            email: String::new(),
            phone: String::new(),
        }];
        assert!(on_duty(&roster, New_York, ny(2026, 12, 2, 3, 0)));
        assert!(!on_duty(&roster, New_York, ny(2026, 12, 2, 12, 0)));
    }

    #[test]
    fn shifts_follow_the_local_clock_across_the_daylight_saving_change() {
        let roster = weekdays_day_shift();
        // Sunday 8 March 2026 the clocks go forward; Monday's shift starts 07:00 local (11:00 UTC).
        assert_eq!(
            next_on_duty(&roster, New_York, ny(2026, 3, 7, 12, 0)),
            Some(ny(2026, 3, 9, 7, 0))
        );
        assert_eq!(ny(2026, 3, 9, 7, 0).format("%H").to_string(), "11");
    }

    #[test]
    fn a_roster_without_shifts_never_comes_on_duty() {
        assert_eq!(next_on_duty(&[], New_York, ny(2026, 12, 1, 12, 0)), None);
        assert!(!on_duty(&[], New_York, ny(2026, 12, 1, 12, 0)));
    }
}
