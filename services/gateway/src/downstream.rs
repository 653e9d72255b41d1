//! One downstream service as the gateway sees it: a connection per replica (the address re-resolved
//! in the background, so replicas behind a headless Service are found and balanced round robin), a
//! circuit breaker that answers at once while the service keeps failing, and a retry budget that
//! lets reads retry once on UNAVAILABLE without multiplying the load on a struggling service.
//! Writes are never retried here: the caller retries with its idempotency key.

use careloop_runtime::access::ServiceCredentials;
use careloop_runtime::auth::{Authenticator, ON_BEHALF_OF, Principal, PrincipalKind};
use careloop_runtime::config::TlsSettings;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// What every downstream client is built on.
pub type Transport = InterceptedService<Channel, ServiceCredentials>;

/// The replicas found for the address: each resolved address (none before the first resolution)
/// and its channel.
type Replicas = Arc<Vec<(Option<SocketAddr>, Channel)>>;

pub struct Downstream {
    pub name: &'static str,
    addr: String,
    tls: TlsSettings,
    credentials: ServiceCredentials,
    replicas: RwLock<Replicas>,
    next: AtomicUsize,
    breaker: Mutex<Breaker>,
    budget: Mutex<RetryBudget>,
    /// The full per-call timeout: a call given less (the caller's own deadline was near) that runs
    /// out of time says nothing about the service, so it does not count against its breaker.
    full_timeout: Duration,
}

impl Downstream {
    /// Starts with one lazily connected channel to `addr` (the service may be down at start);
    /// `refresh` replaces it with one channel per resolved replica.
    pub fn new(
        name: &'static str,
        addr: &str,
        tls: &TlsSettings,
        auth: Arc<Authenticator>,
        breaker: BreakerSettings,
        retry_ratio: f64,
        full_timeout: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let channel = careloop_runtime::client::channel(addr, tls)?;
        let credentials = ServiceCredentials::for_address(addr, auth, crate::SERVICE_NAME)?;
        Ok(Arc::new(Self {
            name,
            addr: addr.to_owned(),
            tls: tls.clone(),
            credentials,
            replicas: RwLock::new(Arc::new(vec![(None, channel)])),
            next: AtomicUsize::new(0),
            breaker: Mutex::new(Breaker::new(breaker)),
            budget: Mutex::new(RetryBudget::new(retry_ratio)),
            full_timeout,
        }))
    }

    /// Re-resolves the address; keeps the current channels when resolution fails or finds nothing,
    /// and reuses the channel of every replica that is still there.
    pub async fn refresh(&self) {
        let Ok(uri) = self.addr.parse::<http::Uri>() else {
            return;
        };
        let (Some(host), port) = (uri.host(), uri.port_u16()) else {
            return;
        };
        let port = port.unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(found) = tokio::net::lookup_host((host, port)).await else {
            tracing::debug!(
                downstream = self.name,
                "address did not resolve; keeping replicas"
            );
            return;
        };
        let mut found: Vec<SocketAddr> = found.collect();
        found.sort();
        found.dedup();
        if found.is_empty() {
            return;
        }
        let current = self.replicas.read().map(|r| Arc::clone(&r)).ok();
        let Some(current) = current else { return };
        let known: Vec<SocketAddr> = current.iter().filter_map(|(a, _)| *a).collect();
        if known == found {
            return;
        }
        let mut next = Vec::with_capacity(found.len());
        for addr in &found {
            let existing = current
                .iter()
                .find(|(a, _)| a.as_ref() == Some(addr))
                .map(|(_, c)| c.clone());
            let channel = match existing {
                Some(channel) => channel,
                None => {
                    match careloop_runtime::client::replica_channel(&self.addr, *addr, &self.tls) {
                        Ok(channel) => channel,
                        Err(error) => {
                            tracing::warn!(downstream = self.name, error = %error, "replica channel not built");
                            continue;
                        }
                    }
                }
            };
            next.push((Some(*addr), channel));
        }
        if next.is_empty() {
            return;
        }
        tracing::info!(
            downstream = self.name,
            replicas = next.len(),
            "downstream replicas"
        );
        if let Ok(mut replicas) = self.replicas.write() {
            *replicas = Arc::new(next);
        }
    }

    /// The next replica's transport, round robin.
    pub fn transport(&self) -> Transport {
        let replicas = self
            .replicas
            .read()
            .map(|r| Arc::clone(&r))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()));
        let i = self.next.fetch_add(1, Ordering::Relaxed) % replicas.len().max(1);
        let channel = replicas[i].1.clone();
        InterceptedService::new(channel, self.credentials.clone())
    }

    /// Runs one call under the breaker, within `timeout`: a read (`retry`) is tried once more on
    /// UNAVAILABLE while the budget allows and time remains.
    pub async fn call<T, F, Fut>(
        &self,
        timeout: Duration,
        retry: bool,
        call: F,
    ) -> Result<T, Status>
    where
        F: Fn(Transport, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        if let Ok(mut budget) = self.budget.lock() {
            budget.deposit();
        }
        let mut tried_again = false;
        loop {
            self.admit()?;
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Status::deadline_exceeded("deadline exceeded"));
            }
            let outcome = match tokio::time::timeout(left, call(self.transport(), left)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
            };
            let cut_short = timeout < self.full_timeout;
            self.record(&outcome, cut_short);
            match outcome {
                Err(status)
                    if retry
                        && !tried_again
                        && status.code() == Code::Unavailable
                        && self.budget.lock().is_ok_and(|mut b| b.withdraw()) =>
                {
                    tried_again = true;
                }
                other => return other,
            }
        }
    }

    fn admit(&self) -> Result<(), Status> {
        let admitted = self
            .breaker
            .lock()
            .map(|mut b| b.admit(Instant::now()))
            .unwrap_or(true);
        if admitted {
            Ok(())
        } else {
            Err(Status::unavailable(format!(
                "{} is failing; circuit open",
                self.name
            )))
        }
    }

    fn record<T>(&self, outcome: &Result<T, Status>, cut_short: bool) {
        if cut_short && matches!(outcome, Err(s) if s.code() == Code::DeadlineExceeded) {
            // The caller's deadline, not the service: neither a failure nor a success.
            return;
        }
        let failed = matches!(outcome, Err(s) if is_failure(s.code()));
        if let Ok(mut breaker) = self.breaker.lock() {
            let was_open = breaker.is_open();
            breaker.record(!failed, Instant::now());
            if breaker.is_open() && !was_open {
                tracing::warn!(downstream = self.name, "circuit opened");
            }
        }
    }
}

/// Failures that say the service is in trouble, not that the request was refused.
fn is_failure(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal
    )
}

/// A request to a downstream made for `who`: the user as on-behalf-of (authorization and audit use
/// the user there); an internal service's own calls go as the gateway.
pub fn on_behalf_of<T>(who: &Principal, body: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.set_timeout(timeout);
    if who.kind != PrincipalKind::Service
        && let Ok(value) = careloop_runtime::auth::on_behalf_of_header(who).parse()
    {
        request.metadata_mut().insert(ON_BEHALF_OF, value);
    }
    request
}

/// A request the gateway makes as itself (cross-patient lists it then filters per caller).
pub fn as_gateway<T>(body: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request.set_timeout(timeout);
    request
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    pub failures: u32,
    pub open_for: Duration,
}

/// Closed, open after `failures` consecutive failures, then half open: one trial call at a time
/// after `open_for`; a success closes it, a failure opens it again.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    consecutive: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            consecutive: 0,
            open_until: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// Whether a call may go now; a call let through after the open time is the trial, and the
    /// next trial waits another `open_for`.
    pub fn admit(&mut self, now: Instant) -> bool {
        match self.open_until {
            None => true,
            Some(until) if now >= until => {
                self.open_until = Some(now + self.settings.open_for);
                true
            }
            Some(_) => false,
        }
    }

    pub fn record(&mut self, success: bool, now: Instant) {
        if success {
            self.consecutive = 0;
            self.open_until = None;
            return;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive >= self.settings.failures.max(1) && self.open_until.is_none() {
            self.open_until = Some(now + self.settings.open_for);
        }
    }
}

/// Every call earns `ratio` of a retry (up to a small reserve); a retry spends one.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    tokens: f64,
}

impl RetryBudget {
    const RESERVE: f64 = 10.0;

    pub fn new(ratio: f64) -> Self {
        Self {
            ratio: ratio.clamp(0.0, 1.0),
            tokens: 0.0,
        }
    }

    pub fn deposit(&mut self) {
        self.tokens = (self.tokens + self.ratio).min(Self::RESERVE);
    }

    pub fn withdraw(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            failures: 3,
            open_for: Duration::from_secs(5),
        })
    }

    #[test]
    fn a_breaker_opens_after_consecutive_failures_and_refuses_until_its_trial() {
        let mut b = breaker();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.admit(t0));
            b.record(false, t0);
        }
        assert!(!b.is_open(), "two failures are not yet three");
        b.record(false, t0);
        assert!(b.is_open());
        assert!(!b.admit(t0 + Duration::from_secs(1)));
        assert!(b.admit(t0 + Duration::from_secs(5)), "the trial call goes");
        assert!(
            !b.admit(t0 + Duration::from_secs(5)),
            "one trial at a time while half open"
        );
        b.record(true, t0 + Duration::from_secs(6));
        assert!(!b.is_open());
        assert!(b.admit(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn a_success_between_failures_keeps_the_breaker_closed() {
        let mut b = breaker();
        let t0 = Instant::now();
        b.record(false, t0);
        b.record(false, t0);
        b.record(true, t0);
        b.record(false, t0);
        b.record(false, t0);
        assert!(!b.is_open());
    }

    fn plans(full: Duration) -> Arc<Downstream> {
        let mut settings = careloop_runtime::config::Settings::defaults();
        settings.auth.dev_mode = true;
        let auth = Arc::new(Authenticator::new(&settings.auth, "gateway").unwrap());
        Downstream::new(
            "plans",
            "http://127.0.0.1:1",
            &settings.tls,
            auth,
            BreakerSettings {
                failures: 3,
                open_for: Duration::from_secs(60),
            },
            0.0,
            full,
        )
        .unwrap()
    }

    async fn timed_out(d: &Downstream, timeout: Duration) -> Status {
        d.call(timeout, false, |_, _| async {
            Err::<(), _>(Status::deadline_exceeded("slow"))
        })
        .await
        .unwrap_err()
    }

    #[tokio::test]
    async fn deadlines_the_caller_cut_short_never_open_the_circuit() {
        let d = plans(Duration::from_secs(3));
        for _ in 0..10 {
            let status = timed_out(&d, Duration::from_millis(5)).await;
            assert_eq!(status.code(), Code::DeadlineExceeded);
        }
        // The service itself timing out on a full budget does open it.
        for _ in 0..3 {
            timed_out(&d, Duration::from_secs(3)).await;
        }
        let refused = timed_out(&d, Duration::from_secs(3)).await;
        assert_eq!(refused.code(), Code::Unavailable);
        assert!(
            refused.message().contains("circuit open"),
            "{}",
            refused.message()
        );
    }

    #[tokio::test]
    async fn a_refusal_is_an_answer_not_a_failure() {
        let d = plans(Duration::from_secs(3));
        for _ in 0..10 {
            let status = d
                .call(Duration::from_secs(3), false, |_, _| async {
                    Err::<(), _>(Status::permission_denied("no"))
                })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied);
        }
    }

    #[test]
    fn retries_stay_within_their_share_of_calls() {
        let mut budget = RetryBudget::new(0.2);
        let mut retries = 0;
        for _ in 0..100 {
            budget.deposit();
            if budget.withdraw() {
                retries += 1;
            }
        }
        assert!(retries <= 20, "{retries} retries for 100 calls");
        assert!(retries >= 19, "the budget is spent, not hoarded: {retries}");
        let mut empty = RetryBudget::new(0.2);
        assert!(!empty.withdraw(), "no retry before any call");
    }
}
