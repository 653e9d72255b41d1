//! The coordination measures over loop timelines, each defined in docs/metrics.md: referral loop
//! closure within N days and the median time per referral stage, abnormal-result follow-through
//! and orphaned abnormal results, care-team response time by role (item raised to acknowledged),
//! and handoff acknowledgement time. A loop's timeline is its events in aggregate-version order;
//! times are the events' own (`occurred_at`), so arrival order does not matter.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// One event of a loop: its type, when it happened, and its typed fields by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub version: i64,
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Loop {
    pub id: String,
    /// The patient the loop is about (repeat testing compares a patient's orders).
    pub patient: String,
    pub points: Vec<Point>,
}

impl Loop {
    fn sorted(&self) -> Vec<&Point> {
        let mut p: Vec<&Point> = self.points.iter().collect();
        p.sort_by_key(|p| p.version);
        p
    }

    fn first(&self, event_type: &str) -> Option<&Point> {
        self.sorted()
            .into_iter()
            .find(|p| p.event_type == event_type)
    }

    /// When the loop first reached `status` (a status-changed event's `to_status`).
    fn reached(&self, status: &str) -> Option<DateTime<Utc>> {
        self.sorted()
            .into_iter()
            .find(|p| {
                p.event_type.ends_with(".status_changed")
                    && p.fields.get("to_status").map(String::as_str) == Some(status)
            })
            .map(|p| p.at)
    }
}

use super::stats::{median, percent, quantile};

/// Referral loop closure: of the referrals placed in [from, to) and not cancelled, those whose
/// consult note came back within `within` of placement.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Closure {
    pub placed: usize,
    pub closed_within: usize,
    pub percent: f64,
}

pub fn referral_closure(
    referrals: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    within: Duration,
) -> Closure {
    let mut placed = 0;
    let mut closed = 0;
    for r in referrals {
        let Some(p) = r.first("referrals.referral.placed") else {
            continue;
        };
        if p.at < from || p.at >= to || r.reached("cancelled").is_some() {
            continue;
        }
        placed += 1;
        if r.reached("note_received")
            .is_some_and(|at| at - p.at <= within)
        {
            closed += 1;
        }
    }
    Closure {
        placed,
        closed_within: closed,
        percent: percent(closed, placed),
    }
}

/// The referral stages, from and to, whose median time is measured.
pub const STAGES: [(&str, &str); 4] = [
    ("placed", "accepted"),
    ("accepted", "scheduled"),
    ("scheduled", "seen"),
    ("seen", "note_received"),
];

/// Median hours per stage over the referrals placed in [from, to) that went through it.
pub fn stage_medians(
    referrals: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(&'static str, &'static str, usize, Option<f64>)> {
    STAGES
        .iter()
        .map(|(a, b)| {
            let durations: Vec<Duration> = referrals
                .iter()
                .filter(|r| {
                    r.first("referrals.referral.placed")
                        .is_some_and(|p| p.at >= from && p.at < to)
                })
                .filter_map(|r| {
                    let start = if *a == "placed" {
                        r.first("referrals.referral.placed").map(|p| p.at)
                    } else {
                        r.reached(a)
                    }?;
                    let end = r.reached(b)?;
                    (end >= start).then(|| end - start)
                })
                .collect();
            (*a, *b, durations.len(), median(durations))
        })
        .collect()
}

/// Abnormal and critical results routed in [from, to): median hours from routing to the
/// acknowledgement with the action taken, and how many are orphaned (not acknowledged and past
/// their acknowledgement due time at `now`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FollowThrough {
    pub routed: usize,
    pub acknowledged: usize,
    pub median_hours: Option<f64>,
    pub orphaned: usize,
}

pub fn result_follow_through(
    results: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    due_of: impl Fn(&Point) -> Option<DateTime<Utc>>,
) -> FollowThrough {
    let mut out = FollowThrough::default();
    let mut durations = Vec::new();
    for r in results {
        let Some(routed) = r.first("referrals.result.routed") else {
            continue;
        };
        let flag = routed.fields.get("flag").map(String::as_str);
        if routed.at < from || routed.at >= to || !matches!(flag, Some("abnormal" | "critical")) {
            continue;
        }
        out.routed += 1;
        match r.first("referrals.result.acknowledged") {
            Some(ack) => {
                out.acknowledged += 1;
                durations.push(ack.at - routed.at);
            }
            None => {
                if due_of(routed).is_some_and(|due| due < now) {
                    out.orphaned += 1;
                }
            }
        }
    }
    out.median_hours = median(durations);
    out
}

/// Care-team response time by role: inbox items raised in [from, to), from raised to
/// acknowledged, per role of the acknowledgement; median and p90 hours.
pub fn response_by_role(
    items: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(String, usize, Option<f64>, Option<f64>)> {
    let mut by_role: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for i in items {
        let Some(raised) = i.first("notifications.item.raised") else {
            continue;
        };
        if raised.at < from || raised.at >= to {
            continue;
        }
        if let Some(ack) = i.first("notifications.item.acknowledged") {
            let role = ack.fields.get("role").cloned().unwrap_or_default();
            by_role.entry(role).or_default().push(ack.at - raised.at);
        }
    }
    by_role
        .into_iter()
        .map(|(role, mut d)| {
            d.sort();
            let n = d.len();
            (role, n, quantile(&d, 0.5), quantile(&d, 0.9))
        })
        .collect()
}

/// Handoffs sent in [from, to): how many were acknowledged, and the median hours to it.
pub fn handoff_acknowledgement(
    handoffs: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (usize, usize, Option<f64>) {
    let mut sent = 0;
    let mut durations = Vec::new();
    for h in handoffs {
        let Some(s) = h.first("plans.handoff.sent") else {
            continue;
        };
        if s.at < from || s.at >= to {
            continue;
        }
        sent += 1;
        if let Some(a) = h.first("plans.handoff.acknowledged") {
            durations.push(a.at - s.at);
        }
    }
    let acknowledged = durations.len();
    (sent, acknowledged, median(durations))
}

/// Time to first contact: referrals placed in [from, to) that the receiver answered (accepted or
/// declined), and the median hours from placement to that answer.
pub fn first_contact(
    referrals: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (usize, Option<f64>) {
    let durations: Vec<Duration> = referrals
        .iter()
        .filter_map(|r| {
            let p = r.first("referrals.referral.placed")?;
            if p.at < from || p.at >= to {
                return None;
            }
            let answer = [r.reached("accepted"), r.reached("declined")]
                .into_iter()
                .flatten()
                .min()?;
            Some(answer - p.at)
        })
        .collect();
    (durations.len(), median(durations))
}

/// Of the referrals that reached `scheduled` in [from, to): how many were rescheduled, cancelled
/// and missed (no-show) afterwards, as percents.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScheduleOutcomes {
    pub scheduled: usize,
    pub rescheduled_percent: f64,
    pub cancelled_percent: f64,
    pub no_show_percent: f64,
}

pub fn schedule_outcomes(
    referrals: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ScheduleOutcomes {
    let scheduled: Vec<&Loop> = referrals
        .iter()
        .filter(|r| {
            r.reached("scheduled")
                .is_some_and(|at| at >= from && at < to)
        })
        .collect();
    let after = |status: &str| {
        scheduled
            .iter()
            .filter(|r| {
                let s = r.reached("scheduled");
                r.reached(status)
                    .is_some_and(|at| s.is_some_and(|s| at >= s))
            })
            .count()
    };
    ScheduleOutcomes {
        scheduled: scheduled.len(),
        rescheduled_percent: percent(after("rescheduled"), scheduled.len()),
        cancelled_percent: percent(after("cancelled"), scheduled.len()),
        no_show_percent: percent(after("no_show"), scheduled.len()),
    }
}

/// Discharge order to transport confirmation: transport orders placed in [from, to) that were
/// confirmed, and the median hours from placement to confirmation.
pub fn transport_confirmation(
    orders: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (usize, usize, Option<f64>) {
    let mut placed = 0;
    let mut durations = Vec::new();
    for o in orders {
        let Some(p) = o.first("referrals.order.placed") else {
            continue;
        };
        if p.at < from
            || p.at >= to
            || p.fields.get("kind").map(String::as_str) != Some("transport")
        {
            continue;
        }
        placed += 1;
        if let Some(confirmed) = o.reached("confirmed") {
            durations.push(confirmed - p.at);
        }
    }
    let confirmed = durations.len();
    (placed, confirmed, median(durations))
}

/// Care transitions started in [from, to): how many had their follow-up call done within `window`
/// of the start, and how many had their medications reconciled (checklist item done) at all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transitions {
    pub started: usize,
    pub follow_up_within_percent: f64,
    pub medications_reconciled_percent: f64,
}

pub fn transitions(
    loops: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    window: Duration,
) -> Transitions {
    let mut started = 0;
    let mut follow_up = 0;
    let mut reconciled = 0;
    for t in loops {
        let Some(s) = t.first("plans.transition.started") else {
            continue;
        };
        if s.at < from || s.at >= to {
            continue;
        }
        started += 1;
        let done = |item: &str| {
            t.sorted()
                .into_iter()
                .filter(|p| p.event_type == "plans.transition.checklist_updated")
                .find(|p| {
                    p.fields.get("item").map(String::as_str) == Some(item)
                        && p.fields.get("state").map(String::as_str) == Some("done")
                })
                .map(|p| p.at)
        };
        if done("follow_up_call").is_some_and(|at| at - s.at <= window) {
            follow_up += 1;
        }
        if done("medications_reconciled").is_some() {
            reconciled += 1;
        }
    }
    Transitions {
        started,
        follow_up_within_percent: percent(follow_up, started),
        medications_reconciled_percent: percent(reconciled, started),
    }
}

/// Referral-to-service completion: of the referrals placed in [from, to) and not cancelled, those
/// the patient was seen for.
pub fn referral_completion(
    referrals: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (usize, usize, f64) {
    let mut placed = 0;
    let mut seen = 0;
    for r in referrals {
        let Some(p) = r.first("referrals.referral.placed") else {
            continue;
        };
        if p.at < from || p.at >= to || r.reached("cancelled").is_some() {
            continue;
        }
        placed += 1;
        if r.reached("seen").is_some() || r.reached("note_received").is_some() {
            seen += 1;
        }
    }
    (placed, seen, percent(seen, placed))
}

/// The age buckets of open loops, by when they opened.
pub const AGE_BUCKETS: [(&str, i64); 5] = [
    ("under 1 day", 1),
    ("1 to 3 days", 3),
    ("3 to 7 days", 7),
    ("7 to 30 days", 30),
    ("30 days or more", i64::MAX),
];

fn bucket(age: Duration) -> &'static str {
    AGE_BUCKETS
        .iter()
        .find(|(_, days)| age < Duration::days((*days).min(100_000)))
        .map_or("30 days or more", |(name, _)| name)
}

/// Open loops at `now` by kind, owner role and age bucket: referrals not closed, declined or
/// cancelled; orders not closed or cancelled; abnormal and critical results not acknowledged.
pub fn open_loops(
    referrals: &[Loop],
    orders: &[Loop],
    results: &[Loop],
    now: DateTime<Utc>,
) -> Vec<(&'static str, String, &'static str, usize)> {
    let mut counts: BTreeMap<(&'static str, String, &'static str), usize> = BTreeMap::new();
    let mut add = |kind: &'static str, role: Option<&String>, opened: DateTime<Utc>| {
        let key = (
            kind,
            role.cloned().unwrap_or_default(),
            bucket(now - opened),
        );
        *counts.entry(key).or_default() += 1;
    };
    for r in referrals {
        if let Some(p) = r.first("referrals.referral.placed")
            && !["note_received", "declined", "cancelled"]
                .iter()
                .any(|s| r.reached(s).is_some())
        {
            add("referral", p.fields.get("owner_role"), p.at);
        }
    }
    for o in orders {
        if let Some(p) = o.first("referrals.order.placed")
            && !["closed", "cancelled"]
                .iter()
                .any(|s| o.reached(s).is_some())
        {
            add("order", p.fields.get("owner_role"), p.at);
        }
    }
    for r in results {
        if let Some(p) = r.first("referrals.result.routed")
            && matches!(
                p.fields.get("flag").map(String::as_str),
                Some("abnormal" | "critical")
            )
            && r.first("referrals.result.acknowledged").is_none()
        {
            add("result", p.fields.get("to_role"), p.at);
        }
    }
    counts
        .into_iter()
        .map(|((kind, role, bucket), n)| (kind, role, bucket, n))
        .collect()
}

/// Repeat testing: of the lab and imaging orders placed in [from, to), those whose patient had an
/// order of the same test in the `window` before. `orders` must reach back `window` before `from`.
pub fn repeat_tests(
    orders: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    window: Duration,
) -> (usize, usize, f64) {
    let placed: Vec<(&str, &str, DateTime<Utc>)> = orders
        .iter()
        .filter_map(|o| {
            let p = o.first("referrals.order.placed")?;
            let kind = p.fields.get("kind").map(String::as_str)?;
            let code = p.fields.get("test_code").map(String::as_str).unwrap_or("");
            (matches!(kind, "lab" | "imaging") && !code.is_empty()).then_some((
                o.patient.as_str(),
                code,
                p.at,
            ))
        })
        .collect();
    let mut counted = 0;
    let mut repeats = 0;
    for (patient, code, at) in &placed {
        if *at < from || *at >= to {
            continue;
        }
        counted += 1;
        if placed.iter().any(|(p, c, before)| {
            p == patient && c == code && before < at && *at - *before <= window
        }) {
            repeats += 1;
        }
    }
    (counted, repeats, percent(repeats, counted))
}

/// Schedule outcomes per service type (from the referral's placement), service types in order.
pub fn schedule_outcomes_by_service(
    referrals: &[Loop],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(String, ScheduleOutcomes)> {
    let mut by: BTreeMap<String, Vec<Loop>> = BTreeMap::new();
    for r in referrals {
        let service = r
            .first("referrals.referral.placed")
            .and_then(|p| p.fields.get("service_type").cloned())
            .unwrap_or_default();
        by.entry(service).or_default().push(r.clone());
    }
    by.into_iter()
        .map(|(service, loops)| (service, schedule_outcomes(&loops, from, to)))
        .filter(|(_, o)| o.scheduled > 0)
        .collect()
}

/// Which loops a measure looks at: by role (owner, routed-to or item role), urgency and service
/// type of the loop's opening event. An unset filter keeps everything; a set one drops loops whose
/// opening event has no such field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub role: Option<String>,
    pub urgency: Option<String>,
    pub service_type: Option<String>,
}

impl Filter {
    pub fn keeps(&self, l: &Loop) -> bool {
        let Some(first) = l.sorted().into_iter().next() else {
            return false;
        };
        let has = |names: &[&str], wanted: &Option<String>| match wanted {
            None => true,
            Some(w) => names
                .iter()
                .any(|n| first.fields.get(*n).is_some_and(|v| v == w)),
        };
        has(&["owner_role", "to_role", "role"], &self.role)
            && has(&["urgency"], &self.urgency)
            && has(&["service_type"], &self.service_type)
    }

    pub fn apply(&self, loops: Vec<Loop>) -> Vec<Loop> {
        if *self == Filter::default() {
            return loops;
        }
        loops.into_iter().filter(|l| self.keeps(l)).collect()
    }
}

/// Which way a measure moved from last week to this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Improved,
    Worse,
    Flat,
}

pub fn direction(this: Option<f64>, last: Option<f64>, higher_is_better: bool) -> Direction {
    match (this, last) {
        (Some(t), Some(l)) if (t - l).abs() < 1e-9 => Direction::Flat,
        (Some(t), Some(l)) => {
            if (t > l) == higher_is_better {
                Direction::Improved
            } else {
                Direction::Worse
            }
        }
        _ => Direction::Flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).single().unwrap()
    }

    fn point(version: i64, event_type: &str, at: DateTime<Utc>, fields: &[(&str, &str)]) -> Point {
        Point {
            version,
            event_type: event_type.into(),
            at,
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn moved(version: i64, at: DateTime<Utc>, to: &str) -> Point {
        point(
            version,
            "referrals.referral.status_changed",
            at,
            &[("to_status", to)],
        )
    }

    #[test]
    fn closure_within_thirty_days_and_stage_medians_by_hand() {
        let placed = |at| point(1, "referrals.referral.placed", at, &[]);
        let referrals = vec![
            // Closed in 10 days: accepted +24 h, scheduled +48 h, seen +7 d, note +10 d.
            Loop {
                id: "a".into(),
                patient: String::new(),
                points: vec![
                    placed(at(1, 0)),
                    moved(2, at(2, 0), "accepted"),
                    moved(3, at(3, 0), "scheduled"),
                    moved(4, at(8, 0), "seen"),
                    moved(5, at(11, 0), "note_received"),
                ],
            },
            // Closed, but after 40 days: not within 30. Accepted +12 h.
            Loop {
                id: "b".into(),
                patient: String::new(),
                points: vec![
                    placed(at(1, 0)),
                    moved(2, at(1, 12), "accepted"),
                    moved(3, at(1, 12) + Duration::days(40), "note_received"),
                ],
            },
            // Cancelled: not counted.
            Loop {
                id: "c".into(),
                patient: String::new(),
                points: vec![placed(at(2, 0)), moved(2, at(3, 0), "cancelled")],
            },
            // Open, accepted after 36 h.
            Loop {
                id: "d".into(),
                patient: String::new(),
                points: vec![moved(2, at(4, 12), "accepted"), placed(at(3, 0))],
            },
        ];
        let c = referral_closure(&referrals, at(1, 0), at(30, 0), Duration::days(30));
        assert_eq!(
            c,
            Closure {
                placed: 3,
                closed_within: 1,
                percent: 33.3
            }
        );
        let stages = stage_medians(&referrals, at(1, 0), at(30, 0));
        // placed -> accepted: a 24 h, b 12 h, d 36 h: median 24 h.
        assert_eq!(stages[0], ("placed", "accepted", 3, Some(24.0)));
        assert_eq!(stages[1], ("accepted", "scheduled", 1, Some(24.0)));
        assert_eq!(stages[3], ("seen", "note_received", 1, Some(72.0)));
    }

    #[test]
    fn first_contact_schedule_outcomes_transport_and_transitions_by_hand() {
        let placed = |at| point(1, "referrals.referral.placed", at, &[]);
        let referrals = vec![
            Loop {
                id: "a".into(),
                patient: String::new(),
                points: vec![
                    placed(at(1, 0)),
                    moved(2, at(1, 6), "accepted"),
                    moved(3, at(2, 0), "scheduled"),
                    moved(4, at(3, 0), "rescheduled"),
                ],
            },
            Loop {
                id: "b".into(),
                patient: String::new(),
                points: vec![placed(at(1, 0)), moved(2, at(1, 10), "declined")],
            },
            Loop {
                id: "c".into(),
                patient: String::new(),
                points: vec![
                    placed(at(1, 0)),
                    moved(2, at(2, 0), "accepted"),
                    moved(3, at(2, 1), "scheduled"),
                    moved(4, at(9, 0), "no_show"),
                ],
            },
        ];
        // Answers after 6, 10 and 24 h: median 10 h.
        assert_eq!(
            first_contact(&referrals, at(1, 0), at(30, 0)),
            (3, Some(10.0))
        );
        assert_eq!(
            schedule_outcomes(&referrals, at(1, 0), at(30, 0)),
            ScheduleOutcomes {
                scheduled: 2,
                rescheduled_percent: 50.0,
                cancelled_percent: 0.0,
                no_show_percent: 50.0
            }
        );
        let order = |id: &str, kind: &str, confirmed: Option<DateTime<Utc>>| Loop {
            id: id.into(),
            patient: String::new(),
            points: [Some(point(
                1,
                "referrals.order.placed",
                at(1, 0),
                &[("kind", kind)],
            ))]
            .into_iter()
            .chain([confirmed.map(|c| {
                point(
                    2,
                    "referrals.order.status_changed",
                    c,
                    &[("to_status", "confirmed")],
                )
            })])
            .flatten()
            .collect(),
        };
        let orders = vec![
            order("t1", "transport", Some(at(1, 2))),
            order("t2", "transport", Some(at(1, 6))),
            order("t3", "transport", None),
            order("l1", "lab", Some(at(1, 1))),
        ];
        assert_eq!(
            transport_confirmation(&orders, at(1, 0), at(30, 0)),
            (3, 2, Some(4.0))
        );
        let checklist = |v, at, item: &str| {
            point(
                v,
                "plans.transition.checklist_updated",
                at,
                &[("item", item), ("state", "done")],
            )
        };
        let started = |at| point(1, "plans.transition.started", at, &[]);
        let loops = vec![
            Loop {
                id: "x".into(),
                patient: String::new(),
                points: vec![
                    started(at(1, 0)),
                    checklist(2, at(1, 5), "medications_reconciled"),
                    checklist(3, at(3, 0), "follow_up_call"),
                ],
            },
            Loop {
                id: "y".into(),
                patient: String::new(),
                points: vec![started(at(1, 0)), checklist(2, at(5, 0), "follow_up_call")],
            },
        ];
        assert_eq!(
            transitions(&loops, at(1, 0), at(30, 0), Duration::hours(72)),
            Transitions {
                started: 2,
                follow_up_within_percent: 50.0,
                medications_reconciled_percent: 50.0
            }
        );
    }

    #[test]
    fn completion_and_open_loops_by_age_and_owner_by_hand() {
        let placed =
            |at, role: &str| point(1, "referrals.referral.placed", at, &[("owner_role", role)]);
        let referrals = vec![
            Loop {
                id: "a".into(),
                patient: String::new(),
                points: vec![placed(at(1, 0), "scheduler"), moved(2, at(5, 0), "seen")],
            },
            Loop {
                id: "b".into(),
                patient: String::new(),
                points: vec![placed(at(1, 0), "scheduler")],
            },
            Loop {
                id: "c".into(),
                patient: String::new(),
                points: vec![placed(at(9, 0), "care_manager")],
            },
            Loop {
                id: "d".into(),
                patient: String::new(),
                points: vec![
                    placed(at(9, 0), "care_manager"),
                    moved(2, at(9, 1), "cancelled"),
                ],
            },
        ];
        assert_eq!(
            referral_completion(&referrals, at(1, 0), at(30, 0)),
            (3, 1, 33.3)
        );
        let results = vec![Loop {
            id: "r".into(),
            patient: String::new(),
            points: vec![point(
                2,
                "referrals.result.routed",
                at(10, 0),
                &[("flag", "critical"), ("to_role", "pcp")],
            )],
        }];
        let now = at(10, 12);
        assert_eq!(
            open_loops(&referrals, &[], &results, now),
            vec![
                ("referral", "care_manager".to_string(), "1 to 3 days", 1),
                ("referral", "scheduler".to_string(), "7 to 30 days", 2),
                ("result", "pcp".to_string(), "under 1 day", 1),
            ]
        );
    }

    #[test]
    fn a_repeat_test_is_the_same_test_for_the_same_patient_within_the_window() {
        let order = |patient: &str, code: &str, at| Loop {
            id: format!("{patient}-{code}-{at}"),
            patient: patient.into(),
            points: vec![point(
                1,
                "referrals.order.placed",
                at,
                &[("kind", "lab"), ("test_code", code)],
            )],
        };
        let orders = vec![
            order("p1", "BMP", at(1, 0)),
            order("p1", "BMP", at(20, 0)), // 19 days after: a repeat within 30
            order("p1", "CBC", at(21, 0)), // another test
            order("p2", "BMP", at(21, 0)), // another patient
        ];
        assert_eq!(
            repeat_tests(&orders, at(15, 0), at(30, 0), Duration::days(30)),
            (3, 1, 33.3)
        );
        assert_eq!(
            repeat_tests(&orders, at(15, 0), at(30, 0), Duration::days(10)),
            (3, 0, 0.0)
        );
    }

    #[test]
    fn a_filter_keeps_loops_whose_opening_event_matches() {
        let placed = |role: &str, urgency: &str| Loop {
            id: format!("{role}-{urgency}"),
            patient: String::new(),
            points: vec![point(
                1,
                "referrals.referral.placed",
                at(1, 0),
                &[("owner_role", role), ("urgency", urgency)],
            )],
        };
        let loops = vec![
            placed("scheduler", "urgent"),
            placed("scheduler", "routine"),
            placed("rn", "urgent"),
        ];
        let f = Filter {
            role: Some("scheduler".into()),
            urgency: Some("urgent".into()),
            service_type: None,
        };
        assert_eq!(f.apply(loops.clone()).len(), 1);
        assert_eq!(Filter::default().apply(loops.clone()).len(), 3);
        let by_service = Filter {
            service_type: Some("cardiology".into()),
            ..Filter::default()
        };
        assert!(
            by_service.apply(loops).is_empty(),
            "no service type: left out"
        );
    }

    #[test]
    fn a_measure_improves_when_it_moves_the_right_way() {
        assert_eq!(direction(Some(60.0), Some(50.0), true), Direction::Improved);
        assert_eq!(direction(Some(60.0), Some(50.0), false), Direction::Worse);
        assert_eq!(direction(Some(5.0), Some(5.0), false), Direction::Flat);
        assert_eq!(direction(None, Some(5.0), false), Direction::Flat);
    }

    #[test]
    fn follow_through_and_orphans_and_response_by_role_by_hand() {
        let routed = |v, at, flag| point(v, "referrals.result.routed", at, &[("flag", flag)]);
        let results = vec![
            Loop {
                id: "r1".into(),
                patient: String::new(),
                points: vec![
                    routed(2, at(1, 0), "critical"),
                    point(3, "referrals.result.acknowledged", at(1, 2), &[]),
                ],
            },
            Loop {
                id: "r2".into(),
                patient: String::new(),
                points: vec![
                    routed(2, at(1, 0), "abnormal"),
                    point(3, "referrals.result.acknowledged", at(2, 0), &[]),
                ],
            },
            // Abnormal, never acknowledged, due 72 h later: orphaned by the 10th.
            Loop {
                id: "r3".into(),
                patient: String::new(),
                points: vec![routed(2, at(2, 0), "abnormal")],
            },
            // Normal: not measured.
            Loop {
                id: "r4".into(),
                patient: String::new(),
                points: vec![routed(2, at(2, 0), "normal")],
            },
        ];
        let f = result_follow_through(&results, at(1, 0), at(30, 0), at(10, 0), |p| {
            Some(p.at + Duration::hours(72))
        });
        assert_eq!(
            f,
            FollowThrough {
                routed: 3,
                acknowledged: 2,
                median_hours: Some(13.0),
                orphaned: 1
            }
        );

        let item = |id: &str, raised, ack: Option<(DateTime<Utc>, &str)>| Loop {
            id: id.into(),
            patient: String::new(),
            points: [Some(point(1, "notifications.item.raised", raised, &[]))]
                .into_iter()
                .chain([ack.map(|(at, role)| {
                    point(2, "notifications.item.acknowledged", at, &[("role", role)])
                })])
                .flatten()
                .collect(),
        };
        let items = vec![
            item("i1", at(1, 0), Some((at(1, 1), "rn"))),
            item("i2", at(1, 0), Some((at(1, 3), "rn"))),
            item("i3", at(1, 0), Some((at(1, 10), "rn"))),
            item("i4", at(1, 0), Some((at(1, 4), "pcp"))),
            item("i5", at(1, 0), None),
        ];
        assert_eq!(
            response_by_role(&items, at(1, 0), at(30, 0)),
            vec![
                ("pcp".to_string(), 1, Some(4.0), Some(4.0)),
                ("rn".to_string(), 3, Some(3.0), Some(10.0)),
            ]
        );
    }
}
