//! Who may read or write which patient, as plans decides it (plans owns care teams and consents):
//! asked for many patients in one call (`BatchCheckAccess`), made for the user so plans audits the
//! user, and reused for a short time. A care-team or consent change seen on NATS drops the patient's
//! decisions at once; the time limit bounds staleness if such an event is missed. Events only ever
//! remove entries, so a forged one can cost a lookup, never grant access.

use crate::downstream::{Downstream, on_behalf_of};
use careloop_proto::plans::v1::BatchCheckAccessRequest;
use careloop_proto::plans::v1::plans_service_client::PlansServiceClient;
use careloop_runtime::auth::{Principal, PrincipalKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Status;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    pub can_read: bool,
    pub can_write: bool,
}

/// plans' events after which a patient's cached decisions may be wrong: the patient registered,
/// its plan created (with its lead), its care team or its consents changed.
pub fn changes_access(event_type: &str) -> bool {
    matches!(
        event_type,
        "plans.patient.created"
            | "plans.care_plan.created"
            | "plans.care_team.changed"
            | "plans.consent.granted"
            | "plans.consent.revoked"
    )
}

/// plans answers at most this many patients per call.
const BATCH: usize = 500;
/// Entries kept before the cache starts over (a bound, not a tuning knob).
const MAX_ENTRIES: usize = 200_000;

pub struct AccessCache {
    plans: Arc<Downstream>,
    ttl: Duration,
    entries: Mutex<Entries>,
    /// Moves on at every `forget`: an answer asked before a change and received after it is used
    /// for its own call but not kept, so a revoked grant is never cached again.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Entries {
    by_patient: HashMap<Uuid, HashMap<String, (Decision, Instant)>>,
    count: usize,
}

fn key_of(who: &Principal) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        who.issuer,
        who.org_id,
        who.subject,
        who.kind.as_str()
    )
}

impl AccessCache {
    pub fn new(plans: Arc<Downstream>, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            plans,
            ttl,
            entries: Mutex::new(Entries::default()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Decisions for every patient in `patients` (an unknown patient is denied). An internal
    /// service is trusted for all. Fails UNAVAILABLE when plans cannot be asked: no decision, no data.
    pub async fn decide(
        &self,
        who: &Principal,
        patients: &[Uuid],
        timeout: Duration,
    ) -> Result<HashMap<Uuid, Decision>, Status> {
        if who.kind == PrincipalKind::Service {
            let all = Decision {
                can_read: true,
                can_write: true,
            };
            return Ok(patients.iter().map(|p| (*p, all)).collect());
        }
        let key = key_of(who);
        let now = Instant::now();
        let mut known = HashMap::with_capacity(patients.len());
        let mut missing = Vec::new();
        if let Ok(entries) = self.entries.lock() {
            for patient in patients {
                match entries.by_patient.get(patient).and_then(|e| e.get(&key)) {
                    Some((decision, until)) if *until > now => {
                        known.insert(*patient, *decision);
                    }
                    _ if !missing.contains(patient) => missing.push(*patient),
                    _ => {}
                }
            }
        }
        let asked_at = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        for chunk in missing.chunks(BATCH) {
            let request = BatchCheckAccessRequest {
                principal: None,
                patient_ids: chunk.iter().map(Uuid::to_string).collect(),
            };
            let answer = self
                .plans
                .call(timeout, true, |transport, left| {
                    let request = on_behalf_of(who, request.clone(), left);
                    async move {
                        PlansServiceClient::new(transport)
                            .batch_check_access(request)
                            .await
                    }
                })
                .await?
                .into_inner();
            let until = Instant::now() + self.ttl;
            let Ok(mut entries) = self.entries.lock() else {
                continue;
            };
            if entries.count > MAX_ENTRIES {
                *entries = Entries::default();
            }
            for d in answer.decisions {
                let Ok(patient) = Uuid::parse_str(&d.patient_id) else {
                    continue;
                };
                let decision = Decision {
                    can_read: d.can_read,
                    can_write: d.can_write,
                };
                known.insert(patient, decision);
                let changed_since =
                    self.generation.load(std::sync::atomic::Ordering::SeqCst) != asked_at;
                if !d.not_found && !changed_since {
                    // A patient registered a moment later must not stay invisible.
                    entries
                        .by_patient
                        .entry(patient)
                        .or_default()
                        .insert(key.clone(), (decision, until));
                    entries.count += 1;
                }
            }
        }
        for patient in patients {
            known.entry(*patient).or_default();
        }
        Ok(known)
    }

    /// Drops every decision about `patient` (its care team or consents changed).
    pub fn forget(&self, patient: Uuid) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut entries) = self.entries.lock()
            && let Some(removed) = entries.by_patient.remove(&patient)
        {
            entries.count = entries.count.saturating_sub(removed.len());
        }
    }

    /// Listens to plans' events on NATS (a core subscription of this replica, not a durable
    /// consumer: every replica must hear every change) and forgets the patients whose team,
    /// consents or plan changed.
    pub fn listen(
        self: &Arc<Self>,
        client: async_nats::Client,
        prefix: &str,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let cache = Arc::clone(self);
        let subject = format!("{prefix}.plans.>");
        let prefix = format!("{prefix}.");
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut subscription = match client.subscribe(subject).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(error = %error, "access invalidations not subscribed; decisions expire by time only");
                    return;
                }
            };
            loop {
                let message = tokio::select! {
                    m = subscription.next() => match m {
                        Some(m) => m,
                        None => return,
                    },
                    _ = stop.changed() => return,
                };
                let event_type = message
                    .subject
                    .strip_prefix(prefix.as_str())
                    .unwrap_or_default();
                if !changes_access(event_type) {
                    continue;
                }
                let Ok(event) = <careloop_proto::events::v1::Event as prost::Message>::decode(
                    message.payload.as_ref(),
                ) else {
                    continue;
                };
                if let Ok(patient) = Uuid::parse_str(&event.patient_id) {
                    cache.forget(patient);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careloop_proto::events::v1::event::Payload;
    use careloop_runtime::events::catalogue::event_type;

    #[test]
    fn team_consent_plan_and_patient_events_change_access_and_task_events_do_not() {
        for payload in [
            Payload::PatientCreated(Default::default()),
            Payload::CarePlanCreated(Default::default()),
            Payload::CareTeamChanged(Default::default()),
            Payload::ConsentGranted(Default::default()),
            Payload::ConsentRevoked(Default::default()),
        ] {
            assert!(
                changes_access(event_type(&payload)),
                "{}",
                event_type(&payload)
            );
        }
        for payload in [
            Payload::TaskCreated(Default::default()),
            Payload::CarePlanUpdated(Default::default()),
            Payload::HandoffSent(Default::default()),
        ] {
            assert!(
                !changes_access(event_type(&payload)),
                "{}",
                event_type(&payload)
            );
        }
    }
}
