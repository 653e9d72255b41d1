//! Worklists: every open referral, order and unacknowledged abnormal result, by patient, by owner
//! role or by status, overdue first then by due time.

use super::{ReferralsApi, convert};
use crate::domain::{order, referral};
use crate::store::{self, LoopFilter};
use careloop_proto::common::v1::CareRole;
use careloop_proto::referrals::v1::list_open_loops_request::Filter;
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::paging;
use careloop_runtime::time::now;
use careloop_runtime::validate as v;

fn known_status(s: &str) -> bool {
    referral::Status::parse(s).is_some_and(|x| x.is_open())
        || order::Status::parse(s).is_some_and(|x| x.is_open())
        || s == "routed"
}

impl ReferralsApi {
    pub(super) async fn list_open_loops(
        &self,
        who: &Principal,
        req: ListOpenLoopsRequest,
    ) -> ApiResult<ListOpenLoopsResponse> {
        let limit = paging::page_size(req.page_size)?;
        let after = paging::decode(&req.page_token)?;
        let filter = match &req.filter {
            Some(Filter::PatientId(p)) => {
                let patient_id = v::uuid("patient_id", p)?;
                self.read(who, "ListOpenLoops", patient_id).await?;
                LoopFilter::Patient(patient_id)
            }
            Some(Filter::OwnerRole(r)) => {
                LoopFilter::Role(v::enum_value::<CareRole>("owner_role", *r)? as i32)
            }
            Some(Filter::Status(s)) => {
                let s = s.trim().to_lowercase();
                if !known_status(&s) {
                    return Err(ApiError::invalid(
                        "status",
                        "is not an open status of a referral, order or result",
                    ));
                }
                LoopFilter::Status(s)
            }
            None => {
                return Err(ApiError::invalid(
                    "filter",
                    "give patient_id, owner_role or status",
                ));
            }
        };
        // Patients' access is decided by plans; lists that span patients are for internal services
        // (the gateway filters them per caller with CheckAccess).
        if !matches!(filter, LoopFilter::Patient(_)) && who.kind != PrincipalKind::Service {
            return Err(ApiError::PermissionDenied(
                "cross-patient worklists are served through the gateway",
            ));
        }
        let rows =
            store::open_loops(&mut *self.pool.acquire().await?, &filter, after, limit + 1).await?;
        let (rows, next_page_token) = paging::cut(rows, limit, store::loop_cursor);
        if !matches!(filter, LoopFilter::Patient(_)) {
            // A list across patients is a read of each patient on it: audited per patient.
            let mut seen: Vec<uuid::Uuid> = rows.iter().map(|r| r.patient_id).collect();
            seen.sort_unstable();
            seen.dedup();
            let mut conn = self.pool.acquire().await?;
            careloop_runtime::audit::record_reads(&mut conn, who, "ListOpenLoops", &seen).await?;
        }
        let at = now();
        Ok(ListOpenLoopsResponse {
            loops: rows
                .into_iter()
                .map(|r| convert::open_loop(r, at))
                .collect(),
            next_page_token,
        })
    }
}
