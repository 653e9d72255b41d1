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
    match who.kind {
        PrincipalKind::Service => v::uuid("org_id", requested),
        PrincipalKind::Staff => match v::optional_uuid("org_id", requested)? {
            Some(org) if org != who.org_id => Err(ApiError::PermissionDenied(
                "staff read their own organization's measures",
            )),
            _ => Ok(who.org_id),
        },
        _ => Err(ApiError::PermissionDenied(
            "measures are read by the organization's staff",
        )),
    }
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
        let timelines =
            store::prior_auth_timelines(&mut *self.pool.acquire().await?, org, from, to).await?;
        Ok(timelines.iter().filter_map(Timeline::measured).collect())
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
        Ok(pb::GetPayerClocksResponse {
            payers: priorauth::payer_clocks(&decisions, from, to)
                .into_iter()
                .map(|c| pb::PayerClock {
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

careloop_runtime::grpc_service!(MetricsService, MetricsApi, {
    get_prior_auth_report / "GetPriorAuthReport": pb::GetPriorAuthReportRequest => pb::GetPriorAuthReportResponse;
    get_payer_clocks / "GetPayerClocks": pb::GetPayerClocksRequest => pb::GetPayerClocksResponse;
});
