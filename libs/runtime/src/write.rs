//! The shape of every mutating RPC: open a transaction, claim the idempotency key (a retry gets the
//! first response back), make the change, append the outbox event, write the audit row and store the
//! response, then commit, all or nothing.

use crate::audit::{self, AuditEntry, Outcome};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::idempotency::{self, Scope};
use crate::outbox::{self, NewEvent};
use careloop_proto::events::v1::event::Payload;
use prost::Message;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A write in progress: the transaction, the claimed idempotency key and the caller.
pub struct Write {
    tx: Transaction<'static, Postgres>,
    scope: Scope,
    key: String,
    principal: Principal,
    rpc: &'static str,
    source: &'static str,
    /// For a replay: the patient and record the first call touched.
    replay_of: Option<(Option<Uuid>, Option<Uuid>)>,
    /// The organization the change's events belong to, when not the caller's (a loop is owned by
    /// the organization that opened it, whoever moves it).
    owner_org: Option<Uuid>,
}

pub enum Begun<Resp> {
    /// The key was used before for this very request: here is the first response, and the write
    /// that answers it once access is checked again (`replayed`).
    Replay(Resp, Box<Write>),
    Fresh(Box<Write>),
}

/// Starts a write for `rpc` of service `source`.
pub async fn begin<Req: Message, Resp: Message + Default>(
    pool: &PgPool,
    source: &'static str,
    rpc: &'static str,
    principal: &Principal,
    key: &str,
    request: &Req,
) -> ApiResult<Begun<Resp>> {
    let key = crate::validate::idempotency_key(key)?;
    let mut tx = pool.begin().await?;
    let (scope, key) = Scope::new(rpc, principal, &key);
    let previous = idempotency::claim::<Req, Resp>(&mut tx, &scope, &key, request).await?;
    let mut write = Box::new(Write {
        tx,
        scope,
        key,
        principal: principal.clone(),
        rpc,
        source,
        replay_of: None,
        owner_org: None,
    });
    match previous {
        Some(remembered) => {
            write.replay_of = Some((remembered.patient_id, remembered.target_id));
            Ok(Begun::Replay(remembered.response, write))
        }
        None => Ok(Begun::Fresh(write)),
    }
}

impl Write {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn rpc(&self) -> &'static str {
        self.rpc
    }

    /// Names the organization that owns what this write changes (an order's, a referral's sender,
    /// a prior authorization's requester): its events carry it, so escalation and measures reach
    /// the owner, not whoever made the move. `None` leaves the caller's.
    pub fn belongs_to(&mut self, org: Option<Uuid>) {
        self.owner_org = org.filter(|o| !o.is_nil());
    }

    /// Appends the event for this change to the outbox, in the same transaction.
    pub async fn emit(
        &mut self,
        patient_id: Uuid,
        aggregate_id: Uuid,
        aggregate_version: i64,
        payload: Payload,
    ) -> ApiResult<()> {
        let org_id = self.owner_org.unwrap_or(self.principal.org_id);
        outbox::enqueue(
            &mut self.tx,
            NewEvent {
                source: self.source,
                patient_id: Some(patient_id),
                org_id,
                aggregate_id,
                aggregate_version,
                occurred_at: crate::time::now(),
                payload,
            },
        )
        .await?;
        Ok(())
    }

    /// Audits, stores the response under the idempotency key and commits, all at once.
    pub async fn finish<Resp: Message>(
        self,
        patient_id: Uuid,
        target_id: Uuid,
        response: Resp,
    ) -> ApiResult<Resp> {
        self.finish_for(Some(patient_id), target_id, response).await
    }

    /// As `finish`, for changes that concern no single patient (configuration such as rules).
    pub async fn finish_for<Resp: Message>(
        mut self,
        patient_id: Option<Uuid>,
        target_id: Uuid,
        response: Resp,
    ) -> ApiResult<Resp> {
        audit::record(
            &mut self.tx,
            AuditEntry {
                principal: &self.principal,
                action: self.rpc,
                patient_id,
                target_id: Some(target_id),
                outcome: Outcome::Ok,
            },
        )
        .await?;
        idempotency::complete(
            &mut self.tx,
            &self.scope,
            &self.key,
            &response,
            patient_id,
            Some(target_id),
        )
        .await?;
        self.tx.commit().await?;
        Ok(response)
    }

    /// Answers a retried write with its first response: the caller's access was checked again
    /// before this, and the replay is audited like any write.
    pub async fn replayed<Resp>(mut self, response: Resp) -> ApiResult<Resp> {
        let (patient_id, target_id) = self.replay_of.unwrap_or((None, None));
        audit::record(
            &mut self.tx,
            AuditEntry {
                principal: &self.principal,
                action: self.rpc,
                patient_id,
                target_id,
                outcome: Outcome::Replayed,
            },
        )
        .await?;
        self.tx.commit().await?;
        Ok(response)
    }
}

/// A change that no RPC started: a consumer's handler, a sweeper, a pathway rule. The service acts
/// for the rule or the event, inside the transaction its caller holds (a consumer's transaction
/// also records the event id as handled, so a redelivered event has no second effect; a sweeper's
/// holds the report mark, so racing replicas report once). Every event it appends is audited in the
/// same transaction as the service actor, for the organization the change belongs to, with the
/// event type as the action: the same trail an RPC write leaves.
pub struct Acting<'c> {
    conn: &'c mut PgConnection,
    source: &'static str,
    actor: &'static str,
}

/// One change made by a service acting on its own.
pub struct Change {
    /// The organization the change belongs to (the loop's owner, or the rule's).
    pub org_id: Uuid,
    pub patient_id: Uuid,
    pub aggregate_id: Uuid,
    /// The aggregate's version after this change: unique per aggregate, like every event's.
    pub aggregate_version: i64,
    pub payload: Payload,
}

impl<'c> Acting<'c> {
    /// `actor` names the service and what acts in it, e.g. "referrals-pathways".
    pub fn new(conn: &'c mut PgConnection, source: &'static str, actor: &'static str) -> Self {
        Self {
            conn,
            source,
            actor,
        }
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// Appends the change's event to the outbox and audits it, in one statement; returns the
    /// event id.
    pub async fn emit(&mut self, change: Change) -> Result<Uuid, sqlx::Error> {
        let action = crate::events::catalogue::event_type(&change.payload);
        let (org_id, patient_id, aggregate_id, aggregate_version) = (
            change.org_id,
            change.patient_id,
            change.aggregate_id,
            change.aggregate_version,
        );
        let event = outbox::envelope(NewEvent {
            source: self.source,
            patient_id: Some(patient_id),
            org_id,
            aggregate_id,
            aggregate_version,
            occurred_at: crate::time::now(),
            payload: change.payload,
        });
        let id = Uuid::parse_str(&event.id).expect("envelope ids are uuids");
        let principal = Principal {
            org_id,
            ..Principal::service(self.actor)
        };
        // One round trip for both rows: this runs once per event a consumer or sweeper handles.
        sqlx::query(
            "WITH event AS (
                 INSERT INTO outbox (id, event_type, aggregate_id, aggregate_version, patient_id, payload)
                 VALUES ($1, $2, $3, $4, $5, $6))
             INSERT INTO audit_log (subject, org_id, principal_kind, patient_id, action, target_id, outcome,
                                    issuer, via_service, trace_id)
             VALUES ($7, $8, $9, $5, $2, $3, 'ok', $10, NULL, $11)",
        )
        .bind(id)
        .bind(action)
        .bind(aggregate_id)
        .bind(aggregate_version)
        .bind(patient_id)
        .bind(prost::Message::encode_to_vec(&event))
        .bind(&principal.subject)
        .bind(org_id)
        .bind(principal.kind.as_str())
        .bind(&principal.issuer)
        .bind(crate::telemetry::current_trace_id())
        .execute(&mut *self.conn)
        .await?;
        Ok(id)
    }

    /// Audits a change that emits no event (one nobody was told of), as the service actor.
    pub async fn audit(
        &mut self,
        action: &'static str,
        org_id: Uuid,
        patient_id: Uuid,
        target_id: Uuid,
    ) -> Result<(), sqlx::Error> {
        let principal = Principal {
            org_id,
            ..Principal::service(self.actor)
        };
        audit::record(
            self.conn,
            AuditEntry {
                principal: &principal,
                action,
                patient_id: Some(patient_id),
                target_id: Some(target_id),
                outcome: Outcome::Ok,
            },
        )
        .await
    }
}

/// Starts a write or answers a retry with the first response from the enclosing handler (audited
/// as a replay). The plain form is for handlers that checked access before; the form with
/// `w => { check }` runs the check inside the write's transaction for a first call and for a
/// replay alike (a caller whose access was revoked gets no stored response), and yields the
/// write with the check's value.
#[macro_export]
macro_rules! begin_write {
    ($pool:expr, $source:expr, $rpc:expr, $principal:expr, $req:expr) => {
        match $crate::write::begin(
            &$pool,
            $source,
            $rpc,
            $principal,
            &$req.idempotency_key,
            &$req,
        )
        .await?
        {
            $crate::write::Begun::Replay(response, write) => return write.replayed(response).await,
            $crate::write::Begun::Fresh(write) => *write,
        }
    };
    ($pool:expr, $source:expr, $rpc:expr, $principal:expr, $req:expr, $w:ident => $check:block) => {
        match $crate::write::begin(
            &$pool,
            $source,
            $rpc,
            $principal,
            &$req.idempotency_key,
            &$req,
        )
        .await?
        {
            $crate::write::Begun::Replay(response, write) => {
                #[allow(unused_mut)]
                let mut $w = *write;
                let _ = $check;
                return $w.replayed(response).await;
            }
            $crate::write::Begun::Fresh(write) => {
                #[allow(unused_mut)]
                let mut $w = *write;
                let checked = $check;
                ($w, checked)
            }
        }
    };
}

/// Turns a handler's result into the gRPC answer. Every refusal (of a patient, or of the RPC
/// itself: a look-up by MRN for another organization, a worklist a caregiver may not see) is
/// audited here, on a connection of its own, after the handler released its transaction.
pub async fn respond<T>(
    pool: &PgPool,
    who: &Principal,
    rpc: &'static str,
    result: ApiResult<T>,
) -> Result<tonic::Response<T>, tonic::Status> {
    match &result {
        Err(crate::error::ApiError::AccessDenied { patient_id, .. }) => {
            audit_denial(pool, who, rpc, Some(*patient_id)).await;
        }
        Err(crate::error::ApiError::PermissionDenied(_) | crate::error::ApiError::Hidden(_)) => {
            audit_denial(pool, who, rpc, None).await;
        }
        _ => {}
    }
    result
        .map(tonic::Response::new)
        .map_err(tonic::Status::from)
}

async fn audit_denial(
    pool: &PgPool,
    principal: &Principal,
    rpc: &'static str,
    patient_id: Option<Uuid>,
) {
    tracing::info!(rpc, patient_id = ?patient_id, subject = %principal.subject, "access denied");
    let entry = AuditEntry {
        principal,
        action: rpc,
        patient_id,
        target_id: None,
        outcome: Outcome::Denied,
    };
    let recorded = match pool.acquire().await {
        Ok(mut conn) => audit::record(&mut conn, entry)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(error) = recorded {
        tracing::error!(rpc, patient_id = ?patient_id, error = %crate::error::redacted(&error), "denial not audited");
    }
}

/// Implements a service trait by handing each RPC, with the caller's principal, to the inherent
/// handler of the same name (inherent methods win method resolution), then to `respond`. The API
/// type needs `fn pool(&self) -> &PgPool`.
///
/// Server-streaming RPCs follow in a `streams { name / "Rpc": Req => Assoc = StreamType; }` block:
/// the handler returns the stream; the caller's concurrency slot is released once it is set up
/// (a watcher holds no slot while it waits).
#[macro_export]
macro_rules! grpc_service {
    ($service:path, $api:ty, { $($name:ident / $rpc:literal: $req:ty => $resp:ty;)* }) => {
        $crate::grpc_service!($service, $api, { $($name / $rpc: $req => $resp;)* } streams {});
    };
    ($service:path, $api:ty, { $($name:ident / $rpc:literal: $req:ty => $resp:ty;)* }
     streams { $($sname:ident / $srpc:literal: $sreq:ty => $assoc:ident = $stream:ty;)* }) => {
        #[tonic::async_trait]
        impl $service for $api {
            $(
                type $assoc = $stream;

                async fn $sname(
                    &self,
                    request: tonic::Request<$sreq>,
                ) -> Result<tonic::Response<$stream>, tonic::Status> {
                    let who = $crate::auth::principal(&request).map_err(tonic::Status::from)?;
                    let _slot = $crate::limits::admit(&request, &who).map_err(tonic::Status::from)?;
                    let result = <$api>::$sname(self, &who, request.into_inner()).await;
                    $crate::write::respond(self.pool(), &who, $srpc, result).await
                }
            )*
            $(
                async fn $name(
                    &self,
                    request: tonic::Request<$req>,
                ) -> Result<tonic::Response<$resp>, tonic::Status> {
                    let who = $crate::auth::principal(&request).map_err(tonic::Status::from)?;
                    let _slot = $crate::limits::admit(&request, &who).map_err(tonic::Status::from)?;
                    let result = <$api>::$name(self, &who, request.into_inner()).await;
                    $crate::write::respond(self.pool(), &who, $rpc, result).await
                }
            )*
        }
    };
}
