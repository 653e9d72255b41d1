//! The end-of-shift digest of a role's inbox.

use super::{NotificationsApi, convert};
use crate::store;
use careloop_proto::common::v1::CareRole;
use careloop_proto::notifications::v1::*;
use careloop_runtime::audit;
use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::validate as v;
use uuid::Uuid;

impl NotificationsApi {
    pub(super) async fn get_shift_digest(
        &self,
        who: &Principal,
        req: GetShiftDigestRequest,
    ) -> ApiResult<GetShiftDigestResponse> {
        let role = match v::enum_value::<CareRole>("role", req.role)? {
            CareRole::Unspecified => return Err(ApiError::invalid("role", "is required")),
            role => role,
        };
        let from = v::timestamp("from", req.from.as_ref())?;
        let to = v::timestamp("to", req.to.as_ref())?;
        if to <= from || to - from > chrono::Duration::days(7) {
            return Err(ApiError::invalid(
                "to",
                "must be after from, at most 7 days later",
            ));
        }
        let org = careloop_runtime::access::staff_or_named_org(
            who,
            &req.org_id,
            "digests belong to the organization's staff",
        )?;
        let name = crate::domain::ladder::role_name(role);
        if who.kind == PrincipalKind::Staff && !who.roles.iter().any(|r| *r == name || r == "admin")
        {
            return Err(ApiError::PermissionDenied(
                "a role's digest is read by those who hold the role or administer the organization",
            ));
        }
        let mut conn = self.pool.acquire().await?;
        let counts = store::digest_counts(&mut conn, org, role as i32, from, to).await?;
        let (still_open, still_overdue, rows) =
            store::still_open(&mut conn, org, role as i32).await?;
        let seen: Vec<Uuid> = rows.iter().map(|r| r.patient_id).collect();
        audit::record_reads(&mut conn, who, "GetShiftDigest", &seen).await?;
        Ok(GetShiftDigestResponse {
            digest: Some(ShiftDigest {
                role: role as i32,
                from: req.from,
                to: req.to,
                opened: counts.opened,
                escalated_in: counts.escalated_in,
                acknowledged: counts.acknowledged,
                resolved: counts.resolved,
                escalated_away: counts.escalated_away,
                still_open,
                still_overdue,
                open_items: rows.into_iter().map(convert::item).collect(),
            }),
        })
    }
}
