//! `careloop referral|order|result|loops|rules`: the referrals service from the command line.

use crate::client::Referrals;
use crate::client::{key, parse_enum, role};
use crate::output::show;
use careloop_proto::common::v1::Priority;
use careloop_proto::referrals::v1::list_open_loops_request::Filter;
use careloop_proto::referrals::v1::transition_order_request as to;
use careloop_proto::referrals::v1::transition_referral_request as tr;
use careloop_proto::referrals::v1::*;
use careloop_runtime::auth::DEV_ORG_ID;
use clap::Subcommand;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum ReferralCmd {
    Place {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        to_specialty: Option<String>,
        #[arg(long)]
        to_org: Option<Uuid>,
        #[arg(long)]
        service_type: String,
        #[arg(long)]
        reason: String,
        /// routine, urgent or stat
        #[arg(long, default_value = "routine")]
        urgency: String,
        #[arg(long, default_value = "care_manager")]
        owner_role: String,
        #[arg(long, default_value_t = DEV_ORG_ID)]
        from_org: Uuid,
        #[arg(long, default_value = "dev-user")]
        from_clinician: String,
    },
    Show {
        id: String,
    },
    /// accept, decline, schedule, reschedule, cancel, no-show, seen, note-received
    Move {
        id: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        version: i64,
        #[arg(long, default_value = "")]
        reason: String,
        /// Appointment, hours from now (schedule, reschedule).
        #[arg(long)]
        in_hours: Option<i64>,
        #[arg(long, default_value = "")]
        location: String,
        /// The consult note's reference (note-received).
        #[arg(long, default_value = "")]
        note_ref: String,
    },
}

#[derive(Subcommand)]
pub enum OrderCmd {
    Place {
        #[arg(long)]
        patient: String,
        /// lab, imaging, transport, home_health, dme
        #[arg(long)]
        kind: String,
        #[arg(long, default_value = "")]
        test_code: String,
        /// inpatient, outpatient, emergency, home
        #[arg(long)]
        setting: Option<String>,
        #[arg(long)]
        owner_role: String,
        #[arg(long, default_value = "")]
        override_reason: String,
    },
    Show {
        id: String,
    },
    /// schedule, confirm, complete, close, cancel
    Move {
        id: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        version: i64,
        /// Pickup or delivery window start, hours from now (schedule of transport or DME).
        #[arg(long)]
        window_in_hours: Option<i64>,
        #[arg(long, default_value_t = 2)]
        window_hours: i64,
        #[arg(long)]
        home_health: bool,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum ResultCmd {
    Record {
        #[arg(long)]
        order: String,
        /// normal, abnormal, critical
        #[arg(long)]
        flag: String,
        #[arg(long)]
        code: String,
        #[arg(long, default_value = "")]
        summary: String,
    },
    Ack {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        action_taken: String,
    },
}

fn hours(h: i64) -> Option<prost_types::Timestamp> {
    Some(careloop_runtime::time::to_timestamp(
        chrono::Utc::now() + chrono::Duration::hours(h),
    ))
}

pub async fn referral(c: &mut Referrals, cmd: &ReferralCmd) -> anyhow::Result<()> {
    match cmd {
        ReferralCmd::Place {
            patient,
            to_specialty,
            to_org,
            service_type,
            reason,
            urgency,
            owner_role,
            from_org,
            from_clinician,
        } => {
            let r = c
                .place_referral(PlaceReferralRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    from_org_id: from_org.to_string(),
                    from_clinician: from_clinician.clone(),
                    to_org_id: to_org.map(|o| o.to_string()).unwrap_or_default(),
                    to_specialty: to_specialty.clone().unwrap_or_default(),
                    service_type: service_type.clone(),
                    reason: reason.clone(),
                    urgency: parse_enum("PRIORITY", urgency, Priority::from_str_name)? as i32,
                    owner_role: role(owner_role)?,
                    clinical_context: String::new(),
                })
                .await?;
            show(&r.into_inner().referral);
        }
        ReferralCmd::Show { id } => show(
            &c.get_referral(GetReferralRequest {
                referral_id: id.clone(),
            })
            .await?
            .into_inner()
            .referral,
        ),
        ReferralCmd::Move {
            id,
            action,
            version,
            reason,
            in_hours,
            location,
            note_ref,
        } => {
            let at = in_hours.and_then(hours);
            let action = match action.as_str() {
                "accept" => tr::Action::Accept(tr::Accept {
                    note: reason.clone(),
                }),
                "decline" => tr::Action::Decline(tr::Decline {
                    reason: reason.clone(),
                }),
                "schedule" => tr::Action::Schedule(tr::Schedule {
                    appointment_at: at,
                    location: location.clone(),
                }),
                "reschedule" => tr::Action::Reschedule(tr::Reschedule {
                    appointment_at: at,
                    location: location.clone(),
                    reason: reason.clone(),
                }),
                "cancel" => tr::Action::Cancel(tr::Cancel {
                    reason: reason.clone(),
                }),
                "no-show" => tr::Action::NoShow(tr::NoShow {
                    note: reason.clone(),
                }),
                "seen" => tr::Action::Seen(tr::Seen {
                    note: reason.clone(),
                }),
                "note-received" => tr::Action::NoteReceived(tr::NoteReceived {
                    note_reference: note_ref.clone(),
                }),
                other => anyhow::bail!("unknown action {other:?}"),
            };
            let r = c
                .transition_referral(TransitionReferralRequest {
                    idempotency_key: key(),
                    referral_id: id.clone(),
                    expected_version: *version,
                    action: Some(action),
                })
                .await?;
            show(&r.into_inner().referral);
        }
    }
    Ok(())
}

pub async fn order(c: &mut Referrals, cmd: &OrderCmd) -> anyhow::Result<()> {
    match cmd {
        OrderCmd::Place {
            patient,
            kind,
            test_code,
            setting,
            owner_role,
            override_reason,
        } => {
            let o = c
                .place_order(PlaceOrderRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    kind: parse_enum("ORDER_KIND", kind, OrderKind::from_str_name)? as i32,
                    test_code: test_code.clone(),
                    description: String::new(),
                    setting: setting
                        .as_deref()
                        .map(|s| parse_enum("ORDER_SETTING", s, OrderSetting::from_str_name))
                        .transpose()?
                        .map(|s| s as i32)
                        .unwrap_or(0),
                    owner_role: role(owner_role)?,
                    due_at: None,
                    home_health: false,
                    duplicate_override_reason: override_reason.clone(),
                })
                .await?;
            show(&o.into_inner().order);
        }
        OrderCmd::Show { id } => show(
            &c.get_order(GetOrderRequest {
                order_id: id.clone(),
            })
            .await?
            .into_inner()
            .order,
        ),
        OrderCmd::Move {
            id,
            action,
            version,
            window_in_hours,
            window_hours,
            home_health,
            reason,
        } => {
            let action = match action.as_str() {
                "schedule" => to::Action::Schedule(to::Schedule {
                    scheduled_at: None,
                    window_start: window_in_hours.and_then(hours),
                    window_end: window_in_hours.and_then(|h| hours(h + window_hours)),
                    home_health: Some(*home_health),
                }),
                "confirm" => to::Action::Confirm(to::Confirm {
                    note: reason.clone(),
                }),
                "complete" => to::Action::Complete(to::Complete {
                    note: reason.clone(),
                }),
                "close" => to::Action::Close(to::Close {
                    note: reason.clone(),
                }),
                "cancel" => to::Action::Cancel(to::Cancel {
                    reason: reason.clone(),
                }),
                other => anyhow::bail!("unknown action {other:?}"),
            };
            let o = c
                .transition_order(TransitionOrderRequest {
                    idempotency_key: key(),
                    order_id: id.clone(),
                    expected_version: *version,
                    action: Some(action),
                })
                .await?;
            show(&o.into_inner().order);
        }
    }
    Ok(())
}

pub async fn result(c: &mut Referrals, cmd: &ResultCmd) -> anyhow::Result<()> {
    match cmd {
        ResultCmd::Record {
            order,
            flag,
            code,
            summary,
        } => {
            let r = c
                .record_result(RecordResultRequest {
                    idempotency_key: key(),
                    order_id: order.clone(),
                    flag: parse_enum("RESULT_FLAG", flag, ResultFlag::from_str_name)? as i32,
                    code: code.clone(),
                    summary: summary.clone(),
                })
                .await?;
            show(&r.into_inner().result);
        }
        ResultCmd::Ack {
            id,
            version,
            action_taken,
        } => {
            let r = c
                .acknowledge_result(AcknowledgeResultRequest {
                    idempotency_key: key(),
                    result_id: id.clone(),
                    expected_version: *version,
                    action_taken: action_taken.clone(),
                })
                .await?;
            show(&r.into_inner().result);
        }
    }
    Ok(())
}

pub async fn loops(
    c: &mut Referrals,
    patient: Option<String>,
    role_name: Option<String>,
    status: Option<String>,
) -> anyhow::Result<()> {
    let filter = match (patient, role_name, status) {
        (Some(p), _, _) => Filter::PatientId(p),
        (None, Some(r), _) => Filter::OwnerRole(role(&r)?),
        (None, None, Some(s)) => Filter::Status(s),
        _ => anyhow::bail!("give --patient, --role or --status"),
    };
    let list = c
        .list_open_loops(ListOpenLoopsRequest {
            filter: Some(filter),
            page_size: 100,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    show(&list.loops);
    Ok(())
}

pub async fn rules(c: &mut Referrals) -> anyhow::Result<()> {
    show(
        &c.list_pathway_rules(ListPathwayRulesRequest {})
            .await?
            .into_inner()
            .rules,
    );
    Ok(())
}
