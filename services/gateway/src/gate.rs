//! The gateway's door, a tower layer behind authentication: which kinds of principal may call which
//! RPC (deny by default: an RPC missing from the table is refused to everyone), and how much each
//! organization and each principal may ask (token buckets; a refusal says when to come back with
//! `google.rpc.RetryInfo`). Refusals are audited.

use careloop_runtime::auth::{Principal, PrincipalKind};
use careloop_runtime::error::ApiError;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use uuid::Uuid;

use PrincipalKind::{Caregiver, Partner, Payer, Service, Staff};

/// The gateway's RPCs and the principal kinds each is open to. Whether a principal may touch a
/// given patient is then plans' decision, per call.
pub const SCOPES: &[(&str, &[PrincipalKind])] = &[
    (
        "GetPatientSummary",
        &[Staff, Partner, Caregiver, Payer, Service],
    ),
    ("ListWorklist", &[Staff, Partner, Service]),
    ("CreatePatient", &[Staff, Service]),
    ("CreateCarePlan", &[Staff, Service]),
    ("AddCareTeamMember", &[Staff, Service]),
    ("GrantConsent", &[Staff, Service]),
    ("CreateTask", &[Staff, Partner, Service]),
    ("TransitionTask", &[Staff, Partner, Service]),
    ("SendHandoff", &[Staff, Partner, Service]),
    ("AcknowledgeHandoff", &[Staff, Partner, Service]),
    ("StartTransition", &[Staff, Service]),
    ("PlaceReferral", &[Staff, Partner, Service]),
    ("TransitionReferral", &[Staff, Partner, Service]),
    ("PlaceOrder", &[Staff, Partner, Service]),
    ("TransitionOrder", &[Staff, Partner, Service]),
    ("RecordResult", &[Staff, Partner, Service]),
    ("AcknowledgeResult", &[Staff, Partner, Service]),
    ("CreatePriorAuth", &[Staff, Service]),
    ("UpdatePriorAuth", &[Staff, Service]),
    ("SubmitPriorAuth", &[Staff, Service]),
    ("RecordPayerDecision", &[Staff, Payer, Service]),
    ("AcknowledgeInboxItem", &[Staff, Service]),
];

const PREFIX: &str = "/careloop.gateway.v1.GatewayService/";

/// The RPC's name as the table spells it (for audit), if the path is a gateway RPC at all.
pub fn rpc_of(path: &str) -> Option<&'static str> {
    let method = path.strip_prefix(PREFIX)?;
    SCOPES
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(name, _)| *name)
}

/// Whether `kind` may call `rpc`; anything not in the table is refused.
pub fn allowed(rpc: &str, kind: PrincipalKind) -> bool {
    SCOPES
        .iter()
        .any(|(name, kinds)| *name == rpc && kinds.contains(&kind))
}

/// A token bucket: `rate` tokens a second up to `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: f64::from(rate.burst.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(f64::from(rate.burst.max(1)));
        self.at = now;
    }

    /// How long until one token is there (zero when one is).
    fn wait(&self, rate: Rate) -> Duration {
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        if rate.per_sec <= 0.0 {
            return Duration::from_secs(60);
        }
        Duration::from_secs_f64((1.0 - self.tokens) / rate.per_sec).max(Duration::from_millis(1))
    }
}

/// Rate limits per organization and per principal. A call takes a token from both buckets or
/// from neither.
pub struct RateLimiter {
    org: Rate,
    principal: Rate,
    overrides: RwLock<HashMap<Uuid, Rate>>,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    orgs: HashMap<Uuid, Bucket>,
    principals: HashMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(org: Rate, principal: Rate) -> Self {
        Self {
            org,
            principal,
            overrides: RwLock::new(HashMap::new()),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Per-organization rates from the `api_clients` table, replacing the previous set.
    pub fn set_overrides(&self, overrides: HashMap<Uuid, Rate>) {
        if let Ok(mut current) = self.overrides.write() {
            *current = overrides;
        }
    }

    fn org_rate(&self, org: Uuid) -> Rate {
        self.overrides
            .read()
            .ok()
            .and_then(|o| o.get(&org).copied())
            .unwrap_or(self.org)
    }

    pub fn admit(&self, who: &Principal, now: Instant) -> Result<(), ApiError> {
        let org_rate = self.org_rate(who.org_id);
        let key = format!("{}\u{1f}{}\u{1f}{}", who.issuer, who.org_id, who.subject);
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.principals.len() > 100_000 {
            // Forget callers whose buckets are full again rather than grow without bound.
            let principal = self.principal;
            buckets.principals.retain(|_, b| {
                b.refill(principal, now);
                b.tokens < f64::from(principal.burst)
            });
        }
        let mut org = *buckets
            .orgs
            .entry(who.org_id)
            .or_insert_with(|| Bucket::full(org_rate, now));
        let mut own = *buckets
            .principals
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(self.principal, now));
        org.refill(org_rate, now);
        own.refill(self.principal, now);
        let refusal = if org.tokens < 1.0 {
            Some(("organization", org.wait(org_rate)))
        } else if own.tokens < 1.0 {
            Some(("caller", own.wait(self.principal)))
        } else {
            org.tokens -= 1.0;
            own.tokens -= 1.0;
            None
        };
        buckets.orgs.insert(who.org_id, org);
        buckets.principals.insert(key, own);
        match refusal {
            None => Ok(()),
            Some((scope, retry_after)) => Err(ApiError::RateLimited { scope, retry_after }),
        }
    }
}

/// The layer: scope, then rate limit, then the gateway's API.
#[derive(Clone)]
pub struct GateLayer {
    limiter: Arc<RateLimiter>,
    pool: sqlx::PgPool,
    metrics: Arc<careloop_runtime::metrics::Metrics>,
}

impl GateLayer {
    pub fn new(
        limiter: Arc<RateLimiter>,
        pool: sqlx::PgPool,
        metrics: Arc<careloop_runtime::metrics::Metrics>,
    ) -> Self {
        Self {
            limiter,
            pool,
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    layer: GateLayer,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Gate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for Gate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rpc = rpc_of(request.uri().path());
        let who = request.extensions().get::<Principal>().cloned();
        let in_flight = request
            .extensions()
            .get::<Arc<careloop_runtime::limits::PrincipalLimiter>>()
            .cloned();
        let layer = self.layer.clone();
        Box::pin(async move {
            let refusal = match (rpc, &who) {
                // Authentication runs first; a request without a principal never reaches here.
                (_, None) => Some(ApiError::Unauthenticated("missing bearer token")),
                (None, Some(_)) => Some(ApiError::PermissionDenied(
                    "this method is not offered by the gateway",
                )),
                (Some(rpc), Some(who)) if !allowed(rpc, who.kind) => Some(
                    ApiError::PermissionDenied("this kind of caller may not call this method"),
                ),
                (Some(_), Some(who)) => layer.limiter.admit(who, Instant::now()).err(),
            };
            let refusal = match (refusal, &who, in_flight) {
                (None, Some(who), Some(limiter)) => match limiter.admit(who) {
                    Ok(_slot) => return inner.call(request).await,
                    Err(refusal) => Some(refusal),
                },
                (refusal, _, _) => refusal,
            };
            let Some(refusal) = refusal else {
                return inner.call(request).await;
            };
            if let (Some(rpc), Some(who)) = (rpc, &who) {
                let reason = refusal.reason().as_str();
                layer
                    .metrics
                    .auth_refusals
                    .with_label_values(&[reason])
                    .inc();
                crate::audit::refusal(&layer.pool, who, rpc).await;
            }
            Ok(tonic::Status::from(refusal).into_http())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(org: Uuid, subject: &str) -> Principal {
        Principal {
            issuer: "idp".into(),
            subject: subject.into(),
            org_id: org,
            roles: vec![],
            kind: Staff,
            via: None,
        }
    }

    #[test]
    fn every_rpc_of_the_gateway_has_a_scope_and_nothing_else_is_open() {
        use prost::Message;
        let files =
            prost_types::FileDescriptorSet::decode(careloop_proto::FILE_DESCRIPTOR_SET).unwrap();
        let service = files
            .file
            .iter()
            .filter(|f| f.package() == "careloop.gateway.v1")
            .flat_map(|f| f.service.iter())
            .find(|s| s.name() == "GatewayService")
            .expect("gateway service");
        let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        for method in &methods {
            assert!(
                rpc_of(&format!("{PREFIX}{method}")).is_some(),
                "{method} has no scope"
            );
        }
        assert_eq!(methods.len(), SCOPES.len(), "no scope for a missing method");
        assert!(!allowed("DropAllTables", Service));
        assert!(rpc_of("/careloop.plans.v1.PlansService/CreatePatient").is_none());
    }

    #[test]
    fn caregivers_and_payers_reach_only_what_their_kind_needs() {
        assert!(allowed("GetPatientSummary", Caregiver));
        assert!(!allowed("ListWorklist", Caregiver));
        assert!(!allowed("PlaceReferral", Caregiver));
        assert!(allowed("RecordPayerDecision", Payer));
        assert!(!allowed("RecordPayerDecision", Partner));
        assert!(!allowed("CreatePatient", Partner));
        assert!(!allowed("SubmitPriorAuth", Payer));
    }

    #[test]
    fn a_burst_over_the_callers_limit_is_refused_with_the_time_to_wait() {
        let limiter = RateLimiter::new(
            Rate {
                per_sec: 1000.0,
                burst: 1000,
            },
            Rate {
                per_sec: 2.0,
                burst: 3,
            },
        );
        let org = Uuid::now_v7();
        let busy = caller(org, "busy");
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.admit(&busy, t0).unwrap();
        }
        match limiter.admit(&busy, t0) {
            Err(ApiError::RateLimited { scope, retry_after }) => {
                assert_eq!(scope, "caller");
                assert_eq!(retry_after, Duration::from_millis(500));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(
            limiter.admit(&caller(org, "colleague"), t0).is_ok(),
            "a colleague has its own bucket"
        );
        assert!(
            limiter
                .admit(&busy, t0 + Duration::from_millis(500))
                .is_ok(),
            "a token is back after the wait it was told"
        );
    }

    #[test]
    fn an_organization_shares_one_bucket_across_its_callers_and_can_be_given_more() {
        let limiter = RateLimiter::new(
            Rate {
                per_sec: 1.0,
                burst: 2,
            },
            Rate {
                per_sec: 100.0,
                burst: 100,
            },
        );
        let org = Uuid::now_v7();
        let t0 = Instant::now();
        limiter.admit(&caller(org, "a"), t0).unwrap();
        limiter.admit(&caller(org, "b"), t0).unwrap();
        assert!(matches!(
            limiter.admit(&caller(org, "c"), t0),
            Err(ApiError::RateLimited {
                scope: "organization",
                ..
            })
        ));
        let other = Uuid::now_v7();
        limiter.set_overrides(HashMap::from([(
            other,
            Rate {
                per_sec: 1.0,
                burst: 5,
            },
        )]));
        for i in 0..5 {
            limiter
                .admit(&caller(other, &format!("user-{i}")), t0)
                .unwrap();
        }
    }

    #[test]
    fn a_refused_call_takes_no_token_from_the_other_bucket() {
        let limiter = RateLimiter::new(
            Rate {
                per_sec: 0.0,
                burst: 1,
            },
            Rate {
                per_sec: 0.0,
                burst: 5,
            },
        );
        let org = Uuid::now_v7();
        let t0 = Instant::now();
        let who = caller(org, "a");
        limiter.admit(&who, t0).unwrap();
        for _ in 0..3 {
            assert!(limiter.admit(&who, t0).is_err());
        }
        let buckets = limiter.buckets.lock().unwrap();
        let key = format!("idp\u{1f}{org}\u{1f}a");
        assert_eq!(buckets.principals[&key].tokens, 4.0);
    }
}
