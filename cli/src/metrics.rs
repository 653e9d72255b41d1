//! `careloop measure ...`: the prior-authorization measures (metrics service), as tables.

use crate::client::Metrics;
use careloop_proto::metrics::v1::*;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum MeasureCmd {
    /// The CMS-0057-F prior-authorization report for the last --days.
    PriorAuth {
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value = "")]
        payer: String,
        #[arg(long, default_value = "")]
        org: String,
    },
    /// The coordination measures for the last --days.
    Coordination {
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value_t = 30)]
        closure_days: i32,
        #[arg(long, default_value = "")]
        org: String,
        /// Only loops owned by (or routed to) this role.
        #[arg(long, default_value = "")]
        role: String,
        /// Only referrals of this urgency (routine, urgent, stat).
        #[arg(long, default_value = "")]
        urgency: String,
        #[arg(long, default_value = "")]
        service_type: String,
    },
    /// Enter a payer's own published CMS-0057-F figures for the last --days, shown beside its clocks.
    PayerPublished {
        #[arg(long)]
        payer: String,
        #[arg(long, default_value_t = 90)]
        days: i64,
        #[arg(long)]
        standard_approved: f64,
        #[arg(long)]
        standard_denied: f64,
        #[arg(long)]
        expedited_approved: f64,
        #[arg(long)]
        expedited_denied: f64,
        #[arg(long)]
        standard_hours: Option<f64>,
        #[arg(long)]
        expedited_hours: Option<f64>,
        #[arg(long, default_value = "")]
        org: String,
    },
    /// The weekly review: this week (the last 7 days) against the 7 before, and stalled loops.
    Week {
        #[arg(long, default_value = "")]
        org: String,
    },
    /// Each payer's decisions against the deadlines of CareLoop's own submissions.
    PayerClocks {
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value = "")]
        org: String,
    },
}

fn last(days: i64) -> Period {
    let now = chrono::Utc::now();
    Period {
        from: Some(careloop_runtime::time::to_timestamp(
            now - chrono::Duration::days(days),
        )),
        to: Some(careloop_runtime::time::to_timestamp(now)),
    }
}

fn hours(h: Option<f64>) -> String {
    h.map(|h| format!("{h:.1} h")).unwrap_or_else(|| "-".into())
}

pub async fn run(c: &mut Metrics, cmd: &MeasureCmd) -> anyhow::Result<()> {
    match cmd {
        MeasureCmd::PriorAuth { days, payer, org } => {
            let r = c
                .get_prior_auth_report(GetPriorAuthReportRequest {
                    period: Some(last(*days)),
                    payer_id: payer.clone(),
                    org_id: org.clone(),
                })
                .await?
                .into_inner()
                .report
                .unwrap_or_default();
            if crate::output::format() == crate::output::Format::Json {
                crate::output::emit(&crate::output::render_one(&r));
                return Ok(());
            }
            println!(
                "prior authorizations decided in the last {days} days: {}",
                r.decided
            );
            println!(
                "{:<10} {:>8} {:>10} {:>8} {:>10} {:>10}",
                "urgency", "decided", "approved", "denied", "average", "median"
            );
            for (name, f) in [("standard", r.standard), ("expedited", r.expedited)] {
                let f = f.unwrap_or_default();
                println!(
                    "{name:<10} {:>8} {:>9.1}% {:>7.1}% {:>10} {:>10}",
                    f.decided,
                    f.approved_percent,
                    f.denied_percent,
                    hours(f.average_hours),
                    hours(f.median_hours)
                );
            }
            println!(
                "approved after appeal: {:.1}%",
                r.approved_after_appeal_percent
            );
            println!(
                "approved after an extended review: {:.1}%",
                r.approved_after_extension_percent
            );
        }
        MeasureCmd::Coordination {
            days,
            closure_days,
            org,
            role,
            urgency,
            service_type,
        } => {
            let m = c
                .get_coordination_measures(GetCoordinationMeasuresRequest {
                    period: Some(last(*days)),
                    org_id: org.clone(),
                    closure_days: *closure_days,
                    role: role.clone(),
                    urgency: urgency.clone(),
                    service_type: service_type.clone(),
                })
                .await?
                .into_inner()
                .measures
                .unwrap_or_default();
            if crate::output::format() == crate::output::Format::Json {
                crate::output::emit(&crate::output::render_one(&m));
                return Ok(());
            }
            println!(
                "referral loop closure within {closure_days} days: {} of {} ({:.1}%)",
                m.referrals_closed_within, m.referrals_placed, m.referral_closure_percent
            );
            println!(
                "referral-to-service completion: {} seen ({:.1}%)",
                m.referrals_completed, m.referral_completion_percent
            );
            for s in &m.referral_stages {
                println!(
                    "  {:<10} -> {:<14} {:>4} referrals, median {}",
                    s.from_stage,
                    s.to_stage,
                    s.referrals,
                    hours(s.median_hours)
                );
            }
            println!(
                "abnormal results: {} routed, {} acknowledged (median {}), {} orphaned",
                m.abnormal_results,
                m.abnormal_results_acknowledged,
                hours(m.result_follow_through_median_hours),
                m.orphaned_abnormal_results
            );
            for r in &m.response_by_role {
                println!(
                    "  response by {:<22} {:>4} acknowledged, median {}, p90 {}",
                    r.role,
                    r.acknowledged,
                    hours(r.median_hours),
                    hours(r.p90_hours)
                );
            }
            println!(
                "handoffs: {} sent, {} acknowledged (median {})",
                m.handoffs_sent,
                m.handoffs_acknowledged,
                hours(m.handoff_acknowledgement_median_hours)
            );
            println!(
                "first contact after a referral: {} answered, median {}",
                m.referrals_answered,
                hours(m.first_contact_median_hours)
            );
            println!(
                "after scheduling ({}): rescheduled {:.1}%, cancelled {:.1}%, no-show {:.1}%",
                m.referrals_scheduled,
                m.rescheduled_percent,
                m.cancelled_after_scheduling_percent,
                m.no_show_percent
            );
            println!(
                "transport: {} ordered, {} confirmed (median {})",
                m.transport_orders,
                m.transport_confirmed,
                hours(m.transport_confirmation_median_hours)
            );
            println!(
                "transitions: {} started, follow-up within 72 h {:.1}%, medications reconciled {:.1}%",
                m.transitions_started,
                m.follow_up_within_72h_percent,
                m.medications_reconciled_percent
            );
        }
        MeasureCmd::PayerPublished {
            payer,
            days,
            standard_approved,
            standard_denied,
            expedited_approved,
            expedited_denied,
            standard_hours,
            expedited_hours,
            org,
        } => {
            c.record_payer_published_figures(RecordPayerPublishedFiguresRequest {
                idempotency_key: crate::client::key(),
                org_id: org.clone(),
                payer_id: payer.clone(),
                figures: Some(PublishedFigures {
                    period: Some(last(*days)),
                    standard_approved_percent: *standard_approved,
                    standard_denied_percent: *standard_denied,
                    expedited_approved_percent: *expedited_approved,
                    expedited_denied_percent: *expedited_denied,
                    standard_average_hours: *standard_hours,
                    expedited_average_hours: *expedited_hours,
                }),
            })
            .await?;
            println!("recorded {payer}'s published figures for the last {days} days");
        }
        MeasureCmd::Week { org } => {
            let start = chrono::Utc::now() - chrono::Duration::days(7);
            let review = c
                .get_weekly_review(GetWeeklyReviewRequest {
                    week_start: Some(careloop_runtime::time::to_timestamp(start)),
                    org_id: org.clone(),
                })
                .await?
                .into_inner();
            if crate::output::format() == crate::output::Format::Json {
                crate::output::emit(&crate::output::render_one(&review));
                return Ok(());
            }
            let value = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
            println!(
                "{:<44} {:>10} {:>10}  direction",
                "measure", "this week", "last week"
            );
            for r in &review.rows {
                let direction = Direction::try_from(r.direction)
                    .map(|d| {
                        d.as_str_name()
                            .trim_start_matches("DIRECTION_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<44} {:>10} {:>10}  {direction}",
                    r.measure,
                    value(r.this_week),
                    value(r.last_week)
                );
            }
            println!("stalled loops (oldest overdue, nothing since):");
            for s in &review.stalled {
                println!(
                    "  {:<12} {}  stage {}  owner {}",
                    s.loop_kind, s.loop_id, s.stage, s.owner_role
                );
            }
        }
        MeasureCmd::PayerClocks { days, org } => {
            let payers = c
                .get_payer_clocks(GetPayerClocksRequest {
                    period: Some(last(*days)),
                    org_id: org.clone(),
                })
                .await?
                .into_inner()
                .payers;
            if crate::output::format() == crate::output::Format::Json {
                crate::output::emit(&crate::output::Printable::render(&payers));
                return Ok(());
            }
            println!(
                "{:<20} {:>8} {:>8} {:>6} {:>9} {:>16}",
                "payer", "decided", "on time", "late", "extended", "denied, no reason"
            );
            for p in &payers {
                println!(
                    "{:<20} {:>8} {:>8} {:>6} {:>9} {:>16}",
                    p.payer_id, p.decided, p.on_time, p.late, p.extended, p.denials_without_reason
                );
                if let Some(f) = &p.published {
                    println!(
                        "    as the payer published: standard approved {:.1}% denied {:.1}%, expedited approved {:.1}% denied {:.1}%",
                        f.standard_approved_percent,
                        f.standard_denied_percent,
                        f.expedited_approved_percent,
                        f.expedited_denied_percent
                    );
                }
                for l in &p.late_decisions {
                    println!("    late: {} by {:.1} h", l.request_id, l.hours_late);
                }
            }
        }
    }
    Ok(())
}
