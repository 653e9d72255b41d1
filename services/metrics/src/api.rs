//! The tonic implementation of `careloop.metrics.v1.MetricsService`. Measures are aggregates of an
//! organization's loops: staff read their own organization's, internal services name one.

use crate::domain::priorauth::{self, Measured, Timeline, UrgencyFigures};
use crate::store;
use careloop_proto::metrics::v1 as pb;
use careloop_proto::metrics::v1::metrics_service_server::MetricsService;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::validate as v;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

pub const SOURCE: &str = "metrics";

#[derive(Clone)]
pub struct MetricsApi {
    pool: PgPool,
}

impl MetricsApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn org_of(who: &Principal, requested: &str) -> ApiResult<Uuid> {
    careloop_runtime::access::staff_or_named_org(
        who,
        requested,
        "measures are read by the organization's staff",
    )
}

fn period(p: Option<&pb::Period>) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let p = p.ok_or_else(|| ApiError::invalid("period", "is required"))?;
    let from = v::timestamp("period.from", p.from.as_ref())?;
    let to = v::timestamp("period.to", p.to.as_ref())?;
    if to <= from || to - from > chrono::Duration::days(366) {
        return Err(ApiError::invalid(
            "period.to",
            "must be after from, at most 366 days later",
        ));
    }
    Ok((from, to))
}

fn urgency_figures(f: UrgencyFigures) -> pb::UrgencyFigures {
    pb::UrgencyFigures {
        decided: f.decided as i64,
        approved_percent: f.approved_percent,
        denied_percent: f.denied_percent,
        average_hours: f.average_hours,
        median_hours: f.median_hours,
    }
}

impl MetricsApi {
    async fn decisions(
        &self,
        org: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ApiResult<Vec<Measured>> {
        decisions(&self.pool, org, from, to).await
    }

    async fn get_prior_auth_report(
        &self,
        who: &Principal,
        req: pb::GetPriorAuthReportRequest,
    ) -> ApiResult<pb::GetPriorAuthReportResponse> {
        let (from, to) = period(req.period.as_ref())?;
        let payer = v::optional_text("payer_id", &req.payer_id, v::MAX_SHORT)?;
        let org = org_of(who, &req.org_id)?;
        let decisions = self.decisions(org, from, to).await?;
        let r = priorauth::report(
            &decisions,
            from,
            to,
            (!payer.is_empty()).then_some(payer.as_str()),
        );
        Ok(pb::GetPriorAuthReportResponse {
            report: Some(pb::PriorAuthReport {
                decided: r.decided as i64,
                standard: Some(urgency_figures(r.standard)),
                expedited: Some(urgency_figures(r.expedited)),
                approved_after_appeal_percent: r.approved_after_appeal_percent,
                approved_after_extension_percent: r.approved_after_extension_percent,
            }),
        })
    }

    async fn get_payer_clocks(
        &self,
        who: &Principal,
        req: pb::GetPayerClocksRequest,
    ) -> ApiResult<pb::GetPayerClocksResponse> {
        let (from, to) = period(req.period.as_ref())?;
        let org = org_of(who, &req.org_id)?;
        let decisions = self.decisions(org, from, to).await?;
        let published = published(&self.pool, org, from, to).await?;
        Ok(pb::GetPayerClocksResponse {
            payers: priorauth::payer_clocks(&decisions, from, to)
                .into_iter()
                .map(|c| pb::PayerClock {
                    published: published
                        .iter()
                        .find(|(p, _)| *p == c.payer)
                        .map(|(_, f)| *f),
                    payer_id: c.payer,
                    decided: c.decided as i64,
                    on_time: c.on_time as i64,
                    late: c.late as i64,
                    extended: c.extended as i64,
                    denials_without_reason: c.denials_without_reason as i64,
                    late_decisions: c
                        .late_requests
                        .into_iter()
                        .map(|(request_id, hours_late)| pb::LateDecision {
                            request_id,
                            hours_late,
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

impl MetricsApi {
    async fn get_coordination_measures(
        &self,
        who: &Principal,
        req: pb::GetCoordinationMeasuresRequest,
    ) -> ApiResult<pb::GetCoordinationMeasuresResponse> {
        let (from, to) = period(req.period.as_ref())?;
        let days = match req.closure_days {
            0 => 30,
            d if (1..=365).contains(&d) => d,
            _ => {
                return Err(ApiError::invalid(
                    "closure_days",
                    "must be between 1 and 365 (0 for 30)",
                ));
            }
        };
        let optional = |field: &str, value: &str| -> ApiResult<Option<String>> {
            let value = v::optional_text(field, value, v::MAX_SHORT)?;
            Ok((!value.is_empty()).then_some(value))
        };
        let role = optional("role", &req.role)?;
        if let Some(r) = &role
            && careloop_proto::common::v1::CareRole::from_str_name(&format!(
                "CARE_ROLE_{}",
                r.to_ascii_uppercase()
            ))
            .is_none()
        {
            return Err(ApiError::invalid(
                "role",
                "is not a care role name (rn, pcp, ...)",
            ));
        }
        let urgency = optional("urgency", &req.urgency)?;
        if let Some(u) = &urgency
            && !matches!(u.as_str(), "routine" | "urgent" | "stat")
        {
            return Err(ApiError::invalid(
                "urgency",
                "must be routine, urgent or stat",
            ));
        }
        let filter = crate::domain::coordination::Filter {
            role,
            urgency,
            service_type: optional("service_type", &req.service_type)?,
        };
        let org = org_of(who, &req.org_id)?;
        Ok(pb::GetCoordinationMeasuresResponse {
            measures: Some(coordination_filtered(&self.pool, org, from, to, days, &filter).await?),
        })
    }
}

/// The coordination measures of `org` over [from, to) (the gauges' figures).
pub async fn coordination(
    pool: &PgPool,
    org: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    days: i32,
) -> ApiResult<pb::CoordinationMeasures> {
    coordination_filtered(pool, org, from, to, days, &Default::default()).await
}

/// The coordination measures of `org` over [from, to), of the loops the filter keeps.
pub async fn coordination_filtered(
    pool: &PgPool,
    org: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    days: i32,
    filter: &crate::domain::coordination::Filter,
) -> ApiResult<pb::CoordinationMeasures> {
    {
        use crate::domain::coordination as c;
        let mut conn = pool.acquire().await?;
        let referrals = filter.apply(
            store::loops(
                &mut conn,
                org,
                "referrals.referral.",
                "referrals.referral.placed",
                from,
                to,
            )
            .await?,
        );
        let results = filter.apply(
            store::loops(
                &mut conn,
                org,
                "referrals.result.",
                "referrals.result.routed",
                from,
                to,
            )
            .await?,
        );
        let items = filter.apply(
            store::loops(
                &mut conn,
                org,
                "notifications.item.",
                "notifications.item.raised",
                from,
                to,
            )
            .await?,
        );
        let handoffs = filter.apply(
            store::loops(
                &mut conn,
                org,
                "plans.handoff.",
                "plans.handoff.sent",
                from,
                to,
            )
            .await?,
        );
        let orders = filter.apply(
            store::loops(
                &mut conn,
                org,
                "referrals.order.",
                "referrals.order.placed",
                from,
                to,
            )
            .await?,
        );
        let transition_loops = filter.apply(
            store::loops(
                &mut conn,
                org,
                "plans.transition.",
                "plans.transition.started",
                from,
                to,
            )
            .await?,
        );
        let closure = c::referral_closure(
            &referrals,
            from,
            to,
            chrono::Duration::days(i64::from(days)),
        );
        let (answered, first_contact) = c::first_contact(&referrals, from, to);
        let (_, completed, completion) = c::referral_completion(&referrals, from, to);
        // Repeat testing looks back 90 days before the period.
        let history = filter.apply(
            store::loops(
                &mut conn,
                org,
                "referrals.order.",
                "referrals.order.placed",
                from - chrono::Duration::days(90),
                to,
            )
            .await?,
        );
        let (tests, _, repeat30) = c::repeat_tests(&history, from, to, chrono::Duration::days(30));
        let (_, _, repeat90) = c::repeat_tests(&history, from, to, chrono::Duration::days(90));
        let by_service = c::schedule_outcomes_by_service(&referrals, from, to);
        // Open loops are counted now, among those opened within the year before the period ends.
        let now = careloop_runtime::time::now();
        let year = now.min(to) - chrono::Duration::days(365);
        let open = c::open_loops(
            &filter.apply(
                store::loops(
                    &mut conn,
                    org,
                    "referrals.referral.",
                    "referrals.referral.placed",
                    year,
                    now,
                )
                .await?,
            ),
            &filter.apply(
                store::loops(
                    &mut conn,
                    org,
                    "referrals.order.",
                    "referrals.order.placed",
                    year,
                    now,
                )
                .await?,
            ),
            &filter.apply(
                store::loops(
                    &mut conn,
                    org,
                    "referrals.result.",
                    "referrals.result.routed",
                    year,
                    now,
                )
                .await?,
            ),
            now,
        );
        let outcomes = c::schedule_outcomes(&referrals, from, to);
        let (transport, confirmed, confirmation) = c::transport_confirmation(&orders, from, to);
        let transitions = c::transitions(&transition_loops, from, to, chrono::Duration::hours(72));
        let follow = c::result_follow_through(
            &results,
            from,
            to,
            careloop_runtime::time::now(),
            store::result_due,
        );
        let (sent, acknowledged, handoff_median) = c::handoff_acknowledgement(&handoffs, from, to);
        Ok(pb::CoordinationMeasures {
            referrals_placed: closure.placed as i64,
            referrals_closed_within: closure.closed_within as i64,
            referral_closure_percent: closure.percent,
            referral_stages: c::stage_medians(&referrals, from, to)
                .into_iter()
                .map(|(a, b, n, m)| pb::StageTime {
                    from_stage: a.into(),
                    to_stage: b.into(),
                    referrals: n as i64,
                    median_hours: m,
                })
                .collect(),
            abnormal_results: follow.routed as i64,
            abnormal_results_acknowledged: follow.acknowledged as i64,
            result_follow_through_median_hours: follow.median_hours,
            orphaned_abnormal_results: follow.orphaned as i64,
            response_by_role: c::response_by_role(&items, from, to)
                .into_iter()
                .map(|(role, n, median, p90)| pb::RoleResponse {
                    role,
                    acknowledged: n as i64,
                    median_hours: median,
                    p90_hours: p90,
                })
                .collect(),
            handoffs_sent: sent as i64,
            handoffs_acknowledged: acknowledged as i64,
            handoff_acknowledgement_median_hours: handoff_median,
            referrals_answered: answered as i64,
            first_contact_median_hours: first_contact,
            referrals_scheduled: outcomes.scheduled as i64,
            rescheduled_percent: outcomes.rescheduled_percent,
            cancelled_after_scheduling_percent: outcomes.cancelled_percent,
            no_show_percent: outcomes.no_show_percent,
            transport_orders: transport as i64,
            transport_confirmed: confirmed as i64,
            transport_confirmation_median_hours: confirmation,
            transitions_started: transitions.started as i64,
            follow_up_within_72h_percent: transitions.follow_up_within_percent,
            medications_reconciled_percent: transitions.medications_reconciled_percent,
            tests_ordered: tests as i64,
            repeat_within_30_days_percent: repeat30,
            repeat_within_90_days_percent: repeat90,
            outcomes_by_service: by_service
                .into_iter()
                .map(|(service, o)| pb::ServiceOutcomes {
                    service_type: service,
                    scheduled: o.scheduled as i64,
                    rescheduled_percent: o.rescheduled_percent,
                    cancelled_percent: o.cancelled_percent,
                    no_show_percent: o.no_show_percent,
                })
                .collect(),
            referrals_completed: completed as i64,
            referral_completion_percent: completion,
            open_loops: open
                .into_iter()
                .map(|(kind, role, age, count)| pb::OpenLoops {
                    loop_kind: kind.into(),
                    owner_role: role,
                    age: age.into(),
                    count: count as i64,
                })
                .collect(),
        })
    }
}

impl MetricsApi {
    async fn get_weekly_review(
        &self,
        who: &Principal,
        req: pb::GetWeeklyReviewRequest,
    ) -> ApiResult<pb::GetWeeklyReviewResponse> {
        use crate::domain::coordination::{self as c, Direction};
        let start = v::timestamp("week_start", req.week_start.as_ref())?;
        let org = org_of(who, &req.org_id)?;
        let week = |from: DateTime<Utc>| pb::GetCoordinationMeasuresRequest {
            period: Some(pb::Period {
                from: Some(careloop_runtime::time::to_timestamp(from)),
                to: Some(careloop_runtime::time::to_timestamp(
                    from + chrono::Duration::days(7),
                )),
            }),
            org_id: org.to_string(),
            closure_days: 30,
            ..Default::default()
        };
        // The same measures, computed for the caller's organization as a service would.
        let service = Principal {
            org_id: org,
            ..Principal::service(SOURCE)
        };
        let this = self
            .get_coordination_measures(&service, week(start))
            .await?
            .measures
            .unwrap_or_default();
        let last = self
            .get_coordination_measures(&service, week(start - chrono::Duration::days(7)))
            .await?
            .measures
            .unwrap_or_default();
        let rows: Vec<(&str, Option<f64>, Option<f64>, bool)> = vec![
            (
                "referral closure within 30 days %",
                Some(this.referral_closure_percent),
                Some(last.referral_closure_percent),
                true,
            ),
            (
                "first contact after a referral, median h",
                this.first_contact_median_hours,
                last.first_contact_median_hours,
                false,
            ),
            (
                "abnormal-result follow-through, median h",
                this.result_follow_through_median_hours,
                last.result_follow_through_median_hours,
                false,
            ),
            (
                "orphaned abnormal results",
                Some(this.orphaned_abnormal_results as f64),
                Some(last.orphaned_abnormal_results as f64),
                false,
            ),
            (
                "handoff acknowledgement, median h",
                this.handoff_acknowledgement_median_hours,
                last.handoff_acknowledgement_median_hours,
                false,
            ),
            (
                "no-show %",
                Some(this.no_show_percent),
                Some(last.no_show_percent),
                false,
            ),
            (
                "transport confirmation, median h",
                this.transport_confirmation_median_hours,
                last.transport_confirmation_median_hours,
                false,
            ),
            (
                "follow-up call within 72 h %",
                Some(this.follow_up_within_72h_percent),
                Some(last.follow_up_within_72h_percent),
                true,
            ),
            (
                "medications reconciled at transitions %",
                Some(this.medications_reconciled_percent),
                Some(last.medications_reconciled_percent),
                true,
            ),
        ];
        let stalled = store::stalled(&mut *self.pool.acquire().await?, org, 20).await?;
        let kind_name = |k: i32| {
            careloop_proto::common::v1::LoopKind::try_from(k)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("LOOP_KIND_")
                        .to_lowercase()
                })
                .unwrap_or_default()
        };
        let role_name = |r: i32| {
            careloop_proto::common::v1::CareRole::try_from(r)
                .map(|r| {
                    r.as_str_name()
                        .trim_start_matches("CARE_ROLE_")
                        .to_lowercase()
                })
                .unwrap_or_default()
        };
        Ok(pb::GetWeeklyReviewResponse {
            rows: rows
                .into_iter()
                .map(|(name, t, l, higher)| pb::MeasureRow {
                    measure: name.into(),
                    this_week: t,
                    last_week: l,
                    higher_is_better: higher,
                    direction: match c::direction(t, l, higher) {
                        Direction::Improved => pb::Direction::Improved,
                        Direction::Worse => pb::Direction::Worse,
                        Direction::Flat => pb::Direction::Flat,
                    } as i32,
                })
                .collect(),
            stalled: stalled
                .into_iter()
                .map(|(kind, id, stage, role, due)| pb::StalledLoop {
                    loop_kind: kind_name(kind),
                    loop_id: id,
                    stage,
                    owner_role: role_name(role),
                    due_at: careloop_runtime::time::opt_timestamp(due),
                })
                .collect(),
        })
    }
}

/// The organization's prior-authorization decisions measured around [from, to).
pub async fn decisions(
    pool: &PgPool,
    org: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<Measured>> {
    let timelines = store::prior_auth_timelines(&mut *pool.acquire().await?, org, from, to).await?;
    Ok(timelines.iter().filter_map(Timeline::measured).collect())
}

#[derive(sqlx::FromRow)]
struct PublishedRow {
    payer_id: String,
    period_from: DateTime<Utc>,
    period_to: DateTime<Utc>,
    standard_approved_percent: f64,
    standard_denied_percent: f64,
    expedited_approved_percent: f64,
    expedited_denied_percent: f64,
    standard_average_hours: Option<f64>,
    expedited_average_hours: Option<f64>,
}

fn percent_field(field: &str, value: f64) -> ApiResult<f64> {
    if value.is_finite() && (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(field, "must be a percent from 0 to 100"))
    }
}

fn hours_field(field: &str, value: Option<f64>) -> ApiResult<Option<f64>> {
    match value {
        Some(h) if !(h.is_finite() && h >= 0.0) => {
            Err(ApiError::invalid(field, "must be hours, 0 or more"))
        }
        other => Ok(other),
    }
}

impl MetricsApi {
    async fn record_payer_published_figures(
        &self,
        who: &Principal,
        req: pb::RecordPayerPublishedFiguresRequest,
    ) -> ApiResult<pb::RecordPayerPublishedFiguresResponse> {
        let payer = v::text("payer_id", &req.payer_id, v::MAX_SHORT)?;
        let f = req
            .figures
            .as_ref()
            .ok_or_else(|| ApiError::invalid("figures", "is required"))?;
        let (from, to) = period(f.period.as_ref()).map_err(|_| {
            ApiError::invalid("figures.period", "needs from before to, at most 366 days")
        })?;
        let sa = percent_field(
            "figures.standard_approved_percent",
            f.standard_approved_percent,
        )?;
        let sd = percent_field("figures.standard_denied_percent", f.standard_denied_percent)?;
        let ea = percent_field(
            "figures.expedited_approved_percent",
            f.expedited_approved_percent,
        )?;
        let ed = percent_field(
            "figures.expedited_denied_percent",
            f.expedited_denied_percent,
        )?;
        let sh = hours_field("figures.standard_average_hours", f.standard_average_hours)?;
        let eh = hours_field("figures.expedited_average_hours", f.expedited_average_hours)?;
        let org = org_of(who, &req.org_id)?;
        let coordinator = who
            .roles
            .iter()
            .any(|r| r == "prior_auth_coordinator" || r == "admin");
        if who.kind == PrincipalKind::Staff && !coordinator {
            return Err(ApiError::PermissionDenied(
                "payers' figures are entered by prior-auth coordinators or administrators",
            ));
        }
        let mut w = careloop_runtime::begin_write!(
            self.pool,
            SOURCE,
            "RecordPayerPublishedFigures",
            who,
            req
        );
        sqlx::query(
            "INSERT INTO payer_published (org_id, payer_id, period_from, period_to, standard_approved_percent,
                    standard_denied_percent, expedited_approved_percent, expedited_denied_percent,
                    standard_average_hours, expedited_average_hours, entered_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (org_id, payer_id, period_from, period_to) DO UPDATE
                SET standard_approved_percent = EXCLUDED.standard_approved_percent,
                    standard_denied_percent = EXCLUDED.standard_denied_percent,
                    expedited_approved_percent = EXCLUDED.expedited_approved_percent,
                    expedited_denied_percent = EXCLUDED.expedited_denied_percent,
                    standard_average_hours = EXCLUDED.standard_average_hours,
                    expedited_average_hours = EXCLUDED.expedited_average_hours,
                    entered_by = EXCLUDED.entered_by, entered_at = now()",
        )
        .bind(org)
        .bind(&payer)
        .bind(from)
        .bind(to)
        .bind(sa)
        .bind(sd)
        .bind(ea)
        .bind(ed)
        .bind(sh)
        .bind(eh)
        .bind(&who.subject)
        .execute(w.conn())
        .await?;
        w.finish_for(None, org, pb::RecordPayerPublishedFiguresResponse {})
            .await
    }
}

/// The payers' published figures for periods overlapping [from, to), latest period per payer.
async fn published(
    pool: &PgPool,
    org: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<(String, pb::PublishedFigures)>> {
    let rows: Vec<PublishedRow> = sqlx::query_as(
        "SELECT DISTINCT ON (payer_id) payer_id, period_from, period_to, standard_approved_percent,
                standard_denied_percent, expedited_approved_percent, expedited_denied_percent,
                standard_average_hours, expedited_average_hours
           FROM payer_published
          WHERE org_id = $1 AND period_from < $3 AND period_to > $2
          ORDER BY payer_id, period_to DESC",
    )
    .bind(org)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.payer_id,
                pb::PublishedFigures {
                    period: Some(pb::Period {
                        from: Some(careloop_runtime::time::to_timestamp(r.period_from)),
                        to: Some(careloop_runtime::time::to_timestamp(r.period_to)),
                    }),
                    standard_approved_percent: r.standard_approved_percent,
                    standard_denied_percent: r.standard_denied_percent,
                    expedited_approved_percent: r.expedited_approved_percent,
                    expedited_denied_percent: r.expedited_denied_percent,
                    standard_average_hours: r.standard_average_hours,
                    expedited_average_hours: r.expedited_average_hours,
                },
            )
        })
        .collect())
}

careloop_runtime::grpc_service!(MetricsService, MetricsApi, {
    get_prior_auth_report / "GetPriorAuthReport": pb::GetPriorAuthReportRequest => pb::GetPriorAuthReportResponse;
    get_payer_clocks / "GetPayerClocks": pb::GetPayerClocksRequest => pb::GetPayerClocksResponse;
    get_coordination_measures / "GetCoordinationMeasures": pb::GetCoordinationMeasuresRequest => pb::GetCoordinationMeasuresResponse;
    get_weekly_review / "GetWeeklyReview": pb::GetWeeklyReviewRequest => pb::GetWeeklyReviewResponse;
    record_payer_published_figures / "RecordPayerPublishedFigures": pb::RecordPayerPublishedFiguresRequest => pb::RecordPayerPublishedFiguresResponse;
});
