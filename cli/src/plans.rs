//! `careloop patient|plan|task|handoff|transition`: plans from the command line. Writes that the
//! gateway offers go through it (the partner's door); reads of one record ask plans.

use crate::client::{Connection, hours_from_now, key, parse_enum, role};
use crate::output::show;
use careloop_proto::plans::v1::list_open_tasks_request::Filter;
use careloop_proto::plans::v1::*;
use careloop_runtime::auth::DEV_ORG_ID;
use clap::{Args, Subcommand};
use uuid::Uuid;

#[derive(Subcommand)]
pub enum PatientCmd {
    Create {
        #[arg(long)]
        mrn: String,
        #[arg(long)]
        given: String,
        #[arg(long)]
        family: String,
        /// YYYY-MM-DD
        #[arg(long)]
        birth_date: String,
        #[arg(long, default_value_t = DEV_ORG_ID)]
        org: Uuid,
    },
    Show {
        id: String,
    },
    Find {
        #[arg(long)]
        mrn: String,
        #[arg(long, default_value_t = DEV_ORG_ID)]
        org: Uuid,
    },
}

#[derive(Subcommand)]
pub enum PlanCmd {
    Create {
        #[arg(long)]
        patient: String,
        /// One sentence: what are we trying to achieve.
        #[arg(long)]
        summary: String,
        #[arg(long)]
        lead_name: String,
        /// e.g. pcp, rn, care_manager
        #[arg(long, default_value = "pcp")]
        lead_role: String,
        #[arg(long, default_value_t = DEV_ORG_ID)]
        lead_org: Uuid,
        /// Red flags, repeatable.
        #[arg(long = "red-flag")]
        red_flags: Vec<String>,
    },
    Show {
        #[arg(long)]
        patient: String,
    },
    /// Replace the one-sentence summary, keeping the rest of the plan.
    SetSummary {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        version: i64,
        #[arg(long)]
        summary: String,
    },
}

#[derive(Subcommand)]
pub enum TaskCmd {
    Create {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        owner_role: String,
        #[arg(long)]
        backup_role: Option<String>,
        #[arg(long, default_value_t = 24)]
        due_in_hours: i64,
    },
    Show {
        id: String,
    },
    /// Open tasks for a patient or a role, by due time.
    List {
        #[command(flatten)]
        by: ListBy,
    },
    /// accept, start, hold, resume, complete, cancel or fail.
    Move {
        id: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        version: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ListBy {
    #[arg(long)]
    patient: Option<String>,
    #[arg(long)]
    role: Option<String>,
}

#[derive(Subcommand)]
pub enum HandoffCmd {
    Send {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        from_role: String,
        #[arg(long)]
        to_role: String,
        #[arg(long)]
        situation: String,
        #[arg(long)]
        background: String,
        #[arg(long)]
        assessment: String,
        #[arg(long)]
        recommendation: String,
        #[arg(long = "pending")]
        pending_items: Vec<String>,
        #[arg(long = "red-flag")]
        red_flags: Vec<String>,
    },
    /// Unacknowledged handoffs for a role.
    List {
        #[arg(long)]
        role: String,
    },
    Ack {
        id: String,
        #[arg(long, default_value_t = 1)]
        version: i64,
    },
}

#[derive(Subcommand)]
pub enum TransitionCmd {
    Start {
        #[arg(long)]
        patient: String,
        /// hospital, home, skilled_nursing, rehabilitation, emergency, ambulatory, hospice
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        success: String,
        /// low, medium or high
        #[arg(long)]
        risk: String,
    },
    Show {
        id: String,
    },
    /// Mark a checklist item done, waived (with --reason) or pending.
    Check {
        id: String,
        #[arg(long)]
        item: String,
        #[arg(long, default_value = "done")]
        state: String,
        #[arg(long)]
        version: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    Complete {
        id: String,
        #[arg(long)]
        version: i64,
    },
}

pub async fn patient(conn: &Connection, cmd: &PatientCmd) -> anyhow::Result<()> {
    let c = &mut conn.plans()?;
    let g = &mut conn.gateway()?;
    match cmd {
        PatientCmd::Create {
            mrn,
            given,
            family,
            birth_date,
            org,
        } => {
            let p = g
                .create_patient(CreatePatientRequest {
                    idempotency_key: key(),
                    mrn: mrn.clone(),
                    given_name: given.clone(),
                    family_name: family.clone(),
                    birth_date: birth_date.clone(),
                    managing_org_id: org.to_string(),
                })
                .await?
                .into_inner();
            show(&p.patient);
        }
        PatientCmd::Show { id } => {
            let p = c
                .get_patient(GetPatientRequest {
                    patient_id: id.clone(),
                })
                .await?;
            show(&p.into_inner().patient);
        }
        PatientCmd::Find { mrn, org } => {
            let p = c
                .find_patient_by_mrn(FindPatientByMrnRequest {
                    managing_org_id: org.to_string(),
                    mrn: mrn.clone(),
                })
                .await?;
            show(&p.into_inner().patient);
        }
    }
    Ok(())
}

pub async fn plan(conn: &Connection, cmd: &PlanCmd) -> anyhow::Result<()> {
    let c = &mut conn.plans()?;
    let g = &mut conn.gateway()?;
    match cmd {
        PlanCmd::Create {
            patient,
            summary,
            lead_name,
            lead_role,
            lead_org,
            red_flags,
        } => {
            let p = g
                .create_care_plan(CreateCarePlanRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    content: Some(CarePlanContent {
                        summary: summary.clone(),
                        red_flags: red_flags.clone(),
                        ..Default::default()
                    }),
                    lead: Some(NewCareTeamMember {
                        kind: MemberKind::Person as i32,
                        display_name: lead_name.clone(),
                        role: role(lead_role)?,
                        organization_id: lead_org.to_string(),
                        is_lead: true,
                        ..Default::default()
                    }),
                })
                .await?;
            show(&p.into_inner().plan);
        }
        PlanCmd::Show { patient } => {
            let p = c
                .get_care_plan(GetCarePlanRequest {
                    patient_id: patient.clone(),
                })
                .await?;
            show(&p.into_inner().plan);
        }
        PlanCmd::SetSummary {
            patient,
            version,
            summary,
        } => {
            let current = c
                .get_care_plan(GetCarePlanRequest {
                    patient_id: patient.clone(),
                })
                .await?
                .into_inner()
                .plan
                .and_then(|p| p.content)
                .unwrap_or_default();
            let p = c
                .update_care_plan(UpdateCarePlanRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    expected_version: *version,
                    content: Some(CarePlanContent {
                        summary: summary.clone(),
                        ..current
                    }),
                })
                .await?;
            show(&p.into_inner().plan);
        }
    }
    Ok(())
}

pub async fn task(conn: &Connection, cmd: &TaskCmd) -> anyhow::Result<()> {
    let c = &mut conn.plans()?;
    let g = &mut conn.gateway()?;
    match cmd {
        TaskCmd::Create {
            patient,
            title,
            owner_role,
            backup_role,
            due_in_hours,
        } => {
            let t = g
                .create_task(CreateTaskRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    title: title.clone(),
                    owner_role: role(owner_role)?,
                    backup_role: backup_role.as_deref().map(role).transpose()?.unwrap_or(0),
                    due_at: hours_from_now(*due_in_hours),
                    ..Default::default()
                })
                .await?;
            show(&t.into_inner().task);
        }
        TaskCmd::Show { id } => show(
            &c.get_task(GetTaskRequest {
                task_id: id.clone(),
            })
            .await?
            .into_inner()
            .task,
        ),
        TaskCmd::List { by } => {
            let filter = match (&by.patient, &by.role) {
                (Some(p), _) => Filter::PatientId(p.clone()),
                (None, Some(r)) => Filter::OwnerRole(role(r)?),
                (None, None) => anyhow::bail!("give --patient or --role"),
            };
            let list = c
                .list_open_tasks(ListOpenTasksRequest {
                    filter: Some(filter),
                    page_size: 100,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            show(&list.tasks);
        }
        TaskCmd::Move {
            id,
            action,
            version,
            reason,
        } => {
            let action = parse_enum("TASK_ACTION", action, TaskAction::from_str_name)?;
            let t = g
                .transition_task(TransitionTaskRequest {
                    idempotency_key: key(),
                    task_id: id.clone(),
                    expected_version: *version,
                    action: action as i32,
                    reason: reason.clone(),
                })
                .await?;
            show(&t.into_inner().task);
        }
    }
    Ok(())
}

pub async fn handoff(conn: &Connection, cmd: &HandoffCmd) -> anyhow::Result<()> {
    let c = &mut conn.plans()?;
    let g = &mut conn.gateway()?;
    match cmd {
        HandoffCmd::Send {
            patient,
            from_role,
            to_role,
            situation,
            background,
            assessment,
            recommendation,
            pending_items,
            red_flags,
        } => {
            let h = g
                .send_handoff(SendHandoffRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    from_role: role(from_role)?,
                    to_role: role(to_role)?,
                    situation: situation.clone(),
                    background: background.clone(),
                    assessment: assessment.clone(),
                    recommendation: recommendation.clone(),
                    pending_items: pending_items.clone(),
                    red_flags: red_flags.clone(),
                    acknowledge_by: None,
                })
                .await?;
            show(&h.into_inner().handoff);
        }
        HandoffCmd::List { role: r } => {
            let list = c
                .list_unacknowledged_handoffs(ListUnacknowledgedHandoffsRequest {
                    to_role: role(r)?,
                    page_size: 100,
                    ..Default::default()
                })
                .await?;
            show(&list.into_inner().handoffs);
        }
        HandoffCmd::Ack { id, version } => {
            let h = g
                .acknowledge_handoff(AcknowledgeHandoffRequest {
                    idempotency_key: key(),
                    handoff_id: id.clone(),
                    expected_version: *version,
                })
                .await?;
            show(&h.into_inner().handoff);
        }
    }
    Ok(())
}

pub async fn transition(conn: &Connection, cmd: &TransitionCmd) -> anyhow::Result<()> {
    let c = &mut conn.plans()?;
    let g = &mut conn.gateway()?;
    match cmd {
        TransitionCmd::Start {
            patient,
            from,
            to,
            reason,
            success,
            risk,
        } => {
            let t = g
                .start_transition(StartTransitionRequest {
                    idempotency_key: key(),
                    patient_id: patient.clone(),
                    from_setting: parse_enum("CARE_SETTING", from, CareSetting::from_str_name)?
                        as i32,
                    to_setting: parse_enum("CARE_SETTING", to, CareSetting::from_str_name)? as i32,
                    reason: reason.clone(),
                    success_criteria: success.clone(),
                    risk_level: parse_enum("RISK_LEVEL", risk, RiskLevel::from_str_name)? as i32,
                })
                .await?;
            show(&t.into_inner().transition);
        }
        TransitionCmd::Show { id } => {
            let t = c
                .get_transition(GetTransitionRequest {
                    transition_id: id.clone(),
                })
                .await?;
            show(&t.into_inner().transition);
        }
        TransitionCmd::Check {
            id,
            item,
            state,
            version,
            reason,
        } => {
            let t = c
                .update_checklist_item(UpdateChecklistItemRequest {
                    idempotency_key: key(),
                    transition_id: id.clone(),
                    expected_version: *version,
                    item: parse_enum(
                        "CHECKLIST_ITEM_KIND",
                        item,
                        ChecklistItemKind::from_str_name,
                    )? as i32,
                    state: parse_enum(
                        "CHECKLIST_ITEM_STATE",
                        state,
                        ChecklistItemState::from_str_name,
                    )? as i32,
                    waive_reason: reason.clone(),
                })
                .await?;
            show(&t.into_inner().transition);
        }
        TransitionCmd::Complete { id, version } => {
            let t = c
                .complete_transition(CompleteTransitionRequest {
                    idempotency_key: key(),
                    transition_id: id.clone(),
                    expected_version: *version,
                })
                .await?;
            show(&t.into_inner().transition);
        }
    }
    Ok(())
}
