//! The one mapping from what went wrong to a gRPC status and a machine-readable reason (docs/errors.md).
//! Messages are lowercase and short and never carry SQL, causes or patient data; internal causes are
//! logged once, here, under an opaque error id that the caller receives.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// Several fields at once (e.g. an incomplete packet): each is named in the details.
    #[error("invalid request: {}", .0.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", "))]
    InvalidFields(Vec<(String, String)>),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The request is well formed but the record's state refuses it; `reason` is the
    /// machine-readable reason a client branches on (see `Reason`).
    #[error("{message}")]
    FailedPrecondition { reason: Reason, message: String },
    #[error("stale version: current version is {current}")]
    Aborted { current: i64 },
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// No right to this patient, audited by the service once its transaction is gone (so auditing
    /// never waits on a second connection). A caller who may not even read the patient (`hidden`)
    /// is answered exactly like a caller asking for a patient that does not exist, so refusals do
    /// not reveal another organization's patients; one who may read but not write gets
    /// PERMISSION_DENIED.
    #[error("{}", if *hidden { "patient not found" } else { "no access to this patient" })]
    AccessDenied {
        patient_id: uuid::Uuid,
        hidden: bool,
    },
    /// A refusal of a record the caller may not know exists (another organization's rule):
    /// answered exactly like NOT_FOUND, and audited as a denial.
    #[error("{0} not found")]
    Hidden(&'static str),
    /// A caller over its share (too many calls in flight): it may retry shortly.
    #[error("{0}")]
    ResourceExhausted(&'static str),
    /// Over a rate limit (the gateway's per organization and per principal): answered with
    /// `google.rpc.RetryInfo` saying when a retry will be admitted.
    #[error("rate limit exceeded for this {scope}")]
    RateLimited {
        scope: &'static str,
        retry_after: std::time::Duration,
    },
    #[error("service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Machine-readable reasons, sent as `google.rpc.ErrorInfo` (domain `careloop`) with every error
/// so a client can branch without parsing messages. The list is in docs/errors.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InvalidField,
    NotFound,
    AlreadyExists,
    /// The state machine does not allow this move from the current state.
    InvalidTransition,
    /// A lab or imaging test repeats one within the duplicate window (override with a reason).
    DuplicateTest,
    /// The record is closed (completed, cancelled) and takes no more changes of this kind.
    RecordClosed,
    /// Something else must happen first (a checklist item, the care team's one lead, ...).
    PreconditionFailed,
    StaleVersion,
    Unauthenticated,
    PermissionDenied,
    TooManyInFlight,
    RateLimited,
    Unavailable,
    Internal,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidField => "INVALID_FIELD",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::InvalidTransition => "INVALID_TRANSITION",
            Self::DuplicateTest => "DUPLICATE_TEST",
            Self::RecordClosed => "RECORD_CLOSED",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::StaleVersion => "STALE_VERSION",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::TooManyInFlight => "TOO_MANY_IN_FLIGHT",
            Self::RateLimited => "RATE_LIMITED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    pub const ALL: [Reason; 14] = [
        Self::InvalidField,
        Self::NotFound,
        Self::AlreadyExists,
        Self::InvalidTransition,
        Self::DuplicateTest,
        Self::RecordClosed,
        Self::PreconditionFailed,
        Self::StaleVersion,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::TooManyInFlight,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
    ];
}

/// The `ErrorInfo.domain` of CareLoop's reasons.
pub const ERROR_DOMAIN: &str = "careloop";

impl ApiError {
    /// The machine-readable reason. A hidden refusal has the reason of a missing record, so the
    /// two stay indistinguishable.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidArgument { .. } | Self::InvalidFields(_) => Reason::InvalidField,
            Self::NotFound(_) | Self::Hidden(_) | Self::AccessDenied { hidden: true, .. } => {
                Reason::NotFound
            }
            Self::AlreadyExists(_) => Reason::AlreadyExists,
            Self::FailedPrecondition { reason, .. } => *reason,
            Self::Aborted { .. } => Reason::StaleVersion,
            Self::Unauthenticated(_) => Reason::Unauthenticated,
            Self::PermissionDenied(_) | Self::AccessDenied { .. } => Reason::PermissionDenied,
            Self::ResourceExhausted(_) => Reason::TooManyInFlight,
            Self::RateLimited { .. } => Reason::RateLimited,
            Self::Unavailable(_) => Reason::Unavailable,
            Self::Internal(_) => Reason::Internal,
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A state that refuses the request for a reason of its own.
    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason,
            message: message.into(),
        }
    }

    /// A transition that the state machine refuses, naming both states.
    pub fn transition(what: &str, from: &str, to: &str) -> Self {
        Self::refused_move(format!("{what} cannot move from {from} to {to}"))
    }

    /// A state machine's refusal, already worded by the domain (it names both states).
    pub fn refused_move(message: impl Into<String>) -> Self {
        Self::precondition(Reason::InvalidTransition, message)
    }

    /// Optimistic concurrency: a write from a stale version is ABORTED with the current one.
    pub fn ensure_version(current: i64, expected: i64) -> Result<(), Self> {
        if current == expected {
            Ok(())
        } else {
            Err(Self::Aborted { current })
        }
    }

    pub fn internal(context: &'static str, cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into().context(context))
    }

    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } | Self::InvalidFields(_) => Code::InvalidArgument,
            Self::NotFound(_) | Self::Hidden(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::Aborted { .. } => Code::Aborted,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::AccessDenied { hidden: true, .. } => Code::NotFound,
            Self::PermissionDenied(_) | Self::AccessDenied { .. } => Code::PermissionDenied,
            Self::ResourceExhausted(_) | Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status a REST front would answer with for the same error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidArgument { .. } | Self::InvalidFields(_) => 400,
            Self::NotFound(_) | Self::Hidden(_) => 404,
            Self::AlreadyExists(_) | Self::FailedPrecondition { .. } | Self::Aborted { .. } => 409,
            Self::Unauthenticated(_) => 401,
            Self::AccessDenied { hidden: true, .. } => 404,
            Self::PermissionDenied(_) | Self::AccessDenied { .. } => 403,
            Self::ResourceExhausted(_) | Self::RateLimited { .. } => 429,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        classify_sqlx_error(err)
    }
}

/// Postgres and pool errors in one place: unreachable database is UNAVAILABLE (retryable), a
/// serialization failure or deadlock is ABORTED-like and retryable too, everything else is INTERNAL.
pub fn classify_sqlx_error(err: sqlx::Error) -> ApiError {
    match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ApiError::Unavailable(err.into())
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // serialization_failure, deadlock_detected: the client may retry.
            Some("40001") | Some("40P01") => ApiError::Unavailable(err.into()),
            // admin_shutdown, cannot_connect_now, too_many_connections
            Some("57P01") | Some("57P03") | Some("53300") => ApiError::Unavailable(err.into()),
            _ => ApiError::Internal(anyhow::Error::new(err).context("database error")),
        },
        _ => ApiError::Internal(anyhow::Error::new(err).context("database error")),
    }
}

/// True when the error is a unique-constraint violation on the named constraint.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let code = err.code();
        let reason = err.reason();
        let mut details = ErrorDetails::new();
        let mut metadata = std::collections::HashMap::new();
        let message = match err {
            ApiError::InvalidArgument { field, reason } => {
                let message = format!("invalid {field}: {reason}");
                details.add_bad_request_violation(field, reason);
                message
            }
            ApiError::InvalidFields(fields) => {
                let message = format!(
                    "invalid request: {}",
                    fields
                        .iter()
                        .map(|(f, r)| format!("{f} {r}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                for (field, reason) in fields {
                    details.add_bad_request_violation(field, reason);
                }
                message
            }
            ApiError::Unavailable(cause) => {
                let id = uuid::Uuid::now_v7();
                tracing::warn!(error_id = %id, error = %redacted(&cause), "dependency unavailable");
                metadata.insert("error_id".to_owned(), id.to_string());
                format!("service temporarily unavailable (error id {id})")
            }
            ApiError::Internal(cause) => {
                let id = uuid::Uuid::now_v7();
                tracing::error!(error_id = %id, error = %redacted(&cause), "internal error");
                metadata.insert("error_id".to_owned(), id.to_string());
                format!("internal error (error id {id})")
            }
            ApiError::RateLimited { scope, retry_after } => {
                details.set_retry_info(Some(retry_after));
                metadata.insert(
                    "retry_after_ms".to_owned(),
                    retry_after.as_millis().to_string(),
                );
                format!("rate limit exceeded for this {scope}")
            }
            ApiError::Aborted { current } => {
                metadata.insert("current_version".to_owned(), current.to_string());
                format!("stale version: current version is {current}")
            }
            other => other.to_string(),
        };
        let current_version = metadata.get("current_version").cloned();
        details.set_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
        let mut status = Status::with_error_details(code, message, details);
        if let Some(v) = current_version.and_then(|v| v.parse().ok()) {
            status.metadata_mut().insert("x-current-version", v);
        }
        status
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// An error chain safe to log: Postgres errors keep their SQLSTATE, message, table and constraint but
/// never their detail ("Key (mrn)=(...)", "Failing row contains (...)"), which carries row values.
/// Line breaks are removed so the text also fits a header.
pub fn redacted(err: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in err.chain() {
        let text = match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => format!(
                "database error {} ({}) table={} constraint={}",
                db.code().unwrap_or_default(),
                db.message(),
                db.table().unwrap_or("-"),
                db.constraint().unwrap_or("-")
            ),
            Some(other) => other.to_string(),
            None => cause.to_string(),
        };
        parts.push(text);
        if cause.downcast_ref::<sqlx::Error>().is_some() {
            break;
        }
    }
    parts.join(": ").replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_errors_md_lists_every_reason() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md"))
                .expect("docs/errors.md");
        for reason in Reason::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", reason.as_str())),
                "docs/errors.md lacks {}",
                reason.as_str()
            );
        }
    }

    #[test]
    fn every_error_carries_its_reason_and_a_hidden_refusal_reads_as_missing() {
        use tonic_types::StatusExt;
        let hidden: Status = ApiError::AccessDenied {
            patient_id: uuid::Uuid::nil(),
            hidden: true,
        }
        .into();
        let missing: Status = ApiError::NotFound("patient").into();
        assert_eq!(hidden.code(), missing.code());
        assert_eq!(hidden.message(), missing.message());
        assert_eq!(
            hidden.get_details_error_info().unwrap().reason,
            missing.get_details_error_info().unwrap().reason
        );
        let stale: Status = ApiError::Aborted { current: 4 }.into();
        let info = stale.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("STALE_VERSION", ERROR_DOMAIN)
        );
        assert_eq!(
            info.metadata.get("current_version").map(String::as_str),
            Some("4")
        );
    }

    use super::*;

    #[test]
    fn an_invalid_argument_names_the_field_in_the_bad_request_details() {
        let status: Status = ApiError::invalid("patient_id", "must be a uuid").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status
            .get_details_bad_request()
            .expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "patient_id");
    }

    #[test]
    fn an_internal_error_never_sends_its_cause() {
        let status: Status = ApiError::internal(
            "failed to store task",
            anyhow::anyhow!("SELECT secret FROM x"),
        )
        .into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SELECT"));
        assert!(status.message().contains("error id"));
    }

    #[test]
    fn a_stale_version_carries_the_current_version() {
        let status: Status = ApiError::Aborted { current: 7 }.into();
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(status.metadata().get("x-current-version").unwrap(), "7");
    }
}
