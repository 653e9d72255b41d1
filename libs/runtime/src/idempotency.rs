//! Remembered idempotency keys: a retried mutating call returns the first call's response instead of
//! writing again. The key row is claimed inside the caller's transaction, so two concurrent calls
//! with one key serialize on it and only one of them writes; a call that failed leaves no key.

use crate::error::ApiError;
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Scope(String);

impl Scope {
    /// Keys are scoped to the RPC and the caller (issuer, organization, subject), so two callers
    /// never collide, and a caller can only ever replay its own writes.
    pub fn new(rpc: &str, principal: &crate::auth::Principal, key: &str) -> (Self, String) {
        (
            Self(format!(
                "{rpc}|{}|{}|{}",
                principal.issuer, principal.org_id, principal.subject
            )),
            key.to_owned(),
        )
    }
}

fn request_hash(request: &impl Message) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

/// A remembered write: its response, and the patient and record it touched.
pub struct Remembered<Resp> {
    pub response: Resp,
    pub patient_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
}

/// Claims `key` for this request. Returns the stored response when the key was already used for the
/// same request; refuses a key reused for a different request.
pub async fn claim<Req: Message, Resp: Message + Default>(
    conn: &mut PgConnection,
    scope: &Scope,
    key: &str,
    request: &Req,
) -> Result<Option<Remembered<Resp>>, ApiError> {
    let hash = request_hash(request);
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
         ON CONFLICT (scope, key) DO NOTHING",
    )
    .bind(&scope.0)
    .bind(key)
    .bind(&hash)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let (stored_hash, response, patient_id, target_id): (
        Vec<u8>,
        Option<Vec<u8>>,
        Option<Uuid>,
        Option<Uuid>,
    ) = sqlx::query_as(
        "SELECT request_hash, response, patient_id, target_id FROM idempotency_keys
          WHERE scope = $1 AND key = $2",
    )
    .bind(&scope.0)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    if stored_hash != hash {
        return Err(ApiError::invalid(
            "idempotency_key",
            "was already used for a different request",
        ));
    }
    let bytes = response.ok_or_else(|| {
        ApiError::internal(
            "idempotency key without response",
            anyhow::anyhow!("missing response"),
        )
    })?;
    let response = Resp::decode(bytes.as_slice())
        .map_err(|e| ApiError::internal("failed to decode stored response", e))?;
    Ok(Some(Remembered {
        response,
        patient_id,
        target_id,
    }))
}

/// Stores the response for the claimed key, in the same transaction as the change.
pub async fn complete<Resp: Message>(
    conn: &mut PgConnection,
    scope: &Scope,
    key: &str,
    response: &Resp,
    patient_id: Option<Uuid>,
    target_id: Option<Uuid>,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE idempotency_keys SET response = $3, patient_id = $4, target_id = $5
          WHERE scope = $1 AND key = $2",
    )
    .bind(&scope.0)
    .bind(key)
    .bind(response.encode_to_vec())
    .bind(patient_id)
    .bind(target_id)
    .execute(conn)
    .await?;
    Ok(())
}
