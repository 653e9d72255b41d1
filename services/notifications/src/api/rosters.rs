//! Rosters: who holds a role when, set by the organization's administrators, read by its staff.

use super::{NotificationsApi, SOURCE};
use crate::domain::roster::{Member, Shift};
use crate::store::{self, RosterRow};
use careloop_proto::common::v1::CareRole;
use careloop_proto::notifications::v1 as pb;
use careloop_proto::notifications::v1::{
    GetRosterRequest, GetRosterResponse, SetRosterRequest, SetRosterResponse,
};
use careloop_runtime::auth::Principal;
use careloop_runtime::error::{ApiError, ApiResult};
use careloop_runtime::validate::{self as v, MAX_SHORT};
use chrono::NaiveTime;
use sqlx::types::Json;

const MAX_MEMBERS: usize = 500;
const MAX_SHIFTS: usize = 21;

fn clock_time(field: String, value: &str) -> ApiResult<NaiveTime> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M")
        .map_err(|_| ApiError::invalid(field, "must be a local time HH:MM"))
}

/// One "@" with text on both sides, a dot in the domain, no spaces or angle brackets (which would
/// break an SMTP envelope).
fn valid_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>@,;\"".contains(c) && c != '@')
        && !domain.contains('@')
}

fn valid_phone(value: &str) -> bool {
    let digits = value.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn members(members: &[pb::RosterMember]) -> ApiResult<Vec<Member>> {
    if members.len() > MAX_MEMBERS {
        return Err(ApiError::invalid(
            "members",
            "must hold at most 500 members",
        ));
    }
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let subject = v::text(&format!("members[{i}].subject"), &m.subject, MAX_SHORT)?;
        if m.shifts.len() > MAX_SHIFTS {
            return Err(ApiError::invalid(
                format!("members[{i}].shifts"),
                "must hold at most 21 shifts",
            ));
        }
        let mut shifts = Vec::with_capacity(m.shifts.len());
        for (j, s) in m.shifts.iter().enumerate() {
            let at = format!("members[{i}].shifts[{j}]");
            if s.weekdays.is_empty() || s.weekdays.iter().any(|d| !(1..=7).contains(d)) {
                return Err(ApiError::invalid(
                    format!("{at}.weekdays"),
                    "names ISO weekdays 1 (Monday) to 7 (Sunday)",
                ));
            }
            let mut weekdays: Vec<u32> = s.weekdays.iter().map(|d| *d as u32).collect();
            weekdays.sort_unstable();
            weekdays.dedup();
            shifts.push(Shift {
                weekdays,
                start: clock_time(format!("{at}.start"), &s.start)?,
                end: clock_time(format!("{at}.end"), &s.end)?,
            });
        }
        let email = v::optional_text(&format!("members[{i}].email"), &m.email, 254)?;
        if !email.is_empty() && !valid_email(&email) {
            return Err(ApiError::invalid(
                format!("members[{i}].email"),
                "is not an email address",
            ));
        }
        let phone = v::optional_text(&format!("members[{i}].phone"), &m.phone, 16)?;
        if !phone.is_empty() && !valid_phone(&phone) {
            return Err(ApiError::invalid(
                format!("members[{i}].phone"),
                "must be E.164, e.g. +15551234567",
            ));
        }
        out.push(Member {
            subject,
            shifts,
            email,
            phone,
        });
    }
    Ok(out)
}

fn roster(r: RosterRow) -> pb::Roster {
    pb::Roster {
        org_id: r.org_id.to_string(),
        role: r.role,
        time_zone: r.time_zone,
        members: r
            .members
            .0
            .into_iter()
            .map(|m| pb::RosterMember {
                subject: m.subject,
                shifts: m
                    .shifts
                    .into_iter()
                    .map(|s| pb::Shift {
                        weekdays: s.weekdays.into_iter().map(|d| d as i32).collect(),
                        start: s.start.format("%H:%M").to_string(),
                        end: s.end.format("%H:%M").to_string(),
                    })
                    .collect(),
                email: m.email,
                phone: m.phone,
            })
            .collect(),
        backup_role: r.backup_role.unwrap_or_default(),
        version: r.version,
    }
}

fn role(value: i32) -> ApiResult<CareRole> {
    match v::enum_value::<CareRole>("role", value)? {
        CareRole::Unspecified => Err(ApiError::invalid("role", "is required")),
        role => Ok(role),
    }
}

impl NotificationsApi {
    pub(super) async fn set_roster(
        &self,
        who: &Principal,
        req: SetRosterRequest,
    ) -> ApiResult<SetRosterResponse> {
        let role = role(req.role)? as i32;
        let zone = v::text("time_zone", &req.time_zone, 64)?;
        if zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::invalid("time_zone", "is not an IANA time zone"));
        }
        let members = members(&req.members)?;
        let backup = match v::optional_enum::<CareRole>("backup_role", req.backup_role)? {
            None | Some(CareRole::Unspecified) => None,
            Some(b) if b as i32 == role => {
                return Err(ApiError::invalid(
                    "backup_role",
                    "must be another role than the roster's",
                ));
            }
            Some(b) => Some(b as i32),
        };
        if req.expected_version < 0 {
            return Err(ApiError::invalid(
                "expected_version",
                "must be 0 (create) or the roster's version",
            ));
        }
        let org = super::admin_org(who, &req.org_id)?;
        let mut w = careloop_runtime::begin_write!(self.pool, SOURCE, "SetRoster", who, req);
        let current = store::lock_roster(w.conn(), org, role).await?;
        let current_version = current.as_ref().map_or(0, |r| r.version);
        ApiError::ensure_version(current_version, req.expected_version)?;
        let row = RosterRow {
            org_id: org,
            role,
            time_zone: zone,
            members: Json(members),
            backup_role: backup,
            version: current_version + 1,
        };
        if !store::save_roster(w.conn(), &row).await? {
            // A concurrent first roster for the role won the race.
            return Err(
                ApiError::ensure_version(current_version + 1, req.expected_version)
                    .err()
                    .unwrap_or(ApiError::Internal(anyhow::anyhow!("roster write lost"))),
            );
        }
        // The roster has no id of its own: the audit names the organization as the target.
        let done = w
            .finish_for(
                None,
                org,
                SetRosterResponse {
                    roster: Some(roster(row)),
                },
            )
            .await;
        self.directory.roster_changed(org, role);
        done
    }

    pub(super) async fn get_roster(
        &self,
        who: &Principal,
        req: GetRosterRequest,
    ) -> ApiResult<GetRosterResponse> {
        let role = role(req.role)? as i32;
        let org = careloop_runtime::access::staff_or_named_org(
            who,
            &req.org_id,
            "rosters are read by the organization's staff",
        )?;
        let row = store::roster(&mut *self.pool.acquire().await?, org, role)
            .await?
            .ok_or(ApiError::NotFound("roster"))?;
        Ok(GetRosterResponse {
            roster: Some(roster(row)),
        })
    }
}
