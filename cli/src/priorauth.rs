//! `careloop auth ...`: the prior-auth service's whole lifecycle from the command line.

use crate::client::PriorAuth;
use crate::client::{key, parse_enum, role};
use crate::output::show;
use careloop_proto::common::v1::{LoopKind, LoopRef};
use careloop_proto::priorauth::v1::record_payer_response_request::{
    Approved, Denied, Pended, Response,
};
use careloop_proto::priorauth::v1::*;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AuthCmd {
    /// Create a draft (fill it now or later with `update`).
    Create {
        #[arg(long)]
        patient: String,
        #[command(flatten)]
        content: ContentArgs,
    },
    /// Replace a draft's or pended request's content.
    Update {
        id: String,
        #[arg(long)]
        version: i64,
        #[command(flatten)]
        content: ContentArgs,
    },
    Submit {
        id: String,
        #[arg(long)]
        version: i64,
    },
    /// Record the payer's answer: pended, approved, partially-approved or denied.
    Respond {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        outcome: String,
        #[arg(long, default_value = "")]
        info_requested: String,
        #[arg(long, default_value = "")]
        auth_number: String,
        /// Approved items as CODE:QTY, repeatable.
        #[arg(long = "item")]
        items: Vec<String>,
        #[arg(long, default_value_t = 90)]
        valid_days: i64,
        #[arg(long, default_value = "")]
        reason_code: String,
        #[arg(long, default_value = "")]
        reason_text: String,
    },
    Extend {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        reason: String,
        /// The new decision due time, hours from now.
        #[arg(long)]
        due_in_hours: i64,
    },
    Appeal {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        reason: String,
    },
    AppealDecision {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        approved: bool,
        #[arg(long, default_value = "")]
        auth_number: String,
        #[arg(long, default_value_t = 90)]
        valid_days: i64,
        #[arg(long, default_value = "")]
        reason_code: String,
        #[arg(long, default_value = "")]
        reason_text: String,
    },
    Cancel {
        id: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        reason: String,
    },
    Show {
        id: String,
    },
    /// Requests of a patient.
    List {
        #[arg(long)]
        patient: String,
    },
}

#[derive(clap::Args)]
pub struct ContentArgs {
    /// The order this authorizes.
    #[arg(long)]
    order: Option<String>,
    #[arg(long, default_value = "")]
    payer: String,
    #[arg(long, default_value = "")]
    member: String,
    /// Service lines as CODE:QTY, repeatable.
    #[arg(long = "service")]
    services: Vec<String>,
    /// ICD-10 codes, repeatable.
    #[arg(long = "diagnosis")]
    diagnoses: Vec<String>,
    /// standard or expedited
    #[arg(long)]
    urgency: Option<String>,
    #[arg(long, default_value = "")]
    urgency_reason: String,
    #[arg(long, default_value = "")]
    notes: String,
    /// Current medications, repeatable ("none" when there are none).
    #[arg(long = "medication")]
    medications: Vec<String>,
    #[arg(long = "prior-treatment")]
    prior_treatments: Vec<String>,
    #[arg(long = "attachment")]
    attachments: Vec<String>,
    #[arg(long, default_value = "prior_auth_coordinator")]
    owner_role: String,
    #[arg(long, default_value = "")]
    next_action: String,
}

fn lines(values: &[String]) -> anyhow::Result<Vec<ServiceLine>> {
    values
        .iter()
        .map(|v| {
            let (code, qty) = v.split_once(':').unwrap_or((v.as_str(), "1"));
            Ok(ServiceLine {
                code: code.to_owned(),
                quantity: qty.parse()?,
            })
        })
        .collect()
}

fn content(a: &ContentArgs) -> anyhow::Result<RequestContent> {
    Ok(RequestContent {
        linked_loop: a.order.as_ref().map(|o| LoopRef {
            kind: LoopKind::Order as i32,
            id: o.clone(),
        }),
        payer_id: a.payer.clone(),
        plan_member_id: a.member.clone(),
        service_lines: lines(&a.services)?,
        diagnosis_codes: a.diagnoses.clone(),
        urgency: a
            .urgency
            .as_deref()
            .map(|u| parse_enum("URGENCY", u, Urgency::from_str_name))
            .transpose()?
            .map(|u| u as i32)
            .unwrap_or(0),
        urgency_reason: a.urgency_reason.clone(),
        packet: Some(ClinicalPacket {
            notes_summary: a.notes.clone(),
            medications: a.medications.clone(),
            prior_treatments: a.prior_treatments.clone(),
            attachment_refs: a.attachments.clone(),
        }),
        owner_role: role(&a.owner_role)?,
        next_action: a.next_action.clone(),
        next_patient_update_at: None,
    })
}

fn days(
    d: i64,
) -> (
    Option<prost_types::Timestamp>,
    Option<prost_types::Timestamp>,
) {
    let now = chrono::Utc::now();
    (
        Some(careloop_runtime::time::to_timestamp(now)),
        Some(careloop_runtime::time::to_timestamp(
            now + chrono::Duration::days(d),
        )),
    )
}

pub async fn run(c: &mut PriorAuth, cmd: &AuthCmd) -> anyhow::Result<()> {
    let answer = match cmd {
        AuthCmd::Create {
            patient,
            content: a,
        } => {
            c.create_request(CreateRequestRequest {
                idempotency_key: key(),
                patient_id: patient.clone(),
                content: Some(content(a)?),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::Update {
            id,
            version,
            content: a,
        } => {
            c.update_request(UpdateRequestRequest {
                idempotency_key: key(),
                request_id: id.clone(),
                expected_version: *version,
                content: Some(content(a)?),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::Submit { id, version } => {
            c.submit_request(SubmitRequestRequest {
                idempotency_key: key(),
                request_id: id.clone(),
                expected_version: *version,
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::Respond {
            id,
            version,
            outcome,
            info_requested,
            auth_number,
            items,
            valid_days,
            reason_code,
            reason_text,
        } => {
            let (valid_from, valid_to) = days(*valid_days);
            let approved = || -> anyhow::Result<Approved> {
                Ok(Approved {
                    authorization_number: auth_number.clone(),
                    items: lines(items)?,
                    valid_from,
                    valid_to,
                })
            };
            let response = match outcome.as_str() {
                "pended" => Response::Pended(Pended {
                    information_requested: info_requested.clone(),
                }),
                "approved" => Response::Approved(approved()?),
                "partially-approved" => Response::PartiallyApproved(approved()?),
                "denied" => Response::Denied(Denied {
                    reason_code: reason_code.clone(),
                    reason_text: reason_text.clone(),
                }),
                other => anyhow::bail!("unknown outcome {other:?}"),
            };
            c.record_payer_response(RecordPayerResponseRequest {
                idempotency_key: key(),
                request_id: id.clone(),
                expected_version: *version,
                response: Some(response),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::Extend {
            id,
            version,
            reason,
            due_in_hours,
        } => {
            let due = careloop_runtime::time::to_timestamp(
                chrono::Utc::now() + chrono::Duration::hours(*due_in_hours),
            );
            c.extend_decision(ExtendDecisionRequest {
                idempotency_key: key(),
                request_id: id.clone(),
                expected_version: *version,
                reason: reason.clone(),
                new_due_at: Some(due),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::Appeal {
            id,
            version,
            reason,
        } => {
            c.appeal(AppealRequest {
                idempotency_key: key(),
                request_id: id.clone(),
                expected_version: *version,
                reason: reason.clone(),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::AppealDecision {
            id,
            version,
            approved,
            auth_number,
            valid_days,
            reason_code,
            reason_text,
        } => {
            let (valid_from, valid_to) = if *approved {
                days(*valid_days)
            } else {
                (None, None)
            };
            c.record_appeal_decision(RecordAppealDecisionRequest {
                idempotency_key: key(),
                request_id: id.clone(),
                expected_version: *version,
                approved: *approved,
                authorization_number: auth_number.clone(),
                valid_from,
                valid_to,
                reason_code: reason_code.clone(),
                reason_text: reason_text.clone(),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::Cancel {
            id,
            version,
            reason,
        } => {
            c.cancel_request(CancelRequestRequest {
                idempotency_key: key(),
                request_id: id.clone(),
                expected_version: *version,
                reason: reason.clone(),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::Show { id } => {
            c.get_request(GetRequestRequest {
                request_id: id.clone(),
            })
            .await?
            .into_inner()
            .request
        }
        AuthCmd::List { patient } => {
            let list = c
                .list_requests(ListRequestsRequest {
                    filter: Some(list_requests_request::Filter::PatientId(patient.clone())),
                    page_size: 100,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            show(&list.requests);
            return Ok(());
        }
    };
    show(&answer);
    Ok(())
}
