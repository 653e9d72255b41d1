//! Stage due times. Each referral stage has a due time from its urgency (configurable); an order's
//! due time follows its booking and window. Times are instants in UTC.

use super::order::{Kind, Status as OrderStatus};
use super::referral::Status;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Routine,
    Urgent,
    Stat,
}

/// Hours per stage for each urgency: [routine, urgent, stat].
#[derive(Debug, Clone, Deserialize)]
pub struct ReferralDue {
    /// Placed: until accepted or declined.
    pub accept_hours: [i64; 3],
    /// Accepted: until an appointment is booked.
    pub schedule_hours: [i64; 3],
    /// Seen: until the consult note is back.
    pub note_hours: [i64; 3],
    /// Scheduled: mark seen or no-show this long after the appointment.
    pub visit_grace_hours: i64,
    /// No-show: rebook or cancel within.
    pub no_show_hours: i64,
}

impl Default for ReferralDue {
    fn default() -> Self {
        Self {
            accept_hours: [72, 48, 24],
            schedule_hours: [14 * 24, 72, 24],
            note_hours: [7 * 24, 72, 24],
            visit_grace_hours: 24,
            no_show_hours: 48,
        }
    }
}

fn pick(hours: [i64; 3], urgency: Urgency) -> Duration {
    Duration::hours(match urgency {
        Urgency::Routine => hours[0],
        Urgency::Urgent => hours[1],
        Urgency::Stat => hours[2],
    })
}

/// When the referral's current stage is due; None once the loop is closed.
pub fn referral_stage_due(
    cfg: &ReferralDue,
    status: Status,
    urgency: Urgency,
    now: DateTime<Utc>,
    appointment_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match status {
        Status::Placed => Some(now + pick(cfg.accept_hours, urgency)),
        Status::Accepted => Some(now + pick(cfg.schedule_hours, urgency)),
        Status::Scheduled | Status::Rescheduled => {
            Some(appointment_at.unwrap_or(now) + Duration::hours(cfg.visit_grace_hours))
        }
        Status::NoShow => Some(now + Duration::hours(cfg.no_show_hours)),
        Status::Seen => Some(now + pick(cfg.note_hours, urgency)),
        Status::Declined | Status::NoteReceived | Status::Cancelled => None,
    }
}

/// The default due time of a new order when the caller gives none.
pub fn order_placed_due(kind: Kind, now: DateTime<Utc>) -> DateTime<Utc> {
    now + match kind {
        Kind::Lab => Duration::hours(24),
        Kind::Imaging => Duration::hours(72),
        Kind::Transport => Duration::hours(4),
        Kind::HomeHealth => Duration::hours(48),
        Kind::Dme => Duration::hours(72),
    }
}

/// Booking and window facts of an order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Booking {
    pub scheduled_at: Option<DateTime<Utc>>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
}

/// Patients must know their pickup time this long before the window opens.
pub const CONFIRM_BEFORE_WINDOW: Duration = Duration::hours(2);

/// When the order's next step is due after a move to `status`; None once closed or cancelled.
pub fn order_stage_due(
    kind: Kind,
    status: OrderStatus,
    now: DateTime<Utc>,
    booking: Booking,
) -> Option<DateTime<Utc>> {
    let at = booking.scheduled_at.or(booking.window_start).unwrap_or(now);
    match status {
        OrderStatus::Placed => Some(order_placed_due(kind, now)),
        OrderStatus::Scheduled if kind.needs_confirmation() => {
            Some((booking.window_start.unwrap_or(at) - CONFIRM_BEFORE_WINDOW).max(now))
        }
        OrderStatus::Scheduled => Some(at + Duration::hours(24)),
        OrderStatus::Confirmed => Some(booking.window_end.unwrap_or(at + Duration::hours(24))),
        OrderStatus::Completed if kind.has_results() => Some(now + Duration::hours(48)),
        OrderStatus::Completed => Some(now + Duration::hours(24)),
        OrderStatus::Closed | OrderStatus::Cancelled => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    #[test]
    fn stage_due_times_follow_urgency() {
        let cfg = ReferralDue::default();
        let due = |s, u| referral_stage_due(&cfg, s, u, now(), None).unwrap() - now();
        assert_eq!(due(Status::Placed, Urgency::Stat), Duration::hours(24));
        assert_eq!(due(Status::Placed, Urgency::Urgent), Duration::hours(48));
        assert_eq!(due(Status::Accepted, Urgency::Routine), Duration::days(14));
        assert_eq!(due(Status::Seen, Urgency::Routine), Duration::days(7));
        assert_eq!(
            referral_stage_due(&cfg, Status::NoteReceived, Urgency::Stat, now(), None),
            None
        );
    }

    #[test]
    fn a_scheduled_referral_is_due_after_its_appointment() {
        let cfg = ReferralDue::default();
        let appt = now() + Duration::days(10);
        let due = referral_stage_due(&cfg, Status::Scheduled, Urgency::Routine, now(), Some(appt));
        assert_eq!(due, Some(appt + Duration::hours(24)));
    }

    #[test]
    fn a_booked_transport_must_be_confirmed_two_hours_before_pickup() {
        let start = now() + Duration::hours(10);
        let booking = Booking {
            scheduled_at: None,
            window_start: Some(start),
            window_end: Some(start + Duration::hours(2)),
        };
        assert_eq!(
            order_stage_due(Kind::Transport, OrderStatus::Scheduled, now(), booking),
            Some(start - Duration::hours(2))
        );
        assert_eq!(
            order_stage_due(Kind::Transport, OrderStatus::Confirmed, now(), booking),
            Some(start + Duration::hours(2))
        );
    }
}
