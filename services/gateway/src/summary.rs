//! The one-screen patient summary: plans' patient and plan, and every open loop of every service,
//! asked in parallel, each within its own deadline inside the caller's. A service that does not
//! answer leaves its section marked unavailable; the screen still comes back. Access is plans'
//! decision first: without it nothing is shown.

use crate::api::{Budget, Gateway, caller, unavailable_reason};
use crate::downstream::on_behalf_of;
use crate::items::{self, Line};
use careloop_proto::gateway::v1::{
    GetPatientSummaryRequest, GetPatientSummaryResponse, Section, SectionState,
};
use careloop_proto::notifications::v1::ListInboxRequest;
use careloop_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_proto::plans::v1::{
    GetCarePlanRequest, GetPatientRequest, ListOpenTasksRequest, ListUnacknowledgedHandoffsRequest,
    list_open_tasks_request,
};
use careloop_proto::priorauth::v1::prior_auth_service_client::PriorAuthServiceClient;
use careloop_proto::priorauth::v1::{ListRequestsRequest, list_requests_request};
use careloop_proto::referrals::v1::referrals_service_client::ReferralsServiceClient;
use careloop_proto::referrals::v1::{ListOpenLoopsRequest, list_open_loops_request};
use careloop_runtime::audit::Outcome;
use careloop_runtime::auth::PrincipalKind;
use careloop_runtime::error::ApiError;
use careloop_runtime::time::{now, to_timestamp};
use tonic::Status;

/// Loops shown per section; the worklist and the owning service page the rest.
const PER_SECTION: i32 = 100;

struct Part {
    lines: Vec<Line>,
    truncated: bool,
}

fn state(section: Section, outcome: &Result<Part, Status>) -> SectionState {
    match outcome {
        Ok(part) => SectionState {
            section: section as i32,
            available: true,
            reason: String::new(),
            truncated: part.truncated,
        },
        Err(status) => SectionState {
            section: section as i32,
            available: false,
            reason: unavailable_reason(status),
            truncated: false,
        },
    }
}

impl Gateway {
    pub async fn get_patient_summary(
        &self,
        request: tonic::Request<GetPatientSummaryRequest>,
    ) -> Result<tonic::Response<GetPatientSummaryResponse>, Status> {
        let who = caller(&request)?;
        let budget = Budget::of(request.metadata(), &self.settings);
        let patient_id =
            careloop_runtime::validate::uuid("patient_id", &request.get_ref().patient_id)?;
        let decision = self
            .access
            .decide(&who, &[patient_id], budget.call())
            .await
            .map_err(crate::api::reasoned)?
            .remove(&patient_id)
            .unwrap_or_default();
        if !decision.can_read {
            crate::audit::record(
                &self.pool,
                &who,
                "GetPatientSummary",
                Some(patient_id),
                None,
                Outcome::Denied,
            )
            .await?;
            // Answered like a missing patient, so refusals reveal nothing.
            return Err(ApiError::AccessDenied {
                patient_id,
                hidden: true,
            }
            .into());
        }
        let id = patient_id.to_string();
        let plan = async {
            let patient = self
                .plans
                .call(budget.call(), true, |t, left| {
                    let r = on_behalf_of(
                        &who,
                        GetPatientRequest {
                            patient_id: id.clone(),
                        },
                        left,
                    );
                    async move { PlansServiceClient::new(t).get_patient(r).await }
                })
                .await?
                .into_inner()
                .patient;
            let plan = self
                .plans
                .call(budget.call(), true, |t, left| {
                    let r = on_behalf_of(
                        &who,
                        GetCarePlanRequest {
                            patient_id: id.clone(),
                        },
                        left,
                    );
                    async move { PlansServiceClient::new(t).get_care_plan(r).await }
                })
                .await;
            let plan = match plan {
                Ok(answer) => answer.into_inner().plan,
                // No plan yet: the screen shows the patient and the loops.
                Err(status) if status.code() == tonic::Code::NotFound => None,
                Err(status) => return Err(status),
            };
            Ok::<_, Status>((patient, plan))
        };
        let at = now();
        let tasks = async {
            let tasks = self
                .plans
                .call(budget.call(), true, |t, left| {
                    let r = on_behalf_of(
                        &who,
                        ListOpenTasksRequest {
                            filter: Some(list_open_tasks_request::Filter::PatientId(id.clone())),
                            page_size: PER_SECTION,
                            page_token: String::new(),
                        },
                        left,
                    );
                    async move { PlansServiceClient::new(t).list_open_tasks(r).await }
                })
                .await?
                .into_inner();
            let handoffs = self
                .plans
                .call(budget.call(), true, |t, left| {
                    let r = on_behalf_of(
                        &who,
                        ListUnacknowledgedHandoffsRequest {
                            patient_id: id.clone(),
                            page_size: PER_SECTION,
                            ..Default::default()
                        },
                        left,
                    );
                    async move {
                        PlansServiceClient::new(t)
                            .list_unacknowledged_handoffs(r)
                            .await
                    }
                })
                .await?
                .into_inner();
            let mut lines: Vec<Line> = tasks.tasks.iter().filter_map(items::task).collect();
            lines.extend(
                handoffs
                    .handoffs
                    .iter()
                    .filter_map(|h| items::handoff(h, at)),
            );
            Ok::<_, Status>(Part {
                lines,
                truncated: !tasks.next_page_token.is_empty()
                    || !handoffs.next_page_token.is_empty(),
            })
        };
        let referrals = async {
            let answer = self
                .referrals
                .call(budget.call(), true, |t, left| {
                    let r = on_behalf_of(
                        &who,
                        ListOpenLoopsRequest {
                            filter: Some(list_open_loops_request::Filter::PatientId(id.clone())),
                            page_size: PER_SECTION,
                            page_token: String::new(),
                        },
                        left,
                    );
                    async move { ReferralsServiceClient::new(t).list_open_loops(r).await }
                })
                .await?
                .into_inner();
            Ok::<_, Status>(Part {
                lines: answer.loops.iter().filter_map(items::open_loop).collect(),
                truncated: !answer.next_page_token.is_empty(),
            })
        };
        let prior_auth = async {
            let answer = self
                .prior_auth
                .call(budget.call(), true, |t, left| {
                    let r = on_behalf_of(
                        &who,
                        ListRequestsRequest {
                            filter: Some(list_requests_request::Filter::PatientId(id.clone())),
                            page_size: PER_SECTION,
                            page_token: String::new(),
                        },
                        left,
                    );
                    async move { PriorAuthServiceClient::new(t).list_requests(r).await }
                })
                .await?
                .into_inner();
            Ok::<_, Status>(Part {
                lines: answer
                    .requests
                    .iter()
                    .filter(|r| items::prior_auth_open(r))
                    .filter_map(items::prior_auth)
                    .collect(),
                truncated: !answer.next_page_token.is_empty(),
            })
        };
        let inbox = async {
            // Inboxes belong to organizations' staff: other callers see no inbox section.
            if who.kind != PrincipalKind::Staff {
                return None;
            }
            let answer = self
                .notifications
                .call(budget.call(), true, |t, left| {
                    let r = on_behalf_of(
                        &who,
                        ListInboxRequest {
                            patient_id: id.clone(),
                            page_size: PER_SECTION,
                            ..Default::default()
                        },
                        left,
                    );
                    async move { NotificationsServiceClient::new(t).list_inbox(r).await }
                })
                .await
                .map(|a| a.into_inner());
            Some(answer.map(|a| {
                Part {
                    lines: a
                        .items
                        .iter()
                        .filter_map(|i| items::inbox_item(i, at))
                        .collect(),
                    truncated: !a.next_page_token.is_empty(),
                }
            }))
        };
        let (plan, tasks, referrals, prior_auth, inbox) =
            tokio::join!(plan, tasks, referrals, prior_auth, inbox);

        let mut sections = vec![SectionState {
            section: Section::Plan as i32,
            available: plan.is_ok(),
            reason: plan
                .as_ref()
                .err()
                .map(unavailable_reason)
                .unwrap_or_default(),
            truncated: false,
        }];
        let mut lines = Vec::new();
        let mut parts = vec![
            (Section::Tasks, tasks),
            (Section::Referrals, referrals),
            (Section::PriorAuth, prior_auth),
        ];
        if let Some(inbox) = inbox {
            parts.push((Section::Inbox, inbox));
        }
        for (section, outcome) in parts {
            sections.push(state(section, &outcome));
            if let Ok(part) = outcome {
                lines.extend(part.lines);
            }
        }
        items::sort(&mut lines);
        let (patient, plan) = match plan {
            Ok((patient, plan)) => (patient, plan),
            Err(_) => (None, None),
        };
        let lead = plan
            .as_ref()
            .and_then(|p| p.care_team.iter().find(|m| m.is_lead).cloned());
        crate::audit::record(
            &self.pool,
            &who,
            "GetPatientSummary",
            Some(patient_id),
            None,
            Outcome::Ok,
        )
        .await?;
        Ok(tonic::Response::new(GetPatientSummaryResponse {
            patient,
            plan,
            lead,
            open_loops: lines.into_iter().map(|l| l.item).collect(),
            sections,
            as_of: Some(to_timestamp(at)),
        }))
    }
}
