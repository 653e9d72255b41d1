//! Abuse resistance at the server's edge: one global concurrency limit that health checks bypass
//! (probes must answer while the service is saturated, or the orchestrator kills a busy pod), and a
//! per-principal limit so one caller cannot take every slot (answered RESOURCE_EXHAUSTED at once,
//! never queued).

use crate::auth::Principal;
use crate::error::ApiError;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// The global limit: requests beyond it wait for a slot; health checks never wait.
#[derive(Clone)]
pub struct ConcurrencyLayer {
    slots: Arc<Semaphore>,
}

impl ConcurrencyLayer {
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for ConcurrencyLayer {
    type Service = Concurrency<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Concurrency {
            inner,
            slots: Arc::clone(&self.slots),
        }
    }
}

#[derive(Clone)]
pub struct Concurrency<S> {
    inner: S,
    slots: Arc<Semaphore>,
}

impl<S, B> tower::Service<http::Request<B>> for Concurrency<S>
where
    S: tower::Service<http::Request<B>> + Clone + Send + 'static,
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
        if request.uri().path().starts_with(HEALTH_PREFIX) {
            return Box::pin(inner.call(request));
        }
        let slots = Arc::clone(&self.slots);
        Box::pin(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = slots.acquire_owned().await.ok();
            inner.call(request).await
        })
    }
}

/// In-flight calls per principal (issuer, organization, subject), bounded.
pub struct PrincipalLimiter {
    max: usize,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Held for the duration of one call.
pub struct PrincipalPermit {
    _permit: OwnedSemaphorePermit,
}

impl PrincipalLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `who`'s call, or RESOURCE_EXHAUSTED when it already has `max` calls in flight.
    pub fn admit(&self, who: &Principal) -> Result<PrincipalPermit, ApiError> {
        let key = format!("{}\u{1f}{}\u{1f}{}", who.issuer, who.org_id, who.subject);
        let semaphore = {
            let Ok(mut map) = self.in_flight.lock() else {
                return Err(ApiError::ResourceExhausted("too many calls in flight"));
            };
            // Forget idle principals so the map does not grow with every caller ever seen.
            if map.len() > 10_000 {
                map.retain(|_, s| s.available_permits() < self.max);
            }
            Arc::clone(
                map.entry(key)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.max))),
            )
        };
        semaphore
            .try_acquire_owned()
            .map(|permit| PrincipalPermit { _permit: permit })
            .map_err(|_| ApiError::ResourceExhausted("too many calls in flight for this caller"))
    }
}

/// Admits one call of the request's principal under the server's per-principal limit, which the
/// authentication interceptor put in the request's extensions (none there: no limit).
pub fn admit<T>(
    request: &tonic::Request<T>,
    who: &Principal,
) -> Result<Option<PrincipalPermit>, ApiError> {
    match request.extensions().get::<Arc<PrincipalLimiter>>() {
        Some(limiter) => limiter.admit(who).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_over_its_limit_is_refused_while_others_are_admitted() {
        let limiter = PrincipalLimiter::new(2);
        let busy = crate::auth::dev_principal();
        let other = crate::auth::Principal {
            subject: "another".into(),
            ..crate::auth::dev_principal()
        };
        let first = limiter.admit(&busy).unwrap();
        let _second = limiter.admit(&busy).unwrap();
        assert!(matches!(
            limiter.admit(&busy),
            Err(ApiError::ResourceExhausted(_))
        ));
        assert!(limiter.admit(&other).is_ok());
        drop(first);
        assert!(
            limiter.admit(&busy).is_ok(),
            "a finished call frees its slot"
        );
    }
}
