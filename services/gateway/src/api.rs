//! The gateway's API: composed reads (summary, worklist) and curated writes forwarded to the owning
//! service. The door (scopes, rate limits) is `gate`; who may touch which patient is plans' decision
//! (`access`); each downstream is a `Downstream`.

use crate::access::AccessCache;
use crate::downstream::Downstream;
use crate::settings::GatewaySettings;
use careloop_runtime::auth::Principal;
use careloop_runtime::error::ApiError;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Gateway {
    pub(crate) pool: PgPool,
    pub(crate) settings: Arc<GatewaySettings>,
    pub(crate) plans: Arc<Downstream>,
    pub(crate) referrals: Arc<Downstream>,
    pub(crate) prior_auth: Arc<Downstream>,
    pub(crate) notifications: Arc<Downstream>,
    pub(crate) access: Arc<AccessCache>,
}

/// How long the gateway may spend on a call: the caller's deadline (`grpc-timeout`) or the
/// default, less a margin to answer in.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    until: Instant,
    per_call: Duration,
}

impl Budget {
    pub fn of(metadata: &tonic::metadata::MetadataMap, settings: &GatewaySettings) -> Self {
        let asked = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(Duration::from_millis(settings.default_deadline_ms));
        let usable = asked.saturating_sub(Duration::from_millis(settings.deadline_margin_ms));
        Self {
            until: Instant::now() + usable,
            per_call: Duration::from_millis(settings.call_timeout_ms),
        }
    }

    /// All that is left of the caller's deadline.
    pub fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }

    /// What one downstream call may take now.
    pub fn call(&self) -> Duration {
        self.until
            .saturating_duration_since(Instant::now())
            .min(self.per_call)
    }
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The principal authentication put on the request.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Principal, tonic::Status> {
    careloop_runtime::auth::principal(request).map_err(tonic::Status::from)
}

/// A short reason for a section that did not answer, without internals.
pub fn unavailable_reason(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::DeadlineExceeded => "deadline exceeded".into(),
        tonic::Code::Unavailable if status.message().contains("circuit open") => {
            "circuit open".into()
        }
        tonic::Code::Unavailable => "unavailable".into(),
        tonic::Code::PermissionDenied => "not permitted".into(),
        _ => "failed".into(),
    }
}

/// A status as callers get it: the owning service's, unchanged, when it carries a reason; one the
/// gateway or the transport made (a connection refused, a deadline, an open circuit) gains the
/// reason for its code, so every error has its `ErrorInfo`.
pub fn reasoned(status: tonic::Status) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    if status.get_details_error_info().is_some() {
        return status;
    }
    if matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal) {
        // The cause is logged under an opaque id, never sent.
        return ApiError::Internal(anyhow::anyhow!(
            "downstream answered {:?}: {}",
            status.code(),
            status.message()
        ))
        .into();
    }
    let reason = match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => "UNAVAILABLE",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::InvalidArgument => "INVALID_FIELD",
        tonic::Code::ResourceExhausted => "TOO_MANY_IN_FLIGHT",
        _ => "INTERNAL",
    };
    let message = status.message().to_owned();
    let mut details = ErrorDetails::new();
    details.set_error_info(
        reason,
        careloop_runtime::error::ERROR_DOMAIN,
        std::collections::HashMap::<String, String>::new(),
    );
    tonic::Status::with_error_details(status.code(), message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_without_a_reason_gains_one_and_a_reasoned_one_is_untouched() {
        use tonic_types::StatusExt;
        let bare = reasoned(tonic::Status::unavailable("plans is failing; circuit open"));
        assert_eq!(bare.get_details_error_info().unwrap().reason, "UNAVAILABLE");
        assert_eq!(bare.message(), "plans is failing; circuit open");
        let owned: tonic::Status = ApiError::Aborted { current: 3 }.into();
        let passed = reasoned(owned.clone());
        assert_eq!(passed.details(), owned.details());
        assert_eq!(
            passed.get_details_error_info().unwrap().reason,
            "STALE_VERSION"
        );
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_garbage_is_ignored() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }
}
