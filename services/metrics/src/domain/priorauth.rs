//! The CMS-0057-F prior-authorization report and each payer held to its clocks, from CareLoop's own
//! submission times. A request's timeline is its events in aggregate-version order (so redelivered
//! or shuffled events give the same answer):
//!
//! - the decision measured is the request's first decision (approved, partially approved, denied)
//!   whose time falls in the period; an appeal decision counts for "approved after appeal";
//! - the clock for a decision starts at the submission it answers (the latest submission before it:
//!   a resubmission after a pend restarts it) and stops at the decision;
//! - the deadline is the one the submission carried (72 hours expedited, 7 calendar days standard in
//!   the payer's zone, computed by prior-auth); a recorded extension moves it and is counted apart.

use super::stats::{hours, median, percent};
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Standard,
    Expedited,
}

/// What happened to a request, as its events tell it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Submitted {
        at: DateTime<Utc>,
        due: Option<DateTime<Utc>>,
        urgency: Urgency,
        payer: String,
    },
    Extended {
        due: DateTime<Utc>,
    },
    Decided {
        at: DateTime<Utc>,
        decision: String,
        urgency: Urgency,
        payer: String,
        denial_reason: String,
    },
    AppealDecided {
        at: DateTime<Utc>,
        approved: bool,
    },
}

/// One request's steps, in version order.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub request_id: String,
    pub steps: Vec<(i64, Step)>,
}

/// A decision as measured: which request, when submitted and decided, against which deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub request_id: String,
    pub payer: String,
    pub urgency: Urgency,
    pub submitted_at: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
    pub decision: String,
    pub denial_reason: String,
    /// The deadline the submission carried.
    pub due: Option<DateTime<Utc>>,
    /// The deadline after a recorded extension.
    pub extended_due: Option<DateTime<Utc>>,
    pub approved_after_appeal: bool,
}

impl Timeline {
    /// The first decision, with the submission that started its clock; `None` before any.
    pub fn measured(&self) -> Option<Measured> {
        let mut steps = self.steps.clone();
        steps.sort_by_key(|(version, _)| *version);
        let mut submission: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = None;
        let mut extended: Option<DateTime<Utc>> = None;
        let mut measured: Option<Measured> = None;
        for (_, step) in steps {
            match step {
                Step::Submitted { at, due, .. } if measured.is_none() => {
                    submission = Some((at, due));
                    extended = None;
                }
                Step::Extended { due } if measured.is_none() => extended = Some(due),
                Step::Decided {
                    at,
                    decision,
                    urgency,
                    payer,
                    denial_reason,
                } if measured.is_none() => {
                    let (submitted_at, due) = submission?;
                    measured = Some(Measured {
                        request_id: self.request_id.clone(),
                        payer,
                        urgency,
                        submitted_at,
                        decided_at: at,
                        decision,
                        denial_reason,
                        due,
                        extended_due: extended,
                        approved_after_appeal: false,
                    });
                }
                Step::AppealDecided { approved, .. } => {
                    if let Some(m) = measured.as_mut() {
                        m.approved_after_appeal |= approved;
                    }
                }
                _ => {}
            }
        }
        measured
    }
}

fn approved(decision: &str) -> bool {
    matches!(decision, "approved" | "partially_approved")
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UrgencyFigures {
    pub decided: usize,
    pub approved_percent: f64,
    pub denied_percent: f64,
    pub average_hours: Option<f64>,
    pub median_hours: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub decided: usize,
    pub standard: UrgencyFigures,
    pub expedited: UrgencyFigures,
    /// Of the requests decided, those approved on appeal.
    pub approved_after_appeal_percent: f64,
    /// Of the requests decided, those approved after an extended review timeframe.
    pub approved_after_extension_percent: f64,
}

fn figures(decisions: &[&Measured]) -> UrgencyFigures {
    let times: Vec<Duration> = decisions
        .iter()
        .map(|m| m.decided_at - m.submitted_at)
        .collect();
    let total: Duration = times.iter().copied().sum();
    UrgencyFigures {
        decided: decisions.len(),
        approved_percent: percent(
            decisions.iter().filter(|m| approved(&m.decision)).count(),
            decisions.len(),
        ),
        denied_percent: percent(
            decisions.iter().filter(|m| m.decision == "denied").count(),
            decisions.len(),
        ),
        average_hours: (!times.is_empty()).then(|| hours(total / times.len() as i32)),
        median_hours: median(times),
    }
}

/// The report over the requests decided within [from, to) (for one payer when given).
pub fn report(
    decisions: &[Measured],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    payer: Option<&str>,
) -> Report {
    let in_period: Vec<&Measured> = decisions
        .iter()
        .filter(|m| m.decided_at >= from && m.decided_at < to)
        .filter(|m| payer.is_none_or(|p| m.payer == p))
        .collect();
    let of = |u: Urgency| -> Vec<&Measured> {
        in_period
            .iter()
            .copied()
            .filter(|m| m.urgency == u)
            .collect()
    };
    Report {
        decided: in_period.len(),
        standard: figures(&of(Urgency::Standard)),
        expedited: figures(&of(Urgency::Expedited)),
        approved_after_appeal_percent: percent(
            in_period.iter().filter(|m| m.approved_after_appeal).count(),
            in_period.len(),
        ),
        approved_after_extension_percent: percent(
            in_period
                .iter()
                .filter(|m| m.extended_due.is_some() && approved(&m.decision))
                .count(),
            in_period.len(),
        ),
    }
}

/// One payer against its clocks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PayerClock {
    pub payer: String,
    pub decided: usize,
    pub on_time: usize,
    pub late: usize,
    pub extended: usize,
    /// Denials that gave no specific reason.
    pub denials_without_reason: usize,
    /// The late decisions: (request, hours past the deadline).
    pub late_requests: Vec<(String, f64)>,
}

/// Each payer's decisions within [from, to) against the deadlines CareLoop's submissions set: on
/// time, late (after the deadline, or after the extended one), and extended (counted apart).
pub fn payer_clocks(
    decisions: &[Measured],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<PayerClock> {
    let mut clocks: Vec<PayerClock> = Vec::new();
    let mut in_period: Vec<&Measured> = decisions
        .iter()
        .filter(|m| m.decided_at >= from && m.decided_at < to)
        .collect();
    in_period.sort_by(|a, b| (&a.payer, &a.request_id).cmp(&(&b.payer, &b.request_id)));
    for m in in_period {
        let i = match clocks.iter().position(|c| c.payer == m.payer) {
            Some(i) => i,
            None => {
                clocks.push(PayerClock {
                    payer: m.payer.clone(),
                    ..Default::default()
                });
                clocks.len() - 1
            }
        };
        let c = &mut clocks[i];
        c.decided += 1;
        if m.extended_due.is_some() {
            c.extended += 1;
        }
        let deadline = m.extended_due.or(m.due);
        match deadline {
            Some(due) if m.decided_at > due => {
                c.late += 1;
                c.late_requests
                    .push((m.request_id.clone(), hours(m.decided_at - due)));
            }
            _ => c.on_time += 1,
        }
        if m.decision == "denied" && m.denial_reason.trim().is_empty() {
            c.denials_without_reason += 1;
        }
    }
    clocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).single().unwrap()
    }

    fn submitted(at: DateTime<Utc>, due: DateTime<Utc>, urgency: Urgency) -> Step {
        Step::Submitted {
            at,
            due: Some(due),
            urgency,
            payer: "acme".into(),
        }
    }

    fn decided(at: DateTime<Utc>, decision: &str, urgency: Urgency, reason: &str) -> Step {
        Step::Decided {
            at,
            decision: decision.into(),
            urgency,
            payer: "acme".into(),
            denial_reason: reason.into(),
        }
    }

    fn timeline(id: &str, steps: Vec<Step>) -> Timeline {
        Timeline {
            request_id: id.into(),
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(i, s)| (i as i64 + 1, s))
                .collect(),
        }
    }

    #[test]
    fn a_resubmission_after_a_pend_restarts_the_clock_and_shuffled_steps_give_the_same_answer() {
        let t = timeline(
            "r1",
            vec![
                submitted(at(2, 8), at(5, 8), Urgency::Expedited),
                // pended, then resubmitted on the 3rd at 10:00
                submitted(at(3, 10), at(6, 10), Urgency::Expedited),
                decided(at(4, 10), "approved", Urgency::Expedited, ""),
            ],
        );
        let m = t.measured().unwrap();
        assert_eq!(m.submitted_at, at(3, 10));
        assert_eq!(m.decided_at - m.submitted_at, Duration::hours(24));
        let mut shuffled = t.clone();
        shuffled.steps.reverse();
        assert_eq!(shuffled.measured(), Some(m));
    }

    #[test]
    fn the_report_counts_by_urgency_with_hand_computed_figures() {
        // Standard: approved in 48 h, denied in 96 h, partially approved in 24 h.
        // Expedited: approved in 10 h, denied (no reason) in 30 h.
        let decisions: Vec<Measured> = [
            timeline(
                "s1",
                vec![
                    submitted(at(1, 0), at(8, 0), Urgency::Standard),
                    decided(at(3, 0), "approved", Urgency::Standard, ""),
                ],
            ),
            timeline(
                "s2",
                vec![
                    submitted(at(1, 0), at(8, 0), Urgency::Standard),
                    decided(
                        at(5, 0),
                        "denied",
                        Urgency::Standard,
                        "NOT_MEDICALLY_NECESSARY",
                    ),
                ],
            ),
            timeline(
                "s3",
                vec![
                    submitted(at(2, 0), at(9, 0), Urgency::Standard),
                    decided(at(3, 0), "partially_approved", Urgency::Standard, ""),
                ],
            ),
            timeline(
                "e1",
                vec![
                    submitted(at(2, 0), at(5, 0), Urgency::Expedited),
                    decided(at(2, 10), "approved", Urgency::Expedited, ""),
                ],
            ),
            timeline(
                "e2",
                vec![
                    submitted(at(2, 0), at(5, 0), Urgency::Expedited),
                    decided(at(3, 6), "denied", Urgency::Expedited, ""),
                ],
            ),
        ]
        .iter()
        .filter_map(Timeline::measured)
        .collect();
        let r = report(&decisions, at(1, 0), at(30, 0), None);
        assert_eq!(r.decided, 5);
        assert_eq!(r.standard.decided, 3);
        assert_eq!(r.standard.approved_percent, 66.7);
        assert_eq!(r.standard.denied_percent, 33.3);
        assert_eq!(r.standard.average_hours, Some(56.0));
        assert_eq!(r.standard.median_hours, Some(48.0));
        assert_eq!(r.expedited.approved_percent, 50.0);
        assert_eq!(r.expedited.average_hours, Some(20.0));
        assert_eq!(r.expedited.median_hours, Some(20.0));
    }

    #[test]
    fn appeals_and_extensions_are_counted_and_payers_held_to_their_clocks() {
        let decisions: Vec<Measured> = [
            // Denied without a reason, then approved on appeal.
            timeline(
                "a",
                vec![
                    submitted(at(1, 0), at(4, 0), Urgency::Expedited),
                    decided(at(2, 0), "denied", Urgency::Expedited, ""),
                    Step::AppealDecided {
                        at: at(9, 0),
                        approved: true,
                    },
                ],
            ),
            // Extended by two days, approved within the extension: on time, extended.
            timeline(
                "b",
                vec![
                    submitted(at(1, 0), at(8, 0), Urgency::Standard),
                    Step::Extended { due: at(10, 0) },
                    decided(at(9, 0), "approved", Urgency::Standard, ""),
                ],
            ),
            // Decided 12 hours after its 72-hour deadline: late.
            timeline(
                "c",
                vec![
                    submitted(at(1, 0), at(4, 0), Urgency::Expedited),
                    decided(at(4, 12), "approved", Urgency::Expedited, ""),
                ],
            ),
            // Submitted, never decided: not measured.
            timeline("d", vec![submitted(at(1, 0), at(4, 0), Urgency::Expedited)]),
        ]
        .iter()
        .filter_map(Timeline::measured)
        .collect();
        assert_eq!(decisions.len(), 3);
        let r = report(&decisions, at(1, 0), at(30, 0), Some("acme"));
        assert_eq!(r.approved_after_appeal_percent, 33.3);
        assert_eq!(r.approved_after_extension_percent, 33.3);
        let clocks = payer_clocks(&decisions, at(1, 0), at(30, 0));
        assert_eq!(clocks.len(), 1);
        let acme = &clocks[0];
        assert_eq!(
            (acme.decided, acme.on_time, acme.late, acme.extended),
            (3, 2, 1, 1)
        );
        assert_eq!(acme.late_requests, vec![("c".to_string(), 12.0)]);
        assert_eq!(acme.denials_without_reason, 1);
    }
}
